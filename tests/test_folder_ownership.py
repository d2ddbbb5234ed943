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
    """docs/guide.md and `arca --help` show `arca train --config configs/demo.yaml ... --resume` (`-c demo` in the
    help, the packaged config): with its --set overrides, the run saves checkpoints (the demo config alone has
    save_strategy "no")."""
    import shlex
    from pathlib import Path

    from arca_rl import load_config
    from arca_rl.cli import _EPILOG

    root = Path(__file__).resolve().parent.parent
    text = (root / "docs" / "guide.md").read_text() + "\n" + _EPILOG
    joined = text.replace("\\\n", " ").splitlines()  # a command continued with a backslash is one line
    lines = [line for line in joined if line.lstrip().startswith("arca train") and "--resume" in line]
    assert len(lines) == 2, lines
    for line in lines:
        argv = shlex.split(line.split("#")[0])
        sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
        config = next(argv[i + 1] for i, a in enumerate(argv) if a in ("--config", "-c"))
        assert config in ("configs/demo.yaml", "demo"), line
        cfg = load_config(root / config if config.startswith("configs/") else config, sets)
        assert cfg.training["save_strategy"] == "steps", line
        assert 0 < cfg.training["save_steps"] < cfg.training["max_steps"], line  # a checkpoint before the end


# ---------------------------------------------------------------------------------------------------------------------
# output folders that are not run folders: arca diagnose --out, arca report --out (issue 38 §2)

USER_FILES = {"a.png": b"\x89PNG my picture", "report.html": b"<p>my own report</p>\n", "notes.txt": b"my notes\n"}


