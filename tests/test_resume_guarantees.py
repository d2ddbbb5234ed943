"""What a run folder promises on --resume, and one-line refusals for damaged run files.

Each test works on a copy of `finished_run` (conftest), damaged or cut short the way an interruption or a careless user
would leave it.
"""

from __future__ import annotations

import json

import pytest
import yaml
from safetensors.torch import load_file

from arca_rl.cli import main
from runfiles import copy_run, one_error_line, snapshot, train_argv

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------------------------------
# item 2: stopped during the final save or evaluation -> resume finishes, trains nothing


@pytest.mark.parametrize(
    "drop",
    [("finished.json", "eval.json", "plots"), ("finished.json", "eval.json", "plots", "adapter")],
    ids=["during-eval", "during-final-save"],
)
def test_resume_after_stop_at_max_steps_trains_no_extra_step(finished_run, tmp_path, drop, capsys):
    config_path, run_dir = copy_run(finished_run, tmp_path, drop=drop)
    original = finished_run[1]
    assert main(train_argv(config_path, run_dir, "--resume")) == 0
    assert "run finished" in capsys.readouterr().out

    assert not (run_dir / "checkpoint-3").exists()
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert json.loads((run_dir / "finished.json").read_text())["global_step"] == 2
    # the same files as the uninterrupted run: adapter weights, eval.json, metrics, token dump
    a = load_file(original / "adapter" / "adapter_model.safetensors")
    b = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    for key in a:
        assert (a[key] - b[key]).abs().max().item() == 0.0, key
    assert json.loads((run_dir / "eval.json").read_text()) == json.loads((original / "eval.json").read_text())
    for name in ("metrics.jsonl", "credit_tokens.jsonl", "config.yaml"):
        assert (run_dir / name).read_bytes() == (original / name).read_bytes(), name
    assert (run_dir / "plots" / "reward.png").is_file()


# ---------------------------------------------------------------------------------------------------
# item 3: a resume compares its config with the saved one before touching anything


@pytest.mark.parametrize(
    "override, key",
    [
        ("lora.r=8", "lora.r"),
        ("lora.target_modules=[q_proj]", "lora.target_modules"),
        ("training.credit=uniform", "training.credit"),
        ("training.credit_power=2.0", "training.credit_power"),
        ("training.credit_mix=0.5", "training.credit_mix"),
        ("training.credit_warmup_steps=3", "training.credit_warmup_steps"),
        # a group method's setting (read by its shadow: credit_shadow may change on resume)
        ("training.credit_shadow=true training.credit_tempo_td_weight=0.5", "training.credit_tempo_td_weight"),
        ("training.credit_shadow=true training.credit_hicra_entropy_frac=0.5", "training.credit_hicra_entropy_frac"),
        ("training.seed=4", "training.seed"),
        ("training.per_device_train_batch_size=8", "training.per_device_train_batch_size"),
        ("task.n_train=8", "task.n_train"),
    ],
)
def test_resume_with_a_changed_fixed_setting_refuses_and_changes_nothing(finished_run, tmp_path, override, key, capsys):
    config_path, run_dir = copy_run(finished_run, tmp_path, drop=("finished.json", "eval.json"))
    before = snapshot(run_dir)
    sets = [x for one in override.split() for x in ("--set", one)]
    assert main(train_argv(config_path, run_dir, "--resume", *sets)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert key in line and "resume" in line, line
    assert snapshot(run_dir) == before


def test_resume_lists_every_changed_fixed_setting(finished_run, tmp_path, capsys):
    config_path, run_dir = copy_run(finished_run, tmp_path, drop=("finished.json",))
    assert main(train_argv(config_path, run_dir, "--resume", "--set", "lora.r=8",
                           "--set", "training.credit=surprisal")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "lora.r" in line and "training.credit" in line, line


def test_resume_with_harmless_changes_is_allowed_and_recorded(finished_run, tmp_path):
    config_path, run_dir = copy_run(finished_run, tmp_path, drop=("finished.json", "eval.json"))
    assert main(train_argv(config_path, run_dir, "--resume", "--set", "eval.n=2",
                           "--set", "training.logging_steps=2")) == 0
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["eval"]["n"] == 2 and saved["training"]["logging_steps"] == 2
    assert json.loads((run_dir / "eval.json").read_text())["n"] == 2
    assert not (run_dir / "checkpoint-3").exists()
