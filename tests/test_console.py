"""The core installs without the `trl` extra (pyproject.toml): the `arca` script and the lazy public names then say
in one line what to install, instead of a traceback from inside an import."""

from __future__ import annotations

import sys

import pytest

import arca_rl
from arca_rl import _console


def test_arca_without_the_trl_extra_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "trl", None)  # as where it is not installed
    monkeypatch.setitem(sys.modules, "peft", None)
    assert _console.missing_trl_extra() == ["peft", "trl"]
    assert _console.main(["--version"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "peft, trl not installed" in err and "pip install 'arca-rl[trl]'" in err


def test_arca_with_the_extra_runs_the_command_line(capsys):
    assert _console.missing_trl_extra() == []
    with pytest.raises(SystemExit) as info:
        _console.main(["--version"])
    assert info.value.code == 0 and arca_rl.__version__ in capsys.readouterr().out


def test_the_extras_modules_are_the_extras_packages():
    """TRL_EXTRA_MODULES names the import name of every package of pyproject.toml's trl extra."""
    import re
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib", reason="tomllib: Python >= 3.11")

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    packages = [re.split(r"[<>=\[;! ]", d, maxsplit=1)[0].lower() for d in project["optional-dependencies"]["trl"]]
    imports = {"pyyaml": "yaml", "math-verify": "math_verify", "reasoning-gym": "reasoning_gym"}
    assert sorted(imports.get(p, p) for p in packages) == sorted(_console.TRL_EXTRA_MODULES)
    assert project["dependencies"] == ["torch>=2.6,<2.15", "numpy>=1.24"]
    assert project["scripts"]["arca"] == "arca_rl._console:main"


def test_a_lazy_name_without_the_trl_extra_is_one_line(monkeypatch):
    for name in [m for m in sys.modules if m in ("trl", "arca_rl.trainer_config") or m.startswith("trl.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "trl", None)
    with pytest.raises(ImportError) as info:
        arca_rl.ARCAGRPOConfig  # noqa: B018
    message = str(info.value)
    assert "\n" not in message and "arca_rl.ARCAGRPOConfig needs arca-rl's trl extra" in message


def test_an_installed_package_outside_the_extras_range_is_named(monkeypatch, capsys):
    """verl's GPU extras pin trl==0.27.0: every module imports, but `arca` needs trl 1.16."""
    import importlib.metadata as md

    requires = ['torch<2.15,>=2.6', 'numpy>=1.24', 'trl<1.17,>=1.16; extra == "trl"', 'pytest>=8; extra == "dev"']
    versions = {"trl": "0.27.0", "pytest": "1.0"}
    monkeypatch.setattr(md, "requires", lambda name: requires if name == "arca-rl" else None)
    monkeypatch.setattr(md, "version", lambda name: versions[name])
    assert _console.missing_trl_extra() == ["trl 0.27.0 (needs trl<1.17,>=1.16)"]
    assert _console.main([]) == 2
    err = capsys.readouterr().err
    assert "(trl 0.27.0 (needs trl<1.17,>=1.16)): pip install 'arca-rl[trl]'" in err
    versions["trl"] = "1.16.0"
    assert _console.missing_trl_extra() == []
