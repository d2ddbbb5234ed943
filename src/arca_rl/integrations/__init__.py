"""arca-rl's credit methods inside other RL trainers: `arca_rl.integrations.verl` (verl's advantage estimators).

These modules import the tensor functions (`credit`, `group_credit`, `_credit_fields`, `errors`) and nothing above
them: no TRL, no trainer. The other trainer itself is imported only inside functions, so that a module here imports
without it (for type checking, documentation) and says in one line what to install when a function needs it.
"""
