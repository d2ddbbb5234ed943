"""`ARCAGRPOConfig` and `ARCARLOOConfig`: TRL's `GRPOConfig` / `RLOOConfig` plus the credit fields, apart from
the trainers.

Kept in its own module (as TRL keeps `GRPOConfig` apart from `GRPOTrainer`) so that reading or
validating a config does not import the trainer. The credit fields are declared once, in `CreditFields`
(`arca_rl._credit_fields`, re-exported here), which owns each one's default, check, use, whether `--resume`
may change it and the final mix lambda of a run; its module docstring says how to add a credit setting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from trl import GRPOConfig, RLOOConfig

from .. import group_credit
from .._credit_fields import CREDIT_BASES, CreditConfigError, CreditFields

__all__ = [
    "CREDIT_BASES",
    "SEQUENCE_RATIO_LOSSES",
    "TRL_FIELD_RANGES",
    "ARCAGRPOConfig",
    "ARCARLOOConfig",
    "CreditConfigError",
    "CreditFields",
    "field_default",
]


# GRPO loss types whose policy term reads the model only through the importance ratio (see ARCAGRPOConfig)
SEQUENCE_RATIO_LOSSES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo", "sapo")


@dataclass
class ARCAGRPOConfig(CreditFields, GRPOConfig):
    r"""
    [`trl.GRPOConfig`] plus token credit assignment (the fields of `CreditFields`). Every inherited field keeps
    TRL's default (TRL's default `loss_type` is `"dapo"`; the paper's length-normalized estimator, used by the paper
    configs, is `"grpo"`).

    Every `loss_type` works with token credit at `importance_sampling_level="token"` (TRL's default). At
    `importance_sampling_level="sequence"` (GSPO; LUSPO's recommended setting) TRL takes one ratio per completion
    from the mean token log-ratio: for the loss types whose policy term depends on the model only through that ratio
    (`SEQUENCE_RATIO_LOSSES`: grpo, bnpo, dr_grpo, dapo, luspo, sapo) the token advantages then sum back to
    `A_i * T_i`, so credit could not change the gradient, and a non-uniform `credit` is refused. `cispo` and `vespo`
    multiply the advantage by each token's log-prob and keep token credit at either level.
    """

    def __post_init__(self) -> None:
        if (
            self.credit != "uniform"
            and self.importance_sampling_level == "sequence"
            and self.loss_type in SEQUENCE_RATIO_LOSSES
        ):
            raise CreditConfigError(
                "credit",
                f"importance_sampling_level='sequence' with loss_type={self.loss_type!r} gives each completion one "
                f"ratio (from the mean token log-ratio), so credit={self.credit!r} would have no effect on the "
                "gradient; set importance_sampling_level='token', or loss_type='cispo'/'vespo', or credit='uniform'.",
                reason=f"{self.credit!r} has no effect with importance_sampling_level='sequence' and loss_type="
                f"{self.loss_type!r} (one ratio per completion); set training.importance_sampling_level: token, "
                "or loss_type cispo/vespo, or credit: uniform",
            )
        super().__post_init__()


@dataclass
class ARCARLOOConfig(CreditFields, RLOOConfig):
    r"""
    [`trl.RLOOConfig`] plus token credit assignment (the fields of `CreditFields`). Every inherited field keeps
    TRL's default (TRL's default `beta` for RLOO is 0.05, so `arca`'s base is captured inside TRL's reference pass).

    RLOO's loss is per sequence (one clipped ratio times the leave-one-out advantage): it takes token weights,
    not signed token advantages, so the group methods that give signed advantages (ktae, tempo, gtpo, hicra)
    are refused here.
    """

    def __post_init__(self) -> None:
        if group_credit.is_group_method(self.credit) and group_credit.group_method_output(self.credit) == "advantages":
            reason = (
                f"{self.credit!r} gives signed token advantages, but RLOO's per-sequence loss takes token weights "
                "only; use trainer: grpo for it"
            )
            raise CreditConfigError("credit", f"credit={self.credit!r}: {reason}.", reason=reason)
        super().__post_init__()


def sdpo_config() -> Any:
    """`trainer: sdpo`'s config class, `trainer_config.sdpo.ARCASDPOConfig` (TRL's experimental `SDPOConfig` plus the
    credit fields), imported only when asked for."""
    from .sdpo import ARCASDPOConfig

    return ARCASDPOConfig


def field_default(name: str, config: type = ARCAGRPOConfig) -> Any:
    """The default of field `name` of `config` (`ARCAGRPOConfig` or `ARCARLOOConfig`; TRL's own default for an
    inherited field)."""
    for f in dataclasses.fields(config):
        if f.name == name:
            if f.default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            return f.default
    raise KeyError(name)


# Ranges of TRL's own fields that TRL passes on unchecked (a 0, a negative count, NaN or inf there crashes or
# silently misbehaves only after the model has loaded). Each: (lowest, lowest allowed?, highest or None). The
# YAML layer (`arca_rl.load_config`) checks them, and that every float field is finite; the credit fields'
# ranges are `CreditFields.__post_init__`'s.
_POSITIVE = (0, False, None)
_NON_NEGATIVE = (0, True, None)
SEED_RANGE = (0, True, 2**32 - 1)  # numpy.random.seed's range (HF's set_seed calls it)
TRL_FIELD_RANGES: dict[str, tuple[float, bool, float | None]] = {
    "max_steps": _POSITIVE,
    "per_device_train_batch_size": _POSITIVE,
    "per_device_eval_batch_size": _POSITIVE,
    "num_generations": _POSITIVE,
    "num_generations_eval": _POSITIVE,
    "gradient_accumulation_steps": _POSITIVE,
    "steps_per_generation": _POSITIVE,
    "generation_batch_size": _POSITIVE,
    "num_iterations": _POSITIVE,
    "max_completion_length": _POSITIVE,
    "num_train_epochs": _POSITIVE,
    "learning_rate": _NON_NEGATIVE,
    "temperature": _POSITIVE,
    "top_p": (0, False, 1),
    "top_k": _NON_NEGATIVE,
    "min_p": (0, True, 1),
    "repetition_penalty": _POSITIVE,
    "beta": _NON_NEGATIVE,
    "epsilon": _NON_NEGATIVE,
    "epsilon_high": _NON_NEGATIVE,
    "max_grad_norm": _NON_NEGATIVE,
    "weight_decay": _NON_NEGATIVE,
    "warmup_steps": _NON_NEGATIVE,
    "logging_steps": _POSITIVE,
    "save_steps": _POSITIVE,
    "eval_steps": _POSITIVE,
    "seed": SEED_RANGE,
    "data_seed": SEED_RANGE,
}
