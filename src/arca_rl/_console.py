"""The `arca` console script: checks that arca-rl's `trl` extra is installed, then runs `arca_rl.cli.main`.

arca-rl's core (credit, group credit, diagnostics, the oracle's values, `arca_rl.integrations.verl`) needs torch
and numpy only; the trainers, the tasks and the command line need the `trl` extra (`pip install 'arca-rl[trl]'`).
Without it the command says so in one line instead of a traceback from deep inside an import.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

__all__ = ["TRL_EXTRA_MODULES", "main", "missing_trl_extra"]

# the import names of the `trl` extra's packages (pyproject.toml)
TRL_EXTRA_MODULES = (
    "transformers", "peft", "trl", "datasets", "accelerate", "math_verify", "yaml", "pydantic", "matplotlib", "tqdm",
    "scipy", "reasoning_gym",
)


def missing_trl_extra() -> list[str]:
    """The `trl` extra's modules that cannot be imported here, then the installed ones outside the extra's version
    range (as `trl 0.27.0 (needs trl<1.17,>=1.16)`, read from the installed arca-rl's metadata, where it is one)."""
    missing = [m for m in TRL_EXTRA_MODULES if importlib.util.find_spec(m) is None]
    return missing or _outside_range()


def _outside_range() -> list[str]:
    import importlib.metadata as md

    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - packaging comes with transformers, which is in the extra
        return []
    try:
        requires = md.requires("arca-rl") or []
    except md.PackageNotFoundError:  # run from a source tree (PYTHONPATH=src): no metadata to read
        return []
    out = []
    for line in requires:
        req = Requirement(line)
        if req.marker is None or not req.marker.evaluate({"extra": "trl"}) or req.marker.evaluate({"extra": ""}):
            continue
        try:
            version = md.version(req.name)
        except md.PackageNotFoundError:
            continue
        if not req.specifier.contains(version, prereleases=True):
            out.append(f"{req.name} {version} (needs {req.name}{req.specifier})")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `arca` console script; returns the exit status."""
    missing = missing_trl_extra()
    if missing:
        print(
            f"arca: the command needs arca-rl's trl extra ({', '.join(missing)}"
            f"{'' if ' (needs ' in missing[0] else ' not installed'}): "
            "pip install 'arca-rl[trl]' (from a clone: pip install -e '.[trl]')",
            file=sys.stderr,
        )
        return 2
    from .cli import main as cli_main

    return cli_main(argv)
