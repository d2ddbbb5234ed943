"""The checks of a config mapping (as read from YAML): every key and value, before any model or data set loads.
`check_fields` gives the validated values of a `RunConfig`'s fields; `schema.parse_config` makes the
`RunConfig` and builds its TRL and PEFT configs once, so that their own validation runs too.

Unknown keys are named with their full path and the nearest valid key. The project's sections are
pydantic models (`sections`: types, defaults and ranges declared on the fields; `typecheck.section_error`
words the first error); `training` is checked by hand against the annotations of `ARCAGRPOConfig` /
`ARCARLOOConfig` and the ranges of `arca_rl.trainer_config.TRL_FIELD_RANGES` (why by hand, and why the top
level is checked here too: `schema`'s docstring).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
import typing
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from ..tasks import TASKS, Task, get_task, task_options
from .build import config_class
from .sections import TRAINERS, EvalSection, LoraSection, ModelSection, TaskSection
from .typecheck import check, section_error, suggest, unknown_key

__all__ = ["available_tasks", "check_fields"]

_S = TypeVar("_S", bound=BaseModel)

# Training fields `arca train` owns: the run folder decides where everything is written.
_MANAGED_TRAINING_KEYS = {
    "output_dir": "the run folder is runs/<name>/ (set `name`, or pass --output-dir / run_dir=)",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Sections with an `enabled` switch: `null` there could mean "off" or "defaults", so it is refused.
_SECTIONS_NOT_NULL = ("lora", "eval")


def check_fields(raw: Mapping[str, Any], top_level: Collection[str]) -> dict[str, Any]:
    """Check a config mapping (as read from YAML) whose known top-level keys are `top_level` (the fields of
    `RunConfig`); return the validated value of each field. Nothing heavy loads."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config must be a mapping, got {type(raw).__name__}")
    raw = dict(raw)
    trainer = raw.get("trainer", "grpo")
    if trainer not in TRAINERS:
        raise ConfigError(f"trainer: must be one of {', '.join(TRAINERS)} (the TRL estimator), got {trainer!r}")
    training_fields = _training_fields(trainer)
    top = set(top_level)
    for key in raw:
        if key not in top:
            hint = ""
            if key in training_fields:
                hint = f"; it is a training field: put it under training: (training.{key})"
            raise ConfigError(f"{key}: unknown top-level key{suggest(key, top) or hint}")

    name = raw.get("name", "run")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"name: must be a folder name (letters, digits, '.', '_', '-'), got {name!r}")

    model = _parse_section(ModelSection, raw.get("model"), "model")

    for key in _SECTIONS_NOT_NULL:
        if key in raw and raw[key] is None:
            raise ConfigError(
                f"{key}: null is ambiguous; write `{key}: {{enabled: false}}` to turn it off, or leave "
                "the section out for its defaults (arca train --dry-run prints them)"
            )
    lora = _parse_section(LoraSection, raw.get("lora"), "lora")

    task, task_obj = _parse_task(raw.get("task"))
    training = _parse_training(raw.get("training"), training_fields, trainer)
    _check_training_ranges(training)
    _check_vllm(training)
    evaluation = _parse_section(EvalSection, raw.get("eval"), "eval")
    if evaluation.samples_per_problem < evaluation.k:
        raise ConfigError(
            f"eval.samples_per_problem: must be >= eval.k ({evaluation.k}) for pass@k, got "
            f"{evaluation.samples_per_problem}"
        )
    _check_held_out_size(evaluation, task_obj)
    _check_teacher_success(training, task_obj)

    # A cross-section check (the TRL and PEFT configs' own checks follow in `schema.parse_config`).
    if "model_init_kwargs" in training and isinstance(training["model_init_kwargs"], dict):
        for key in ("dtype", "attn_implementation", "revision"):
            if key in training["model_init_kwargs"]:
                raise ConfigError(f"training.model_init_kwargs.{key}: set it as model.{key} instead")
    return {"name": name, "trainer": trainer, "model": model, "lora": lora, "task": task, "training": training,
            "eval": evaluation}


def _parse_section(cls: type[_S], raw: Any, path: str) -> _S:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: must be a mapping, got {type(raw).__name__} ({raw!r})")
    try:
        return cls.model_validate(dict(raw))
    except ValidationError as exc:
        raise section_error(exc, cls, raw, path) from None


