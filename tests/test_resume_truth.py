"""A resume that tells the truth (issue 17, items 2, 3, 4 and 11's damaged optimizer.pt): every change it
allows takes effect, every one the checkpoint would override is refused, and nothing is written before
every check has passed. Each test works on a copy of `finished_run` (2 steps, a checkpoint per step)."""

from __future__ import annotations

import json

import pytest
import yaml

from arca_rl.cli import main
from runfiles import copy_run, one_error_line, snapshot, train_argv

pytestmark = pytest.mark.slow

AT_CHECKPOINT_1 = ("finished.json", "eval.json", "adapter", "plots", "checkpoint-2")


@pytest.mark.parametrize(
    "override, key",
    [
        ("training.learning_rate=0.1", "training.learning_rate"),  # optimizer param groups
        ("training.adam_beta1=0.5", "training.adam_beta1"),
        ("training.weight_decay=0.1", "training.weight_decay"),
        ("training.lr_scheduler_type=cosine", "training.lr_scheduler_type"),  # scheduler state
        ("training.warmup_steps=3", "training.warmup_steps"),
    ],
)
def test_resume_refuses_what_the_checkpoint_restores(finished_run, tmp_path, override, key, capsys):
    config_path, run_dir = copy_run(finished_run, tmp_path, drop=AT_CHECKPOINT_1)
    before = snapshot(run_dir)
    assert main(train_argv(config_path, run_dir, "--resume", "--set", override)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert key in line and "checkpoint restores" in line, line
    assert snapshot(run_dir) == before


def test_resume_applies_the_changes_it_allows(finished_run, tmp_path):
    """save_steps and logging_steps: HF would keep the checkpoint's; the resumed run uses the new ones."""
    config_path, run_dir = copy_run(finished_run, tmp_path, drop=AT_CHECKPOINT_1)
    argv = train_argv(config_path, run_dir, "--resume", "--set", "training.max_steps=5",
                      "--set", "training.save_steps=2", "--set", "training.logging_steps=2",
                      "--set", "eval.enabled=false")
    assert main(argv) == 0
    checkpoints = sorted(int(p.name.split("-")[1]) for p in run_dir.glob("checkpoint-*"))
    assert 3 not in checkpoints and {1, 2, 4} <= set(checkpoints), checkpoints  # every 2nd step after step 1
    steps = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps[0] == 1 and 3 not in steps and {2, 4} <= set(steps), steps
    assert json.loads((run_dir / "finished.json").read_text())["global_step"] == 5
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())["training"]
    assert (saved["max_steps"], saved["save_steps"], saved["logging_steps"]) == (5, 2, 2)


@pytest.mark.parametrize(
    "damage",
    [b"\xff\xfe not utf-8\n", b"name: tiny\ntraining:\n  an_old_field: 1\n", b"training: [unclosed\n", None],
    ids=["not-utf8", "older-version", "not-yaml", "missing"],
)
@pytest.mark.parametrize("override", ["training.credit=uniform", "lora.r=8"])
def test_an_unreadable_saved_config_refuses_the_resume(finished_run, tmp_path, damage, override, capsys):
    config_path, run_dir = copy_run(finished_run, tmp_path, drop=AT_CHECKPOINT_1)
    if damage is None:
        (run_dir / "config.yaml").unlink()
    else:
        (run_dir / "config.yaml").write_bytes(damage)
    before = snapshot(run_dir)
    assert main(train_argv(config_path, run_dir, "--resume", "--set", override)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(run_dir / "config.yaml") in line and "--resume" in line, line
    assert snapshot(run_dir) == before


def test_max_steps_below_the_last_checkpoint_is_refused(finished_run, tmp_path, capsys):
    config_path, run_dir = copy_run(finished_run, tmp_path, drop=("finished.json", "eval.json", "adapter", "plots"))
    before = snapshot(run_dir)
    assert main(train_argv(config_path, run_dir, "--resume", "--set", "training.max_steps=1")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "training.max_steps" in line and "checkpoint-2" in line, line
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("name", ["optimizer.pt", "scheduler.pt", "rng_state.pth"])
def test_a_damaged_training_state_refuses_before_anything_is_written(finished_run, tmp_path, name, capsys):
    config_path, run_dir = copy_run(finished_run, tmp_path, drop=AT_CHECKPOINT_1)
    target = run_dir / "checkpoint-1" / name
    assert target.is_file()
    target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])  # cut short
    before = snapshot(run_dir)
    assert main(train_argv(config_path, run_dir, "--resume")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(target) in line and "checkpoint-1" in line, line
    assert snapshot(run_dir) == before
