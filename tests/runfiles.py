"""Helpers shared by the run-folder tests: copies of a finished run, byte snapshots of a folder, and the
one-line CLI error every refusal must be."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

# tqdm bars and `datasets` progress lines that may precede an error on stderr
PROGRESS = re.compile(r"\d+%\||it/s\]|examples/s\]")


def copy_run(finished_run: tuple[Path, Path], tmp_path: Path, *, drop: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """A copy of the `finished_run` fixture's folder under `tmp_path`, without the files named in `drop`."""
    config_path, run_dir = finished_run
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    for name in drop:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
    return config_path, out


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below `folder`, by relative path, with its bytes: to show that nothing changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(err: str) -> str:
    """The error in `err`: one line, the last one (progress bars and "using the run's settings" notes
    may come before it), and no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.search(line)]
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1 and lines[-1] == errors[0] and lines[-1].startswith("arca "), lines
    return errors[0]


def train_argv(config_path: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["train", "--config", str(config_path), "--output-dir", str(run_dir), "--quiet", *extra]
