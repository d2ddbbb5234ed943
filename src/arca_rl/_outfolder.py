"""Output folders that are not run folders: `arca diagnose --out`, `arca report --out` (and a sweep's report).

A command writes into such a folder only when it is absent, empty, or holds nothing but what an earlier run of
the same command recorded writing there, plus the lock file (`rundir.LOCK_FILE`). The record is a small JSON
file in the folder, `MANIFEST`: ``{"command": "diagnose", "files": ["diagnose.json", ...]}``. Anything else in
the folder is the user's, and the command refuses the folder before any work, naming what it holds
(`claim`). When it has written its files it removes those the earlier run recorded and it did not write again
(a histogram of a signal not scored this time), never a file it did not record, and records what it wrote
(`record`).

Folders written before the record existed are recognised by a narrow rule per command (`LEGACY`): every entry
is a name the command writes, with the files it always writes among them (and, for diagnose, the lock file it
held). A folder of the user's that happens to match that rule holds only files of those names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import ConfigError
from .rundir import LOCK_FILE, RunExistsError

__all__ = ["MANIFEST", "claim", "record"]

MANIFEST = ".arca-outputs.json"
_TMP = MANIFEST + ".tmp"  # written, then renamed over MANIFEST

_DIAGNOSE_NAMES = re.compile(r"diagnose\.json|report\.html|histograms\.png|hist_[^/]+\.png")
_REPORT_NAMES = re.compile(
    r"report\.md|table2\.csv|table3\.csv|paired\.json|curves\.png|learning_curves\.png|heatmaps\.html"
)


def _legacy_diagnose(entries: set[str]) -> list[str] | None:
    files = entries - {LOCK_FILE}
    if LOCK_FILE in entries and "diagnose.json" in files and all(_DIAGNOSE_NAMES.fullmatch(n) for n in files):
        return sorted(files)
    return None


def _legacy_report(entries: set[str]) -> list[str] | None:
    files = entries - {LOCK_FILE}
    if {"report.md", "table2.csv"} <= files and all(_REPORT_NAMES.fullmatch(n) for n in files):
        return sorted(files)
    return None


#: command -> the files an earlier run of it wrote into a folder that has no MANIFEST, or None (not its folder)
LEGACY: dict[str, Callable[[set[str]], list[str] | None]] = {"diagnose": _legacy_diagnose, "report": _legacy_report}


def _shown(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _read(folder: Path, command: str, flag: str) -> list[str]:
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        made_by, files = data["command"], data["files"]
        if not isinstance(made_by, str) or not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise TypeError("not {'command': str, 'files': [str, ...]}")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{flag}: {path} is damaged ({exc}), so what an earlier arca {command} wrote there is unknown; "
            f"pick a new or empty {flag}"
        ) from None
    if made_by != command:
        raise RunExistsError(
            f"{flag}: {folder} holds the output of `arca {made_by}`, not of `arca {command}`; "
            f"pick a new or empty {flag}"
        )
    return [f for f in files if f and "/" not in f and f not in (".", "..")]


def claim(folder: str | Path, *, command: str, flag: str = "--out") -> list[str]:
    """The files an earlier `arca <command>` recorded writing into `folder` (empty for a new or empty folder).

    Raises RunExistsError (one line naming the folder and what it holds) when the folder holds anything else:
    a file or folder no arca command wrote. Reads only; call it before any work, and again under the folder's
    lock.
    """
    folder = Path(folder)
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise ConfigError(f"{flag}: {folder} is a file, not a folder; pick another {flag}")
    entries = {p.name for p in folder.iterdir()}
    if MANIFEST in entries:
        earlier = _read(folder, command, flag)
    else:
        earlier = (LEGACY[command](entries) or []) if command in LEGACY else []
    foreign = sorted(entries - {MANIFEST, _TMP, LOCK_FILE} - set(earlier))
    if foreign:
        raise RunExistsError(
            f"{flag}: {folder} holds files no arca {command} wrote ({_shown(foreign)}); pick a new or empty {flag}, "
            "so none of them is overwritten or removed"
        )
    return earlier


def record(folder: str | Path, written: Iterable[str | Path], earlier: Iterable[str], *, command: str) -> list[str]:
    """After writing `written` into `folder`: remove what `earlier` (from `claim`) lists and this run did not
    write again, then record `written` in the folder's MANIFEST. Returns the names removed."""
    folder = Path(folder)
    names = sorted({Path(p).name for p in written})
    removed = []
    for name in sorted(set(earlier) - set(names)):
        path = folder / name
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(name)
    tmp = folder / _TMP
    tmp.write_text(json.dumps({"command": command, "files": names}, indent=1) + "\n", encoding="utf-8")
    tmp.replace(folder / MANIFEST)
    return removed
