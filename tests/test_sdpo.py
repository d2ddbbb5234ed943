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


class _StopAfter:
    """Simulates an interruption: stop training once `step` optimizer steps are done (after their checkpoint)."""

    def __new__(cls, step: int):
        from transformers import TrainerCallback

        class StopAfter(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step >= step:
                    control.should_training_stop = True
                return control

        return StopAfter()


@pytest.mark.slow
@pytest.mark.parametrize(
    "shape, lora",
    [({}, True), ({"steps_per_generation": 2}, True), ({}, False)],
    ids=["lora-at-a-generation", "lora-inside-a-generation", "full-weights"],
)
def test_sdpo_resumed_run_equals_uninterrupted(tmp_path, tiny_run_config, monkeypatch, shape, lora):
    """Issue 38: `trainer: sdpo` resumed from a checkpoint ends with the same weights, EMA teacher and metrics as a
    run never interrupted, bit for bit (one process, one machine). TRL's EMA teacher is a second LoRA adapter,
    `teacher`, whose running average lives in a callback; without LoRA it is a model of its own, in no checkpoint."""
    import torch
    from safetensors.torch import load_file

    from arca_rl._config import parse_config
    from arca_rl._run import training as run_module
    from arca_rl._run.training import train
    from arca_rl.rundir import is_finished, last_checkpoint, read_metrics
    from tiny import VariedReward

    real_build_task = run_module.build_task
    monkeypatch.setattr(run_module, "build_task", lambda cfg: VariedReward(real_build_task(cfg)))
    raw = {**tiny_run_config, "trainer": "sdpo"}
    raw["training"] = {**raw["training"], "credit": "uniform", "max_steps": 4, "save_steps": 1,
                       "gradient_accumulation_steps": 1, "distillation_weight": 0.5, **shape}
    raw["eval"] = {**raw["eval"], "enabled": False}
    if not lora:
        raw["lora"] = {"enabled": False}
    cfg = parse_config(raw)
    straight = train(cfg, run_dir=tmp_path / "straight", progress=False)
    interrupted = tmp_path / "interrupted"
    train(cfg, run_dir=interrupted, callbacks=[_StopAfter(1)], progress=False)
    assert last_checkpoint(interrupted).name == "checkpoint-1" and not is_finished(interrupted)
    train(cfg, run_dir=interrupted, resume=True, progress=False)
    assert is_finished(interrupted)

    weights = ("adapter_model.safetensors", "teacher/adapter_model.safetensors") if lora else (
        "model.safetensors", "arca_sdpo_teacher.safetensors")
    initial = load_file(straight / "checkpoint-1" / weights[1])
    for name in weights:
        a = load_file(straight / "checkpoint-4" / name)
        b = load_file(interrupted / "checkpoint-4" / name)
        assert a.keys() == b.keys() and a, name
        assert all(torch.equal(a[k], b[k]) for k in a), (name, [(a[k] - b[k]).abs().max().item() for k in a])
    teacher = load_file(straight / "checkpoint-4" / weights[1])
    assert any(not torch.equal(teacher[k], initial[k]) for k in teacher)  # the EMA teacher moved after step 1
    rows_a, rows_b = read_metrics(straight), read_metrics(interrupted)
    drop = ("step_time",)  # wall-clock
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4]
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows_a] == [
        {k: v for k, v in r.items() if k not in drop} for r in rows_b
    ]
    # the teacher was active: some completions were reprompted with a successful sibling
    generated = [r for r in rows_a if "self_distillation/reprompt_sample_fraction" in r]  # steps that generated
    assert generated and any(r["self_distillation/reprompt_sample_fraction"] > 0 for r in generated)
    assert all(r["credit/teacher_fraction"] == r["self_distillation/reprompt_sample_fraction"] for r in generated)


def test_the_rg3_sdpo_arm_runs_sdpo_with_its_policy_gradient_term_and_is_uniform_otherwise(tmp_path, capsys):
    """Issue 39 §5: `smollm2-rg3/sdpo` is TRL's SDPO with the policy-gradient term on (distillation_weight < 1;
    smollm2-rg2/sdpo ran TRL's default 1.0, pure self-distillation) and success = a correct answer under the exact
    reward; everything else is smollm2-rg3/uniform's. Its --dry-run passes."""
    import dataclasses

    from arca_rl._config import load_config
    from arca_rl.cli import main
    from arca_rl.tasks import TINY_MODEL_PATH
    from arca_rl.trainer_config.sdpo import SDPOConfig

    sdpo, uniform = load_config("smollm2-rg3/sdpo"), load_config("smollm2-rg3/uniform")
    rg2 = load_config("smollm2-rg2/sdpo")
    assert sdpo.trainer == "sdpo" and rg2.trainer == "sdpo"
    defaults = {f.name: f.default for f in dataclasses.fields(SDPOConfig)}
    assert defaults["distillation_weight"] == 1.0 and "distillation_weight" not in rg2.training  # rg2: TRL's 1.0
    args = sdpo.training_args(str(tmp_path / "out"))
    assert 0.0 < args.distillation_weight < 1.0
    assert args.success_reward_threshold == 1.0 and sdpo.task.options["reward"] == "exact"  # reward 1 = correct
    sdpo_own = set(defaults) - {f.name for f in dataclasses.fields(type(uniform.training_args(str(tmp_path / "u"))))}
    assert {k: v for k, v in sdpo.training.items() if k not in sdpo_own} == uniform.training
    assert (sdpo.model, sdpo.lora, sdpo.task, sdpo.eval) == (uniform.model, uniform.lora, uniform.task, uniform.eval)
    for key in sdpo_own & set(sdpo.training):  # every SDPO key it writes is a real SDPOConfig field, read back
        assert getattr(args, key) == sdpo.training[key], key
    # the dry run checks the config, not the model: the embedded one stands in where SmolLM2 is not installed
    argv = ["train", "-c", "smollm2-rg3/sdpo", "--output-dir", str(tmp_path / "run"), "--dry-run"]
    assert main([*argv, "--set", f"model.name_or_path={TINY_MODEL_PATH}"]) == 0
    assert "trainer: sdpo" in capsys.readouterr().out and not (tmp_path / "run").exists()
