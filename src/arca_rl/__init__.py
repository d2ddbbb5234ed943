"""arca-rl: token-level credit assignment for GRPO with LoRA adapters.

The public API is what this module exports; everything else is private. The tensor functions
(`salience`, `token_weights`, ...) import torch only; the trainer and `diagnose` pull in TRL and
PEFT, so they load lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .credit import register_signal, registered_signals, salience, signal_needs, token_entropy, token_weights
from .diagnostics import effective_token_ratio, gini, summarize, top_mass

__version__ = "0.1.0"

_LAZY = {
    "ARCAGRPOConfig": "arca_rl.trainer_config",
    "ARCAGRPOTrainer": "arca_rl.trainer",
    "ARCARLOOConfig": "arca_rl.trainer_config",
    "ARCARLOOTrainer": "arca_rl.trainer",
    "diagnose": "arca_rl._diagnose",
}

if TYPE_CHECKING:  # pragma: no cover
    from ._diagnose import diagnose
    from .trainer import ARCAGRPOTrainer, ARCARLOOTrainer
    from .trainer_config import ARCAGRPOConfig, ARCARLOOConfig


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'arca_rl' has no attribute {name!r}")


__all__ = [
    "ARCAGRPOConfig",
    "ARCAGRPOTrainer",
    "ARCARLOOConfig",
    "ARCARLOOTrainer",
    "diagnose",
    "effective_token_ratio",
    "gini",
    "register_signal",
    "registered_signals",
    "salience",
    "signal_needs",
    "summarize",
    "token_entropy",
    "token_weights",
    "top_mass",
]
