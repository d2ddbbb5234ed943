"""`ARCAGRPOConfig` and `ARCARLOOConfig`: TRL's `GRPOConfig` / `RLOOConfig` plus the credit fields, apart from
the trainers.

Kept in its own module (as TRL keeps `GRPOConfig` apart from `GRPOTrainer`) so that reading or
validating a config does not import the trainer. The credit fields are defined once (`CreditFields`) and
validated here and nowhere else: the YAML configs (`arca_rl.load_config`) and the trainers rely on
`CreditFields.__post_init__`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig, RLOOConfig

from . import credit

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


class CreditConfigError(ValueError):
    """An invalid credit field of `ARCAGRPOConfig` / `ARCARLOOConfig`: `field` names it, the message says what is wrong.

    `reason` is the message as a line that already names the field would finish it (the YAML layer
    writes `training.<field>: <reason>`); it is the whole message unless a shorter one reads better.
    """

    def __init__(self, field: str, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason or message


CREDIT_BASES = ("disabled", "reference")


# GRPO loss types whose policy term reads the model only through the importance ratio (see ARCAGRPOConfig)
SEQUENCE_RATIO_LOSSES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo", "sapo")


@dataclass
class CreditFields:
    r"""
    The token-credit fields, shared by `ARCAGRPOConfig` and `ARCARLOOConfig` (listed first in their bases, so that
    they are validated before TRL's own fields).

    Parameters:
        credit (`str`, defaults to `"arca"`):
            Salience signal that spreads each completion's advantage over its tokens: one of the registered
            signals (`uniform`, `surprisal`, `entropy_reduction`, `divergence`, `arca`, or one added with
            `arca_rl.register_signal`). `uniform` reproduces stock GRPO / RLOO.
        credit_eps (`float`, defaults to `1e-8`):
            Floor added to the salience before the power: `w_t = (alpha_t + eps)^p / sum_k (alpha_k + eps)^p`.
        credit_power (`float`, defaults to `1.0`):
            Sharpening power `p` (1 = none; the paper's MATH sweep used 2.0).
        credit_min_salience (`float`, defaults to `0.0`):
            A completion whose largest salience is at most this falls back to uniform credit. Guards against
            normalizing noise-level salience (e.g. a fresh DoRA adapter in bf16) into sharp credit.
        credit_mix (`float`, defaults to `1.0`):
            Blend of the signal's credit with uniform credit, `lambda` in [0, 1]:
            `w_t = (1 - lambda) / T + lambda * w_signal_t`, where `w_signal` are the weights above (after the
            power and any uniform fallback). Every token keeps at least `(1 - lambda) / T` of the credit, so no
            token the signal starves stops being learned. 1 = the signal alone; 0 = uniform credit (stock GRPO).
            Shadow signals get the same mix. The mixed weights are what the gradient, the `credit/*` metrics and
            `credit_tokens.jsonl`'s `weights` use (its `salience` stays raw).
        credit_warmup_steps (`int`, defaults to `0`):
            Ramp the mix up over the first N optimizer steps: `lambda = credit_mix * min(1, s / N)`, s = optimizer
            steps already taken. Credit is uniform while a fresh adapter has no residual and reaches `credit_mix`
            after N steps; every micro-batch and `num_iterations` pass of one step uses the same lambda, logged as
            `credit/mix`. 0 = `credit_mix` from the first step.
        credit_base (`str`, defaults to `"disabled"`):
            What the adapted model is compared against for `arca` and `divergence`. `"disabled"` (the paper's definition): the same
            model with every adapter switched off; costs one no-grad forward per generation batch when `beta = 0`,
            and nothing extra when `beta > 0` (it is captured inside TRL's reference pass). `"reference"`: TRL's
            frozen `"ref"` adapter, which TRL loads when an existing adapter is re-trained with `beta > 0`; costs
            nothing extra (the reference pass runs anyway). Falls back to `"disabled"` when there is no `"ref"`
            adapter.
        credit_shadow (`bool`, defaults to `False`):
            Also score every other registered signal on the same batch and log its diagnostics as
            `shadow/<signal>/...`, without using it for the gradient. Costs at most one adapter-off pass per
            generation batch when the active signal does not already need one.
        credit_log_tokens_every (`int`, defaults to `0`):
            Every N optimizer steps, append the tokens, weights, raw salience and advantage of a few completions to
            `<output_dir>/credit_tokens.jsonl` (for heatmaps), and, with TRL's `top_entropy_quantile` < 1, which
            tokens its entropy mask keeps (`entropy_mask`). 0 turns it off.
        credit_log_tokens_count (`int`, defaults to `4`):
            How many completions each `credit_log_tokens_every` dump writes.
    """

    credit: str = field(
        default="arca",
        metadata={
            "help": "Salience signal for token credit: uniform, surprisal, entropy_reduction, divergence, arca, or a registered one."
        },
    )
    credit_eps: float = field(
        default=1e-8, metadata={"help": "Floor added to the salience before the power."}
    )
    credit_power: float = field(
        default=1.0, metadata={"help": "Sharpening power p (1 = none; the paper used 2)."}
    )
    credit_min_salience: float = field(
        default=0.0, metadata={"help": "Rows whose largest salience is at most this get uniform credit."}
    )
    credit_mix: float = field(
        default=1.0,
        metadata={"help": "lambda in [0, 1]: w = (1 - lambda)/T + lambda * w_signal (1 = signal alone, 0 = uniform)."},
    )
    credit_warmup_steps: int = field(
        default=0,
        metadata={"help": "Ramp lambda from 0 to credit_mix over this many optimizer steps (0 = no warm-up)."},
    )
    credit_base: str = field(
        default="disabled",
        metadata={
            "help": "Base for arca/divergence: 'disabled' (adapter off) or 'reference' (TRL's 'ref' adapter)."
        },
    )
    credit_shadow: bool = field(
        default=False,
        metadata={"help": "Also log diagnostics of every other registered signal on the same batch."},
    )
    credit_log_tokens_every: int = field(
        default=0,
        metadata={"help": "Every N steps, dump tokens/weights/salience to credit_tokens.jsonl (0 = off)."},
    )
    credit_log_tokens_count: int = field(
        default=4, metadata={"help": "How many completions each credit_tokens.jsonl dump writes."}
    )

    def __post_init__(self) -> None:
        # Validate our fields before TRL's (cheap, and errors name the field and the fix).
        signals = credit.registered_signals()
        if self.credit not in signals:
            close = difflib.get_close_matches(str(self.credit), signals, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            registered = f"registered: {', '.join(signals)}"
            raise CreditConfigError(
                "credit",
                f"credit={self.credit!r} is not a registered signal{hint}; {registered} (register yours with "
                "arca_rl.register_signal before building the config).",
                reason=f"unknown signal {self.credit!r}{hint}; {registered}",
            )
        # NaN fails every comparison, and inf would turn the weights into NaN (inf / inf): finite only.
        if not (_finite(self.credit_eps) and self.credit_eps >= 0):
            raise CreditConfigError("credit_eps", f"credit_eps must be a number >= 0 and finite, got {self.credit_eps!r}.")
        if not (_finite(self.credit_power) and self.credit_power > 0):
            raise CreditConfigError(
                "credit_power",
                f"credit_power must be a number > 0 and finite (1 = no sharpening), got {self.credit_power!r}."
            )
        if not (_finite(self.credit_min_salience) and self.credit_min_salience >= 0):
            raise CreditConfigError(
                "credit_min_salience",
                f"credit_min_salience must be a number >= 0 and finite, got {self.credit_min_salience!r}.",
            )
        mix = self.credit_mix
        if not (_finite(mix) and 0 <= mix <= 1):
            reason = (
                f"must be a number in [0, 1] (1 = the signal alone, 0 = uniform credit), got {mix!r}; "
                "set e.g. credit_mix: 0.5"
            )
            raise CreditConfigError("credit_mix", f"credit_mix {reason}.", reason=reason)
        warmup = self.credit_warmup_steps
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            reason = f"must be an integer >= 0 (optimizer steps; 0 = no warm-up), got {warmup!r}"
            raise CreditConfigError("credit_warmup_steps", f"credit_warmup_steps {reason}.", reason=reason)
        if self.credit_base not in CREDIT_BASES:
            raise CreditConfigError("credit_base", f"credit_base must be one of {CREDIT_BASES}, got {self.credit_base!r}.")
        if not isinstance(self.credit_shadow, bool):
            raise CreditConfigError("credit_shadow", f"credit_shadow must be true or false, got {self.credit_shadow!r}.")
        for name in ("credit_log_tokens_every", "credit_log_tokens_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise CreditConfigError(name, f"{name} must be an integer >= 0, got {value!r}.")
        super().__post_init__()

    def token_weight_kwargs(self) -> dict[str, Any]:
        """How this config turns salience into weights: the keyword arguments of `credit.token_weights`.

        The trainer and `arca diagnose` both weight through this, so a diagnosis shows the credit a run used.
        """
        return {"eps": self.credit_eps, "power": self.credit_power, "min_salience": self.credit_min_salience}

    def credit_lambda(self, step: int) -> float:
        """The `credit_mix` lambda in force after `step` optimizer steps: `credit_mix * min(1, step / N)`,
        N = `credit_warmup_steps` (`credit.mix_schedule`); the weights are then `credit.mix_weights(w, mask, lambda)`."""
        return credit.mix_schedule(int(step), float(self.credit_mix), int(self.credit_warmup_steps))


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
    """


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def field_default(name: str, config: type = ARCAGRPOConfig) -> Any:
    """The default of field `name` of `config` (`ARCAGRPOConfig` or `ARCARLOOConfig`; TRL's own default for an
    inherited field)."""
    for f in dataclasses.fields(config):
        if f.name == name:
            return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    raise KeyError(name)


# Ranges of TRL's own fields that TRL passes on unchecked (a 0, a negative count, NaN or inf there crashes or
# silently misbehaves only after the model has loaded). Each: (lowest, lowest allowed?, highest or None). The
# YAML layer (`arca_rl.load_config`) checks them, and that every float field is finite; the credit fields'
# ranges are `CreditFields.__post_init__`'s.
_POSITIVE = (0, False, None)
_NON_NEGATIVE = (0, True, None)
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
}
