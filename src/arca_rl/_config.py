"""Run configuration: one YAML file -> validated dataclasses -> the objects TRL and PEFT take.

A config has these top-level keys::

    name: demo                      # the run folder: runs/<name>/
    trainer: grpo                   # or rloo: the TRL estimator (ARCAGRPOTrainer / ARCARLOOTrainer)
    model: {name_or_path, dtype}    # null name_or_path = the embedded tiny model
    lora: {r, alpha, dropout, target_modules, use_dora, use_rslora}  # or {enabled: false}
    task: {name, max_prompt_tokens, n_train, <task options>}
    training: {<any field of ARCAGRPOConfig, or ARCARLOOConfig with trainer: rloo>, credit: arca, ...}
    eval: {n, k, samples_per_problem, batch_size, max_new_tokens}

Every check runs in `load_config` / `parse_config`, before any model or data set loads: unknown
keys are named with their full path and the nearest valid key, values are type-checked against
the dataclass (and `ARCAGRPOConfig`) annotations, and the `ARCAGRPOConfig` and `peft.LoraConfig`
are built once so their own validation runs too. Errors are `ConfigError` (a `ValueError`).

Overrides use dotted paths with YAML-parsed values: `training.learning_rate=1e-5`,
`lora.target_modules=[q_proj,v_proj]`, `task.source=data/math`. PyYAML reads `5e-6` (no dot) as a
string; float fields accept such strings, so `learning_rate: 5e-6` means what it says.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # pragma: no cover
    from peft import LoraConfig

    from .trainer_config import ARCAGRPOConfig, ARCARLOOConfig

__all__ = [
    "ConfigError",
    "EvalSection",
    "LoraSection",
    "ModelSection",
    "RunConfig",
    "TaskSection",
    "apply_overrides",
    "load_config",
    "check_model_folder",
    "parse_assignment",
    "parse_config",
    "require_max_steps",
]

DTYPES = ("float32", "bfloat16", "float16", "auto")
TRAINERS = ("grpo", "rloo")  # `trainer:` -> ARCAGRPOTrainer / ARCARLOOTrainer
# Training fields `arca train` owns: the run folder decides where everything is written.
_MANAGED_TRAINING_KEYS = {
    "output_dir": "the run folder is runs/<name>/ (set `name`, or pass --output-dir / run_dir=)",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Sections with an `enabled` switch: `null` there could mean "off" or "defaults", so it is refused.
_SECTIONS_NOT_NULL = ("lora", "eval")

# Ranges of the training fields that TRL passes on unchecked (a 0, a negative count, NaN or inf there
# crashes or silently misbehaves only after the model has loaded). Each: (lowest, lowest allowed?,
# highest or None, what it is). Every float must also be finite, which is checked for all fields.
_POSITIVE = (0, False, None)
_NON_NEGATIVE = (0, True, None)
_TRAINING_RANGES: dict[str, tuple[float, bool, float | None]] = {
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
}  # the credit_* fields: ARCAGRPOConfig checks their ranges (finiteness is checked here for all fields)


class ConfigError(ValueError):
    """An invalid configuration; the message starts with the offending key path."""


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
        from .trainer_config import CreditConfigError

        kwargs = dict(self.training)
        kwargs.setdefault("run_name", self.name)
        if "bf16" not in kwargs and not kwargs.get("fp16") and not _bf16_available():
            kwargs["bf16"] = False
        if for_validation and not _accelerator_available():
            kwargs["use_cpu"] = True
        try:
            return _config_class(self.trainer)(output_dir=str(output_dir), **kwargs)
        except CreditConfigError as exc:
            raise ConfigError(f"training.{exc.field}: {exc.reason}") from exc
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"training: {exc}") from exc

    def lora_config(self) -> LoraConfig | None:
        """The `peft.LoraConfig`, or None for full fine-tuning."""
        if not self.lora.enabled:
            return None
        from peft import LoraConfig

        target = self.lora.target_modules
        try:
            return LoraConfig(
                r=self.lora.r,
                lora_alpha=self.lora.lora_alpha,
                lora_dropout=self.lora.dropout,
                target_modules=target if isinstance(target, str) else list(target),
                use_dora=self.lora.use_dora,
                use_rslora=self.lora.use_rslora,
                bias=self.lora.bias,
                task_type="CAUSAL_LM",
            )
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"lora: {exc}") from exc

    def model_path(self, *, check: bool = False) -> str:
        """`model.name_or_path`, with null resolved to the embedded tiny model's folder. With `check`, a
        missing embedded model raises FileNotFoundError saying how to build it."""
        if self.model.name_or_path:
            from .models import MODELS, model_dir, resolve_model

            # A short name (`arca_rl.models.MODELS`) means its converted folder; unchecked, the
            # folder's path even before `make real-model` has built it.
            if check or self.model.name_or_path.strip().lower() not in MODELS:
                path = resolve_model(self.model.name_or_path)
                if check:
                    check_model_folder(path, "model.name_or_path")
                return path
            return str(model_dir(self.model.name_or_path.strip().lower()))
        path = default_model_path()
        if check and not (Path(path) / "config.json").is_file():
            raise FileNotFoundError(
                f"the embedded tiny model is missing ({path}); build it with `make tiny-model` "
                "or set model.name_or_path"
            )
        return path

    def model_init_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `from_pretrained` (dtype and friends, plus training.model_init_kwargs)."""
        kwargs: dict[str, Any] = {"dtype": self.model.dtype}
        if self.model.attn_implementation is not None:
            kwargs["attn_implementation"] = self.model.attn_implementation
        if self.model.revision is not None:
            kwargs["revision"] = self.model.revision
        kwargs.update(self.training.get("model_init_kwargs") or {})
        return kwargs

    def eval_arguments(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments of `arca_rl.evaluate` for this run (all but `progress`).

        The eval section, its nulls filled from `training` (completion length, temperature, top-p,
        seed; TRL's defaults where `training` leaves them out). `overrides` that are not None win;
        an overridden `k` raises `samples_per_problem` to at least `k` unless that is given too.
        """
        ta, ev = self.training, self.eval

        def pick(own: Any, key: str) -> Any:
            return own if own is not None else ta.get(key, _trl_default(key, self.trainer))

        args: dict[str, Any] = {
            "n": ev.n,
            "k": ev.k,
            "samples_per_problem": ev.samples_per_problem,
            "batch_size": ev.batch_size,
            "max_new_tokens": ev.max_new_tokens or ta.get("max_completion_length") or _trl_default("max_completion_length", self.trainer),
            "temperature": pick(ev.temperature, "temperature"),
            "top_p": pick(ev.top_p, "top_p"),
            "top_k": ta.get("top_k", 0) or 0,
            "seed": pick(ev.seed, "seed"),
            "max_prompt_tokens": self.task.max_prompt_tokens,
        }
        given = {key: value for key, value in overrides.items() if value is not None}
        unknown = sorted(set(given) - set(args))
        if unknown:
            raise TypeError(f"eval_arguments: unknown argument(s) {unknown}; valid: {sorted(args)}")
        if "k" in given and "samples_per_problem" not in given:
            given["samples_per_problem"] = max(ev.samples_per_problem, given["k"])
        return {**args, **given}


def check_model_folder(name_or_path: str | Path, what: str = "model") -> None:
    """A local model folder must hold config.json; a path that looks local must exist. Hub ids pass
    (they are checked when they download). Raises ConfigError naming `what` and the folder."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"{what}: {text} has no config.json, so it is not a model folder; point it at a folder "
                "written by save_pretrained (or a hub id)"
            )
    elif path.exists():
        raise ConfigError(f"{what}: {text} is a file; point it at a model folder (or a hub id)")
    elif text.startswith(("/", "./", "../", "~")):
        raise ConfigError(f"{what}: {text} does not exist; point it at a model folder (or a hub id)")


def default_model_path() -> str:
    """Folder of the tiny model shipped with the package (`arca_rl.tasks.TINY_MODEL_PATH`)."""
    from .tasks import tiny_model_path

    return tiny_model_path()


def _bf16_available() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def _accelerator_available() -> bool:
    import torch

    if torch.cuda.is_available():
        return True
    xpu = getattr(torch, "xpu", None)
    return bool(xpu is not None and xpu.is_available())


def _trl_default(name: str, trainer: str = "grpo") -> Any:
    from .trainer_config import field_default

    return field_default(name, _config_class(trainer))


def _config_class(trainer: str) -> type[ARCAGRPOConfig | ARCARLOOConfig]:
    from .trainer_config import ARCAGRPOConfig, ARCARLOOConfig

    return {"grpo": ARCAGRPOConfig, "rloo": ARCARLOOConfig}[trainer]


# ---------------------------------------------------------------------------------------------------
# loading


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML config, apply `section.key=value` overrides, validate everything (no model loads).

    `name` defaults to the file's stem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}); "
            "save the config as UTF-8"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    return parse_config(apply_overrides(raw, overrides))


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a deep copy of `raw` with each `a.b.c=value` applied (value parsed as YAML)."""
    out = _deepcopy(dict(raw))
    for item in overrides:
        key, value = parse_assignment(item, "--set", form="section.key=value", example="training.learning_rate=1e-5")
        parts = key.split(".")
        node: dict[str, Any] = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: depth + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def parse_assignment(text: str, flag: str, *, form: str = "KEY=VALUE", example: str) -> tuple[str, Any]:
    """`KEY=VALUE` -> (key, value parsed as YAML; an empty value is null). ConfigError names `flag`."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{flag} {text!r}: expected {form}, e.g. {example}")
    try:
        return key, yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{flag} {key}: value {value!r} is not valid YAML ({exc})") from exc


