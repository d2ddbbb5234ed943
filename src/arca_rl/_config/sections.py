"""The sections of a run config the project owns, one pydantic model each: `model`, `lora`, `task`, `eval`.

The sections declare each key's type, default, range and documentation in one place; pydantic checks
them (unknown keys, strict types, ranges) and `typecheck.section_error` turns its first error into
today's one-line `ConfigError` (full key path, did-you-mean, the range). Types are strict (no "3" for an
integer, no 1 for true) with two coercions the YAML files need: a string such as `5e-6` is a number
(YAML 1.1 reads a number without a dot as a string), and an integral float such as `200.0` an integer.

Measured when pydantic replaced the hand-written checks of these sections (code lines of schema,
validate and typecheck, without blanks, comments and docstrings): 427 before, 449 after. The range
checks (30 lines in `parse_config`) became field declarations, but pydantic's messages need a wording
step (`section_error`, ~35 lines) to stay one line with the key path and the range, and the two
coercions above are small validators. The gain is one place per key (type, default, range, doc) and
sections that check themselves when built in Python, not fewer lines.

This module imports nothing of the package: the whole run (`schema.RunConfig`), the checks (`validate`) and
what a run is built into (`build`) all use these sections.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from .._checks import yaml11_number

__all__ = ["DTYPES", "TRAINERS", "EvalSection", "LoraSection", "ModelSection", "TaskSection"]

DTYPES = ("float32", "bfloat16", "float16", "auto")
TRAINERS = ("grpo", "rloo", "sdpo")  # `trainer:` -> ARCAGRPOTrainer / ARCARLOOTrainer / TRL's SDPOTrainer


def _integral(value: Any) -> Any:
    """`200.0` -> 200 (an integer written as a float); anything else is left to the type check."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Float = Annotated[float, BeforeValidator(yaml11_number)]
Int = Annotated[int, BeforeValidator(_integral)]


class _Section(BaseModel):
    # strict: no "3" for 3 or 1 for true; the field docstrings are the field descriptions
    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)


class ModelSection(_Section):
    """Which causal LM to train."""

    name_or_path: str | None = None
    """Hub id or local folder (anything `AutoModelForCausalLM.from_pretrained` takes), or a short name
    of `arca_rl.models.MODELS` (smollm2-135m-instruct, built by `make real-model`). null: the tiny
    model shipped inside the package (see `arca_rl.assets`)."""
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    """Weight dtype when loading: float32, bfloat16, float16 or auto (the checkpoint's own)."""
    attn_implementation: str | None = None
    """Passed to `from_pretrained` when set (e.g. sdpa, eager, flash_attention_2)."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) when loading from the hub."""


class LoraSection(_Section):
    """The adapter TRL attaches (`peft.LoraConfig`), or full fine-tuning with `enabled: false`."""

    enabled: bool = True
    """false: train every weight (no adapter). `arca` and `divergence` then need `training.beta > 0`,
    so that there is a reference model to compare against."""
    r: Int = Field(16, ge=1)
    """LoRA rank."""
    alpha: Float | None = Field(None, gt=0, allow_inf_nan=False, json_schema_extra={"null": "2 * r"})
    """LoRA alpha (the update is scaled by alpha / r, or alpha / sqrt(r) with rsLoRA). null: 2 * r."""
    dropout: Float = Field(0.05, ge=0, lt=1)
    """Dropout on the adapter's input."""
    target_modules: list[str] | str = "all-linear"
    """A list of module names to adapt, "all-linear" (every linear layer but the output head; on Qwen3
    the q, k, v, o, gate, up and down projections), or another string, which PEFT reads as a regex."""
    use_dora: bool = False
    """Weight-decomposed LoRA (DoRA)."""
    use_rslora: bool = False
    """Rank-stabilized LoRA: scale by alpha / sqrt(r)."""
    bias: Literal["none", "all", "lora_only"] = "none"
    """Which biases to train: none, all or lora_only."""

    @property
    def lora_alpha(self) -> float:
        """The alpha actually used (2 * r when `alpha` is null)."""
        return float(2 * self.r) if self.alpha is None else float(self.alpha)

    @field_validator("target_modules")
    @classmethod
    def _some_module(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list) and not value:
            raise ValueError("must name at least one module (or be all-linear)")
        return value


class TaskSection(_Section):
    """The data set and reward. Keys other than the ones below are options of the named task
    (`arca_rl.tasks.get_task(name, **options)`), e.g. `source` for math and gsm8k; every task takes
    `reward: exact` (the default: 1 for a correct answer, else 0), and reasoning_gym also `reward: graded` (the data
    set's partial credit) and `split: iid | distinct` (how its held-out split is drawn)."""

    name: str = "arithmetic"
    """Task name: arithmetic (embedded, offline), addition (offline, chat format), reasoning_gym (offline, any
    reasoning-gym data set: `dataset: chain_sum`, its options in `config`), math or gsm8k."""
    max_prompt_tokens: Int | None = Field(None, ge=1)
    """Keep at most this many prompt tokens (TRL 1.16 has no prompt-length limit); null: no limit."""
    n_train: Int | None = Field(None, ge=1)
    """Use the first n training examples (tasks that generate their problems draw that many); null: all of them."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Task-specific options, written flat in the YAML section (validated against the task's
    signature)."""


class EvalSection(_Section):
    """Held-out evaluation after training (`eval.json`): greedy accuracy and unbiased pass@k, both counting correct
    answers (`Task.correct`; a task's graded score, where it has one, is reported beside them as a score)."""

    enabled: bool = True
    """false: skip the evaluation after `arca train`."""
    n: Int | None = Field(200, ge=1)
    """Number of held-out problems (the first n of the test split); null: all."""
    sampled: bool = True
    """false: greedy accuracy only, no sampled completions and no pass@k (the sampled pass costs about as much
    generation as the greedy one again); `k`, `samples_per_problem`, `temperature` and `top_p` are then unused."""
    k: Int = Field(4, ge=1)
    """k of pass@k."""
    samples_per_problem: Int = Field(4, ge=1)
    """Sampled completions per problem for pass@k (>= k; the estimator is unbiased for any n >= k)."""
    batch_size: Int = Field(64, ge=1)
    """Prompts per `generate` call (sampling generates batch_size * samples_per_problem rows)."""
    max_new_tokens: Int | None = Field(None, ge=1)
    """Generation budget per completion; null: `training.max_completion_length`."""
    temperature: Float | None = Field(
        None, gt=0, allow_inf_nan=False, json_schema_extra={"why": "greedy accuracy is always measured"}
    )
    """Sampling temperature for pass@k; null: `training.temperature`."""
    top_p: Float | None = Field(None, gt=0, le=1)
    """Nucleus sampling for pass@k; null: `training.top_p`."""
    seed: Int | None = Field(None, ge=0, le=2**32 - 1)
    """Seed of the sampling for pass@k (numpy's range, [0, 2**32 - 1]); null: `training.seed`."""
    every_steps: Int | None = Field(None, ge=0)
    """Learning curve: greedy accuracy on the first `curve_n` held-out problems before training (step 0), every
    `every_steps` optimizer steps and at the last step, one line each in the run's `curve.jsonl` (step,
    greedy_accuracy, n, seconds); `arca report` draws it and pairs its area. null or 0: no curve."""
    curve_n: Int = Field(100, ge=1)
    """Learning curve: how many held-out problems (the first `curve_n` of the test split, the same at every
    point) each point scores. Used only with `every_steps`."""
