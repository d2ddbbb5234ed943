"""The files of a run folder: their names, their formats, and every write and read of them.

Private: `arca_rl.rundir` is its public face (it re-exports everything here, and documents the layout).
Writers run in the training process that holds `rundir.lock(run_dir)`; other ranks write nothing.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._config import RunConfig
from ..errors import ConfigError

__all__ = [
    "check_checkpoint_files",
    "clear",
    "CONFIG_FILE",
    "EVAL_FILE",
    "EVAL_PROBLEMS_FILE",
    "FINISHED_FILE",
    "LOCK_FILE",
    "METRICS_FILE",
    "PLOTS_DIR",
    "TOKENS_FILE",
    "TokenRecord",
    "append_metrics",
    "append_token_records",
    "read_eval",
    "read_finished",
    "read_jsonl",
    "read_metrics",
    "read_token_log",
    "reset_logs",
    "write_config",
    "write_eval",
    "write_eval_problems",
    "write_finished",
]

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
TOKENS_FILE = "credit_tokens.jsonl"
EVAL_FILE = "eval.json"
EVAL_PROBLEMS_FILE = "eval_problems.jsonl"  # one {"id", "correct", "score"} per held-out problem
FINISHED_FILE = "finished.json"
PLOTS_DIR = "plots"
LOCK_FILE = ".lock"


# ---------------------------------------------------------------------------------------------------
# reading


def read_jsonl(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """The objects of a JSON-lines file and how many lines were unreadable (a torn last line, bytes that
    are not UTF-8, text that is not a JSON object): those are skipped and counted, never fatal."""
    rows: list[dict[str, Any]] = []
    bad = 0
    path = Path(path)
    if not path.is_file():
        return rows, bad
    with path.open("rb") as fh:
        for raw in fh:
            raw = raw.strip()
            if not raw:
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                bad += 1
                continue
            if isinstance(obj, dict):
                rows.append(obj)
            else:
                bad += 1
    return rows, bad


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of `run_dir`/metrics.jsonl (skipping a torn last line)."""
    return read_jsonl(Path(run_dir) / METRICS_FILE)[0]


def _read_json_object(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):  # damaged: the caller says it is unreadable
        return None
    return data if isinstance(data, dict) else None


