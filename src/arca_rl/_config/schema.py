"""The run config's schema: one dataclass per section of the YAML file, and `RunConfig`, the whole run.

The dataclasses hold values that `arca_rl._config.validate.parse_config` has already checked; their
field docstrings are the reference of every key. What a `RunConfig` turns into (the TRL and PEFT
objects, the model's folder, the evaluation's arguments) is built by `build` and `paths`; the
methods here only hand over to them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from . import build, paths

if TYPE_CHECKING:  # pragma: no cover
    from peft import LoraConfig

    from ..trainer_config import ARCAGRPOConfig, ARCARLOOConfig

__all__ = ["DTYPES", "TRAINERS", "EvalSection", "LoraSection", "ModelSection", "RunConfig", "TaskSection"]

DTYPES = ("float32", "bfloat16", "float16", "auto")
TRAINERS = ("grpo", "rloo")  # `trainer:` -> ARCAGRPOTrainer / ARCARLOOTrainer


# ---------------------------------------------------------------------------------------------------
# sections


@dataclass
class ModelSection:
    """Which causal LM to train."""

    name_or_path: str | None = None
    """Hub id or local folder (anything `AutoModelForCausalLM.from_pretrained` takes), or a short name
    of `arca_rl.models.MODELS` (smollm2-135m-instruct, built by `make real-model`). null: the tiny
    model shipped inside the package (see `arca_rl.assets`)."""
    dtype: str = "float32"
    """Weight dtype when loading: float32, bfloat16, float16 or auto (the checkpoint's own)."""
    attn_implementation: str | None = None
    """Passed to `from_pretrained` when set (e.g. sdpa, eager, flash_attention_2)."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) when loading from the hub."""


@dataclass
class LoraSection:
    """The adapter TRL attaches (`peft.LoraConfig`), or full fine-tuning with `enabled: false`."""

    enabled: bool = True
    """false: train every weight (no adapter). `arca` and `divergence` then need `training.beta > 0`,
    so that there is a reference model to compare against."""
    r: int = 16
    """LoRA rank."""
    alpha: float | None = None
    """LoRA alpha (the update is scaled by alpha / r, or alpha / sqrt(r) with rsLoRA). null: 2 * r."""
    dropout: float = 0.05
    """Dropout on the adapter's input."""
    target_modules: list[str] | str = "all-linear"
    """A list of module names to adapt, "all-linear" (every linear layer but the output head; on Qwen3
    the q, k, v, o, gate, up and down projections), or another string, which PEFT reads as a regex."""
    use_dora: bool = False
    """Weight-decomposed LoRA (DoRA)."""
    use_rslora: bool = False
    """Rank-stabilized LoRA: scale by alpha / sqrt(r)."""
    bias: str = "none"
    """Which biases to train: none, all or lora_only."""

    @property
    def lora_alpha(self) -> float:
        """The alpha actually used (2 * r when `alpha` is null)."""
        return float(2 * self.r) if self.alpha is None else float(self.alpha)


@dataclass
class TaskSection:
    """The data set and reward. Keys other than the ones below are options of the named task
    (`arca_rl.tasks.get_task(name, **options)`), e.g. `source` for math and gsm8k."""

    name: str = "arithmetic"
    """Task name: arithmetic (embedded, offline), addition (offline, chat format), math or gsm8k."""
    max_prompt_tokens: int | None = None
    """Keep at most this many prompt tokens (TRL 1.16 has no prompt-length limit); null: no limit."""
    n_train: int | None = None
    """Use the first n training examples; null: all of them."""
    options: dict[str, Any] = field(default_factory=dict)
    """Task-specific options, written flat in the YAML section (validated against the task's
    signature)."""


@dataclass
class EvalSection:
    """Held-out evaluation after training (`eval.json`): greedy accuracy and unbiased pass@k."""

    enabled: bool = True
    """false: skip the evaluation after `arca train`."""
    n: int | None = 200
    """Number of held-out problems (the first n of the test split); null: all."""
    k: int = 4
    """k of pass@k."""
    samples_per_problem: int = 4
    """Sampled completions per problem for pass@k (>= k; the estimator is unbiased for any n >= k)."""
    batch_size: int = 64
    """Prompts per `generate` call (sampling generates batch_size * samples_per_problem rows)."""
    max_new_tokens: int | None = None
    """Generation budget per completion; null: `training.max_completion_length`."""
    temperature: float | None = None
    """Sampling temperature for pass@k; null: `training.temperature`."""
    top_p: float | None = None
    """Nucleus sampling for pass@k; null: `training.top_p`."""
    seed: int | None = None
    """Seed of the sampling for pass@k; null: `training.seed`."""


@dataclass
class RunConfig:
    """A whole run: what `arca train` reads, writes back as `config.yaml` and `arca sweep` varies."""

    name: str = "run"
    """Run name; the run folder is runs/<name>/ unless another is given."""
    trainer: str = "grpo"
    """The TRL estimator: `grpo` (ARCAGRPOTrainer) or `rloo` (ARCARLOOTrainer)."""
    model: ModelSection = field(default_factory=ModelSection)
    """The model to train."""
    lora: LoraSection = field(default_factory=LoraSection)
    """The adapter (or full fine-tuning)."""
    task: TaskSection = field(default_factory=TaskSection)
    """Data and reward."""
    training: dict[str, Any] = field(default_factory=dict)
    """`ARCAGRPOConfig` (or, with `trainer: rloo`, `ARCARLOOConfig`) keyword arguments (TRL's defaults for the
    keys left out)."""
    eval: EvalSection = field(default_factory=EvalSection)
    """Evaluation after training."""

    # -- conversions ------------------------------------------------------------------------------

    def to_yaml_dict(self) -> dict[str, Any]:
        """Plain dict that `parse_config` turns back into an equal `RunConfig` (written as config.yaml)."""
        task = {
            "name": self.task.name,
            "max_prompt_tokens": self.task.max_prompt_tokens,
            "n_train": self.task.n_train,
            **self.task.options,
        }
        return {
            "name": self.name,
            "trainer": self.trainer,
            "model": dataclasses.asdict(self.model),
            "lora": dataclasses.asdict(self.lora),
            "task": task,
            "training": dict(self.training),
            "eval": dataclasses.asdict(self.eval),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_yaml_dict(), sort_keys=False, default_flow_style=False)

    def with_overrides(self, overrides: Iterable[str]) -> RunConfig:
        """A new validated config with `section.key=value` overrides applied."""
        from .overrides import apply_overrides
        from .validate import parse_config  # imported here: validate builds this module's classes

        return parse_config(apply_overrides(self.to_yaml_dict(), overrides))

    # -- what the trainer takes -------------------------------------------------------------------

    def training_args(
        self, output_dir: str | Path, *, for_validation: bool = False
    ) -> ARCAGRPOConfig | ARCARLOOConfig:
        """The `ARCAGRPOConfig` (`trainer: rloo`: `ARCARLOOConfig`) for this run, writing to `output_dir`.

        `training.bf16` left unset follows TRL (true) where the hardware has bf16, and is false on a
        machine without it (so CPU runs work without a precision flag). With `for_validation`, device
        checks are skipped (`use_cpu`), so a GPU config validates on a CPU-only machine.
        """
        return build.training_args(self, output_dir, for_validation=for_validation)

    def lora_config(self) -> LoraConfig | None:
        """The `peft.LoraConfig`, or None for full fine-tuning."""
        return build.lora_config(self)

    def model_path(self, *, check: bool = False) -> str:
        """`model.name_or_path`, with null resolved to the embedded tiny model's folder. With `check`, a
        missing embedded model raises FileNotFoundError saying how to build it."""
        return paths.resolve(self.model.name_or_path, check=check)

    def model_init_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `from_pretrained` (dtype and friends, plus training.model_init_kwargs)."""
        return build.model_init_kwargs(self)

    def eval_arguments(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments of `arca_rl.evaluate` for this run (all but `progress`).

        The eval section, its nulls filled from `training` (completion length, temperature, top-p,
        seed; TRL's defaults where `training` leaves them out). `overrides` that are not None win;
        an overridden `k` raises `samples_per_problem` to at least `k` unless that is given too.
        """
        return build.eval_arguments(self, **overrides)
