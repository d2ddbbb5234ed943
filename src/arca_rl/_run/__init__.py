"""One training run, from a checked config to a finished run folder (private).

What lives here: `training.py` (`train()`: the task, the trainer, callbacks, the final evaluation and plots),
`resume.py` (what `--resume` will do, checked before anything loads), `evaluation.py` (`evaluate()`: greedy
accuracy and unbiased pass@k), `curve.py` (the held-out learning curve's file, no TRL) and `curve_callback.py`
(the callback that writes it). `training.py` is not named `train.py`: the package would then hold a module and a
function of one name, and `arca_rl._run.train` would mean either.

Who may import it: the commands (`cli`, `_demo`, `_sweep`, `_diagnose`, `_report`). It imports the trainer, the
tasks, the configs and the run folder; nothing here imports a command. This `__init__` imports nothing, so that
reading a curve (`_run.curve`) does not load TRL.
"""
