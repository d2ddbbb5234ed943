"""The TRL trainers with token credit: `ARCAGRPOTrainer`, `ARCARLOOTrainer` (and `trainer: sdpo`'s peer).

What lives here: `arca_trainer.py` the two trainers, one mixin that routes tensors between TRL and
`arca_rl.credit` / `arca_rl.diagnostics`; beside it the mixins and pieces of that routing: `group.py` (the group
methods' pass, once per generation batch), `teacher.py` (the self-teacher's KL pass), `vine.py` (VinePPO's token
values from the oracle), `hooks.py` (the hidden-state hook, reward checks), `metrics.py` (the credit metrics and the
token log), `resume.py` (resuming inside a generation batch), `sdpo.py` (TRL's SDPO reached from the same CLI).

Who may import it: the training run (`arca_rl._run`) and users. It imports the tensor functions, the oracle, the
configs and the run folder's file formats, never the commands (`cli`, `_diagnose`, `_report`) or the run itself.
"""

from __future__ import annotations

from .arca_trainer import ARCAGRPOTrainer, ARCARLOOTrainer

__all__ = ["ARCAGRPOTrainer", "ARCARLOOTrainer"]
