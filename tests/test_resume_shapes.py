"""Resume in every shape (issue 28 §1): the dry run refuses what --resume refuses, a hand-edited config.yaml and
another process count are refused against the checkpoint's own record, a memory cap may change, and a finished
run says in one message what --resume does. Each test works on a copy of `finished_run` (conftest)."""

from __future__ import annotations

import json

import pytest
import yaml

from arca_rl import rundir
from arca_rl._config import parse_config
from arca_rl.cli import main
from runfiles import copy_run, one_error_line, snapshot, train_argv

pytestmark = pytest.mark.slow

AT_CHECKPOINT_1 = ("finished.json", "eval.json", "adapter", "plots", "checkpoint-2")


@pytest.mark.parametrize(
    "override, key",
    [
        ("training.credit=uniform", "training.credit"),
        ("training.learning_rate=0.1", "training.learning_rate"),
        ("training.max_steps=0", "training.max_steps"),
        ("lora.r=8", "lora.r"),
    ],
)
def test_resume_dry_run_refuses_what_resume_refuses(finished_run, tmp_path, override, key, capsys):
    config_path, run_dir = copy_run(finished_run, tmp_path, drop=("finished.json", "eval.json", "adapter", "plots"))
    if key == "training.max_steps":
        override = "training.max_steps=1"  # below checkpoint-2
    before = snapshot(run_dir)
    for extra in (["--dry-run"], []):
        assert main(train_argv(config_path, run_dir, "--resume", "--set", override, *extra)) == 2, extra
        line = one_error_line(capsys.readouterr().err)
        assert key in line, (extra, line)
    assert snapshot(run_dir) == before


def test_resume_dry_run_says_what_resume_will_do(finished_run, tmp_path, capsys):
    config_path, run_dir = copy_run(finished_run, tmp_path, drop=AT_CHECKPOINT_1)
    assert main(train_argv(config_path, run_dir, "--resume", "--dry-run", "--set", "eval.n=2")) == 0
    out = capsys.readouterr().out
    assert "--resume continues from checkpoint-1 (step 1 of 2) with eval.n: 4 -> 2" in out, out


def _edit(path, edit) -> None:
    data = yaml.safe_load(path.read_text()) if path.suffix == ".yaml" else json.loads(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data) if path.suffix == ".yaml" else json.dumps(data))


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "resume"])
def test_a_hand_edited_config_yaml_is_refused_against_the_checkpoint(finished_run, tmp_path, dry_run, capsys):
    _, run_dir = copy_run(finished_run, tmp_path, drop=AT_CHECKPOINT_1)
    saved = run_dir / "config.yaml"
    _edit(saved, lambda d: d["training"].update(seed=5))
    before = snapshot(run_dir)
    # resumed with the edited file itself: it agrees with config.yaml, not with what trained checkpoint-1
    assert main(train_argv(saved, run_dir, "--resume", *["--dry-run"] * dry_run)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "config.yaml" in line and "training.seed: 3 in checkpoint-1, 5 in config.yaml" in line, line
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "resume"])
def test_resume_with_another_process_count_is_refused(finished_run, tmp_path, dry_run, capsys):
    """A run trained by 3 processes (as its checkpoint records) resumed by plain `arca train` (1 process)."""
    config_path, run_dir = copy_run(finished_run, tmp_path, drop=AT_CHECKPOINT_1)
    _edit(run_dir / "checkpoint-1" / "arca_run.json", lambda d: d.update(world_size=3))
    before = snapshot(run_dir)
    assert main(train_argv(config_path, run_dir, "--resume", *["--dry-run"] * dry_run)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "with 1 process(es), but checkpoint-1 was trained with 3" in line and "--num_processes 3" in line, line
    assert snapshot(run_dir) == before


def test_each_checkpoint_records_the_settings_and_the_process_count(finished_run):
    for name in ("checkpoint-1", "checkpoint-2"):
        record = json.loads((finished_run[1] / name / "arca_run.json").read_text())
        assert record["world_size"] == 1
        assert record["settings"]["training.per_device_train_batch_size"] == 4
        assert record["settings"]["lora.r"] == 4


def test_resume_of_a_finished_run_with_a_change_says_it_trains_nothing(finished_run, tmp_path, capsys, caplog):
    config_path, run_dir = copy_run(finished_run, tmp_path)
    before = snapshot(run_dir)
    assert main(train_argv(config_path, run_dir, "--resume", "--set", "training.max_steps=5")) == 0
    logged = caplog.text
    assert "trains nothing: the run is finished" in logged and "training.max_steps: 2 -> 5" in logged, logged
    assert "not applied" in logged and "resuming" not in logged, logged
    assert snapshot(run_dir) == before


def test_vine_batch_rows_a_memory_cap_may_change_on_resume(tmp_path):
    def cfg(rows: int):
        return parse_config({"name": "r", "task": {"name": "arithmetic"},
                             "training": {"credit": "vine", "credit_vine_batch_rows": rows}})

    run = tmp_path / "r"
    run.mkdir()
    (run / rundir.CONFIG_FILE).write_text(yaml.safe_dump(cfg(256).to_yaml_dict()))
    assert rundir.check_resume_config(run, cfg(64)) == ["training.credit_vine_batch_rows: 256 -> 64"]


def test_resume_dry_run_estimates_only_what_resume_trains(finished_run, tmp_path, capsys):
    """`--resume --dry-run` with training.max_steps raised: on a finished run its step line says 0 to train (no token
    bound or time for steps that --resume will not train), beside the one message of what --resume does; on a run
    stopped at checkpoint-1 of 2 the bound is of the one step left."""
    config_path, run_dir = copy_run(finished_run, tmp_path / "finished")
    assert main(train_argv(config_path, run_dir, "--resume", "--set", "training.max_steps=5", "--dry-run")) == 0
    out = capsys.readouterr().out
    steps_line = next(line for line in out.splitlines() if line.startswith("# optimizer steps:"))
    assert steps_line == "# optimizer steps: 5 (training.max_steps), 0 to train", steps_line
    assert "--resume trains nothing: the run is finished" in out and "training.max_steps: 2 -> 5" in out, out
    config_path, run_dir = copy_run(finished_run, tmp_path / "stopped", drop=AT_CHECKPOINT_1)
    assert main(train_argv(config_path, run_dir, "--resume", "--dry-run")) == 0
    out = capsys.readouterr().out
    steps_line = next(line for line in out.splitlines() if line.startswith("# optimizer steps:"))
    assert steps_line.startswith("# optimizer steps: 2 (training.max_steps), 1 to train after step 1; at most 1 x "), (
        out
    )
    assert "--resume continues from checkpoint-1 (step 1 of 2)" in out, out
