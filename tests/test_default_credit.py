"""Issue 25 §4, the defaults follow the evidence: a config that names no credit trains stock GRPO / RLOO credit
(`uniform`), on a plain model as TRL's own configs do; ARCA is one setting away (`credit="arca"`), and the methods
that compare the model with its base still refuse a setup without one. The demo's single-run config trains uniform;
`arca demo` still compares every method, ARCA included."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

from arca_rl import ARCAGRPOConfig, ARCAGRPOTrainer, ARCARLOOConfig, ARCARLOOTrainer, group_credit, rundir
from arca_rl._config import ConfigError, load_config, parse_config
from arca_rl._demo import DEMO_CONFIG_PATH, DEMO_METHODS, _method_overrides, demo_config
from arca_rl.cli import main
from test_trainer import build, make_args, trainable

ROOT = Path(__file__).resolve().parent.parent
BASE_METHODS = [m for m in group_credit.registered_methods() if group_credit.method_needs_base(m)]


def test_base_methods_are_the_ones_expected():
    """The refusals below run over these; if a new method needs the base it joins them."""
    assert {"arca", "divergence"} <= set(BASE_METHODS) and "uniform" not in BASE_METHODS


# ---- the Python API ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config_cls", [ARCAGRPOConfig, ARCARLOOConfig])
def test_a_config_naming_no_credit_is_stock_credit_and_arca_is_one_setting_away(config_cls, tmp_path):
    assert config_cls(output_dir=str(tmp_path), use_cpu=True).credit == "uniform"
    assert config_cls(output_dir=str(tmp_path), use_cpu=True, credit="arca").credit == "arca"


def test_the_default_credit_takes_every_grpo_setting_stock_trl_takes(tmp_path):
    """GSPO (one ratio per completion) refuses token credit; the default is stock credit, so it builds as
    `GRPOConfig` does, while ARCA there is still refused."""
    ARCAGRPOConfig(output_dir=str(tmp_path), use_cpu=True, loss_type="grpo", importance_sampling_level="sequence")
    with pytest.raises(ValueError, match="importance_sampling_level='sequence'"):
        ARCAGRPOConfig(output_dir=str(tmp_path), use_cpu=True, loss_type="grpo", importance_sampling_level="sequence",
                       credit="arca")


def _losses(trainer) -> list[float]:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


@pytest.mark.slow
@pytest.mark.parametrize(
    "stock_cls, stock_config, ours_cls, ours_config",
    [
        (GRPOTrainer, GRPOConfig, ARCAGRPOTrainer, ARCAGRPOConfig),
        (RLOOTrainer, RLOOConfig, ARCARLOOTrainer, ARCARLOOConfig),
    ],
    ids=["grpo", "rloo"],
)
def test_no_credit_trains_a_plain_model_as_stock_trl(tmp_path, stock_cls, stock_config, ours_cls, ours_config):
    """No credit, no peft_config, beta = 0 (so no reference model either), as TRL's own config allows: the trainer
    builds and fully fine-tunes the plain model to the parameters and losses of stock TRL from the same init, two
    optimizer steps."""
    stock = build(tmp_path / "stock", trainer_cls=stock_cls, peft=False,
                  args=make_args(tmp_path / "stock", cls=stock_config, beta=0.0))
    start = trainable(stock)
    stock.train()
    args = make_args(tmp_path / "ours", cls=ours_config, beta=0.0)  # no credit
    assert args.credit == "uniform"
    ours = build(tmp_path / "ours", trainer_cls=ours_cls, args=args, peft=False)
    assert not ours._is_peft and ours.ref_model is None and not ours._wants_base
    assert start.keys() == trainable(ours).keys() and len(start) > 10  # every weight trains: full fine-tuning
    assert all(torch.equal(start[n], p) for n, p in trainable(ours).items())
    ours.train()
    assert ours.state.global_step == stock.state.global_step == 2
    after_stock, after_ours = trainable(stock), trainable(ours)
    assert max((after_stock[n] - start[n]).abs().max().item() for n in start) > 1e-4  # not a vacuous comparison
    for name in after_stock:
        torch.testing.assert_close(after_ours[name], after_stock[name], rtol=1e-5, atol=1e-6)
    assert len(_losses(ours)) == 2
    torch.testing.assert_close(torch.tensor(_losses(ours)), torch.tensor(_losses(stock)), rtol=1e-5, atol=1e-6)
    assert all(abs(h["credit/gini"]) < 1e-6 for h in ours.state.log_history if "credit/gini" in h)


@pytest.mark.slow
@pytest.mark.parametrize("method", BASE_METHODS)
def test_methods_that_need_the_base_still_refuse_a_plain_model(tmp_path, method):
    with pytest.raises(ValueError, match=rf"credit='{method}' compares the model against its base.*beta = 0"):
        build(tmp_path, credit=method, beta=0.0, peft=False)


# ---- YAML --------------------------------------------------------------------------------------------------------


def test_yaml_without_credit_builds_with_lora_disabled():
    """`lora: {enabled: false}` is the plain model (full fine-tuning); with no credit named it builds at beta 0."""
    cfg = parse_config({"lora": {"enabled": False}, "training": {"beta": 0.0}})
    built = cfg.build("unused", for_validation=True)
    assert built.peft_config is None and built.args.credit == "uniform" and built.args.beta == 0


def test_yaml_without_a_lora_section_trains_the_default_adapter():
    """An absent `lora:` section keeps its defaults, a LoRA adapter (what every shipped config relies on)."""
    lora = parse_config({}).lora_config()
    assert lora is not None and lora.r == 16 and lora.target_modules == "all-linear"


@pytest.mark.parametrize("method", BASE_METHODS)
def test_yaml_methods_that_need_the_base_refuse_lora_disabled_at_beta_0(method):
    with pytest.raises(ConfigError, match=rf"^training\.credit: '{method}' compares the adapted model with its base"):
        parse_config({"lora": {"enabled": False}, "training": {"credit": method}})
    parse_config({"lora": {"enabled": False}, "training": {"credit": method, "beta": 0.04}})  # a reference model


def test_trainer_sdpo_needs_no_credit_setting(tiny_run_config):
    """SDPO takes only stock credit; with that the default, `trainer: sdpo` no longer needs `credit: uniform`."""
    raw = {**tiny_run_config, "trainer": "sdpo"}
    raw["training"] = {k: v for k, v in raw["training"].items() if k != "credit"}
    args = parse_config(raw).training_args("unused", for_validation=True)
    assert type(args).__name__ == "ARCASDPOConfig" and args.credit == "uniform"


@pytest.mark.slow
def test_arca_train_full_fine_tunes_a_plain_model_without_credit(tmp_path, tiny_run_config):
    raw = tiny_run_config
    raw["lora"] = {"enabled": False}
    del raw["training"]["credit"]
    raw["training"]["save_steps"] = 2
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    assert main(["train", "--config", str(path), "--output-dir", str(run), "--quiet"]) == 0
    assert rundir.is_finished(run) and (run / "model" / "config.json").is_file() and not (run / "adapter").exists()
    assert rundir.read_eval(run) is not None
    gini = [m["credit/gini"] for m in rundir.read_metrics(run) if "credit/gini" in m]
    assert len(gini) == 2 and all(abs(g) < 1e-6 for g in gini)  # uniform credit


# ---- the demo ----------------------------------------------------------------------------------------------------


def test_the_demo_config_trains_uniform_and_arca_is_one_setting_away():
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    assert (ROOT / "configs" / "demo.yaml").resolve() == DEMO_CONFIG_PATH
    assert cfg.training["credit"] == "uniform" and cfg.name == "demo-uniform"
    assert rundir.default_run_dir(cfg.name).name == "demo-uniform"
    arca = load_config(ROOT / "configs" / "demo.yaml", ["training.credit=arca", "name=demo-arca"])
    assert arca.training["credit"] == "arca" and arca.lora.enabled  # the demo's adapter is ARCA's base
    assert arca.build("unused", for_validation=True).args.credit == "arca"


def test_arca_demo_still_compares_every_method_arca_included():
    assert DEMO_METHODS == ("uniform", "arca", "entropy_reduction", "surprisal", "divergence")
    for method in DEMO_METHODS:  # each demo run names its credit, whatever the base config's is
        cfg = demo_config(_method_overrides(method, {}, seed=0))
        assert cfg.training["credit"] == method and cfg.name == f"demo-{method}"