def parse_config(raw: Mapping[str, Any]) -> RunConfig:
    """Validate a config mapping (as read from YAML) into a `RunConfig`. Nothing heavy loads."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config must be a mapping, got {type(raw).__name__}")
    raw = dict(raw)
    trainer = raw.get("trainer", "grpo")
    if trainer not in TRAINERS:
        raise ConfigError(f"trainer: must be one of {', '.join(TRAINERS)} (the TRL estimator), got {trainer!r}")
    training_fields = _training_fields(trainer)
    top = {f.name for f in dataclasses.fields(RunConfig)}
    for key in raw:
        if key not in top:
            hint = ""
            if key in training_fields:
                hint = f"; it is a training field: put it under training: (training.{key})"
            raise ConfigError(f"{key}: unknown top-level key{_suggest(key, top) or hint}")

    name = raw.get("name", "run")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"name: must be a folder name (letters, digits, '.', '_', '-'), got {name!r}")

    model = _parse_section(ModelSection, raw.get("model"), "model")
    if model.dtype not in DTYPES:
        raise ConfigError(f"model.dtype: must be one of {list(DTYPES)}, got {model.dtype!r}")

    for key in _SECTIONS_NOT_NULL:
        if key in raw and raw[key] is None:
            raise ConfigError(
                f"{key}: null is ambiguous; write `{key}: {{enabled: false}}` to turn it off, or leave "
                "the section out for its defaults (arca train --dry-run prints them)"
            )
    lora = _parse_section(LoraSection, raw.get("lora"), "lora")
    if lora.r < 1:
        raise ConfigError(f"lora.r: must be >= 1, got {lora.r}")
    if lora.alpha is not None and not (math.isfinite(lora.alpha) and lora.alpha > 0):
        raise ConfigError(f"lora.alpha: must be a finite number > 0 (or null for 2 * r), got {lora.alpha}")
    if not 0.0 <= lora.dropout < 1.0:
        raise ConfigError(f"lora.dropout: must be in [0, 1), got {lora.dropout}")
    if isinstance(lora.target_modules, list) and not lora.target_modules:
        raise ConfigError("lora.target_modules: must name at least one module (or be all-linear)")
    if lora.bias not in ("none", "all", "lora_only"):
        raise ConfigError(f"lora.bias: must be one of none, all, lora_only, got {lora.bias!r}")

    task = _parse_task(raw.get("task"))
    training = _parse_training(raw.get("training"), training_fields, trainer)
    _check_training_ranges(training)
    evaluation = _parse_section(EvalSection, raw.get("eval"), "eval")
    for key in ("k", "samples_per_problem", "batch_size"):
        if getattr(evaluation, key) < 1:
            raise ConfigError(f"eval.{key}: must be >= 1, got {getattr(evaluation, key)}")
    for key in ("n", "max_new_tokens"):
        value = getattr(evaluation, key)
        if value is not None and value < 1:
            raise ConfigError(f"eval.{key}: must be >= 1 (or null), got {value}")
    if evaluation.samples_per_problem < evaluation.k:
        raise ConfigError(
            f"eval.samples_per_problem: must be >= eval.k ({evaluation.k}) for pass@k, got {evaluation.samples_per_problem}"
        )
    if evaluation.temperature is not None and not (math.isfinite(evaluation.temperature) and evaluation.temperature > 0):
        raise ConfigError(f"eval.temperature: must be > 0 (greedy accuracy is always measured), got {evaluation.temperature}")
    if evaluation.top_p is not None and not 0 < evaluation.top_p <= 1:
        raise ConfigError(f"eval.top_p: must be in (0, 1], got {evaluation.top_p}")

    cfg = RunConfig(
        name=name, trainer=trainer, model=model, lora=lora, task=task, training=training, eval=evaluation
    )

    # Cross-section checks, then the real constructors (their own validation, still no weights).
    if "model_init_kwargs" in training and isinstance(training["model_init_kwargs"], dict):
        for key in ("dtype", "attn_implementation", "revision"):
            if key in training["model_init_kwargs"]:
                raise ConfigError(f"training.model_init_kwargs.{key}: set it as model.{key} instead")
    args = cfg.training_args(Path("runs") / name, for_validation=True)  # validates every credit field
    from .credit import needs_base

    if not lora.enabled and not args.beta and needs_base(args.credit):
        raise ConfigError(
            f"training.credit: {args.credit!r} compares the adapted model with its base, which needs a LoRA "
            "adapter (lora.enabled: true) or, for full fine-tuning, a reference model (training.beta > 0)"
        )
    cfg.lora_config()
    return cfg


# ---------------------------------------------------------------------------------------------------
# helpers


def _deepcopy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deepcopy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deepcopy(v) for v in value]
    return value


# Names people bring from PEFT / HF / other tools -> the key they mean here.
_ALIASES = {
    "rank": "r",
    "lora_r": "r",
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
    "path": "name_or_path",
    "model_name_or_path": "name_or_path",
    "torch_dtype": "dtype",
    "lr": "learning_rate",
    "num_problems": "n",
    "pass_k": "k",
}


def _suggest(key: str, valid: Iterable[str]) -> str:
    valid = list(valid)
    if _ALIASES.get(str(key)) in valid:
        return f"; did you mean {_ALIASES[str(key)]}?"
    match = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def _unknown(path: str, key: str, valid: Iterable[str]) -> ConfigError:
    valid = sorted(valid)
    hint = _suggest(key, valid)
    if not hint and len(valid) <= 12:
        hint = f"; valid keys: {', '.join(valid)}"
    return ConfigError(f"{path}.{key}: unknown key{hint}")


def _parse_section(cls: type, raw: Any, path: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: must be a mapping, got {type(raw).__name__} ({raw!r})")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            raise _unknown(path, key, names)
        values[key] = _check(value, hints[key], f"{path}.{key}")
    return cls(**values)


def _parse_task(raw: Any) -> TaskSection:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"task: must be a mapping, got {type(raw).__name__} ({raw!r})")
    raw = dict(raw)
    if "options" in raw:
        raise ConfigError("task.options: write task options directly in the task section (e.g. task.source)")
    hints = typing.get_type_hints(TaskSection)
    own = {k: _check(raw.pop(k), hints[k], f"task.{k}") for k in _OWN_TASK_KEYS if k in raw}
    section = TaskSection(**own, options=raw)
    for key in ("max_prompt_tokens", "n_train"):
        value = getattr(section, key)
        if value is not None and value < 1:
            raise ConfigError(f"task.{key}: must be >= 1 (or null), got {value}")
    _validate_task_options(section)
    return section


_OWN_TASK_KEYS = ("name", "max_prompt_tokens", "n_train")


def available_tasks() -> list[str]:
    """Names `task.name` accepts."""
    from .tasks import TASKS

    return list(TASKS)


def _validate_task_options(section: TaskSection) -> None:
    """Build the task once (cheap: data loads lazily) so its own option checks run now."""
    from .tasks import get_task

    names = available_tasks()
    if section.name not in names:
        raise ConfigError(
            f"task.name: unknown task {section.name!r}{_suggest(section.name, names)}; available: {', '.join(names)}"
        )
    try:
        get_task(section.name, **section.options)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        unknown = re.search(r"unknown option '([^']+)'.*allowed: (.*)$", msg)
        if unknown:
            allowed = [a.strip() for a in unknown.group(2).split(",")]
            raise _unknown("task", unknown.group(1), set(allowed) | set(_OWN_TASK_KEYS)) from None
        option = re.search(r"option '([^']+)'", msg)
        raise ConfigError(f"task.{option.group(1)}: {msg}" if option else f"task: {msg}") from None


def _training_fields(trainer: str = "grpo") -> dict[str, Any]:
    cls = _config_class(trainer)
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def _parse_training(raw: Any, fields: Mapping[str, Any], trainer: str = "grpo") -> dict[str, Any]:
    if raw is None:
        return {}
    cls_name = _config_class(trainer).__name__
    if not isinstance(raw, Mapping):
        raise ConfigError(f"training: must be a mapping of {cls_name} fields, got {type(raw).__name__}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _MANAGED_TRAINING_KEYS:
            raise ConfigError(f"training.{key}: set by arca train: {_MANAGED_TRAINING_KEYS[key]}")
        if key not in fields:
            others = [t for t in TRAINERS if t != trainer and key in _training_fields(t)]
            if others:  # e.g. loss_type with trainer: rloo
                raise ConfigError(
                    f"training.{key}: not a field of {cls_name} (trainer: {trainer}); it is one of trainer: "
                    f"{others[0]}'s"
                )
            raise _unknown("training", key, fields)
        out[key] = _check(value, fields[key], f"training.{key}")
    return out


def _check_training_ranges(training: Mapping[str, Any]) -> None:
    """Finite numbers everywhere, and the ranges of `_TRAINING_RANGES` (null stays allowed where TRL
    allows it: its own check or default applies)."""
    for key, value in training.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"training.{key}: must be a finite number, got {value}")
        if key not in _TRAINING_RANGES:
            continue
        low, inclusive, high = _TRAINING_RANGES[key]
        ok = (value >= low if inclusive else value > low) and (high is None or value <= high)
        if not ok:
            span = f"{'>=' if inclusive else '>'} {low}" if high is None else f"in {'[' if inclusive else '('}{low}, {high}]"
            hint = "; arca runs are counted in optimizer steps" if key == "max_steps" else ""
            raise ConfigError(f"training.{key}: must be {span}, got {value}{hint}")


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


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return "one of " + ", ".join(repr(m.value) for m in tp)
        return {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
                "dict": "a mapping", "list": "a list"}.get(tp.__name__, tp.__name__)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if any(isinstance(a, type) and issubclass(a, enum.Enum) for a in args):
            args = tuple(a for a in args if a is not str)
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, Sequence):
        return "a list"
    if origin in (dict, Mapping):
        return "a mapping"
    return str(tp)


class _Mismatch(Exception):
    pass


def _check(value: Any, tp: Any, path: str) -> Any:
    """Type-check (and lightly coerce) a YAML value against an annotation; raise ConfigError naming `path`."""
    try:
        return _match(value, tp, coerce=False)
    except _Mismatch:
        pass
    try:
        return _match(value, tp, coerce=True)
    except _Mismatch:
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {_describe(value)}") from None


def _match(value: Any, tp: Any, *, coerce: bool) -> Any:
    if tp is Any or tp is object:
        return value
    if tp is type(None) or tp is None:
        if value is None:
            return None
        raise _Mismatch
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if any(isinstance(a, type) and issubclass(a, enum.Enum) for a in args):
            # `SchedulerType | str`: the str arm only exists for parsing; the value must be a member
            args = tuple(a for a in args if a is not str)
        for arm in args:  # exact matches first, so `int | str` keeps 3 an int
            try:
                return _match(value, arm, coerce=False)
            except _Mismatch:
                continue
        if coerce:
            for arm in args:
                try:
                    return _match(value, arm, coerce=True)
                except _Mismatch:
                    continue
        raise _Mismatch
    if origin is typing.Literal:
        if value in typing.get_args(tp) and not (isinstance(value, bool) and False not in typing.get_args(tp)):
            return value
        raise _Mismatch
    if origin in (list, Sequence, tuple):
        if not isinstance(value, list | tuple):
            if coerce and isinstance(value, str):  # `target_modules: q_proj` -> [q_proj]
                value = [value]
            else:
                raise _Mismatch
        (item_tp,) = typing.get_args(tp)[:1] or (Any,)
        return [_match(v, item_tp, coerce=coerce) for v in value]
    if origin in (dict, Mapping):
        if not isinstance(value, dict):
            raise _Mismatch
        return value
    if not isinstance(tp, type):
        return value  # an annotation we cannot check (TypeVar, ForwardRef, ...): let the constructor decide
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if coerce and isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if coerce and isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads 5e-6 as a string
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value.value
        if isinstance(value, str) and value in {m.value for m in tp}:
            return value
        raise _Mismatch
    if tp in (dict, list):
        if isinstance(value, tp):
            return value
        raise _Mismatch
    if isinstance(value, tp):
        return value
    raise _Mismatch
