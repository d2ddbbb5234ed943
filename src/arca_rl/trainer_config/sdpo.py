"""`trainer: sdpo`'s config: TRL's experimental `SDPOConfig` plus the credit fields (the trainer is
`arca_rl.trainer.sdpo`). Imported only when `trainer: sdpo` is asked for (TRL marks the module experimental); a
module of its own so that the configs (`arca_rl.trainer_config`) never import the trainers above them."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from .._credit_fields import CreditConfigError, CreditFields

with warnings.catch_warnings():  # TRL warns on every import of trl.experimental; choosing sdpo is the user's intent
    warnings.filterwarnings("ignore", message=".*trl.experimental.*")
    from trl.experimental.sdpo import SDPOConfig

__all__ = ["ARCASDPOConfig"]


@dataclass
class ARCASDPOConfig(CreditFields, SDPOConfig):
    r"""
    [`trl.experimental.sdpo.SDPOConfig`] plus the credit fields (so one run config serves every trainer). Only
    `credit: uniform`: SDPO's own loss decides how each token is credited.
    """

    def __post_init__(self) -> None:
        if self.credit != "uniform":
            reason = (
                f"trainer: sdpo trains with SDPO's own self-distillation loss, so credit={self.credit!r} would have no "
                "effect; set training.credit: uniform (or use credit: self_teacher with trainer: grpo)"
            )
            raise CreditConfigError("credit", f"credit={self.credit!r}: {reason}.", reason=reason)
        super().__post_init__()
