"""The run folder of `arca train`: its layout, its state, and everything other modules read from it.

Every module that looks into a run folder (training, resume, sweep, demo, report, eval, diagnose)
asks this one, and every file of it is written here too (the trainer's token log included): this
module owns the layout and each file's format. A run folder (by default `runs/<name>`,
`default_run_dir`) holds:

    config.yaml          the resolved config (`read_config` gives it back as a `RunConfig`)
    metrics.jsonl        one JSON line per logging step: TRL's log dict plus "step"
    checkpoint-N/        TRL / HF Trainer checkpoints (model, optimizer, scheduler, RNG state)
    adapter/             the final adapter (save_pretrained) and tokenizer; model/ for full fine-tuning
    credit_tokens.jsonl  when training.credit_log_tokens_every > 0: one `TokenRecord` per line
    eval.json            {"greedy_accuracy", "greedy_score", "pass_at_k", "k", "samples_per_problem", "n"}
                         (greedy only: no pass_at_k, k, samples_per_problem; "n_skipped" when problems were left out)
    eval_problems.jsonl  one {"id", "correct", "score"} per held-out problem of that evaluation
    plots/               reward.png, gini.png, effective_token_ratio.png (against step)
    finished.json        written last: the run is complete

Its state (`state`) is one of:

    fresh        no output of a run yet (absent or empty folder): `arca train` starts one
    running      a live process holds the folder's lock (`lock`): a second run is refused
    interrupted  output of a run but no finished.json and no holder: `--resume` continues from
                 `last_checkpoint`, or starts over when there is none
    finished     finished.json is there: weights, evaluation and plots were all written

Guarantees (docs/guarantees.md): a training process holds `lock(run_dir)` (an OS lock on
`run_dir/.lock`, released by the kernel when the process ends, SIGKILL included) from before it reads
or writes anything in the folder until it returns, so two runs never share a folder; `--resume`
compares the new config with config.yaml first (`check_resume_config`) and refuses changes a run
cannot take midway; a checkpoint at max_steps means training is complete (`checkpoint_step`).

This package is the run folder's: `__init__` (this module) the layout, the lock, the state, checkpoints and
adapters; `files.py` the formats of the files inside (metrics, token log records, eval, finished), re-exported
here. Who may import it: the trainer (its token log), the run, and every command; it imports only the configs
(`arca_rl._config`), `_credit_fields` and `errors`, so reading a run folder never loads TRL.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from .. import _credit_fields
from .._config import RunConfig, load_config
from ..errors import ConfigError
from .files import (
    CONFIG_FILE,
    EVAL_FILE,
    EVAL_PROBLEMS_FILE,
    FINISHED_FILE,
    LOCK_FILE,
    METRICS_FILE,
    PLOTS_DIR,
    TOKENS_FILE,
    TokenRecord,
    _lora_config_problem,
    append_metrics,
    append_token_records,
    check_checkpoint_files,
    clear,
    read_eval,
    read_finished,
    read_jsonl,
    read_metrics,
    read_token_log,
    reset_logs,
    write_config,
    write_eval,
    write_eval_problems,
    write_finished,
)

__all__ = [
    "CONFIG_FILE",
    "EVAL_FILE",
    "EVAL_PROBLEMS_FILE",
    "FINISHED_FILE",
    "METRICS_FILE",
    "PLOTS_DIR",
    "TOKENS_FILE",
    "LOCK_FILE",
    "RUNS_DIR",
    "RunExistsError",
    "RunLockedError",
    "RunState",
    "TokenRecord",
    "append_metrics",
    "append_token_records",
    "check_adapter_files",
    "check_can_start",
    "check_checkpoint_files",
    "check_ours",
    "clear",
    "is_ours",
    "check_resume_config",
    "checkpoint_step",
    "default_run_dir",
    "final_weights_dir",
    "is_finished",
    "is_running",
    "last_checkpoint",
    "lock",
    "outputs",
    "read_adapter_config",
    "read_config",
    "read_eval",
    "read_finished",
    "read_jsonl",
    "read_metrics",
    "read_raw_config",
    "read_token_log",
    "reset_logs",
    "resolve_adapter",
    "state",
    "write_config",
    "write_eval",
    "write_eval_problems",
    "write_finished",
]

RUNS_DIR = Path("runs")  # where run folders go unless another folder is given
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# What a run writes before it finishes (checkpoints aside): any of them makes a folder a run's.
_OUTPUTS = (METRICS_FILE, "adapter", "model", EVAL_FILE, EVAL_PROBLEMS_FILE)

RunState = Literal["fresh", "running", "interrupted", "finished"]


def default_run_dir(name: str, runs_dir: str | Path = RUNS_DIR) -> Path:
    """The run folder of run `name` when no other is given: `runs/<name>` (or `<runs_dir>/<name>`)."""
    return Path(runs_dir) / name


class RunExistsError(RuntimeError):
    """The run folder already holds a run and `resume` was not asked for."""


class RunLockedError(RunExistsError):
    """Another live process is training in the run folder."""


# ---------------------------------------------------------------------------------------------------
# the lock


@contextmanager
def lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the run folder exclusively for the block (creating the folder if needed).

    `fcntl.flock` on `run_dir/.lock`: the kernel drops it when the file is closed or the process
    ends however it ends (SIGKILL, OOM kill, power loss of the holder), so there is never a stale
    lock to clean up. The holder writes its PID into the file for the refusal message. Raises
    RunLockedError naming the folder and the holding PID when another process holds it.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: exists and is not a folder; pick another --output-dir (or name)")
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise RunLockedError(
                f"{run_dir} is in use by another run (process {holder}); wait for it to end or stop it, "
                "or pick another --output-dir (or name)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield run_dir / LOCK_FILE
    finally:
        os.close(fd)  # releases the lock


def is_ours(folder: str | Path, *, also: tuple[str, ...] = ()) -> bool:
    """True when `folder` is absent, empty, or was made by an `arca` command (see `check_ours`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return not folder.exists()
    entries = {p.name for p in folder.iterdir()}
    mine = {LOCK_FILE, METRICS_FILE, FINISHED_FILE, *also}
    return not entries or bool(mine & entries) or last_checkpoint(folder) is not None


def check_ours(folder: str | Path, *, flag: str = "--output-dir", also: tuple[str, ...] = ()) -> None:
    """Refuse (RunExistsError) to write into `folder` when it is not empty and no `arca` command made it.

    Ours: absent, empty, or holding the `.lock` every `arca` writer takes, a checkpoint, metrics.jsonl or
    finished.json (or an entry named in `also`). Anything else is the user's and is refused, naming it.
    """
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ConfigError(f"{folder}: exists and is not a folder; pick another {flag} (or name)")
    if is_ours(folder, also=also):
        return
    entries = sorted(p.name for p in folder.iterdir())
    shown = ", ".join(entries[:4]) + (f" and {len(entries) - 4} more" if len(entries) > 4 else "")
    raise RunExistsError(
        f"{folder}: not empty and not a folder written by arca (it holds {shown}); pick a new or empty "
        f"{flag}, so none of these files is overwritten"
    )



# ---------------------------------------------------------------------------------------------------
# state


def is_finished(run_dir: str | Path) -> bool:
    """True when `run_dir` holds a completed run (training, final weights, eval and plots written)."""
    return (Path(run_dir) / FINISHED_FILE).is_file()


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest `checkpoint-N` folder in `run_dir` that holds a trainer state, or None."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    found = []
    for child in run_dir.iterdir():
        match = _CHECKPOINT_RE.match(child.name)
        if match and child.is_dir() and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


def checkpoint_step(checkpoint: str | Path) -> int:
    """The optimizer steps done when `checkpoint` was saved (its trainer_state.json's global_step)."""
    path = Path(checkpoint) / "trainer_state.json"
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["global_step"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: unreadable ({exc}); remove {Path(checkpoint).name}/ to resume from the one before"
        ) from None


def outputs(run_dir: str | Path) -> list[str]:
    """The run outputs (other than checkpoints) present in `run_dir`."""
    return [name for name in _OUTPUTS if (Path(run_dir) / name).exists()]


def is_running(run_dir: str | Path) -> bool:
    """True when a live process holds the run folder's lock (`lock`); this process's own hold counts."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # any exclusive holder makes this fail
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the shared probe
    return False


def state(run_dir: str | Path) -> RunState:
    """fresh, running, interrupted or finished (see the module docstring)."""
    if is_finished(run_dir):
        return "finished"
    if is_running(run_dir):
        return "running"
    if last_checkpoint(run_dir) is not None or outputs(run_dir):
        return "interrupted"
    return "fresh"


def check_can_start(run_dir: str | Path, resume: bool) -> None:
    """Raise RunExistsError when training into `run_dir` would overwrite a run (unless `resume`)."""
    if resume:
        return
    run_dir = Path(run_dir)
    if is_finished(run_dir):
        raise RunExistsError(
            f"{run_dir} already holds a finished run; refusing to overwrite it. Pick another name "
            "(--set name=...) or --output-dir, remove the folder, or pass --resume to keep it."
        )
    ckpt = last_checkpoint(run_dir)
    leftovers = outputs(run_dir)
    if ckpt is not None or leftovers:
        what = ckpt.name if ckpt is not None else ", ".join(leftovers)
        raise RunExistsError(
            f"{run_dir} holds an unfinished run ({what}); pass --resume to continue it, or remove "
            "the folder / pick another --output-dir to start over."
        )


# Settings a run cannot change midway (`check_resume_config`): what defines the run (weights, data, method,
# batch shape) and what the checkpoint restores over the config (optimizer.pt, scheduler.pt: learning rate,
# betas, eps, weight decay, schedule), which would be recorded but never applied. Everything else may change,
# takes effect and is recorded (logging/save/eval steps too: `_run._StepsFromConfig` sets them again).
_FIXED_SECTIONS = ("lora", "task")
_FIXED_MODEL = ("name_or_path", "dtype", "revision")
_FIXED_TRAINING = (
    "seed", "data_seed", "per_device_train_batch_size", "gradient_accumulation_steps", "num_generations",
    "steps_per_generation", "generation_batch_size", "num_iterations",
)
# ... and the credit settings that `CreditFields` declares fixed on resume (`_credit_fields.resume_fixed`).
_RESTORED_TRAINING = (
    "learning_rate", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "warmup_ratio", "optim",
    "optim_args", "optim_target_modules", "adam_beta1", "adam_beta2", "adam_epsilon", "weight_decay",
)


def _fixed_values(cfg: RunConfig) -> dict[str, Any]:
    # TRL's defaults: imported here because it loads TRL, which reading a run folder does not need
    import dataclasses

    from ..trainer_config import ARCAGRPOConfig, field_default

    d = cfg.to_yaml_dict()
    out: dict[str, Any] = {"trainer": d["trainer"], **{f"model.{k}": d["model"].get(k) for k in _FIXED_MODEL}}
    for section in _FIXED_SECTIONS:
        out.update({f"{section}.{k}": v for k, v in d[section].items()})
    fields = {f.name for f in dataclasses.fields(ARCAGRPOConfig)}
    restored = [k for k in _RESTORED_TRAINING if k in fields]  # the ones this TRL version has
    for key in (*_FIXED_TRAINING, *restored):
        out[f"training.{key}"] = cfg.training.get(key, field_default(key))
    credit_defaults = _credit_fields.defaults()
    for key in _credit_fields.resume_fixed():
        out[f"training.{key}"] = cfg.training.get(key, credit_defaults[key])
    return out


def check_resume_config(run_dir: str | Path, cfg: RunConfig) -> list[str]:
    """Compare the config a --resume brings with the run's config.yaml, before anything is touched.

    Raises ConfigError listing every changed setting a run cannot change midway or the checkpoint restores
    (see `_FIXED_TRAINING`); returns the other changes ("key: old -> new"), allowed and recorded. A config.yaml
    that is missing (with a checkpoint), unreadable or no longer valid refuses the resume too.
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        ckpt = last_checkpoint(run_dir)
        if ckpt is None:
            return []
        raise ConfigError(
            f"{path}: missing, so --resume cannot check that {ckpt.name} was trained with these settings; "
            "restore it, or start a new run (another name or --output-dir)"
        )
    try:
        previous = read_config(run_dir, build=False)  # its values only: train builds the new config's objects
    except (ConfigError, OSError) as exc:
        raise ConfigError(
            f"{path}: cannot be read, so --resume cannot compare settings ({str(exc).splitlines()[0]}); "
            "restore or fix it, or start a new run (another name or --output-dir)"
        ) from None
    old, new = _fixed_values(previous), _fixed_values(cfg)
    changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    restored = {f"training.{k}" for k in _RESTORED_TRAINING}
    fixed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed if k not in restored]
    from_ckpt = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed if k in restored]
    if fixed or from_ckpt:
        parts = []
        if fixed:
            parts.append(f"settings a run cannot change midway: {'; '.join(fixed)}")
        if from_ckpt:
            parts.append(f"settings the checkpoint restores (optimizer, scheduler): {'; '.join(from_ckpt)}")
        raise ConfigError(
            f"{run_dir}: --resume with changed {'; and '.join(parts)}. "
            f"Resume with the settings in {path}, or start a new run (another name or --output-dir)"
        )
    before, after = previous.to_yaml_dict(), cfg.to_yaml_dict()
    changes = []
    for section in after:
        a, b = before.get(section), after.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += [
                f"{section}.{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
            ]
        elif a != b:
            changes.append(f"{section}: {a!r} -> {b!r}")
    return changes


