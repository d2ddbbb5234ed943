"""Config validation: unknown keys and bad values are named before any model loads; overrides; shipped configs."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import yaml

from arca_rl._config import ConfigError, RunConfig, apply_overrides, hardware, load_config, parse_config
from arca_rl._config import schema as config_module
from arca_rl._config import sections as sections_module
from arca_rl.cli import main

ROOT = Path(__file__).resolve().parent.parent
ALL_CONFIGS = sorted((ROOT / "configs").glob("*.yaml")) + sorted((ROOT / "configs" / "paper").glob("*.yaml"))
PAPER = sorted((ROOT / "configs" / "paper").glob("*.yaml"))


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"training": {"learnig_rate": 1e-5}}, r"^training\.learnig_rate: unknown key; did you mean learning_rate\?"),
        ({"lora": {"rank": 8}}, r"^lora\.rank: unknown key; did you mean r"),
        ({"eval": {"kk": 4}}, r"^eval\.kk: unknown key; did you mean k\?"),
        ({"model": {"path": "x"}}, r"^model\.path: unknown key"),
        ({"task": {"name": "arithmetic", "n_tarin": 5}}, r"^task\.n_tarin: unknown key; did you mean n_train\?"),
        ({"task": {"name": "arithmetc"}}, r"^task\.name: unknown task 'arithmetc'; did you mean arithmetic\?"),
        ({"learning_rate": 1e-5}, r"^learning_rate: unknown top-level key.*training\.learning_rate"),
        ({"trainig": {}}, r"^trainig: unknown top-level key; did you mean training\?"),
    ],
)
def test_unknown_keys_are_named_with_a_suggestion(raw, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(raw)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"training": {"learning_rate": "fast"}}, r"^training\.learning_rate: expected a number, got 'fast'"),
        ({"training": {"max_steps": 2.5}}, r"^training\.max_steps: expected an integer"),
        ({"training": {"bf16": "yes"}}, r"^training\.bf16: expected true or false"),
        ({"training": {"lr_scheduler_type": "cosin"}}, r"^training\.lr_scheduler_type: expected one of .*'cosine'"),
        ({"training": {"credit": "arcaa"}}, r"^training\.credit: unknown signal 'arcaa'; did you mean arca\?"),
        ({"training": {"credit_power": -1.0}}, r"credit_power must be a number > 0"),
        ({"training": {"num_generations": 1}}, r"^training: .*at least 2 generations"),
        ({"training": {"output_dir": "x"}}, r"^training\.output_dir: set by arca train"),
        (
            {"training": {"model_init_kwargs": {"dtype": "bfloat16"}}},
            r"^training\.model_init_kwargs\.dtype: set it as model\.dtype",
        ),
        ({"model": {"dtype": "fp8"}}, r"^model\.dtype: must be one of"),
        ({"lora": {"r": 0}}, r"^lora\.r: must be >= 1"),
        ({"lora": {"dropout": 1.5}}, r"^lora\.dropout: must be in \[0, 1\)"),
        (
            {"lora": {"enabled": False}, "training": {"credit": "arca"}},
            r"^training\.credit: 'arca' compares the adapted model",
        ),
        ({"eval": {"k": 8}}, r"^eval\.samples_per_problem: must be >= eval\.k"),
        ({"eval": {"n": 0}}, r"^eval\.n: must be >= 1"),
        ({"task": {"name": "arithmetic", "seed": "zero"}}, r"^task\.seed: .*must be an integer"),
        ({"task": {"max_prompt_tokens": 0}}, r"^task\.max_prompt_tokens: must be >= 1"),
        ({"name": "a/b"}, r"^name: must be a folder name"),
        ({"training": [1, 2]}, r"^training: must be a mapping"),
    ],
)
def test_bad_values_are_named(raw, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(raw)


def test_full_finetuning_with_reference_model_is_allowed():
    cfg = parse_config({"lora": {"enabled": False}, "training": {"credit": "arca", "beta": 0.04}})
    assert cfg.lora_config() is None


def test_yaml11_exponent_floats_and_defaults():
    cfg = parse_config(yaml.safe_load("training: {learning_rate: 5e-6, warmup_steps: 10}"))
    assert cfg.training["learning_rate"] == pytest.approx(5e-6) and isinstance(cfg.training["learning_rate"], float)
    assert cfg.lora.lora_alpha == 2 * cfg.lora.r  # alpha defaults to 2r
    assert cfg.name == "run" and cfg.task.name == "arithmetic"


def test_overrides_are_yaml_parsed_and_validated(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("training:\n  learning_rate: 3.0e-4\n  credit: arca\n")
    cfg = load_config(
        path,
        [
            "training.learning_rate=1e-5",
            "training.credit=uniform",
            "lora.r=64",
            "lora.target_modules=[q_proj, v_proj]",
            "task.seed=3",
            "eval.n=10",
            "name=other",
        ],
    )
    assert cfg.name == "other"
    assert cfg.training == {"learning_rate": 1e-5, "credit": "uniform"}
    assert cfg.lora.r == 64 and cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.task.options == {"seed": 3} and cfg.eval.n == 10
    assert load_config(path).name == "exp"  # name defaults to the file's stem
    with pytest.raises(ConfigError, match=r"^training\.learnig_rate: unknown key"):
        load_config(path, ["training.learnig_rate=1e-5"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(path, ["training.learning_rate"])
    with pytest.raises(ConfigError, match=r"training\.learning_rate is not a section"):
        load_config(path, ["training.learning_rate.x=1"])
    # with_overrides on an object leaves the original alone
    again = cfg.with_overrides(["training.seed=7"])
    assert again.training["seed"] == 7 and "seed" not in cfg.training


def test_round_trip_through_yaml():
    cfg = parse_config(
        {
            "name": "rt",
            "lora": {"r": 8, "use_rslora": True},
            "task": {"name": "arithmetic", "seed": 2, "n_train": 100},
            "training": {"credit": "surprisal", "report_to": ["none"], "learning_rate": 2e-5},
            "eval": {"n": 50},
        }
    )
    again = parse_config(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg
    assert apply_overrides(cfg.to_yaml_dict(), []) == cfg.to_yaml_dict()


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        load_config(scalar)


def test_every_section_field_has_a_docstring():
    nodes = [node for module in (sections_module, config_module) for node in ast.parse(inspect.getsource(module)).body]
    sections = {"ModelSection", "LoraSection", "TaskSection", "EvalSection", "RunConfig"}
    seen = set()
    for node in nodes:
        if isinstance(node, ast.ClassDef) and node.name in sections:
            seen.add(node.name)
            body = node.body
            for i, stmt in enumerate(body):
                if isinstance(stmt, ast.AnnAssign):
                    nxt = body[i + 1] if i + 1 < len(body) else None
                    documented = isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant)
                    assert documented, f"{node.name}.{stmt.target.id} has no docstring"
    assert seen == sections


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)


def test_shipped_configs_dry_run(capsys):
    """`arca train --dry-run` validates every shipped config offline (paper configs name hub weights)."""
    assert ALL_CONFIGS, "no configs found"
    for path in ALL_CONFIGS:
        assert main(["train", "--config", str(path), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "valid" in out
        cfg = load_config(path)
        assert (
            yaml.safe_load("\n".join(line for line in out.splitlines() if not line.startswith("#")))
            == cfg.to_yaml_dict()
        )


def test_paper_configs_are_the_papers_seven_runs():
    runs = {(load_config(p).training["credit"], load_config(p).lora.r) for p in PAPER}
    assert runs == {("uniform", 64), ("surprisal", 64), ("entropy_reduction", 64), ("divergence", 64),
                    ("arca", 4), ("arca", 16), ("arca", 64)}
    for path in PAPER:
        cfg = load_config(path)
        t = cfg.training
        assert cfg.model.name_or_path == "Qwen/Qwen3-1.7B-Base"
        assert cfg.lora.lora_alpha == 2 * cfg.lora.r and cfg.lora.dropout == 0.05
        assert set(cfg.lora.target_modules) == {
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        }
        assert cfg.task.name == "math" and cfg.task.max_prompt_tokens == 512
        assert t["loss_type"] == "grpo" and t["credit_power"] == 2.0
        assert t["per_device_train_batch_size"] == 8 and t["num_generations"] == 4
        assert t["gradient_accumulation_steps"] == 4 and t["max_steps"] == 100
        assert t["learning_rate"] == 5e-6 and t["warmup_steps"] == 10 and t["lr_scheduler_type"] == "cosine"
        assert t["temperature"] == 1.0 and t["top_p"] == 0.95 and t["max_completion_length"] == 512
        assert t["beta"] == 0.0 and t["seed"] == 1337 and t["weight_decay"] == 0.0 and t["max_grad_norm"] == 1.0
        assert (cfg.eval.n, cfg.eval.k, cfg.eval.samples_per_problem) == (200, 4, 4)
        args = cfg.training_args("runs/x", for_validation=True)
        assert args.steps_per_generation == 4 and args.generation_batch_size == 32


def test_dry_run_reports_errors_with_exit_code_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  learnig_rate: 1.0e-5\n")
    assert main(["train", "--config", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "training.learnig_rate: unknown key; did you mean learning_rate?" in err


def test_trainer_key_selects_grpo_or_rloo(tmp_path):
    from arca_rl.trainer_config import ARCAGRPOConfig, ARCARLOOConfig

    assert parse_config({}).trainer == "grpo"
    assert type(parse_config({}).training_args(tmp_path, for_validation=True)) is ARCAGRPOConfig
    rloo = parse_config({"trainer": "rloo", "training": {"credit": "arca", "beta": 0.0, "normalize_advantages": True}})
    args = rloo.training_args(tmp_path, for_validation=True)
    assert type(args) is ARCARLOOConfig and args.normalize_advantages and args.credit == "arca"
    assert parse_config(rloo.to_yaml_dict()) == rloo  # config.yaml keeps the trainer
    assert yaml.safe_load(rloo.to_yaml())["trainer"] == "rloo"
    assert parse_config({}).with_overrides(["trainer=rloo"]).trainer == "rloo"
    # eval defaults come from the chosen trainer's config (RLOO's defaults here)
    assert rloo.eval_arguments()["temperature"] == ARCARLOOConfig.__dataclass_fields__["temperature"].default


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"trainer": "ppo"}, r"^trainer: must be one of grpo, rloo, sdpo \(the TRL estimator\), got 'ppo'"),
        (
            {"trainer": "rloo", "training": {"loss_type": "grpo"}},
            r"^training\.loss_type: not a field of ARCARLOOConfig \(trainer: rloo\); it is one of trainer: grpo's",
        ),
        (
            {"trainer": "grpo", "training": {"normalize_advantages": True}},
            r"^training\.normalize_advantages: not a field of ARCAGRPOConfig \(trainer: grpo\); it is one of trainer: "
            r"rloo's",
        ),
        ({"trainer": "rloo", "training": {"credit_power": 0}}, r"^training\.credit_power: "),
        (
            {"training": {"credit": "arca", "importance_sampling_level": "sequence", "loss_type": "luspo"}},
            r"^training\.credit: 'arca' has no effect with importance_sampling_level='sequence' and loss_type='luspo'",
        ),
    ],
)
def test_trainer_key_errors_are_named(raw, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(raw)


def test_resume_refuses_a_changed_trainer(tmp_path):
    from arca_rl import rundir

    grpo = parse_config({"training": {"credit": "uniform"}})
    (tmp_path / rundir.CONFIG_FILE).write_text(grpo.to_yaml())
    assert rundir.check_resume_config(tmp_path, grpo) == []
    with pytest.raises(ConfigError, match=r"trainer: 'grpo' -> 'rloo'"):
        rundir.check_resume_config(tmp_path, grpo.with_overrides(["trainer=rloo"]))


def test_ddp_backend_in_a_single_process_is_dropped(monkeypatch):
    """A config written for a multi-process launch (training.ddp_backend: gloo) still validates and builds its
    training arguments in one process (`arca eval` / `--dry-run` on such a run): transformers would otherwise try to
    join a process group that does not exist. Found by test_distributed's `arca eval` after a ZeRO-3 run."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg = parse_config({"training": {"ddp_backend": "gloo", "max_steps": 2}})
    assert cfg.training["ddp_backend"] == "gloo"  # kept in the config (and its config.yaml) as written
    assert cfg.training_args("runs/x").ddp_backend is None


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({}, {"ddp_backend": "gloo", "use_cpu": True}),  # data parallel on CPU ranks
        ({"ACCELERATE_USE_DEEPSPEED": "true"}, {"ddp_backend": "gloo"}),  # DeepSpeed needs use_cpu off
        ({"ACCELERATE_USE_FSDP": "true"}, {"ddp_backend": "gloo"}),
    ],
)
def test_cpu_ranks_get_gloo(monkeypatch, env, want):
    from accelerate.state import AcceleratorState

    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(hardware, "accelerator_available", lambda: False)
    monkeypatch.setattr(AcceleratorState, "__init__", AcceleratorState.__init__)  # put back after the test
    kwargs = {"learning_rate": 1e-3}
    hardware.process_defaults(kwargs)
    assert kwargs == {"learning_rate": 1e-3, **want}
    # FSDP on CPU ranks: accelerate would run every rank unsharded (rank 1 then fails its first step); the state it
    # builds is made to say FSDP (tests/test_distributed.py launches it); DDP and DeepSpeed are left as they are
    fsdp = "ACCELERATE_USE_FSDP" in env
    assert getattr(AcceleratorState.__init__, "_arca_fsdp_on_cpu", False) is fsdp
    explicit = {"ddp_backend": "mpi", "use_cpu": False}  # the config's own choice wins
    hardware.process_defaults(explicit)
    assert explicit == {"ddp_backend": "mpi", "use_cpu": False}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"eval": {"top_p": 1.5}}, "eval.top_p: must be in (0, 1] (or null), got 1.5"),
        ({"lora": {"alpha": float("nan")}}, "lora.alpha: must be a finite number > 0 (or null for 2 * r), got nan"),
        ({"lora": {"dropout": -0.1}}, "lora.dropout: must be in [0, 1), got -0.1"),
        ({"model": {"dtype": "fp8"}}, "model.dtype: must be one of float32, bfloat16, float16, auto, got 'fp8'"),
        ({"lora": {"r": True}}, "lora.r: expected an integer, got True (bool)"),
        ({"lora": {"target_modules": [1, 2]}}, "lora.target_modules: expected a list or a string, got [1, 2] (list)"),
        ({"lora": {"target_modules": []}}, "lora.target_modules: must name at least one module (or be all-linear)"),
        ({"eval": {"seed": "a"}}, "eval.seed: expected an integer or null, got 'a' (str)"),
    ],
)
def test_section_errors_are_whole_lines(raw, message):
    """The owned sections' errors (pydantic's, worded by `section_error`) are exactly one line each."""
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert str(info.value) == message


