"""Nothing deletes or rewrites a folder it does not hold the lock of, and nothing writes into a folder of
the user's own files (issue 17, items 1 and 5)."""

from __future__ import annotations

import json

import pytest
import yaml

from arca_rl import rundir
from arca_rl.cli import main
from runfiles import one_error_line, snapshot


def _demo_argv(out, tiny_model_dir, *extra):
    return ["demo", "--output-dir", str(out), "--methods", "arca", "--seeds", "0", "--oracle", "0", "--quiet",
            "--set", f"model.name_or_path={tiny_model_dir}", "--set", "training.max_steps=1",
            "--set", "training.per_device_train_batch_size=4", "--set", "training.num_generations=4",
            "--set", "training.max_completion_length=4", "--set", "eval.n=2", "--set", "eval.batch_size=2",
            "--set", "eval.max_new_tokens=4", "--set", "eval.samples_per_problem=2", "--set", "eval.k=2", *extra]


def _fake_run(folder, name="other"):
    """A run folder as `arca train` leaves it mid-run: its lock file, config and two metrics rows."""
    folder.mkdir(parents=True)
    (folder / rundir.LOCK_FILE).write_text("")
    (folder / rundir.CONFIG_FILE).write_text(f"name: {name}\n")
    (folder / rundir.METRICS_FILE).write_text('{"step": 1}\n{"step": 2}\n')


def test_demo_refuses_a_run_folder_another_process_holds(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "D"
    _fake_run(out / "arca")
    with rundir.lock(out / "arca"):  # `arca train --output-dir D/arca` is running
        before = snapshot(out)
        assert main(_demo_argv(out, tiny_model_dir)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(out / "arca") in line and "in use" in line
    assert snapshot(out) == before  # nothing deleted, nothing written (no base_eval.json either)


def test_a_second_demo_on_the_same_folder_is_refused(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "D"
    with rundir.lock(out):  # another `arca demo --output-dir D` holds the demo folder
        before = snapshot(out)
        assert main(_demo_argv(out, tiny_model_dir)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(out) in line and "in use" in line
    assert snapshot(out) == before


def test_demo_refuses_a_folder_of_the_users_files(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes\n")
    assert main(_demo_argv(out, tiny_model_dir)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(out) in line and "notes.txt" in line and "not a folder written by arca" in line
    assert snapshot(out) == {"notes.txt": b"my notes\n"}


@pytest.mark.slow
def test_demo_replaces_its_old_run_only_under_the_runs_lock(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "D"
    _fake_run(out / "arca", name="demo-arca")  # an earlier demo's arca run, cut mid-run
    (out / "arca" / "stale.txt").write_text("from an earlier demo\n")
    assert main(_demo_argv(out, tiny_model_dir)) == 0
    run = out / "arca"
    assert rundir.is_finished(run) and not (run / "stale.txt").exists()
    steps = [json.loads(x)["step"] for x in (run / rundir.METRICS_FILE).read_text().splitlines()]
    assert steps == [1]  # the old rows are gone, the new run logged its one step
    assert yaml.safe_load((run / rundir.CONFIG_FILE).read_text())["name"] == "demo-arca"


def _user_folder(tmp_path, tiny_run_config):
    """A folder of the user's: a README and the config they train from."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "README.md").write_text("# my project\n")
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(tiny_run_config))
    return folder, config_path


@pytest.mark.parametrize("dry_run", [False, True])
def test_train_refuses_a_non_empty_folder_that_is_not_a_run(tmp_path, tiny_run_config, capsys, dry_run):
    folder, config_path = _user_folder(tmp_path, tiny_run_config)
    before = snapshot(folder)
    argv = ["train", "--config", str(config_path), "--output-dir", str(folder), "--quiet"]
    assert main(argv + ["--dry-run"] * dry_run) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(folder) in line and "README.md" in line and "config.yaml" in line
    assert snapshot(folder) == before


def test_train_into_other_files_only_when_asked(tmp_path, tiny_run_config, capsys):
    folder, config_path = _user_folder(tmp_path, tiny_run_config)
    argv = ["train", "--config", str(config_path), "--output-dir", str(folder), "--dry-run", "--allow-other-files"]
    assert main(argv) == 0
    assert "valid" in capsys.readouterr().out


def test_the_documented_resume_example_has_checkpoints_to_resume_from():
    """docs/guide.md and `arca --help` show `arca train --config configs/demo.yaml ... --resume`: with its
    --set overrides, the run saves checkpoints (configs/demo.yaml alone has save_strategy "no")."""
    import shlex
    from pathlib import Path

    from arca_rl import load_config
    from arca_rl.cli import _EPILOG

    root = Path(__file__).resolve().parent.parent
    text = (root / "docs" / "guide.md").read_text() + "\n" + _EPILOG
    joined = text.replace("\\\n", " ").splitlines()  # a command continued with a backslash is one line
    lines = [line for line in joined if "configs/demo.yaml" in line and "--resume" in line]
    assert len(lines) == 2, lines
    for line in lines:
        argv = shlex.split(line.split("#")[0])
        sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
        cfg = load_config(root / "configs" / "demo.yaml", sets)
        assert cfg.training["save_strategy"] == "steps", line
        assert 0 < cfg.training["save_steps"] < cfg.training["max_steps"], line  # a checkpoint before the end
