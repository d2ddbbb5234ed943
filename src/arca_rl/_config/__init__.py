"""Run configuration: one YAML file -> validated dataclasses -> the objects TRL and PEFT take.

A config has these top-level keys::

    name: demo                      # the run folder: runs/<name>/
    trainer: grpo                   # or rloo, sdpo: the TRL estimator (ARCAGRPOTrainer / ARCARLOOTrainer / SDPOTrainer)
    model: {name_or_path, dtype}    # null name_or_path = the embedded tiny model
    lora: {r, alpha, dropout, target_modules, use_dora, use_rslora}  # or {enabled: false}
    task: {name, max_prompt_tokens, n_train, <task options>}
    training: {<any field of ARCAGRPOConfig, or ARCARLOOConfig with trainer: rloo>, credit: arca, ...}
    eval: {n, k, samples_per_problem, batch_size, max_new_tokens}

Every check runs in `load_config` / `parse_config`, before any model or data set loads: unknown
keys are named with their full path and the nearest valid key, the project's sections are pydantic
models (types and ranges declared on their fields), `training` is type-checked against the
`ARCAGRPOConfig` annotations, and the `ARCAGRPOConfig` and `peft.LoraConfig` are built once so their
own validation runs too. Errors are `arca_rl.ConfigError` (a `ValueError`), one line each.

Overrides use dotted paths with YAML-parsed values: `training.learning_rate=1e-5`,
`lora.target_modules=[q_proj,v_proj]`, `task.source=data/math`. PyYAML reads `5e-6` (no dot) as a
string; float fields accept such strings, so `learning_rate: 5e-6` means what it says.

One module per job:

    sections    the sections the project owns (pydantic models): field types, ranges, docs
    schema      `RunConfig` (to YAML dicts, what it builds) and `parse_config`, `require_max_steps`
    load        reading a YAML file (`load_config`)
    overrides   `--set section.key=value` (`apply_overrides`, `parse_assignment`)
    validate    every check of a mapping (`check_fields`: the values of a `RunConfig`'s fields)
    typecheck   a YAML value against an annotation; unknown-key messages with did-you-mean
    build       the TRL config, the PEFT config, `from_pretrained` and `evaluate` arguments
    hardware    what the machine has (bf16, an accelerator)
    paths       where `model.name_or_path` points (hub id, folder, short name, embedded tiny model)

Imports run one way (tests/test_layout.py): sections, typecheck, hardware, paths and overrides import none
of the others; build imports sections and hardware; validate imports build; schema all of these; load schema.
"""

from __future__ import annotations

from ..errors import ConfigError
from .load import config_path, is_packaged, load_config, packaged_configs
from .overrides import apply_overrides, parse_assignment
from .paths import check_model_folder, default_model_path
from .schema import RunConfig, parse_config, require_max_steps
from .sections import DTYPES, TRAINERS, EvalSection, LoraSection, ModelSection, TaskSection
from .validate import available_tasks

__all__ = [
    "DTYPES",
    "TRAINERS",
    "ConfigError",
    "EvalSection",
    "LoraSection",
    "ModelSection",
    "RunConfig",
    "TaskSection",
    "apply_overrides",
    "available_tasks",
    "check_model_folder",
    "config_path",
    "is_packaged",
    "default_model_path",
    "load_config",
    "packaged_configs",
    "parse_assignment",
    "parse_config",
    "require_max_steps",
]