def read_eval(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's eval.json object, or None when it is missing or unreadable."""
    return _read_json_object(Path(run_dir) / EVAL_FILE)


def read_finished(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's finished.json object (timings, final step, versions), or None."""
    return _read_json_object(Path(run_dir) / FINISHED_FILE)


# ---------------------------------------------------------------------------------------------------
# writing


def write_config(run_dir: str | Path, cfg: RunConfig) -> Path:
    """Write the resolved config as config.yaml (what `read_config` and `--resume` read back)."""
    path = Path(run_dir) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cfg.to_yaml())
    return path


def reset_logs(run_dir: str | Path, *, resumed_at: int | None) -> None:
    """Prepare metrics.jsonl and credit_tokens.jsonl before training starts in `run_dir`.

    A start from step 0 (`resumed_at` None) removes both. A resume from a checkpoint taken after
    `resumed_at` optimizer steps keeps only the lines logged before it (the later ones are logged again):
    a metrics row's "step" counts the steps done when it was logged, a token record's the steps done
    before its dump.
    """
    run_dir = Path(run_dir)
    if resumed_at is None:
        for name in (METRICS_FILE, TOKENS_FILE):
            (run_dir / name).unlink(missing_ok=True)
        return
    _truncate_jsonl(run_dir / METRICS_FILE, resumed_at + 1)
    _truncate_jsonl(run_dir / TOKENS_FILE, resumed_at)


def _truncate_jsonl(path: Path, keep_below: int) -> None:
    """Keep only the lines of a JSON-lines file whose "step" is below `keep_below`."""
    if not path.is_file():
        return
    kept = []
    for raw in path.read_bytes().splitlines():
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue  # a torn or damaged line: dropped, the steps after the checkpoint are logged again
        if isinstance(row, dict) and row.get("step", 0) < keep_below:
            kept.append(raw + b"\n")
    path.write_bytes(b"".join(kept))


def _jsonable(value: Any) -> Any:
    """`value` as JSON can hold it: non-finite floats become null, 0-d tensors and numpy scalars numbers,
    anything else unknown its `str`."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):  # 0-d tensors / numpy scalars
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _append_lines(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
        fh.flush()


def append_metrics(run_dir: str | Path, step: int, logs: Mapping[str, Any]) -> None:
    """Append one logging step to metrics.jsonl: {"step": step, **logs}, made JSON-safe, flushed."""
    _append_lines(Path(run_dir) / METRICS_FILE, [{"step": step, **_jsonable(dict(logs))}])


def write_eval(run_dir: str | Path, result: Mapping[str, Any]) -> Path:
    """Write eval.json (`arca_rl._run.evaluation.EvalResult.to_json()`)."""
    return _write_json(Path(run_dir) / EVAL_FILE, dict(result))


def write_eval_problems(run_dir: str | Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write eval_problems.jsonl: one compact JSON line per held-out problem of the final evaluation (its id,
    whether the greedy answer is correct, the graded score), written whole to a temporary file and renamed."""
    path = Path(run_dir) / EVAL_PROBLEMS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(dict(r), separators=(",", ":")) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_finished(
    run_dir: str | Path,
    *,
    global_step: int,
    train_seconds: float,
    eval_seconds: float,
    resumed_from: str | None,
    final_weights: str,
    train_summary: Mapping[str, Any],
) -> Path:
    """Write finished.json, the last file of a complete run (`is_finished`, `read_finished`): when it
    finished, the optimizer steps done, timings, the checkpoint it resumed from, the final weights'
    folder name, TRL's end-of-training summary and the versions of the libraries that trained it."""
    finished = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "global_step": global_step,
        "train_seconds": round(train_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "resumed_from": resumed_from,
        "final_weights": final_weights,
        "train_summary": _jsonable(dict(train_summary)),
        "versions": _versions(),
    }
    return _write_json(Path(run_dir) / FINISHED_FILE, finished)


def _write_json(path: Path, obj: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")
    return path


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for dist in ("arca-rl", "trl", "transformers", "peft", "torch", "accelerate", "datasets"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:  # pragma: no cover
            continue
    return out


# ---------------------------------------------------------------------------------------------------
# the token log (credit_tokens.jsonl)


@dataclass
class TokenRecord:
    """One line of credit_tokens.jsonl: one logged completion's tokens under one credit signal.

    The trainer writes one per logged completion and signal (the active one, and with `credit_shadow`
    every other one) every `credit_log_tokens_every` steps (`append_token_records`); the report's
    heatmaps and the demo's table read them back (`read_token_log`).
    """

    step: int | None
    """Optimizer steps done before the dump."""
    signal: str
    """The credit signal whose weights these are."""
    active: bool | None
    """True for the signal that trains (`training.credit`), False for a shadow signal."""
    sample: int | None
    """The completion's row in its batch (records of one completion share step and sample)."""
    tokens: list[str] | None
    """The completion's tokens, decoded one by one."""
    weights: list[float]
    """Credit weight per token (after power, fallback and mix; they sum to 1 over the completion)."""
    salience: list[float] | None = None
    """The signal's raw salience per token."""
    advantage: float | None = None
    """The completion's (sequence) advantage A_i."""
    entropy_mask: list[int] | None = None
    """With TRL's `top_entropy_quantile` < 1: 1 where its mask keeps the token's advantage in the loss."""
    token_advantages: list[float] | None = None
    """For a group method with signed output: its token advantages A_it as the loss gets them (mixed with A_i);
    `weights` are then their shares |A_it| / sum |A_ik| and `salience` the method's raw output."""

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the line (weights to 6 decimals, salience to 6 significant digits)."""
        out: dict[str, Any] = {
            "step": self.step,
            "signal": self.signal,
            "active": self.active,
            "sample": self.sample,
            "tokens": self.tokens,
            "weights": [round(float(v), 6) for v in self.weights],
            "salience": None if self.salience is None else [float(f"{v:.6g}") for v in self.salience],
            "advantage": self.advantage,
        }
        if self.entropy_mask is not None:
            out["entropy_mask"] = [int(v) for v in self.entropy_mask]
        if self.token_advantages is not None:
            out["token_advantages"] = [float(f"{v:.6g}") for v in self.token_advantages]
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TokenRecord | None:
        """The record of a parsed line, or None when it is malformed (no list of numeric weights, tokens
        or salience that do not match the weights one for one)."""
        weights, tokens, sal = obj.get("weights"), obj.get("tokens"), obj.get("salience")
        if not isinstance(weights, list) or (
            tokens is not None and not (isinstance(tokens, list) and len(tokens) == len(weights))
        ):
            return None
        try:
            w = [float(x) for x in weights]
            salience = [float(x) for x in sal] if isinstance(sal, list) and len(sal) == len(weights) else None
        except (TypeError, ValueError):
            return None
        step, sample, adv, mask = obj.get("step"), obj.get("sample"), obj.get("advantage"), obj.get("entropy_mask")
        return cls(
            step=step if _is_int(step) else None,
            signal=str(obj.get("signal", "?")),
            active=obj["active"] if isinstance(obj.get("active"), bool) else None,
            sample=sample if _is_int(sample) else None,
            tokens=None if tokens is None else [str(t) for t in tokens],
            weights=w,
            salience=salience,
            advantage=float(adv)
            if isinstance(adv, int | float) and not isinstance(adv, bool) and math.isfinite(adv)
            else None,
            entropy_mask=[int(v) for v in mask] if isinstance(mask, list) and all(_is_int(v) for v in mask) else None,
            token_advantages=_numbers(obj.get("token_advantages"), len(w)),
        )


def _numbers(values: Any, n: int) -> list[float] | None:
    """`values` as n floats, else None."""
    if not isinstance(values, list) or len(values) != n:
        return None
    try:
        return [float(x) for x in values]
    except (TypeError, ValueError):
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def append_token_records(run_dir: str | Path, records: Iterable[TokenRecord]) -> None:
    """Append records to the run's credit_tokens.jsonl (the trainer's dump of one step)."""
    _append_lines(Path(run_dir) / TOKENS_FILE, [r.to_json() for r in records])


def read_token_log(path: str | Path) -> tuple[list[TokenRecord], int]:
    """The records of a token log (a run folder's credit_tokens.jsonl, or the file itself) and how many
    lines were unreadable (not UTF-8 or not JSON; counted, never fatal). Malformed records are left out."""
    path = Path(path)
    rows, bad = read_jsonl(path / TOKENS_FILE if path.is_dir() else path)
    records = [r for r in map(TokenRecord.from_json, rows) if r is not None]
    return records, bad


def clear(run_dir: str | Path) -> None:
    """Remove everything in `run_dir` but its lock file, to start a run over. Call it only while holding
    `lock(run_dir)`: nothing may delete what another process is writing."""
    import shutil

    for child in Path(run_dir).iterdir():
        if child.name == LOCK_FILE:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def check_checkpoint_files(checkpoint: str | Path) -> None:
    """Load what `--resume` will restore from `checkpoint` (optimizer.pt, scheduler.pt, rng_state*.pth) as HF
    Trainer loads it, so a damaged file raises ConfigError naming it before the run folder is touched."""
    import torch
    from transformers.trainer_pt_utils import safe_globals

    checkpoint = Path(checkpoint)
    files = [checkpoint / "optimizer.pt", checkpoint / "scheduler.pt", *sorted(checkpoint.glob("rng_state*.pth")),
             *sorted(checkpoint.glob("arca_generation_*.pt"))]  # the generation batch TRL had buffered
    for path in files:
        if not path.is_file():
            continue
        try:
            with safe_globals():
                torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated, empty or foreign bytes: torch raises many kinds
            why = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise ConfigError(
                f"{path}: unreadable ({why}); remove {checkpoint.name}/ to resume from the checkpoint before it"
            ) from None


def _lora_config_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a LoRA adapter_config.json's values, or None."""

    def number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    r, alpha, dropout, targets = (
        data.get("r"),
        data.get("lora_alpha"),
        data.get("lora_dropout", 0.0),
        data.get("target_modules"),
    )
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        return f"r must be an integer >= 1, got {r!r}"
    if alpha is not None and not (number(alpha) and alpha > 0):
        return f"lora_alpha must be a number > 0, got {alpha!r}"
    if not (number(dropout) and 0 <= dropout < 1):
        return f"lora_dropout must be a number in [0, 1), got {dropout!r}"
    if targets is not None and not (
        isinstance(targets, str) or (isinstance(targets, list) and all(isinstance(t, str) for t in targets))
    ):
        return f"target_modules must be a module name, a list of them or a regex, got {targets!r}"
    return None
