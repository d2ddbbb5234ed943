"""What several `arca` commands share: the --set, --threads, --quiet and --task-option options, the
comma-list and KEY=VALUE parsers. A bad command line raises `ConfigError`, like a bad config: `main`
prints every such error as one line, `arca <command>: error: <message>`, and exits with status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._checks import arg, check_count
from .._config import config_path, is_packaged, parse_assignment
from ..errors import ConfigError
from ..group_credit import registered_methods

__all__ = [
    "add_quiet",
    "add_set",
    "add_task_options",
    "add_threads",
    "config_file",
    "parse_list",
    "set_threads",
    "signal_names",
    "task_options",
]

def config_file(given: str | Path, flag: str = "--config") -> Path:
    """The config file `given` names (`arca_rl._config.config_path`: the same rule in every command). When that is
    not `given` itself (a name: a packaged config, or `given` + .yaml), one line on stderr says which file is read."""
    path = config_path(given)
    if path != Path(given) and path.is_file():
        what = "the packaged config" if is_packaged(path) else "your file"
        print(f"{flag} {given}: reading {what} {path}", file=sys.stderr)
    return path


def add_set(p: argparse.ArgumentParser, help: str) -> None:
    """`--set KEY=VALUE` (repeatable): config overrides by dotted path, values parsed as YAML."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def add_task_options(p: argparse.ArgumentParser) -> None:
    """`--task-option KEY=VALUE` (repeatable), read with `task_options`."""
    p.add_argument(
        "--task-option",
        dest="task_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option, value parsed as YAML (e.g. source=data/math); repeatable",
    )


def task_options(items: Sequence[str]) -> dict[str, Any]:
    """The `--task-option` values as a mapping."""
    return dict(parse_assignment(item, "--task-option", example="source=data/math") for item in items)


def add_quiet(p: argparse.ArgumentParser, what: str = "no progress bars") -> None:
    p.add_argument("--quiet", "-q", action="store_true", help=what)


def signal_names() -> list[str]:
    """The registered credit methods: signals and group methods (for `--signals`, `--credit`)."""
    return list(registered_methods())


def add_threads(p: argparse.ArgumentParser, default: int | None) -> None:
    what = "torch's default" if default is None else str(default)
    p.add_argument(
        "--threads",
        type=arg(check_count, "--threads"),
        default=default,
        help=f"CPU threads for torch (default: {what}). The tiny model's matrices are too small to gain from "
        "more than one, and on a busy CPU extra threads spin-wait and slow everything down",
    )


def set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def parse_list(text: str | Sequence[Any], kind: type = str, *, flag: str | None = None) -> list[Any]:
    """'a,b, c' -> ['a', 'b', 'c'] (converted with `kind`), duplicates dropped, order kept.

    A value `kind` rejects raises ConfigError (a ValueError), naming `flag` when given.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[Any] = []
    for it in items:
        s = str(it).strip()
        if not s:
            continue
        try:
            v = kind(s)
        except ValueError:
            raise ConfigError(f"{flag + ': ' if flag else ''}{s!r} is not a valid {kind.__name__}") from None
        if v not in out:
            out.append(v)
    return out
