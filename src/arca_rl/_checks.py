"""The checks every command runs on its flags and outputs before any work: one place, one error style.

Each `check_*` function takes a value and the flag (or field) it came from and returns the value, or
raises `ConfigError` with one line naming the flag, what is allowed and what was given; `main` prints
it as `arca <command>: error: ...` with exit status 2. `arg(check, ...)` turns a check into an
argparse `type=`, so a bad flag fails while the command line is parsed, before any import of torch.

    counts     --n, --k, --batch-size, --max-new-tokens, ...      integers >= 1 (or >= 0 where 0 = off)
    numbers    --temperature, --top-p, --budget, --mix, ...       finite, in their range
    seeds      --seed, --seeds, training.seed, eval.seed          in numpy's [0, 2**32 - 1]
    names      --signals, --methods, --device                     known to their registry
    lists      --signals, --seeds, --credit, --rank, ...          at least one value
    outputs    --out, --output-dir, --runs-dir                    a folder (or file) that can be written
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
    "SEED_MAX",
    "yaml11_number",
    "arg",
    "check_count",
    "check_device",
    "check_names",
    "check_number",
    "check_output_file",
    "check_output_folder",
    "check_seed",
    "check_seeds",
]

SEED_MAX = 2**32 - 1  # numpy.random.seed (which HF's set_seed calls) takes seeds in [0, 2**32 - 1]


def arg(check: Callable[..., Any], flag: str, **limits: Any) -> Callable[[str], Any]:
    """An argparse `type=` that runs `check(text, flag, **limits)`; its ConfigError becomes argparse's
    error for the flag (one line, exit 2)."""

    def parse(text: str) -> Any:
        try:
            return check(text, flag, **limits)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{flag}: ")) from None

    parse.__name__ = check.__name__.removeprefix("check_")
    return parse


def check_count(value: Any, flag: str, *, low: int = 1, high: int | None = None) -> int:
    """An integer in [low, high] (a count: 1 or more unless `low` says otherwise)."""
    span = f">= {low}" if high is None else f"in [{low}, {high}]"
    try:
        number = int(value) if isinstance(value, str) else value
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, int) or number < low or (high is not None and number > high):
        raise ConfigError(f"{flag}: must be an integer {span}, got {value!r}")
    return number


def check_number(
    value: Any,
    flag: str,
    *,
    low: float | None = None,
    low_open: bool = False,
    high: float | None = None,
    high_open: bool = False,
) -> float:
    """A finite number in the range: [low, high], with `low_open` / `high_open` excluding the ends."""
    try:
        number = float(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    ok = number is not None and math.isfinite(number)
    if number is not None and ok and low is not None:
        ok = number > low if low_open else number >= low
    if number is not None and ok and high is not None:
        ok = number < high if high_open else number <= high
    if number is None or not ok:
        if low is not None and high is not None:
            span = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            span = f"{'>' if low_open else '>='} {low:g}"
        elif high is not None:
            span = f"{'<' if high_open else '<='} {high:g}"
        else:
            span = "a finite number"
        raise ConfigError(
            f"{flag}: must be {'a finite number ' if span != 'a finite number' else ''}{span}, got {value!r}"
        )
    return number


def check_seed(value: Any, flag: str) -> int:
    """A seed numpy takes: an integer in [0, 2**32 - 1]."""
    return check_count(value, flag, low=0, high=SEED_MAX)


def check_seeds(value: Any, flag: str) -> list[int]:
    """A comma list of seeds (or a list): at least one, each in [0, 2**32 - 1], duplicates dropped."""
    items = value.split(",") if isinstance(value, str) else list(value)
    seeds: list[int] = []
    for item in items:
        if str(item).strip():
            seed = check_seed(str(item).strip(), flag)
            if seed not in seeds:
                seeds.append(seed)
    if not seeds:
        raise ConfigError(f"{flag}: needs at least one seed, got {value!r}")
    return seeds


def check_names(value: Any, flag: str, *, valid: Callable[[], Iterable[str]], what: str = "name") -> list[str]:
    """A comma list (or a list) of names: at least one, each one of `valid()`, duplicates dropped."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        name = str(item).strip()
        if name and name not in names:
            names.append(name)
    if not names:
        raise ConfigError(f"{flag}: needs at least one {what}, got {value!r}")
    known = list(valid())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"{flag}: unknown {what} {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")
    return names


def check_device(value: Any, flag: str = "--device") -> str:
    """A torch device this machine has: cpu, cuda[:i] (with that GPU present), mps (when available)."""
    import torch

    text = str(value).strip()
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{flag}: {text!r} is not a torch device; use cpu, cuda, cuda:0, mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index is not None and device.index >= count):
            raise ConfigError(f"{flag}: {text!r} is not available here ({count} CUDA device(s)); use cpu")
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ConfigError(f"{flag}: {text!r} is not available here; use cpu")
    elif device.type != "cpu":
        raise ConfigError(f"{flag}: {text!r} is not supported; use cpu or cuda")
    return text


def _first_existing(path: Path) -> Path:
    """`path` or its nearest ancestor that exists (a file among them is returned as is)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_output_folder(path: str | Path, flag: str) -> Path:
    """A folder the command may create or write into: not a file, not under a file, and writable.
    Checked before the work, so a run's output never fails at the end."""
    if not str(path).strip():
        raise ConfigError(f"{flag}: must name a folder, got {str(path)!r}; pick a folder such as runs/x")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag}: {path} is a file, not a folder; pick another {flag}")
    base = _first_existing(path.absolute())
    if not base.is_dir():
        raise ConfigError(f"{flag}: {path} is under {base}, which is a file; pick another {flag}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag}: {base} is not writable; pick another {flag}")
    # permission bits say nothing for root, /proc, a read-only mount or a full disk: write a file there and remove it
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=base, prefix=".arca-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot write in {base} ({exc.strerror or exc}); pick another {flag}") from None
    return path


def check_output_file(path: str | Path, flag: str) -> Path:
    """A file the command may write: not a folder, in a folder that can be created or written."""
    if not str(path).strip():
        raise ConfigError(f"{flag}: must name a file, got {str(path)!r}; pick a file such as eval.json")
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag}: {path} is a folder; give the name of a file to write in it")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{flag}: {path} is not writable; pick another {flag}")
    check_output_folder(path.parent, flag)
    return path


def yaml11_number(value: Any) -> Any:
    """A string that spells a number (`5e-6`, `1e9`: YAML 1.1, which PyYAML reads, takes a number without a dot
    for a string) -> that float; anything else unchanged, for the type check that follows to judge."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