# ---------------------------------------------------------------------------------------------------
# contents


def read_raw_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's config.yaml as plain YAML, unvalidated (for runs whose config no longer validates).

    Raises ValueError naming the file when it is missing, unreadable or not a mapping.
    """
    import yaml

    path = Path(run_dir) / CONFIG_FILE
    data = _parse_file(
        path,
        yaml.safe_load,
        (OSError, UnicodeDecodeError, yaml.YAMLError),
        missing=f"{path.parent}: no {CONFIG_FILE} (not a run folder written by `arca train`)",
        unreadable=f"{path}: cannot read config",
        error=ValueError,
    )
    if not isinstance(data, dict):
        raise ValueError(f"{path}: config is not a mapping")
    return data


def _parse_file(
    path: Path,
    parse: Callable[[str], Any],
    errors: tuple[type[Exception], ...],
    *,
    missing: str,
    unreadable: str,
    error: type[Exception],
) -> Any:
    """`parse` of the UTF-8 text of `path`; `error(missing)` when there is no file, `error(unreadable (why))`
    when reading or parsing it raises one of `errors`."""
    try:
        return parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(missing) from None
    except errors as exc:
        raise error(f"{unreadable} ({exc})") from exc


def read_config(run_dir: str | Path, *, build: bool = True) -> RunConfig:
    """The run's config.yaml, validated (`arca_rl.ConfigError` when it no longer validates). `build=False`
    skips building its TRL and PEFT objects (`arca_rl.load_config`): for a comparison of settings."""
    return load_config(Path(run_dir) / CONFIG_FILE, build=build)


def final_weights_dir(run_dir: str | Path, *, lora: bool) -> Path:
    """Where the finished run's weights go: adapter/ (LoRA) or model/ (full fine-tuning)."""
    return Path(run_dir) / ("adapter" if lora else "model")


