"""Every flag of every command is checked before any work (issue 17, items 7 and 8): a bad value is one
line naming the flag, exit 2, and no model is loaded."""

from __future__ import annotations

import pytest
import yaml

from arca_rl.cli import main
from runfiles import one_error_line

SEED_PAST_NUMPY = str(2**32)  # numpy.random.seed takes [0, 2**32 - 1]


@pytest.fixture
def no_model_load(monkeypatch):
    """Loading a model fails the test: every refusal here must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the flags were checked")

    import importlib

    # every module that holds the name (imported at its top) gets the stand-in; monkeypatch restores them all
    names = ("arca_rl._run.evaluation", "arca_rl._demo", "arca_rl._diagnose.driver", "arca_rl.cli.evaluate")
    modules = [importlib.import_module(name) for name in names]  # all imported first, then patched
    for module in modules:
        if hasattr(module, "load_model_for_eval"):
            monkeypatch.setattr(module, "load_model_for_eval", refuse)


BAD = [
    (["diagnose", "--task", "arithmetic", "--signals", "foo"], "--signals"),
    (["diagnose", "--task", "arithmetic", "--signals", ","], "--signals"),
    (["diagnose", "--task", "arithmetic", "--batch-size", "0"], "--batch-size"),
    (["diagnose", "--task", "arithmetic", "--max-new-tokens", "0"], "--max-new-tokens"),
    (["diagnose", "--task", "arithmetic", "--device", "bogus"], "--device"),
    (["diagnose", "--task", "arithmetic", "--temperature", "nan"], "--temperature"),
    (["diagnose", "--task", "arithmetic", "--top-p", "1.5"], "--top-p"),
    (["diagnose", "--task", "arithmetic", "--mix", "inf"], "--mix"),
    (["diagnose", "--task", "arithmetic", "--power", "0"], "--power"),
    (["diagnose", "--task", "arithmetic", "--seed", "-1"], "--seed"),
    (["diagnose", "--task", "arithmetic", "--n", "0"], "--n"),
    (["diagnose", "--task", "arithmetic", "--threads", "0"], "--threads"),
    # the oracle's own settings do nothing without it (or step seeds with every prefix): refused, not ignored
    (["diagnose", "--task", "arithmetic", "--oracle-positions", "all"], "--oracle-positions"),
    (["diagnose", "--task", "arithmetic", "--oracle-positions", "adaptive"], "--oracle-positions"),
    (["diagnose", "--task", "arithmetic", "--oracle-step-seeds"], "--oracle-step-seeds"),
    (["diagnose", "--task", "arithmetic", "--oracle", "4", "--oracle-positions", "all", "--oracle-step-seeds"],
     "--oracle-step-seeds"),
    (["eval", "--k", "0"], "--k"),
    (["eval", "--n", "0"], "--n"),
    (["eval", "--samples-per-problem", "2", "--k", "4"], "--samples-per-problem"),
    (["eval", "--temperature", "0"], "--temperature"),
    (["eval", "--seed", SEED_PAST_NUMPY], "--seed"),
    (["eval", "--max-prompt-tokens", "-3"], "--max-prompt-tokens"),
    (["eval", "--batch-size", "x"], "--batch-size"),
    (["demo", "--seeds=-1"], "--seeds"),
    (["demo", "--seeds", ","], "--seeds"),
    (["demo", "--methods", ","], "--methods"),
    (["demo", "--budget", "nan"], "--budget"),
    (["demo", "--oracle", "-1"], "--oracle"),
    (["demo", "--set", "training.seed=-1"], "training.seed"),
    (["demo", "--set", f"eval.seed={2**64}"], "eval.seed"),
    (["train", "--config", "configs/demo.yaml", "--set", "training.seed=-1"], "training.seed"),
    (["train", "--config", "configs/demo.yaml", "--set", f"eval.seed={2**64}", "--dry-run"], "eval.seed"),
    (["sweep", "--config", "configs/demo.yaml", "--credit", "nope", "--rank", "4", "--seed", "1"], "--credit"),
    (["sweep", "--config", "configs/demo.yaml", "--credit", "arca", "--rank", "0", "--seed", "1"], "--rank"),
    (
        ["sweep", "--config", "configs/demo.yaml", "--credit", "arca", "--rank", "4", "--seed", SEED_PAST_NUMPY],
        "--seed",
    ),
]


@pytest.mark.parametrize("argv, flag", BAD, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD])
def test_a_bad_flag_is_one_line_before_any_model_loads(argv, flag, tmp_path, monkeypatch, no_model_load, capsys):
    monkeypatch.chdir(_repo_root())
    out = tmp_path / "out"
    if argv[0] in ("demo", "train"):
        argv = [*argv, "--output-dir", str(out)]
    elif argv[0] == "sweep":
        argv = [*argv, "--runs-dir", str(out)]
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{flag}" in line.split(": error: ", 1)[1].split(":")[0], line  # the flag comes first
    assert not out.exists()  # nothing written


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", ["train", "demo", "diagnose", "eval", "report", "sweep"])
@pytest.mark.parametrize("where", ["file", "under_file"])
def test_an_output_that_cannot_be_a_folder_is_refused_first(
    command, where, tmp_path, monkeypatch, no_model_load, capsys
):
    monkeypatch.chdir(_repo_root())
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me\n")
    target = a_file if where == "file" else a_file / "sub"
    argv = {
        "train": ["train", "--config", "configs/demo.yaml", "--output-dir", str(target)],
        "demo": ["demo", "--output-dir", str(target)],
        "diagnose": ["diagnose", "--task", "arithmetic", "--out", str(target)],
        "eval": ["eval", "--out", str(target / "eval.json")],
        "report": ["report", str(tmp_path), "--out", str(target)],
        "sweep": ["sweep", "--config", "configs/demo.yaml", "--credit", "arca", "--rank", "4", "--seed", "1",
                  "--runs-dir", str(target)],
    }[command]
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(a_file) in line and ("--out" in line or "--output-dir" in line or "--runs-dir" in line), line
    assert a_file.read_text() == "keep me\n"


@pytest.mark.parametrize("target", ["file", "under_file"])
def test_train_dry_run_checks_the_output_folder_too(target, tmp_path, tiny_run_config, capsys):
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_run_config))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    out = a_file if target == "file" else a_file / "run"
    assert main(["train", "--config", str(config_path), "--output-dir", str(out), "--dry-run"]) == 2
    assert str(a_file) in one_error_line(capsys.readouterr().err)


def test_the_diagnose_api_checks_its_arguments_too(no_model_load):
    from arca_rl import ConfigError
    from arca_rl._diagnose import run_diagnose

    for kwargs, flag in [({"batch_size": 0}, "--batch-size"), ({"seed": -1}, "--seed"),
                         ({"signals": ["nope"]}, "--signals"), ({"device": "bogus"}, "--device"),
                         ({"temperature": float("nan")}, "--temperature"), ({"max_new_tokens": 0}, "--max-new-tokens")]:
        with pytest.raises(ConfigError, match=f"^{flag}: "):
            run_diagnose(task="arithmetic", log=None, **kwargs)


@pytest.mark.parametrize("command", ["train", "demo", "diagnose", "eval", "report", "sweep"])
@pytest.mark.parametrize("target", ["/proc/x", ""], ids=["unwritable", "empty"])
def test_an_output_that_cannot_be_written_is_refused_first(
    command, target, tmp_path, monkeypatch, no_model_load, capsys
):
    """Issue 28 §2: /proc/x passes a permission-bit check as root (and "" is the current folder); both are refused
    while the command line is parsed, before the oracle or a training runs, and nothing is written."""
    monkeypatch.chdir(_repo_root())
    argv = {
        "train": ["train", "--config", "configs/demo.yaml", "--output-dir", target],
        "demo": ["demo", "--output-dir", target],
        "diagnose": ["diagnose", "--task", "arithmetic", "--out", target],
        "eval": ["eval", "--out", target and f"{target}/eval.json"],
        "report": ["report", str(tmp_path), "--out", target],
        "sweep": ["sweep", "--config", "configs/demo.yaml", "--credit", "arca", "--rank", "4", "--seed", "1",
                  "--runs-dir", target],
    }[command]
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert any(flag in line for flag in ("--out", "--output-dir", "--runs-dir")), line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["train", "demo", "report", "sweep"])
def test_a_default_output_under_a_file_is_refused_first(command, tmp_path, monkeypatch, no_model_load, capsys):
    """Without --out / --output-dir / --runs-dir the default folder (runs/..., <parent>/report) is checked too."""
    config = _repo_root() / "configs" / "demo.yaml"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("keep me\n")  # runs/ is a file: runs/<name> cannot be made
    (tmp_path / "report").write_text("keep me\n")
    (tmp_path / "a_run").mkdir()
    (tmp_path / "a_run" / "config.yaml").write_text("name: a_run\n")  # a run folder: the default is ./report
    argv = {
        "train": ["train", "--config", str(config)],
        "demo": ["demo"],
        "report": ["report", str(tmp_path / "a_run")],
        "sweep": ["sweep", "--config", str(config), "--credit", "arca", "--rank", "4", "--seed", "1"],
    }[command]
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert ("report" if command == "report" else "runs") in line.split(": error: ", 1)[1], line
    assert (tmp_path / "runs").read_text() == (tmp_path / "report").read_text() == "keep me\n"


def test_diagnose_holds_its_out_folder(tmp_path, no_model_load, capsys):
    """Issue 28 §5: a second diagnosis into a folder in use is refused before any model loads. (What a reused --out
    keeps and removes: tests/test_folder_ownership.py.)"""
    from arca_rl import rundir

    out = tmp_path / "d"
    with rundir.lock(out):
        assert main(["diagnose", "--task", "arithmetic", "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(out) in line and "--out" in line and "another arca command" in line, line
