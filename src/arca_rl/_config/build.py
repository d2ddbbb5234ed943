"""What a run's settings turn into: the TRL config, the PEFT config, `from_pretrained`'s keyword arguments and
`arca_rl.evaluate`'s arguments. `RunConfig`'s methods hand over to these with the sections each one reads
(`sections`), so this module does not need `RunConfig`.

TRL and PEFT are imported inside the functions, so that reading a config (or `arca --help`) does not
load them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .hardware import accelerator_available, bf16_available, process_defaults
from .sections import EvalSection, LoraSection, ModelSection

if TYPE_CHECKING:  # pragma: no cover
    from peft import LoraConfig

    from ..trainer_config import ARCAGRPOConfig, ARCARLOOConfig

__all__ = [
    "BuiltRun",
    "config_class",
    "eval_arguments",
    "lora_config",
    "model_init_kwargs",
    "training_args",
    "trl_default",
]


@dataclass(frozen=True)
class BuiltRun:
    """A run's config built for its run folder, once (`RunConfig.build`): the objects the trainer takes as they are."""

    args: ARCAGRPOConfig | ARCARLOOConfig
    """The TRL config (`ARCAGRPOConfig`, or `ARCARLOOConfig` with `trainer: rloo`); `output_dir` is the run folder."""
    peft_config: LoraConfig | None
    """The `peft.LoraConfig`, or None for full fine-tuning."""


def training_args(
    trainer: str,
    name: str,
    model: ModelSection,
    training: Mapping[str, Any],
    output_dir: str | Path,
    *,
    for_validation: bool = False,
    disable_tqdm: bool | None = None,
) -> ARCAGRPOConfig | ARCARLOOConfig:
    """`RunConfig.training_args`: the `ARCAGRPOConfig` / `ARCARLOOConfig` of a run, writing to `output_dir`,
    complete as the trainer takes it (nothing is set on it afterwards)."""
    from ..trainer_config import CreditConfigError  # here: it loads TRL (see the module's docstring)

    kwargs = dict(training)
    kwargs.setdefault("run_name", name)
    kwargs["model_init_kwargs"] = model_init_kwargs(model, training)  # model.* merged with training.model_init_kwargs
    if disable_tqdm is not None:
        kwargs["disable_tqdm"] = disable_tqdm
    if "bf16" not in kwargs and not kwargs.get("fp16") and not bf16_available():
        kwargs["bf16"] = False
    if for_validation and not accelerator_available():
        kwargs["use_cpu"] = True
    process_defaults(kwargs)
    try:
        return config_class(trainer)(output_dir=str(output_dir), **kwargs)
    except CreditConfigError as exc:
        raise ConfigError(f"training.{exc.field}: {exc.reason}") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"training: {exc}") from exc


def lora_config(lora: LoraSection) -> LoraConfig | None:
    """`RunConfig.lora_config`: the `peft.LoraConfig`, or None for full fine-tuning."""
    if not lora.enabled:
        return None
    from peft import LoraConfig

    target = lora.target_modules
    try:
        return LoraConfig(
            r=lora.r,
            lora_alpha=lora.lora_alpha,
            lora_dropout=lora.dropout,
            target_modules=target if isinstance(target, str) else list(target),
            use_dora=lora.use_dora,
            use_rslora=lora.use_rslora,
            bias=lora.bias,
            task_type="CAUSAL_LM",
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"lora: {exc}") from exc


def model_init_kwargs(model: ModelSection, training: Mapping[str, Any]) -> dict[str, Any]:
    """`RunConfig.model_init_kwargs`: `from_pretrained`'s keyword arguments."""
    kwargs: dict[str, Any] = {"dtype": model.dtype}
    if model.attn_implementation is not None:
        kwargs["attn_implementation"] = model.attn_implementation
    if model.revision is not None:
        kwargs["revision"] = model.revision
    kwargs.update(training.get("model_init_kwargs") or {})
    return kwargs


def eval_arguments(
    ev: EvalSection,
    training: Mapping[str, Any],
    trainer: str,
    max_prompt_tokens: int | None,
    overrides: Mapping[str, Any],
) -> dict[str, Any]:
    """`RunConfig.eval_arguments`: `arca_rl.evaluate`'s keyword arguments for a run (all but `progress`)."""
    ta = training

    def pick(own: Any, key: str) -> Any:
        return own if own is not None else ta.get(key, trl_default(key, trainer))

    args: dict[str, Any] = {
        "n": ev.n,
        "k": ev.k,
        "samples_per_problem": ev.samples_per_problem,
        "batch_size": ev.batch_size,
        "max_new_tokens": ev.max_new_tokens
        or ta.get("max_completion_length")
        or trl_default("max_completion_length", trainer),
        "temperature": pick(ev.temperature, "temperature"),
        "top_p": pick(ev.top_p, "top_p"),
        "top_k": ta.get("top_k", 0) or 0,
        "seed": pick(ev.seed, "seed"),
        "max_prompt_tokens": max_prompt_tokens,
    }
    if not ev.sampled:  # passed only when off, so an evaluation without the switch is called as before
        args["sampled"] = False
    given = {key: value for key, value in overrides.items() if value is not None}
    unknown = sorted(set(given) - set(args))
    if unknown:
        raise TypeError(f"eval_arguments: unknown argument(s) {unknown}; valid: {sorted(args)}")
    if "k" in given and "samples_per_problem" not in given:
        given["samples_per_problem"] = max(ev.samples_per_problem, given["k"])
    return {**args, **given}


def trl_default(name: str, trainer: str = "grpo") -> Any:
    """The default of training field `name` in the config class of `trainer`."""
    from ..trainer_config import field_default  # here: it loads TRL

    return field_default(name, config_class(trainer))


def config_class(trainer: str) -> type[ARCAGRPOConfig | ARCARLOOConfig]:
    """`trainer:` -> `ARCAGRPOConfig`, `ARCARLOOConfig` or (sdpo) `trainer.sdpo.ARCASDPOConfig`."""
    from ..trainer_config import ARCAGRPOConfig, ARCARLOOConfig  # here: it loads TRL

    if trainer == "sdpo":  # TRL's experimental SDPO, imported only when asked for
        from ..trainer_config import sdpo_config

        return sdpo_config()
    classes: dict[str, type[ARCAGRPOConfig | ARCARLOOConfig]] = {"grpo": ARCAGRPOConfig, "rloo": ARCARLOOConfig}
    return classes[trainer]
