"""Every check of `--resume`, in one place, so `arca train --resume --dry-run` refuses exactly what `--resume` does.

`check_resume` runs them all before anything in the run folder is written: the settings against config.yaml
(`rundir.check_resume_config`), config.yaml against the checkpoint's own record of the run (`RECORD_FILE`, written
with each checkpoint by `RecordCallback`: a hand edit of config.yaml is caught), the number of processes against
the one that trained it, the checkpoint's files, and `max_steps` against the steps already trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from .. import rundir
from .._config import ConfigError, RunConfig

__all__ = ["RECORD_FILE", "RecordCallback", "ResumePlan", "check_resume", "describe", "record"]

RECORD_FILE = "arca_run.json"  # in each checkpoint-N/: the settings and the process count that trained it


def record(cfg: RunConfig, world_size: int) -> dict[str, Any]:
    """What a checkpoint records of the run that wrote it: the settings a resume may not change, and the shape of
    an optimizer step (processes x per-device batch x accumulation)."""
    return json.loads(json.dumps({"world_size": world_size, "settings": rundir._fixed_values(cfg)}))


class RecordCallback(TrainerCallback):
    """Writes `record(cfg, world_size)` into each checkpoint as it is saved (main process)."""

    def __init__(self, cfg: RunConfig, world_size: int) -> None:
        self.record = record(cfg, world_size)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                (ckpt / RECORD_FILE).write_text(json.dumps(self.record, indent=1) + "\n", encoding="utf-8")


@dataclass
class ResumePlan:
    """What `--resume` will do: continue from `checkpoint` (None: start over), `done` steps already trained."""

    checkpoint: Path | None = None
    done: int = 0
    changes: list[str] = field(default_factory=list)  # allowed changes of settings, "key: old -> new"
    finished: bool = False  # the run is finished: nothing to train


def _shape(settings: dict[str, Any], world_size: Any) -> str:
    per_device = settings.get("training.per_device_train_batch_size")
    accumulation = settings.get("training.gradient_accumulation_steps")
    return (
        f"{world_size} process(es) x per_device_train_batch_size {per_device} x gradient_accumulation_steps "
        f"{accumulation}"
    )


def _check_record(run_dir: Path, ckpt: Path, cfg: RunConfig, world_size: int) -> None:
    path = ckpt / RECORD_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        settings, trained_on = dict(saved["settings"]), int(saved["world_size"])
    except FileNotFoundError:
        return  # a checkpoint of an older version, or killed before the record: nothing to compare
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: unreadable ({exc}); remove {ckpt.name}/ to resume from the checkpoint before it"
        ) from None
    # config.yaml against the checkpoint (check_resume_config has already compared the new config with config.yaml)
    saved_config = record(rundir.read_config(run_dir, build=False), world_size)["settings"]
    # A setting the checkpoint does not record did not exist when it was written: config.yaml (written then too)
    # cannot have set it, so it stands at its default and is no edit.
    edited = [f"{k}: {settings.get(k)!r} in {ckpt.name}, {saved_config.get(k)!r} in config.yaml"
              for k in sorted(settings) if settings.get(k) != saved_config.get(k)]
    if edited:
        raise ConfigError(
            f"{run_dir / rundir.CONFIG_FILE}: differs from the settings {ckpt.name} was trained with "
            f"({'; '.join(edited)}); "
            f"it was edited after training: restore those values (as in {path}), or start a new run"
        )
    if trained_on != world_size:
        raise ConfigError(
            f"{run_dir}: --resume with {world_size} process(es), but {ckpt.name} was trained with {trained_on} "
            f"({_shape(settings, trained_on)} per optimizer step); a step would hold another number of completions. "
            f"Resume with {trained_on} process(es) (accelerate launch --num_processes {trained_on}), or start a new run"
        )


def check_resume(run_dir: str | Path, cfg: RunConfig, *, world_size: int) -> ResumePlan:
    """Every refusal of `--resume` into `run_dir` with `cfg` on `world_size` processes (ConfigError, one line, nothing
    written), then what it will do. Reads only: `arca train --resume --dry-run` calls it too."""
    run_dir = Path(run_dir)
    plan = ResumePlan(changes=rundir.check_resume_config(run_dir, cfg))
    if rundir.is_finished(run_dir):
        plan.finished = True
        return plan
    ckpt = rundir.last_checkpoint(run_dir)
    if ckpt is None:
        return plan
    plan.checkpoint, plan.done = ckpt, rundir.checkpoint_step(ckpt)
    _check_record(run_dir, ckpt, cfg, world_size)
    if cfg.lora.enabled:
        rundir.check_adapter_files(ckpt)  # a damaged checkpoint fails here, before the folder is touched
    rundir.check_checkpoint_files(ckpt)  # optimizer, scheduler and RNG state: loadable, or refused now
    max_steps = cfg.training.get("max_steps")
    if isinstance(max_steps, int) and plan.done > max_steps:
        raise ConfigError(
            f"training.max_steps: {max_steps} is below the {plan.done} steps already trained ({ckpt.name}); "
            f"resume with training.max_steps >= {plan.done}, or start a new run (another name or --output-dir)"
        )
    return plan


def describe(plan: ResumePlan, max_steps: int) -> str:
    """What `--resume` will do, in words (the dry run's line, and the note on a finished run)."""
    changed = f" with {'; '.join(plan.changes)}" if plan.changes else ""
    if plan.finished:
        kept = f"; the changes ({'; '.join(plan.changes)}) are not applied" if plan.changes else ""
        return f"trains nothing: the run is finished (finished.json){kept}; to train further, start a new run"
    if plan.checkpoint is None:
        return f"starts over from step 0 (no checkpoint){changed}"
    if plan.done >= max_steps:
        return f"trains nothing: {plan.checkpoint.name} is at max_steps; writes the missing outputs{changed}"
    return f"continues from {plan.checkpoint.name} (step {plan.done} of {max_steps}){changed}"
