"""arca-rl: token-level credit assignment for GRPO with LoRA adapters.

The public API is what this module exports, plus the modules without a leading underscore:
`arca_rl.credit`, `arca_rl.group_credit` and `arca_rl.diagnostics` (the tensor functions), `arca_rl.trainer` and
`arca_rl.trainer_config` (the TRL classes), `arca_rl.rundir` (what a run folder holds),
`arca_rl.models`, `arca_rl.oracle`, `arca_rl.tasks`, `arca_rl.cli` (the `arca` command) and
`arca_rl.integrations.verl` (the credit methods as verl's advantage estimators; torch only until verl is called).
Modules whose name starts with an underscore are private. The tensor functions import torch only (the core:
`pip install arca-rl`); everything else pulls in TRL, PEFT or transformers (the `trl` extra: `pip install
'arca-rl[trl]'`), so it loads lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._console import TRL_EXTRA_MODULES as _TRL_EXTRA_MODULES
from .credit import register_signal, registered_signals, salience, signal_needs, token_entropy, token_weights
from .diagnostics import effective_token_ratio, gini, summarize, top_mass
from .group_credit import register_group_method, registered_group_methods

__version__ = "0.1.0"

_LAZY = {
    "ARCAGRPOConfig": "arca_rl.trainer_config",
    "ARCAGRPOTrainer": "arca_rl.trainer",
    "ARCARLOOConfig": "arca_rl.trainer_config",
    "ARCARLOOTrainer": "arca_rl.trainer",
    "ConfigError": "arca_rl.errors",
    "RunConfig": "arca_rl._config",
    "RunExistsError": "arca_rl.rundir",
    "diagnose": "arca_rl._diagnose",
    "evaluate": "arca_rl._run.evaluation",
    "load_config": "arca_rl._config",
    "plan_sweep": "arca_rl._sweep",
    "run_sweep": "arca_rl._sweep",
    "train": "arca_rl._run.training",
    "write_report": "arca_rl._report",
}

if TYPE_CHECKING:  # pragma: no cover
    from ._config import RunConfig, load_config
    from ._diagnose import diagnose
    from ._report import write_report
    from ._run.evaluation import evaluate
    from ._run.training import train
    from ._sweep import plan_sweep, run_sweep
    from .errors import ConfigError
    from .rundir import RunExistsError
    from .trainer import ARCAGRPOTrainer, ARCARLOOTrainer
    from .trainer_config import ARCAGRPOConfig, ARCARLOOConfig


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        try:
            module = importlib.import_module(_LAZY[name])
        except ModuleNotFoundError as e:  # the core installs without the trl extra (pyproject.toml)
            if (e.name or "").split(".")[0] not in _TRL_EXTRA_MODULES:
                raise
            raise ImportError(
                f"arca_rl.{name} needs arca-rl's trl extra ({e.name} is not installed): pip install 'arca-rl[trl]'"
            ) from None
        return getattr(module, name)
    raise AttributeError(f"module 'arca_rl' has no attribute {name!r}")


__all__ = [
    "ARCAGRPOConfig",
    "ARCAGRPOTrainer",
    "ARCARLOOConfig",
    "ARCARLOOTrainer",
    "ConfigError",
    "RunConfig",
    "RunExistsError",
    "diagnose",
    "effective_token_ratio",
    "evaluate",
    "gini",
    "load_config",
    "plan_sweep",
    "register_group_method",
    "register_signal",
    "registered_group_methods",
    "registered_signals",
    "run_sweep",
    "salience",
    "signal_needs",
    "summarize",
    "token_entropy",
    "token_weights",
    "top_mass",
    "train",
    "write_report",
]