def resolve_adapter(path: str | Path) -> tuple[Path, Path | None]:
    """(adapter folder, run folder or None) for an adapter folder or a run folder of `arca train`.

    A run folder is the one holding `config.yaml` next to its `adapter/`; an adapter folder elsewhere
    has no run. Raises FileNotFoundError, pointing at the last checkpoint when the run has no adapter yet.
    """
    p = Path(path)
    if (p / "adapter_config.json").is_file():
        run = p.parent if p.name == "adapter" and (p.parent / CONFIG_FILE).is_file() else None
        check_adapter_files(p)
        return p, run
    if (p / "adapter" / "adapter_config.json").is_file():
        check_adapter_files(p / "adapter")
        return p / "adapter", p if (p / CONFIG_FILE).is_file() else None
    ckpt = last_checkpoint(p)
    hint = f" (the run has no final adapter yet; its last checkpoint is {ckpt}, pass that)" if ckpt else ""
    raise FileNotFoundError(
        f"{p}: neither an adapter folder (adapter_config.json) nor a run folder with adapter/{hint}"
    )


_ADAPTER_FIX = "restore it (a run's checkpoint-N/ holds a copy of each saved adapter) or train again"


def read_adapter_config(folder: str | Path) -> dict[str, Any]:
    """The parsed adapter_config.json of an adapter (or checkpoint) folder; ConfigError naming the file
    when it is not a PEFT config."""
    path = Path(folder) / "adapter_config.json"
    bad, fix = (UnicodeDecodeError, json.JSONDecodeError), _ADAPTER_FIX
    data = _parse_file(
        path,
        json.loads,
        bad,
        missing=f"{path}: missing; {fix}",
        unreadable=f"{path}: not valid JSON; {fix}",
        error=ConfigError,
    )
    if not isinstance(data, dict) or not data.get("peft_type"):
        raise ConfigError(f"{path}: not a PEFT adapter config (no peft_type); {_ADAPTER_FIX}")
    from peft import PeftType

    known = [t.value for t in PeftType]
    if data["peft_type"] not in known:
        raise ConfigError(f"{path}: peft_type {data['peft_type']!r} is not a PEFT method (LORA, ...); {_ADAPTER_FIX}")
    if data["peft_type"] == "LORA":  # the values PEFT would only trip over while building the layers
        problem = _lora_config_problem(data)
        if problem:
            raise ConfigError(f"{path}: {problem}; {_ADAPTER_FIX}")
    return data




def check_adapter_files(folder: str | Path) -> None:
    """Check an adapter (or checkpoint) folder without loading a model: adapter_config.json must parse,
    adapter_model.safetensors must have a complete header that covers its tensors. An empty or truncated
    file (e.g. a kill during the save) raises ConfigError naming it, before anything is loaded or written."""
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    read_adapter_config(folder)
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        if (folder / "adapter_model.bin").is_file():
            return  # the old pickle format: PEFT's loader checks it
        raise ConfigError(f"{weights}: missing; {_ADAPTER_FIX}")
    try:
        with safe_open(str(weights), framework="pt") as fh:
            n_tensors = len(list(fh.keys()))
    except SafetensorError as exc:
        raise ConfigError(f"{weights}: empty or truncated ({exc}); {_ADAPTER_FIX}") from None
    if n_tensors == 0:
        raise ConfigError(f"{weights}: holds no tensors; {_ADAPTER_FIX}")
