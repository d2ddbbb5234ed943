"""The credit settings and their one owner, `CreditFields` (re-exported by `arca_rl.trainer_config`).

Every `credit*` field of `ARCAGRPOConfig` / `ARCARLOOConfig` is declared once, with `credit_field(...)`: its
default and help (TRL's argument parser reads `help`); its check (`Range`, `OneOf`, `IS_BOOL`, `TEXT`, `SIGNAL`),
run by `CreditFields.__post_init__`, so configs, trainers, `arca demo --methods arca+mix0.5` and `arca diagnose
--mix` reject the same values with the same words; its `use` (`Use.WEIGHTS`: a keyword of `credit.token_weights`;
`Use.LAMBDA`: the mix lambda; `Use.GROUP`: a group method's keyword `<method>_<name>`); whether `--resume` may
change it (`resume_fixed()`); an optional variant suffix (`variant_suffixes()`).

To add a setting, add one `credit_field` to `CreditFields` and a `Parameters` entry to its docstring; nothing else
needs editing (`tests/test_credit_fields.py` fails when a declaration lacks something a consumer needs). No TRL here.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import credit, group_credit
from ._setup_checks import config_problem

__all__ = [
    "CREDIT_BASES",
    "IS_BOOL",
    "MIX_RANGE",
    "SIGNAL",
    "TEXT",
    "CreditConfigError",
    "CreditFields",
    "OneOf",
    "Range",
    "Setting",
    "Use",
    "credit_field",
    "defaults",
    "final_lambda",
    "resume_fixed",
    "settings",
    "variant_suffixes",
    "weight_kwargs",
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


# ---------------------------------------------------------------------------------------------------
# checks: each says what a value must be, in words shared by every consumer


@dataclass(frozen=True)
class Range:
    """A number range: `low` / `high` bounds (None = unbounded), open or closed; `integer` for whole numbers.

    A real number must also be finite (NaN fails every comparison, and inf would turn the weights into NaN).
    `note` follows "must be ..." in errors; `example` ends them ("set e.g. credit_mix: 0.5").
    """

    integer: bool = False
    low: float | None = None
    low_open: bool = False
    high: float | None = None
    high_open: bool = False
    note: str = ""
    example: str = ""
    optional: bool = False  # None (YAML null) is allowed too: the setting's own default rule applies

    def contains(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool):
            return False
        if self.integer:
            if not isinstance(value, int):
                return False
        elif not (isinstance(value, int | float) and math.isfinite(value)):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def bounds(self) -> str:
        """`in [0, 1]`, `in (0, 1]`, `>= 0`, `> 0`, ..."""
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "any value"

    def describe(self) -> str:
        """`a number in [0, 1]`, `an integer >= 0`, `a number > 0 and finite`, ..."""
        if self.integer:
            return f"an integer {self.bounds()}" + (" or null" if self.optional else "")
        number = "a finite number" if self.low is None and self.high is None else f"a number {self.bounds()}" + (
            " and finite" if self.high is None else "")
        return number + (" or null" if self.optional else "")

    def error(self, name: str, value: Any) -> CreditConfigError | None:
        if self.contains(value):
            return None
        note = f" {self.note}" if self.note else ""
        example = f"; {self.example}" if self.example else ""
        return CreditConfigError(name, f"{name} must be {self.describe()}{note}, got {value!r}{example}.")


@dataclass(frozen=True)
class OneOf:
    """One of a few strings."""

    values: tuple[str, ...]

    def error(self, name: str, value: Any) -> CreditConfigError | None:
        if value in self.values:
            return None
        return CreditConfigError(name, f"{name} must be one of {self.values}, got {value!r}.")


class _Bool:
    def error(self, name: str, value: Any) -> CreditConfigError | None:
        if isinstance(value, bool):
            return None
        return CreditConfigError(name, f"{name} must be true or false, got {value!r}.")


class _Text:
    """A string (e.g. `|`-separated phrases)."""

    def error(self, name: str, value: Any) -> CreditConfigError | None:
        if isinstance(value, str):
            return None
        return CreditConfigError(name, f"{name} must be a string, got {value!r}.")


class _Signal:
    """A registered credit method: a salience signal or a group method (`group_credit.registered_methods()`, read when
    the config is built)."""

    def error(self, name: str, value: Any) -> CreditConfigError | None:
        signals = group_credit.registered_methods()
        if value in signals:
            return None
        close = difflib.get_close_matches(str(value), signals, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        registered = f"registered: {', '.join(signals)}"
        return CreditConfigError(
            name,
            f"{name}={value!r} is not a registered signal{hint}; {registered} (register yours with "
            "arca_rl.register_signal or arca_rl.register_group_method before building the config).",
            reason=f"unknown signal {value!r}{hint}; {registered}",
        )


IS_BOOL = _Bool()
SIGNAL = _Signal()
TEXT = _Text()
Check = Range | OneOf | _Bool | _Signal | _Text

#: the mix lambda's range: `credit_mix`, `arca diagnose --mix`, `diagnose(mix=...)`, `+mix<lambda>`
MIX_RANGE = Range(low=0, high=1, note="(1 = the signal alone, 0 = uniform credit)", example="set e.g. credit_mix: 0.5")
CREDIT_BASES = ("disabled", "reference")


class Use(enum.Enum):
    """How a credit setting enters the credit (what `arca diagnose` does with a run's value in brackets)."""

    SIGNAL = "signal"  # which salience signal drives the gradient (diagnose scores every signal anyway)
    WEIGHTS = "weights"  # a keyword of credit.token_weights, `Setting.kwarg` (diagnose applies the run's value)
    LAMBDA = "lambda"  # feeds the mix lambda (diagnose applies the run's final lambda, `final_lambda`)
    BASE = "base"  # what the adapted model is compared with (diagnose always switches the adapter off)
    LOGGING = "logging"  # what is logged; no effect on the gradient (diagnose has nothing to apply)
    GROUP = "group"  # a group method's hyper-parameter, `Setting.kwarg` of group_credit.group_credit, named
    # <method>_<name> (diagnose applies the run's value through `group_credit_kwargs`)
    PLACEMENT = "placement"  # moves where a weights method's credit sits, not its shape (a control; diagnose reports
    # every method's shuffled control beside it anyway, `arca_rl.oracle.placement`)


@dataclass(frozen=True)
class Setting:
    """What the package knows about one credit field, besides its default and help (see the module docstring)."""

    check: Check
    use: Use
    fixed_on_resume: bool  # may --resume not change it?
    # Use.WEIGHTS: the keyword of credit.token_weights; Use.GROUP: of group_credit.group_credit
    kwarg: str | None = None
    variant: str | None = None  # suffix of a method name: `arca+<variant><value>`


_SETTING = "arca_setting"  # key of the Setting in a dataclass field's metadata


def credit_field(
    default: Any,
    *,
    help: str,
    check: Check,
    use: Use,
    kwarg: str | None = None,
    variant: str | None = None,
    fixed_on_resume: bool | None = None,
) -> Any:
    """Declare a field of `CreditFields`: its default, help, check, use, the `credit.token_weights` keyword of a
    `Use.WEIGHTS` setting, an optional variant suffix, and whether `--resume` may not change it (by default: fixed,
    unless it only changes what is logged, `Use.LOGGING`; a run cannot change its method midway)."""
    if fixed_on_resume is None:
        fixed_on_resume = use is not Use.LOGGING
    if (use in (Use.WEIGHTS, Use.GROUP)) != (kwarg is not None):
        raise ValueError(
            "credit_field: kwarg names the credit.token_weights keyword of a Use.WEIGHTS setting, or the "
            "group_credit.group_credit keyword of a Use.GROUP one, and only then"
        )
    if variant is not None and not isinstance(check, Range):
        raise ValueError("credit_field: a variant suffix needs a numeric Range check")
    setting = Setting(check=check, use=use, fixed_on_resume=fixed_on_resume, kwarg=kwarg, variant=variant)
    return dataclasses.field(default=default, metadata={"help": help, _SETTING: setting})


# ---------------------------------------------------------------------------------------------------
# the owner


@dataclass
class CreditFields:
    r"""
    The token-credit fields of `ARCAGRPOConfig` and `ARCARLOOConfig` (first in their bases: validated before TRL's
    own fields), each declared with `credit_field` (this module's docstring says how to add one).

    Parameters:
        credit (`str`, defaults to `"uniform"`):
            How each completion's advantage is spread over its tokens: a registered signal (`uniform`, `surprisal`,
            `entropy_reduction`, `divergence`, `arca`, or one added with `arca_rl.register_signal`) or group method
            (`ktae`, `tempo`, ...). The default, `uniform`, is stock GRPO / RLOO (no adapter needed): no measurement
            here shows another method ahead at the end of a run (docs/results.md). `"arca"` trains ARCA.
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
            What the adapted model is compared against for `arca` and `divergence`. `"disabled"` (the paper's
            definition): the same model with every adapter switched off; costs one no-grad forward per generation batch
            when `beta = 0`, and nothing extra when `beta > 0` (it is captured inside TRL's reference pass).
            `"reference"`: TRL's frozen `"ref"` adapter, which TRL loads when an existing adapter is re-trained with
            `beta > 0`; costs nothing extra (the reference pass runs anyway). Falls back to `"disabled"` when there is
            no `"ref"` adapter.
        credit_shadow (`bool`, defaults to `False`):
            Also score every other registered signal on the same batch and log its diagnostics as
            `shadow/<signal>/...`, without using it for the gradient. Costs at most one adapter-off pass per
            generation batch when the active signal does not already need one. `vine` and `self_teacher`, which run
            the policy, are never shadows (their settings are refused with another credit).
        credit_log_tokens_every (`int`, defaults to `0`):
            Every N optimizer steps, append the tokens, weights, raw salience and advantage of a few completions to
            `<output_dir>/credit_tokens.jsonl` (for heatmaps), and, with TRL's `top_entropy_quantile` < 1, which
            tokens its entropy mask keeps (`entropy_mask`). 0 turns it off.
        credit_log_tokens_count (`int`, defaults to `4`):
            How many completions each `credit_log_tokens_every` dump writes.
        credit_ktae_scale (`float`, defaults to `1.0`):
            KTAE (`credit: ktae`): `A_it = A_i + scale * k(y_t)`, k the key-token value in [-1, 1] of the token's id
            from the group's correct/incorrect x contains/not table (`group_credit.ktae_key_values`).
        credit_tempo_td_weight (`float`, defaults to `1.0`):
            TEMPO (`credit: tempo`): `A_it = A_i + weight * (V(y_<=t) - V(y_<t))`, V the mean sequence advantage
            of the group's completions below a prefix of the group's prefix tree (non-zero only at branching tokens).
        credit_gtpo_alpha1 (`float`, defaults to `1.0`):
            GTPO (`credit: gtpo`): weight of the sequence reward in the token reward
            `alpha1 * R_i +- alpha2 * (entropy share) * (completions alive)`.
        credit_gtpo_alpha2 (`float`, defaults to `1.0`):
            GTPO: weight of the entropy term (entropy for correct completions, 1 / entropy for incorrect ones, so
            confident mistakes are penalised harder); token rewards are then normalised over the group's tokens.
        credit_hicra_alpha (`float`, defaults to `0.2`):
            HICRA (`credit: hicra`): `A_it = A_i + alpha * |A_i|` on planning tokens (`A_i (1 + alpha)` for
            positive, `A_i (1 - alpha)` for negative A_i), `A_i` elsewhere.
        credit_hicra_entropy_frac (`float`, defaults to `0.2`):
            HICRA's planning tokens without strategic grams: the top share of each group's tokens by sampling
            entropy.
        credit_hicra_grams (`str`, defaults to `""`):
            HICRA's strategic grams (the paper's rule), `|`-separated phrases (e.g. `"let's try|we can use"`); each
            is matched as the tokenizer's ids for the phrase, with and without a leading space. Empty: the
            top-entropy rule above.
        credit_vine_samples (`int`, defaults to `8`):
            VinePPO (`credit: vine`): K, the continuations of every prefix of each completion, sampled by the current
            policy, whose mean reward is the prefix's value V_t; `A_it = V_t - V_{t-1}` (`arca_rl.oracle`). Costs
            K * (prompts + sum of (T - 1)) sampled continuations per generation batch (`credit/vine_rollouts`).
        credit_vine_batch_rows (`int`, defaults to `256`):
            vine: the most continuations sampled in one batched call (each holds a copy of its prefix's KV cache);
            a completion with more is split over several calls. Bounds memory, not the result.
        credit_teacher_success (`float` or `None`, defaults to `None`):
            self-teacher (`credit: self_teacher`): the reward a sibling completion must reach to be shown to the
            policy as a verified solution (never a completion's own). None: the group's maximum reward, when it is
            above the group's mean; with the tasks' default exact reward (1 for a correct answer, else 0) that is a
            correct sibling in a group that also has a wrong answer. With `task.reward: graded` it must be 1.0 (a
            partial score is not a correct answer; other values are refused). Each token's weight is then
            KL(pi_S || pi_T) at it (`arca_rl.self_teacher`).
        credit_vine_positions (`str`, defaults to `"adaptive"`):
            vine: which prefixes get sampled values: `adaptive` (the two ends, then only where the value moves more
            than its standard error; every token of an interval it leaves unsplit gets the interval's whole change
            V_b - V_a, VinePPO's step form, so a flat completion costs only V_0) or `all` (every prefix).
        credit_shuffle (`bool`, defaults to `False`):
            A control: train a weights method (a signal, or a group method that gives weights, e.g. `self_teacher`)
            with its weights permuted within each completion at every step, so the credit keeps its shape (Gini,
            EffN/T) and loses its place. A gain that survives it comes from the shape (sharpening), not from where
            the credit sits. Each permutation is seeded by the run seed, the optimizer step, the row and its tokens
            (`credit.shuffle_key`): reproducible, and a resumed run draws the same ones. The `credit/*` metrics and
            `credit_tokens.jsonl`'s `weights` show the permuted weights (`salience` stays raw). Refused with a method
            that gives signed token advantages.
        credit_grail_answer_weight (`float`, defaults to `5.0`):
            GRAIL (`credit: grail`, `arca_rl.model_credit`): the weight forced on the answer's own tokens (the answer
            the task grades, `Task.answer_span`), on every completion that has one, after the z-weights below; its
            markup (`\\boxed{`, `}`) and the tokens after it get 1. 0 turns the forced weight off: the answer's tokens
            keep their z-weight (variant suffix `grail+answer0`). Costs GRAIL one forward and one backward to the
            input embeddings per generation batch (no parameter gradient).
        credit_grail_wrong_only (`bool`, defaults to `True`):
            GRAIL: z-weights only on the wrong rollouts (A_i <= 0), as GRAIL's runs; the others keep weight 1 (and
            the forced answer weight). False: every rollout.
        credit_grail_std (`float`, defaults to `0.5`):
            GRAIL: a token's weight is `1 + std * z`, z the z-score of log ||grad * embedding|| over its completion,
            clipped to [`credit_grail_min`, `credit_grail_max`].
        credit_grail_min (`float`, defaults to `0.5`):
            GRAIL: the lower clip of the z-weights.
        credit_grail_max (`float`, defaults to `5.0`):
            GRAIL: the upper clip of the z-weights.
        credit_oar_g_tau (`float`, defaults to `0.4`):
            OAR-G (`credit: oar_g`): the gate, the share of a completion's tokens (lowest attribution first) below
            which a token's weight is suppressed to `h / gate`, at least `credit_oar_g_floor`.
        credit_oar_g_floor (`float`, defaults to `0.1`):
            OAR-G: the smallest weight of a suppressed token (before the weights are rescaled to sum to T).
        credit_oar_g_boost (`float`, defaults to `2.0`):
            OAR-G: a kept token's weight is `1 + boost * (h - gate) / (1 - gate)`, h its min-max scaled attribution.
        credit_oar_g_noise (`float`, defaults to `0.001`):
            OAR-G: the standard deviation of the Gaussian noise on the completion's input embeddings, whose
            gradient of KL(clean answer distribution || noisy one) is the attribution. Costs one no-grad forward,
            one forward and one backward to the input embeddings per generation batch.
        credit_delta_low (`float`, defaults to `0.8`):
            DelTA (`credit: delta`): the lowest token weight, in [0, 1] (and every weight of a completion with
            A_i = 0).
        credit_delta_high (`float`, defaults to `1.2`):
            DelTA: the highest token weight, >= 1; a token's weight is `low + (high - low) * gate`, the gate from its
            margin under the linear discriminator of the batch's positive and negative completions. Costs one no-grad
            forward per generation batch.
        credit_delta_gate (`float` or `None`, defaults to `None`):
            DelTA: None, the gate is sigmoid(m) of the normalised margin m, as DelTA's released code; c > 0, the
            linear gate clip((m + c) / 2c, 0, 1).
        credit_delta_steps (`int`, defaults to `1`):
            DelTA: rounds that re-estimate each side's centroid with its tokens weighted by their gate (the
            released run: 1; 0 = the advantage-weighted centroids).
        credit_answer_only_weight (`float`, defaults to `5.0`):
            `credit: answer_only`, the control for GRAIL's forced answer weight: this weight on the answer's own
            tokens, 1 on every other token, no gradient pass.
    """

    # fmt: off
    credit: str = credit_field("uniform", check=SIGNAL, use=Use.SIGNAL, help=(
        "Token credit: uniform (stock GRPO/RLOO), surprisal, entropy_reduction, divergence, arca, or a registered "
        "one."))
    credit_eps: float = credit_field(1e-8, check=Range(low=0), use=Use.WEIGHTS, kwarg="eps",
                                     help="Floor added to the salience before the power.")
    credit_power: float = credit_field(1.0, check=Range(low=0, low_open=True, note="(1 = no sharpening)"),
                                       use=Use.WEIGHTS, kwarg="power",
                                       help="Sharpening power p (1 = none; the paper used 2).")
    credit_min_salience: float = credit_field(0.0, check=Range(low=0), use=Use.WEIGHTS, kwarg="min_salience",
                                              help="Rows whose largest salience is at most this get uniform credit.")
    credit_mix: float = credit_field(1.0, check=MIX_RANGE, use=Use.LAMBDA, variant="mix", help=(
        "lambda in [0, 1]: w = (1 - lambda)/T + lambda * w_signal (1 = signal alone, 0 = uniform)."))
    credit_warmup_steps: int = credit_field(
        0, check=Range(integer=True, low=0, note="(optimizer steps; 0 = no warm-up)"), use=Use.LAMBDA, variant="warmup",
        help="Ramp lambda from 0 to credit_mix over this many optimizer steps (0 = no warm-up).")
    credit_base: str = credit_field("disabled", check=OneOf(CREDIT_BASES), use=Use.BASE, help=(
        "Base for arca/divergence: 'disabled' (adapter off) or 'reference' (TRL's 'ref' adapter)."))
    credit_shadow: bool = credit_field(False, check=IS_BOOL, use=Use.LOGGING,
                                       help="Also log diagnostics of every other registered signal on the same batch.")
    credit_log_tokens_every: int = credit_field(0, check=Range(integer=True, low=0), use=Use.LOGGING, help=(
        "Every N steps, dump tokens/weights/salience to credit_tokens.jsonl (0 = off)."))
    credit_log_tokens_count: int = credit_field(4, check=Range(integer=True, low=0), use=Use.LOGGING,
                                                help="How many completions each credit_tokens.jsonl dump writes.")
    credit_ktae_scale: float = credit_field(1.0, check=Range(low=0), use=Use.GROUP, kwarg="ktae_scale",
                                            help="KTAE: A_it = A_i + scale * key-token value.")
    credit_tempo_td_weight: float = credit_field(1.0, check=Range(low=0), use=Use.GROUP, kwarg="tempo_td_weight",
                                                 help="TEMPO: A_it = A_i + weight * prefix-tree TD (branching tokens).")
    credit_gtpo_alpha1: float = credit_field(1.0, check=Range(low=0), use=Use.GROUP, kwarg="gtpo_alpha1",
                                             help="GTPO: weight of the sequence reward in the token reward.")
    credit_gtpo_alpha2: float = credit_field(1.0, check=Range(low=0), use=Use.GROUP, kwarg="gtpo_alpha2",
                                             help="GTPO: weight of the entropy-shaped term of the token reward.")
    credit_hicra_alpha: float = credit_field(0.2, check=Range(low=0, high=1), use=Use.GROUP, kwarg="hicra_alpha",
                                             help="HICRA: A_it = A_i + alpha * |A_i| on planning tokens.")
    credit_hicra_entropy_frac: float = credit_field(
        0.2, check=Range(low=0, low_open=True, high=1), use=Use.GROUP, kwarg="hicra_entropy_frac",
        help="HICRA without grams: share of a group's tokens (top entropy) that are planning tokens.")
    credit_hicra_grams: str = credit_field("", check=TEXT, use=Use.GROUP, kwarg="hicra_grams", help=(
        "HICRA strategic grams, '|'-separated phrases (empty: top-entropy planning tokens)."))
    credit_vine_samples: int = credit_field(8, check=Range(integer=True, low=1), use=Use.GROUP, kwarg="vine_samples",
                                            help="vine: K continuations of every prefix (A_it = V_t - V_{t-1}).")
    credit_vine_batch_rows: int = credit_field(
        256, check=Range(integer=True, low=1), use=Use.GROUP, kwarg="vine_batch_rows", fixed_on_resume=False,
        help="vine: most continuations per batched sampling call (bounds memory).")
    credit_teacher_success: float | None = credit_field(
        None, check=Range(optional=True, note="(null: the group's maximum reward when above its mean)"), use=Use.GROUP,
        kwarg="self_teacher_success", help=(
            "self_teacher: reward a sibling must reach to be shown as a verified solution (a correct answer)."))
    credit_vine_positions: str = credit_field(
        "adaptive", check=OneOf(("adaptive", "all")), use=Use.GROUP, kwarg="vine_positions",
        help="vine: which prefixes get sampled values: adaptive (where the value moves) or all.")
    credit_grail_answer_weight: float = credit_field(
        5.0, check=Range(low=0, note="(0 = no forced weight: the answer keeps its z-weight)"), use=Use.GROUP,
        kwarg="grail_answer_weight", variant="answer",
        help="GRAIL: weight forced on the answer's own tokens (0 = none).")
    credit_grail_wrong_only: bool = credit_field(True, check=IS_BOOL, use=Use.GROUP, kwarg="grail_wrong_only",
                                                 help="GRAIL: z-weights only on wrong rollouts (A_i <= 0).")
    credit_grail_std: float = credit_field(0.5, check=Range(low=0), use=Use.GROUP, kwarg="grail_std",
                                           help="GRAIL: weight = 1 + std * z (z of log ||grad * embedding||).")
    credit_grail_min: float = credit_field(0.5, check=Range(low=0), use=Use.GROUP, kwarg="grail_min",
                                           help="GRAIL: lower clip of the z-weights.")
    credit_grail_max: float = credit_field(5.0, check=Range(low=0), use=Use.GROUP, kwarg="grail_max",
                                           help="GRAIL: upper clip of the z-weights.")
    credit_oar_g_tau: float = credit_field(0.4, check=Range(low=0, high=1, high_open=True), use=Use.GROUP,
                                           kwarg="oar_g_tau", help="OAR-G: quantile gate of the attributions.")
    credit_oar_g_floor: float = credit_field(0.1, check=Range(low=0), use=Use.GROUP, kwarg="oar_g_floor",
                                             help="OAR-G: smallest weight of a token below the gate.")
    credit_oar_g_boost: float = credit_field(2.0, check=Range(low=0), use=Use.GROUP, kwarg="oar_g_boost",
                                             help="OAR-G: kept tokens get 1 + boost * (h - gate) / (1 - gate).")
    credit_oar_g_noise: float = credit_field(1e-3, check=Range(low=0, low_open=True), use=Use.GROUP,
                                             kwarg="oar_g_noise", help="OAR-G: std of the input-embedding noise.")
    credit_delta_low: float = credit_field(0.8, check=Range(low=0, high=1), use=Use.GROUP, kwarg="delta_low",
                                           help="DelTA: lowest token weight (<= 1).")
    credit_delta_high: float = credit_field(1.2, check=Range(low=1), use=Use.GROUP, kwarg="delta_high",
                                            help="DelTA: highest token weight (>= 1).")
    credit_delta_gate: float | None = credit_field(
        None, check=Range(low=0, low_open=True, optional=True, note="(null: sigmoid, as the released code)"),
        use=Use.GROUP, kwarg="delta_gate", help="DelTA: linear gate width c (null: sigmoid gate).")
    credit_delta_steps: int = credit_field(1, check=Range(integer=True, low=0), use=Use.GROUP, kwarg="delta_steps",
                                           help="DelTA: gate-weighted centroid re-estimation rounds.")
    credit_answer_only_weight: float = credit_field(
        5.0, check=Range(low=0), use=Use.GROUP, kwarg="answer_only_weight",
        help="answer_only: weight on the answer's own tokens, 1 elsewhere (GRAIL's forced weight alone).")
    credit_shuffle: bool = credit_field(False, check=IS_BOOL, use=Use.PLACEMENT, help=(
        "Control: permute a weights method's weights within each completion at every step (same shape, random place)."))
    # fmt: on

    def __post_init__(self) -> None:
        # Validate our fields before TRL's (cheap, and errors name the field and the fix), in declaration order.
        for name, setting in settings().items():
            error = setting.check.error(name, getattr(self, name))
            if error is not None:
                raise error
        self._check_group_settings_apply()
        if self.credit_grail_min > self.credit_grail_max:
            reason = f"must be <= credit_grail_max ({self.credit_grail_max!r}), got {self.credit_grail_min!r}"
            raise CreditConfigError("credit_grail_min", f"credit_grail_min {reason}.", reason=reason)
        if problem := config_problem(
            self, group_credit.is_sampled_method(self.credit), gradient=group_credit.is_gradient_method(self.credit)
        ):
            raise CreditConfigError(problem[0], f"{problem[0]} {problem[1]}.", reason=problem[1])
        signed = (
            group_credit.is_group_method(self.credit) and group_credit.group_method_output(self.credit) == "advantages"
        )
        if self.credit_shuffle and signed:
            reason = (
                f"permutes a weights method's weights, but credit={self.credit!r} gives signed token advantages; "
                "use a signal or a weights method (e.g. self_teacher), or remove credit_shuffle"
            )
            raise CreditConfigError("credit_shuffle", f"credit_shuffle {reason}.", reason=reason)
        if signed:
            given = defaults()
            for name, setting in settings().items():  # salience-weight settings mean nothing to signed advantages
                if setting.use is Use.WEIGHTS and getattr(self, name) != given[name]:
                    reason = (
                        f"applies to salience weights only, but credit={self.credit!r} gives signed token "
                        f"advantages; remove {name} (or use credit_mix to soften the method)"
                    )
                    raise CreditConfigError(name, f"{name} {reason}.", reason=reason)
        super().__post_init__()  # type: ignore[misc]  # the TRL config listed after CreditFields

    def _check_group_settings_apply(self) -> None:
        """A group method's setting given with another method (ignored: refused, as credit_power with tempo is)."""
        given, methods = defaults(), sorted(group_credit.registered_group_methods(), key=len, reverse=True)
        for name, setting in settings().items():
            if setting.use is not Use.GROUP or not setting.kwarg or getattr(self, name) == given[name]:
                continue
            method = next((m for m in methods if setting.kwarg.startswith(f"{m}_")), self.credit)
            # shadow signals read the other methods' settings (vine and self_teacher read the policy: never shadows)
            if method != self.credit and not (self.credit_shadow and not group_credit.is_trainer_method(method)):
                reason = (
                    f"applies to credit={method!r} only, but credit={self.credit!r}; remove {name} (or set "
                    f"credit: {method})"
                )
                raise CreditConfigError(name, f"{name} {reason}.", reason=reason)

    def hicra_phrases(self) -> list[str]:
        """The `credit_hicra_grams` phrases, in order, without empty ones."""
        return [p.strip() for p in str(self.credit_hicra_grams).split("|") if p.strip()]

    def group_credit_kwargs(self, name: str, tokenizer: Any = None) -> dict[str, Any]:
        """The hyper-parameters of group method `name`: the keyword arguments of `group_credit.group_credit`, from the
        `Use.GROUP` settings named `<name>_...` (none for a user-registered method). HICRA's strategic-gram
        phrases become token-id sequences through `tokenizer` (each phrase with and without a leading space, as
        it may sit inside a completion); without phrases HICRA uses its top-entropy rule."""
        kwargs = {
            s.kwarg: getattr(self, field)
            for field, s in settings().items()
            if s.use is Use.GROUP and s.kwarg and s.kwarg.startswith(f"{name}_")
        }
        if "hicra_grams" in kwargs:
            grams: list[list[int]] = []
            phrases = self.hicra_phrases()
            if phrases and tokenizer is None:
                raise ValueError("credit_hicra_grams needs a tokenizer to turn the phrases into token ids")
            for phrase in phrases:
                for text in (phrase, " " + phrase):
                    ids = list(tokenizer.encode(text, add_special_tokens=False))
                    if ids and ids not in grams:
                        grams.append(ids)
            kwargs["hicra_grams"] = grams
        return kwargs

    def token_weight_kwargs(self) -> dict[str, Any]:
        """How this config turns salience into weights: the keyword arguments of `credit.token_weights`.

        The trainer and `arca diagnose` both weight through this, so a diagnosis shows the credit a run used.
        """
        return weight_kwargs({name: getattr(self, name) for name in settings()})

    def credit_lambda(self, step: int) -> float:
        """The `credit_mix` lambda in force after `step` optimizer steps: `credit_mix * min(1, step / N)`,
        N = `credit_warmup_steps` (`credit.mix_schedule`); the weights are then
        `credit.mix_weights(w, mask, lambda)`."""
        return credit.mix_schedule(int(step), float(self.credit_mix), int(self.credit_warmup_steps))


# ---------------------------------------------------------------------------------------------------
# what the consumers ask


def settings() -> dict[str, Setting]:
    """Every credit field and its `Setting`, in declaration order."""
    out = {}
    for f in dataclasses.fields(CreditFields):
        if _SETTING not in f.metadata:
            raise TypeError(f"CreditFields.{f.name}: declare it with credit_field(...) (see arca_rl._credit_fields)")
        out[f.name] = f.metadata[_SETTING]
    return out


def defaults() -> dict[str, Any]:
    """Every credit field's default."""
    return {f.name: f.default for f in dataclasses.fields(CreditFields)}


def resume_fixed() -> list[str]:
    """The credit fields a `--resume` may not change (the others only change what is logged)."""
    return [name for name, s in settings().items() if s.fixed_on_resume]


def weight_kwargs(values: Mapping[str, Any]) -> dict[str, Any]:
    """The `credit.token_weights` keywords of the `Use.WEIGHTS` fields in `values` (missing ones at their default)."""
    given = {**defaults(), **values}
    return {s.kwarg: given[name] for name, s in settings().items() if s.use is Use.WEIGHTS and s.kwarg}


def variant_suffixes() -> dict[str, tuple[str, Range, Any]]:
    """suffix -> (credit field, its range, its default) for the fields that name a method variant (`+mix0.5`)."""
    out: dict[str, tuple[str, Range, Any]] = {}
    for name, s in settings().items():
        if s.variant is not None and isinstance(s.check, Range):
            out[s.variant] = (name, s.check, defaults()[name])
    return out


def final_lambda(training: Mapping[str, Any], logged: Sequence[float] = ()) -> float | None:
    """The credit_mix lambda in force at the end of a run: the last value it logged as `credit/mix`, else (nothing
    logged yet) the schedule at its last step, `credit_lambda(max_steps)` from its `training` config section
    (unset fields at their defaults). None when that cannot be known: values that are not valid settings, or a
    warm-up with no `max_steps` to end it."""
    if logged:
        return float(logged[-1])
    given = defaults()
    mix = training.get("credit_mix", given["credit_mix"])
    warmup = training.get("credit_warmup_steps", given["credit_warmup_steps"])
    for name, value in (("credit_mix", mix), ("credit_warmup_steps", warmup)):
        if settings()[name].check.error(name, value) is not None:
            return None
    if warmup == 0:
        return float(mix)
    steps = training.get("max_steps")
    if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0:
        return credit.mix_schedule(steps, float(mix), warmup)
    return None