def test_owned_sections_take_yaml11_numbers_and_integral_floats():
    cfg = parse_config(yaml.safe_load("lora: {alpha: 3e-1}\neval: {n: 20.0, temperature: 5e-1}"))
    assert cfg.lora.alpha == 0.3 and cfg.eval.temperature == 0.5
    assert cfg.eval.n == 20 and type(cfg.eval.n) is int  # 20.0 is the integer 20, as before


def test_built_training_args_are_complete(tmp_path):
    """One build: the TRL config already holds what the trainer needs (nothing is set on it later)."""
    cfg = parse_config({"model": {"dtype": "bfloat16", "revision": "main"}, "training": {"max_steps": 2}})
    args = cfg.training_args(tmp_path, for_validation=True, disable_tqdm=True)
    assert args.model_init_kwargs == {"dtype": "bfloat16", "revision": "main"} and args.disable_tqdm is True
    assert cfg.training_args(tmp_path, for_validation=True).model_init_kwargs == cfg.model_init_kwargs()


RG = {"name": "reasoning_gym", "dataset": "basic_arithmetic", "config": {"min_terms": 2, "max_terms": 2}}


def test_a_graded_reward_needs_full_score_teachers():
    """Under partial credit the self-teacher's default success (the group's best reward above its mean) can be a
    wrong answer; a correct answer is what it must show."""
    raw = {"task": {**RG, "reward": "graded"}, "training": {"max_steps": 1, "credit": "self_teacher"}}
    with pytest.raises(ConfigError, match=r"^training\.credit_teacher_success: with task\.reward: graded .*1\.0"):
        parse_config(raw)
    with pytest.raises(ConfigError, match=r"^training\.credit_teacher_success"):
        parse_config({**raw, "training": {**raw["training"], "credit_teacher_success": 0.5}})
    parse_config({**raw, "training": {**raw["training"], "credit_teacher_success": 1.0}})
    parse_config({**raw, "task": RG})  # the exact reward (the default): 1 is a correct answer
    parse_config({**raw, "training": {"max_steps": 1, "credit": "uniform"}})  # no teacher, any reward


