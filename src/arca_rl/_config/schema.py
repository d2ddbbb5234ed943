"""`RunConfig`, the whole run, and `parse_config`, which makes one from a config mapping.

The sections the project owns (`model`, `lora`, `task`, `eval`) are pydantic models (`sections`). `training`
is not a model: its keys are TRL's `GRPOConfig` / `RLOOConfig` fields (plus the credit fields), which change
with TRL and whose annotations are TRL's own (`SchedulerType | str`, `dict | str`, ...); `validate` checks them
against those annotations with the hand-written `typecheck.check`, and TRL's own validation runs when `build`
constructs the config. The top level (`name`, `trainer`, which keys exist) is checked by hand in `validate` as
well: what it checks depends on `trainer` (an unknown top-level key's hint is "it is a training field: put it
under training:" when it is one of that trainer's fields, and `training` is checked against that trainer's
class), `trainer` is checked first, and the task section's options are written flat beside its own keys.

Why the top level is not a pydantic model too (tried with pydantic 2.14): today's first error comes in the
order above (`trainer`, then unknown keys, then `name` and the sections in turn), while pydantic lists field
errors in declaration order and unknown keys (`extra_forbidden`) after them, still validates `training` when
`trainer` failed (its validator then sees no trainer), and wraps a `ConfigError` raised in a validator as
"Value error, ...". Keeping each message and which one comes first would take a priority sort and an
unwrapping step around a model whose own fields are two strings, in place of the plain sequence of checks in
`validate.check_fields`, for the same messages.

What a `RunConfig` turns into (the TRL and PEFT objects, the model's folder, the evaluation's arguments) is
built by `build` and `paths`; the methods here hand them the sections they read. Imports run one way
(tests/test_layout.py): `build` and `validate` never see a `RunConfig`, this module imports them, and `load`
imports this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import ConfigError
from ..group_credit import method_needs_base
from . import build, paths
from .build import BuiltRun
from .overrides import apply_overrides
from .sections import EvalSection, LoraSection, ModelSection, TaskSection
from .validate import check_fields

if TYPE_CHECKING:  # pragma: no cover
    from peft import LoraConfig

    from ..trainer_config import ARCAGRPOConfig, ARCARLOOConfig

__all__ = ["RunConfig", "parse_config", "require_max_steps"]


@dataclass
class RunConfig:
    """A whole run: what `arca train` reads, writes back as `config.yaml` and `arca sweep` varies."""

    name: str = "run"
    """Run name; the run folder is runs/<name>/ unless another is given."""
    trainer: str = "grpo"
    """The TRL estimator: `grpo` (ARCAGRPOTrainer), `rloo` (ARCARLOOTrainer) or `sdpo` (TRL's own SDPOTrainer;
    `credit: uniform` only)."""
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
            "model": self.model.model_dump(),
            "lora": self.lora.model_dump(),
            "task": task,
            "training": dict(self.training),
            "eval": self.eval.model_dump(),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_yaml_dict(), sort_keys=False, default_flow_style=False)

    def with_overrides(self, overrides: Iterable[str]) -> RunConfig:
        """A new validated config with `section.key=value` overrides applied."""
        return parse_config(apply_overrides(self.to_yaml_dict(), overrides))

    # -- what the trainer takes -------------------------------------------------------------------

    def training_args(
        self, output_dir: str | Path, *, for_validation: bool = False, disable_tqdm: bool | None = None
    ) -> ARCAGRPOConfig | ARCARLOOConfig:
        """The `ARCAGRPOConfig` (`trainer: rloo`: `ARCARLOOConfig`) for this run, writing to `output_dir`.

        Built complete: `model_init_kwargs` holds `model_init_kwargs()`, and `disable_tqdm`, when given,
        overrides `training.disable_tqdm`. `training.bf16` left unset follows TRL (true) where the
        hardware has bf16, and is false on a machine without it (so CPU runs work without a precision
        flag). With `for_validation`, device checks are skipped (`use_cpu`), so a GPU config validates
        on a CPU-only machine.
        """
        return build.training_args(
            self.trainer, self.name, self.model, self.training, output_dir,
            for_validation=for_validation, disable_tqdm=disable_tqdm,
        )

    def build(
        self, output_dir: str | Path, *, for_validation: bool = False, disable_tqdm: bool | None = None
    ) -> BuiltRun:
        """The TRL config (`training_args`, same arguments) and the PEFT config (`lora_config`) of this run, each
        built once, with the checks that need them (a credit signal that compares with the base model needs an
        adapter or a reference model). `arca train` builds them once and trains with them."""
        args = self.training_args(output_dir, for_validation=for_validation, disable_tqdm=disable_tqdm)
        if not self.lora.enabled and not args.beta and method_needs_base(args.credit):
            raise ConfigError(
                f"training.credit: {args.credit!r} compares the adapted model with its base, which needs a LoRA "
                "adapter (lora.enabled: true) or, for full fine-tuning, a reference model (training.beta > 0)"
            )
        return BuiltRun(args, self.lora_config())

    def lora_config(self) -> LoraConfig | None:
        """The `peft.LoraConfig`, or None for full fine-tuning."""
        return build.lora_config(self.lora)

    def model_path(self, *, check: bool = False) -> str:
        """`model.name_or_path`, with null resolved to the embedded tiny model's folder. With `check`, a
        missing embedded model raises FileNotFoundError saying how to build it."""
        return paths.resolve(self.model.name_or_path, check=check)

    def model_init_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `from_pretrained` (dtype and friends, plus training.model_init_kwargs)."""
        return build.model_init_kwargs(self.model, self.training)

    def eval_arguments(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments of `arca_rl.evaluate` for this run (all but `progress`).

        The eval section, its nulls filled from `training` (completion length, temperature, top-p,
        seed; TRL's defaults where `training` leaves them out). `overrides` that are not None win;
        an overridden `k` raises `samples_per_problem` to at least `k` unless that is given too.
        """
        return build.eval_arguments(self.eval, self.training, self.trainer, self.task.max_prompt_tokens, overrides)


def parse_config(raw: Mapping[str, Any], *, build: bool = True) -> RunConfig:
    """Validate a config mapping (as read from YAML) into a `RunConfig` (`validate.check_fields`). Nothing heavy
    loads.

    `build=False` checks every key and value but skips the last step, building the TRL config and the
    `peft.LoraConfig` (`RunConfig.build`: their own checks): for a config that was validated when it was
    written (config.yaml of a run, read back to compare it on --resume), or one that is built right after
    for its run folder (`arca train`).
    """
    cfg = RunConfig(**check_fields(raw, [f.name for f in dataclasses.fields(RunConfig)]))
    if build:
        # Built for their own checks, as on any machine (device checks off), then dropped: no output_dir is used.
        cfg.build(cfg.name, for_validation=True)
    return cfg


def require_max_steps(cfg: RunConfig) -> int:
    """`training.max_steps` of a config that is about to train: it must be set (an unset or negative
    value would make TRL train by epochs, for hours on a large data set)."""
    steps = cfg.training.get("max_steps")
    if steps is None:
        raise ConfigError(
            "training.max_steps: required before training (the number of optimizer steps), "
            "e.g. --set training.max_steps=100"
        )
    return int(steps)
