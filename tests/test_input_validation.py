"""Values and files that used to get past validation: each is now one line naming the field or file,
exit 2, before any model loads where the config alone decides (with or without --dry-run)."""

from __future__ import annotations

import json

import pytest
import yaml

from arca_rl.cli import main
from runfiles import one_error_line


@pytest.fixture
def empty_model_dir(tmp_path):
    """A model folder without config.json: if validation let a value through, loading fails at once
    (instead of training the embedded model for minutes)."""
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    return folder


BAD_VALUES = [
    ("training.max_steps=-1", "training.max_steps"),
    ("training.max_steps=0", "training.max_steps"),
    ("training.per_device_train_batch_size=0", "training.per_device_train_batch_size"),
    ("training.num_generations=0", "training.num_generations"),
    ("training.gradient_accumulation_steps=0", "training.gradient_accumulation_steps"),
    ("training.max_completion_length=0", "training.max_completion_length"),
    ("training.learning_rate=.nan", "training.learning_rate"),
    ("training.learning_rate=.inf", "training.learning_rate"),
    ("training.learning_rate=-1.0e-4", "training.learning_rate"),
    ("training.temperature=.nan", "training.temperature"),
    ("training.temperature=0", "training.temperature"),
    ("training.top_p=.nan", "training.top_p"),
    ("training.top_p=1.5", "training.top_p"),
    ("training.top_p=0", "training.top_p"),
    ("training.beta=.nan", "training.beta"),
    ("training.beta=-0.1", "training.beta"),
    ("training.beta=.inf", "training.beta"),
    ("training.credit_eps=.nan", "credit_eps"),
    ("training.credit_eps=.inf", "credit_eps"),
    ("training.credit_power=.inf", "credit_power"),
    ("training.credit_min_salience=.inf", "credit_min_salience"),
    ("training.credit_log_tokens_every=-1", "credit_log_tokens_every"),
    ("training.num_iterations=0", "training.num_iterations"),
    ("training.max_grad_norm=.nan", "training.max_grad_norm"),
    ("lora.r=0", "lora.r"),
    ("lora.alpha=.nan", "lora.alpha"),
    ("lora.alpha=.inf", "lora.alpha"),
    ("eval.n=0", "eval.n"),
    ("eval.k=0", "eval.k"),
    ("eval.samples_per_problem=0", "eval.samples_per_problem"),
    ("eval.temperature=.nan", "eval.temperature"),
    ("task.max_prompt_tokens=0", "task.max_prompt_tokens"),
    ("lora=null", "lora"),
]


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "train"])
@pytest.mark.parametrize("override, field", BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_out_of_range_values_are_one_line_before_any_model(tmp_path, empty_model_dir, capsys, override, field, dry_run):
    out = tmp_path / "run"
    argv = ["train", "--config", "configs/demo.yaml", "--output-dir", str(out),
            "--set", f"model.name_or_path={empty_model_dir}", "--set", override]
    assert main([*argv, "--dry-run"] if dry_run else argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert field in line, line
    assert not out.exists()


def test_empty_config_is_refused_naming_what_is_missing(tmp_path, capsys):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    for extra in (["--dry-run"], []):
        assert main(["train", "--config", str(path), "--output-dir", str(tmp_path / "run"), *extra]) == 2
        assert "training.max_steps" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_dry_run_states_the_optimizer_steps(tmp_path, capsys):
    assert main(["train", "--config", "configs/demo.yaml", "--dry-run", "--output-dir", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "optimizer steps: 40" in out
    # 40 steps x 32 completions x at most 32 tokens
    assert "40960" in out


def test_config_that_is_not_utf8_is_one_line(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\ntraining:\n  max_steps: 1\n".encode("latin-1"))
    assert main(["train", "--config", str(path), "--dry-run"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(path) in line and "UTF-8" in line, line


def test_model_folder_without_config_json_is_one_line(tmp_path, empty_model_dir, capsys):
    for extra in (["--dry-run"], []):
        argv = ["train", "--config", "configs/demo.yaml", "--output-dir", str(tmp_path / "run"),
                "--set", f"model.name_or_path={empty_model_dir}", *extra]
        assert main(argv) == 2
        line = one_error_line(capsys.readouterr().err)
        assert str(empty_model_dir) in line and "config.json" in line, line
    assert main(["eval", "--model", str(empty_model_dir), "--task", "arithmetic", "--n", "2", "--quiet"]) == 2
    assert "config.json" in one_error_line(capsys.readouterr().err)


def test_output_dir_that_is_a_file_is_one_line(tmp_path, tiny_run_config, capsys):
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_run_config))
    target = tmp_path / "a-file"
    target.write_text("keep me\n")
    assert main(["train", "--config", str(config_path), "--output-dir", str(target), "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(target) in line, line
    assert target.read_text() == "keep me\n"


@pytest.mark.slow
def test_target_modules_matching_nothing_is_one_line(tmp_path, tiny_run_config, capsys):
    tiny_run_config["lora"]["target_modules"] = ["no_such_proj"]
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_run_config))
    run_dir = tmp_path / "run"
    assert main(["train", "--config", str(config_path), "--output-dir", str(run_dir), "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "lora.target_modules" in line and "no_such_proj" in line, line
    assert not (run_dir / "metrics.jsonl").exists()


@pytest.mark.slow
def test_empty_prompt_in_a_dataset_is_one_line(tmp_path, tiny_run_config, tiny_model_dir, capsys):
    data = tmp_path / "problems.jsonl"
    rows = [{"problem": "1+1", "solution": "\\boxed{2}"}, {"problem": "", "solution": "\\boxed{0}"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tiny_run_config["task"] = {"name": "math", "source": str(data), "template": "{problem}"}
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_run_config))
    assert main(["train", "--config", str(config_path), "--output-dir", str(tmp_path / "run"), "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "prompt" in line and str(data) in line, line
    task_args = ["--task", "math", "--task-option", f"source={data}", "--task-option", "template='{problem}'",
                 "--n", "2", "--quiet"]
    assert main(["eval", "--model", str(tiny_model_dir), *task_args]) == 2
    assert "empty prompt" in one_error_line(capsys.readouterr().err)
    assert main(["diagnose", "--model", str(tiny_model_dir), "--k", "2", "--out", str(tmp_path / "d"), *task_args]) == 2
    assert "empty prompt" in one_error_line(capsys.readouterr().err)


@pytest.mark.slow
def test_reward_function_returning_strings_names_the_function(tmp_path, tiny_model_dir):
    from arca_rl import ARCAGRPOConfig, ARCAGRPOTrainer
    from arca_rl.tasks import get_task

    def reward_as_text(completions, **kwargs):
        return ["1.0" for _ in completions]

    task = get_task("arithmetic")
    args = ARCAGRPOConfig(output_dir=str(tmp_path / "out"), credit="uniform", max_steps=1,
                          per_device_train_batch_size=4, num_generations=4, max_completion_length=4,
                          report_to="none", use_cpu=True, bf16=False, save_strategy="no",
                          dataloader_pin_memory=False)
    trainer = ARCAGRPOTrainer(model=str(tiny_model_dir), reward_funcs=[reward_as_text], args=args,
                              train_dataset=task.train_dataset(8))
    with pytest.raises(TypeError, match=r"reward_as_text.*str"):
        trainer.train()


@pytest.mark.slow
@pytest.mark.parametrize(
    "credit, field, value", [("ktae", "credit_ktae_scale", 1e300), ("tempo", "credit_tempo_td_weight", 1e38)]
)
def test_an_overflowing_magnitude_stops_the_run_at_the_first_non_finite_step(tmp_path, capsys, credit, field, value):
    """Issue 28 §4: no NaN adapter, no sampling traceback, no "run finished": one line at the first non-finite step,
    that step not saved, the run left resumable from its last good checkpoint. The demo config (the shipped tiny
    model), whose rewards vary."""
    from pathlib import Path

    config = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"
    run = tmp_path / "run"
    sets = [f"training.credit={credit}", "training.max_steps=3", "training.save_steps=1", f"training.{field}={value}",
            "eval.enabled=false"]
    argv = ["train", "--config", str(config), "--output-dir", str(run), "--quiet"]
    assert main([*argv, *[x for s in sets for x in ("--set", s)]]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "training stopped" in line and any(w in line for w in ("not finite", " is nan", " is inf")), line
    assert not (run / "finished.json").exists() and not (run / "adapter").exists()
    from arca_rl.rundir import last_checkpoint

    kept = last_checkpoint(run)
    assert kept is None or kept.name in line
    if kept is not None:  # the kept checkpoint's weights are finite
        from safetensors.torch import load_file

        assert all(t.isfinite().all() for t in load_file(kept / "adapter_model.safetensors").values())


@pytest.mark.parametrize("bare", [1.0, None, 3], ids=["float", "None", "int"])
def test_reward_function_returning_a_bare_value_names_the_function(bare):
    """Issue 28 §5: one value instead of a list (one per completion) is a TypeError naming the function."""
    from arca_rl.trainer.hooks import _numeric_rewards

    def reward_once(completions, **kwargs):
        return bare

    with pytest.raises(TypeError, match=r"reward function 'reward_once' returned a bare \w+ .*not a list"):
        _numeric_rewards(reward_once, "reward_once")(completions=["a", "b"])
    assert _numeric_rewards(lambda completions, **kw: [1.0, None], "ok")(completions=["a", "b"]) == [1.0, None]