def _users_folder(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, data in USER_FILES.items():
        (folder / name).write_bytes(data)
    return folder


def _diagnose_argv(out, tiny_model_dir, *extra):
    return ["diagnose", "--model", str(tiny_model_dir), "--task", "arithmetic", "--n", "2", "--k", "2",
            "--max-new-tokens", "4", "--out", str(out), "--quiet", *extra]  # fmt: skip


@pytest.fixture
def no_model_load(monkeypatch):
    import arca_rl._diagnose.driver as driver

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the output folder was checked")

    monkeypatch.setattr(driver._evaluation, "load_model_for_eval", refuse)


def test_diagnose_refuses_a_folder_of_the_users_files(tmp_path, tiny_model_dir, no_model_load, capsys):
    out = _users_folder(tmp_path)
    assert main(_diagnose_argv(out, tiny_model_dir)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(out) in line and "--out" in line and all(name in line for name in USER_FILES), line
    assert snapshot(out) == USER_FILES  # all kept, nothing added (not even the lock file)


def test_diagnose_refuses_a_diagnosis_folder_the_user_added_to(tmp_path, tiny_model_dir, no_model_load, capsys):
    from arca_rl import _outfolder

    out = tmp_path / "d"
    out.mkdir()
    (out / _outfolder.MANIFEST).write_text(json.dumps({"command": "diagnose", "files": ["diagnose.json"]}))
    (out / "diagnose.json").write_text("{}")
    (out / "notes.txt").write_text("mine\n")
    before = snapshot(out)
    assert main(_diagnose_argv(out, tiny_model_dir)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "notes.txt" in line and "diagnose.json" not in line.split("(", 1)[1], line  # names only the user's file
    assert snapshot(out) == before


@pytest.mark.slow
def test_diagnose_replaces_only_what_an_earlier_diagnosis_recorded(tmp_path, tiny_model_dir, capsys):
    from arca_rl import _outfolder

    out = tmp_path / "d"
    assert main(_diagnose_argv(out, tiny_model_dir, "--signals", "uniform,surprisal")) == 0
    first = json.loads((out / _outfolder.MANIFEST).read_text())
    assert first["command"] == "diagnose" and "hist_surprisal.png" in first["files"]
    assert set(first["files"]) == {p.name for p in out.iterdir()} - {_outfolder.MANIFEST, rundir.LOCK_FILE}

    assert main(_diagnose_argv(out, tiny_model_dir, "--signals", "uniform")) == 0
    second = json.loads((out / _outfolder.MANIFEST).read_text())["files"]
    assert "hist_surprisal.png" not in second and not (out / "hist_surprisal.png").exists()  # recorded: removed
    assert {p.name for p in out.iterdir()} == {*second, _outfolder.MANIFEST, rundir.LOCK_FILE}
    assert set(json.loads((out / "diagnose.json").read_text())["signals"]) == {"uniform"}


@pytest.mark.slow
def test_diagnose_takes_over_a_folder_an_older_arca_diagnose_wrote(tmp_path, tiny_model_dir, capsys):
    """Written before the record existed: the lock file it held, diagnose.json, the page and histograms only."""
    from arca_rl import _outfolder

    out = tmp_path / "d"
    out.mkdir()
    for name in (rundir.LOCK_FILE, "diagnose.json", "report.html", "histograms.png", "hist_old_signal.png"):
        (out / name).write_text("old")
    assert main(_diagnose_argv(out, tiny_model_dir, "--signals", "uniform")) == 0
    files = json.loads((out / _outfolder.MANIFEST).read_text())["files"]
    assert not (out / "hist_old_signal.png").exists() and (out / "diagnose.json").read_text() != "old"
    assert {p.name for p in out.iterdir()} == {*files, _outfolder.MANIFEST, rundir.LOCK_FILE}


def test_an_older_diagnosis_folder_needs_its_lock_file(tmp_path, tiny_model_dir, no_model_load, capsys):
    out = tmp_path / "d"
    out.mkdir()
    for name in ("diagnose.json", "report.html"):  # no .lock: arca diagnose did not hold this folder
        (out / name).write_text("mine")
    before = snapshot(out)
    assert main(_diagnose_argv(out, tiny_model_dir)) == 2
    assert "diagnose.json" in one_error_line(capsys.readouterr().err)
    assert snapshot(out) == before


def _finished_runs(root):
    from test_report import make_run

    make_run(root, "u", credit="uniform", rank=4, seed=1, rewards=[0.1, 0.2], greedy=0.5, pass_k=0.6)
    make_run(root, "a", credit="arca", rank=4, seed=1, rewards=[0.2, 0.3], greedy=0.6, pass_k=0.7)
    return root


def test_report_refuses_a_folder_of_the_users_files(tmp_path, capsys):
    runs = _finished_runs(tmp_path / "runs")
    out = _users_folder(tmp_path)
    assert main(["report", str(runs), "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(out) in line and all(name in line for name in USER_FILES), line
    assert snapshot(out) == USER_FILES


def test_report_removes_only_what_an_earlier_report_recorded(tmp_path, capsys):
    from arca_rl import _outfolder

    runs = _finished_runs(tmp_path / "runs")
    out = tmp_path / "rep"
    assert main(["report", str(runs), "--out", str(out)]) == 0
    assert "paired.json" in json.loads((out / _outfolder.MANIFEST).read_text())["files"]  # uniform: the baseline
    (runs / "u").rename(tmp_path / "u")  # no uniform run any more: no baseline, no paired.json
    assert main(["report", str(runs), "--out", str(out)]) == 0
    files = json.loads((out / _outfolder.MANIFEST).read_text())["files"]
    assert "paired.json" not in files and not (out / "paired.json").exists()  # the earlier report's: removed
    assert {p.name for p in out.iterdir()} == {*files, _outfolder.MANIFEST}
    (out / "notes.txt").write_text("mine\n")
    assert main(["report", str(runs), "--out", str(out)]) == 2
    assert "notes.txt" in one_error_line(capsys.readouterr().err)
    assert (out / "notes.txt").read_text() == "mine\n"


def test_a_folder_of_one_command_is_not_taken_by_another(tmp_path, capsys):
    from arca_rl import _outfolder

    runs = _finished_runs(tmp_path / "runs")
    out = tmp_path / "d"
    out.mkdir()
    (out / _outfolder.MANIFEST).write_text(json.dumps({"command": "diagnose", "files": ["report.html"]}))
    (out / "report.html").write_text("a diagnosis page")
    assert main(["report", str(runs), "--out", str(out)]) == 2
    assert "arca diagnose" in one_error_line(capsys.readouterr().err)
    assert (out / "report.html").read_text() == "a diagnosis page"


def test_sweep_refuses_a_report_folder_of_the_users_files_before_training(tmp_path):
    from arca_rl._sweep import plan_sweep, run_sweep

    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"name": "base", "task": {"name": "arithmetic"}, "training": {"max_steps": 1}}))
    plan = plan_sweep(base, credits=["arca"], ranks=[4], seeds=[1], runs_dir=tmp_path / "runs")
    plan.report_dir.mkdir(parents=True)
    (plan.report_dir / "notes.txt").write_text("mine\n")
    trained = []
    with pytest.raises(rundir.RunExistsError, match="notes.txt"):
        run_sweep(plan, train_fn=lambda cfg, **kw: trained.append(cfg.name), log=None)
    assert trained == [] and snapshot(plan.report_dir) == {"notes.txt": b"mine\n"}