def test_greedy_only_evaluation_is_passed_on_or_refused_before_training():
    """`eval.sampled: false` reaches `evaluate` as `sampled=False` where it takes it, and is refused up front where it
    does not (a run would otherwise fail after training); true is the default and passes nothing new."""
    import inspect

    import arca_rl

    cfg = parse_config({"training": {"max_steps": 1}})
    assert cfg.eval.sampled is True and "sampled" not in cfg.eval_arguments()
    raw = {"training": {"max_steps": 1}, "eval": {"sampled": False}}
    if "sampled" in inspect.signature(arca_rl.evaluate).parameters:
        assert parse_config(raw).eval_arguments()["sampled"] is False
    else:
        with pytest.raises(ConfigError, match=r"^eval\.sampled: false \(greedy only\) is not supported"):
            parse_config(raw)


def test_every_task_option_reaches_the_task():
    """task.n_train is a key of the section (the runner takes the first n_train problems) and an option of the
    tasks that generate their problems: both see it."""
    from arca_rl.tasks import get_task

    for task, n in (({"name": "arithmetic"}, 30), (RG, 40), ({"name": "addition"}, 50)):
        cfg = parse_config({"training": {"max_steps": 1}, "task": {**task, "n_train": n}})
        assert cfg.task.n_train == n and get_task(cfg.task.name, **cfg.task.options).n_train == n
        assert parse_config(cfg.to_yaml_dict()) == cfg  # written once in config.yaml, read back the same


@pytest.mark.parametrize("trainer", ["grpo", "rloo", "sdpo"])
def test_use_vllm_without_vllm_is_refused_before_the_model_loads(trainer, monkeypatch, tmp_path, capsys):
    """Issue 38: `training.use_vllm: true` without vLLM passed `--dry-run`, then TRL failed with an ImportError
    traceback after the model loaded (grpo and sdpo); now one line at validation naming the field and the fix."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    installed = {"vllm": False}

    def find_spec(name, *args, **kwargs):
        if name == "vllm":
            return None if not installed["vllm"] else real_find_spec("json")  # a stand-in module spec
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    raw = {"trainer": trainer, "training": {"credit": "uniform", "use_vllm": True}}
    with pytest.raises(ConfigError, match=r"^training\.use_vllm: true, but vLLM is not installed.*use_vllm: false"):
        parse_config(raw)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["train", "--config", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("arca train: error: training.use_vllm")
    installed["vllm"] = True  # with vLLM present the setting is the user's to make
    assert parse_config(raw).training.get("use_vllm") is True