def _parse_task(raw: Any) -> tuple[TaskSection, Task]:
    """The task section and the task it builds (cheap: data sets load lazily)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"task: must be a mapping, got {type(raw).__name__} ({raw!r})")
    raw = dict(raw)
    if "options" in raw:
        raise ConfigError("task.options: write task options directly in the task section (e.g. task.source)")
    own = {k: raw.pop(k) for k in _OWN_TASK_KEYS if k in raw}
    section = _parse_section(TaskSection, {**own, "options": raw}, "task")
    _check_task_name(section.name)
    if section.n_train is not None and "n_train" in task_options(section.name):
        # the runner takes the first n_train training problems; the task must also draw that many (not its own
        # default): a reasoning_gym split is built for its n_train, and its errors name that option
        section.options["n_train"] = section.n_train
    return section, _validate_task_options(section)


_OWN_TASK_KEYS = ("name", "max_prompt_tokens", "n_train")


def available_tasks() -> list[str]:
    """Names `task.name` accepts."""
    return list(TASKS)


def _check_task_name(name: str) -> None:
    names = available_tasks()
    if name not in names:
        raise ConfigError(f"task.name: unknown task {name!r}{suggest(name, names)}; available: {', '.join(names)}")


def _validate_task_options(section: TaskSection) -> Task:
    """Build the task once (cheap: data loads lazily) so its own option checks run now; return it."""
    _check_task_name(section.name)
    try:
        return get_task(section.name, **section.options)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        unknown = re.search(r"unknown option '([^']+)'.*allowed: (.*)$", msg)
        if unknown:
            allowed = [a.strip() for a in unknown.group(2).split(",")]
            raise unknown_key("task", unknown.group(1), set(allowed) | set(_OWN_TASK_KEYS)) from None
        option = re.search(r"option '([^']+)'", msg)
        raise ConfigError(f"task.{option.group(1)}: {msg}" if option else f"task: {msg}") from None


def _check_held_out_size(evaluation: EvalSection, task: Task) -> None:
    """eval.n (and the curve's curve_n) within what the task's held-out split holds (reasoning_gym: task.n_test),
    refused here rather than after training."""
    limit = task.held_out_limit()
    if limit is None:
        return
    asked = []
    if evaluation.enabled and evaluation.n is not None:
        asked.append(("eval.n", evaluation.n))
    if evaluation.every_steps:
        asked.append(("eval.curve_n", evaluation.curve_n))
    for key, n in asked:
        if n > limit:
            raise ConfigError(
                f"{key}: {n} held-out problems asked for, but the task's held-out split holds task.n_test = {limit}"
                f" (it is fixed by n_test); raise task.n_test to at least {n} or lower {key}"
            )


def _check_vllm(training: Mapping[str, Any]) -> None:
    """`use_vllm: true` needs vLLM: TRL imports it only once the model has loaded (a traceback, every trainer)."""
    if training.get("use_vllm") and importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            "training.use_vllm: true, but vLLM is not installed (TRL would fail only after the model loads); set "
            "training.use_vllm: false to sample with transformers, or install vllm"
        )


def _check_teacher_success(training: Mapping[str, Any], task: Task) -> None:
    """The self-teacher shows a sibling as a verified solution: under a graded reward its default success rule (the
    group's best reward, when above the mean) can pick a wrong answer with partial credit."""
    if training.get("credit") != "self_teacher" or task.reward_kind != "graded":
        return
    success = training.get("credit_teacher_success")
    if success is None or success < 1.0:
        raise ConfigError(
            "training.credit_teacher_success: with task.reward: graded a partial score is not a correct answer, so "
            f"the self-teacher (success rule {success!r}) could show a wrong answer as the verified solution; set "
            "training.credit_teacher_success: 1.0 (full-score answers only) or use task.reward: exact"
        )


def _training_fields(trainer: str = "grpo") -> dict[str, Any]:
    cls = config_class(trainer)
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def _parse_training(raw: Any, fields: Mapping[str, Any], trainer: str = "grpo") -> dict[str, Any]:
    if raw is None:
        return {}
    cls_name = config_class(trainer).__name__
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
            raise unknown_key("training", key, fields)
        out[key] = check(value, fields[key], f"training.{key}")
    return out


def _check_training_ranges(training: Mapping[str, Any]) -> None:
    """Finite numbers everywhere, and the ranges of `TRL_FIELD_RANGES` (null stays allowed where TRL
    allows it: its own check or default applies)."""
    from ..trainer_config import TRL_FIELD_RANGES  # TRL loads with the first config read, not on import

    for key, value in training.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"training.{key}: must be a finite number, got {value}")
        if key not in TRL_FIELD_RANGES:
            continue
        low, inclusive, high = TRL_FIELD_RANGES[key]
        ok = (value >= low if inclusive else value > low) and (high is None or value <= high)
        if not ok:
            span = f"{'>=' if inclusive else '>'} {low}" if high is None else (
                f"in {'[' if inclusive else '('}{low}, "
                f"{high}]"
            )
            hint = "; arca runs are counted in optimizer steps" if key == "max_steps" else ""
            raise ConfigError(f"training.{key}: must be {span}, got {value}{hint}")
