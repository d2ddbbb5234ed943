"""`trainer: sdpo`: TRL's own SDPOTrainer from the same CLI, task, model, LoRA, evaluation and run folder; uniform
credit only (anything else refused with one line naming the field); its own settings pass through `training:`."""

from __future__ import annotations

import json

import pytest
import yaml

from arca_rl.errors import ConfigError


def test_other_credit_is_refused_in_one_line_naming_the_field(tiny_run_config):
    from arca_rl._config import parse_config

    raw = {**tiny_run_config, "trainer": "sdpo"}
    raw["training"] = {**raw["training"], "credit": "surprisal"}
    with pytest.raises(ConfigError, match=r"^training\.credit: trainer: sdpo trains with SDPO's own") as err:
        parse_config(raw).training_args("unused")  # refused when the config is read, before any model loads
    assert "\n" not in str(err.value)
    raw["training"] = {
        **raw["training"], "credit": "uniform", "distillation_weight": 0.5, "dont_reprompt_on_self_success": False
    }
    args = parse_config(raw).training_args("unused")
    assert type(args).__name__ == "ARCASDPOConfig" and args.distillation_weight == 0.5
    assert args.dont_reprompt_on_self_success is False


@pytest.mark.slow
def test_arca_train_runs_trls_sdpo_into_the_same_run_folder(tmp_path, tiny_run_config):
    from arca_rl.cli import main

    raw = {**tiny_run_config, "trainer": "sdpo"}
    raw["training"] = {**raw["training"], "credit": "uniform", "save_steps": 2}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--output-dir", str(run), "--quiet"]) == 0
    assert (run / "finished.json").is_file() and (run / "eval.json").is_file()
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if "loss" in m]
    assert len(steps) == 2 and all("self_distillation/reward_mean" in m for m in steps)
    assert all(m["reward"] == pytest.approx(m["self_distillation/reward_mean"]) for m in steps)  # what the report reads
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"] == "sdpo"
