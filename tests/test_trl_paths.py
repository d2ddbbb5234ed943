"""Every TRL 1.16 path a GPU user can turn on, with token credit: each loss_type, the per-sequence decisions
(off-policy sequence mask, VESPO's gamma weight, sequence-level importance sampling), the fused-kernel options,
gradient checkpointing, and RLOO. Stock TRL on the same tiny model is the reference throughout."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

from arca_rl import ARCAGRPOConfig, ARCAGRPOTrainer, ARCARLOOConfig, ARCARLOOTrainer
from test_trainer import Recorder, build, count_scoring_forwards, make_args, trainable

pytestmark = pytest.mark.slow

# Every loss_type GRPOConfig 1.16 accepts, with the importance_sampling_level TRL recommends for it.
LOSS_TYPES = {
    "grpo": "token",
    "bnpo": "token",
    "dr_grpo": "token",
    "dapo": "token",
    "cispo": "token",
    "sapo": "token",
    "luspo": "sequence",
    "vespo": "token",
}


def test_loss_type_list_is_trls():
    """If TRL adds a loss type, this list (and so the tests below) must learn it."""
    source = inspect.getsource(GRPOTrainer._compute_loss)
    for loss_type in LOSS_TYPES:
        assert f'"{loss_type}"' in source
    with pytest.raises(ValueError):
        GRPOConfig(output_dir="unused", loss_type="not-a-loss")


def assert_same_training(
    stock_cls, stock_args, ours_kw, tmp_path, trainer_cls=ARCAGRPOTrainer, config_cls=ARCAGRPOConfig
):
    """Stock TRL and ours with credit="uniform" from the same init: equal parameters after two optimizer steps."""
    stock = build(tmp_path / "stock", trainer_cls=stock_cls, args=stock_args)
    start = trainable(stock)
    stock.train()
    ours_args = make_args(tmp_path / "ours", cls=config_cls, credit="uniform", **ours_kw)
    ours = build(tmp_path / "ours", trainer_cls=trainer_cls, args=ours_args)
    assert all(torch.equal(start[n], p) for n, p in trainable(ours).items())  # same init
    ours.train()
    after_stock, after_ours = trainable(stock), trainable(ours)
    moved = max((after_stock[n] - start[n]).abs().max().item() for n in start)
    assert moved > 1e-4, "the optimizer did not move the adapter; the comparison would be vacuous"
    for name in after_stock:
        torch.testing.assert_close(after_ours[name], after_stock[name], rtol=1e-5, atol=1e-6)


# ---- every loss type -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize(
    "loss_type, extra",
    [(loss, dict(importance_sampling_level=level)) for loss, level in LOSS_TYPES.items()]
    + [
        ("grpo", dict(importance_sampling_level="sequence")),  # GSPO
        (
            "dapo",
            dict(off_policy_mask_threshold=1e-4, num_iterations=2),
        ),  # sequences really dropped off-policy
        ("grpo", dict(top_entropy_quantile=0.5)),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in v.items()),
)
def test_uniform_credit_equals_stock_grpo(tmp_path, loss_type, extra, beta):
    kw = dict(loss_type=loss_type, beta=beta, **extra)
    stock_args = make_args(tmp_path / "stock", cls=GRPOConfig, **kw)
    assert_same_training(GRPOTrainer, stock_args, kw, tmp_path)


def record_logps_grads(monkeypatch) -> list[torch.Tensor]:
    """Gradient of the loss w.r.t. the per-token log-probs TRL computed in each training forward."""
    grads: list[torch.Tensor] = []
    for cls in (GRPOTrainer, RLOOTrainer):
        real = cls._get_per_token_logps_and_entropies

        def spy(self, *args, _real=real, **kwargs):
            logps, entropies, aux = _real(self, *args, **kwargs)
            if logps.requires_grad:
                logps.register_hook(lambda g: grads.append(g.detach().clone()))
            return logps, entropies, aux

        monkeypatch.setattr(cls, "_get_per_token_logps_and_entropies", spy)
    return grads


@pytest.mark.parametrize("loss_type", list(LOSS_TYPES))
def test_token_credit_reaches_every_loss_type(tmp_path, monkeypatch, loss_type):
    """On-policy (ratio 1), d loss / d log pi_t = c * A_it with one constant c per micro-batch for every loss type: the
    gradient follows the token advantages. The loss is finite. (luspo runs at token level: at sequence level the
    config refuses token credit, see below.)"""
    seen: list[dict] = []
    real = GRPOTrainer._compute_loss

    def spy(self, model, inputs):
        loss = real(self, model, inputs)
        seen.append({"loss": loss.detach(), "adv": inputs["advantages"], "mask": inputs["completion_mask"]})
        return loss

    monkeypatch.setattr(GRPOTrainer, "_compute_loss", spy)
    grads = record_logps_grads(monkeypatch)
    extra = dict(off_policy_mask_threshold=0.5) if loss_type == "dapo" else {}
    trainer = build(tmp_path, credit="arca", credit_power=2.0, loss_type=loss_type, max_steps=1, **extra)
    trainer.train()
    assert len(seen) == len(grads) == 2
    non_uniform_rows = 0
    for batch, grad in zip(seen, grads):
        assert math.isfinite(batch["loss"].item())
        adv, real_tok = batch["adv"], batch["mask"].bool()
        assert adv.shape == real_tok.shape  # TRL's loss got token advantages
        live = real_tok & (adv.abs() > 1e-6)
        assert live.any()
        ratio = grad[live] / adv[live]
        torch.testing.assert_close(ratio, ratio[0].expand_as(ratio), rtol=1e-4, atol=0)
        assert ratio[0] != 0
        for row in range(adv.size(0)):
            vals = adv[row][live[row]]
            non_uniform_rows += int(vals.numel() > 1 and (vals.max() - vals.min()) > 1e-3 * vals.abs().max())
    assert non_uniform_rows > 0, (
        "the credit was uniform; the check would not tell token from sequence advantages"
    )


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo", "luspo", "sapo"])
def test_sequence_level_ratio_refuses_token_credit(tmp_path, loss_type):
    def config(**kw):
        return ARCAGRPOConfig(output_dir=str(tmp_path), use_cpu=True, loss_type=loss_type, **kw)

    with pytest.raises(
        ValueError, match=f"importance_sampling_level='sequence' with loss_type='{loss_type}'.*"
    ):
        config(credit="arca", importance_sampling_level="sequence")
    config(credit="uniform", importance_sampling_level="sequence")
    config(credit="arca", importance_sampling_level="token")


@pytest.mark.parametrize("loss_type", ["cispo", "vespo"])
def test_sequence_level_ratio_keeps_credit_where_the_loss_reads_token_logps(tmp_path, loss_type):
    """cispo and vespo multiply the token advantage by log pi_t, so credit works at sequence level too."""
    ARCAGRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        credit="arca",
        loss_type=loss_type,
        importance_sampling_level="sequence",
    )


def test_sequence_decisions_read_the_sequence_advantage():
    """The off-policy sequence mask and VESPO's gamma weight are one decision per sequence from the sign of A_i.
    Token advantages A_i * w_it * T_i give exactly stock's decision, also where a weight is 0 (credit_eps = 0)."""
    torch.manual_seed(0)
    B, T = 6, 7
    mask = torch.ones(B, T)
    mask[0, 5:] = 0
    mask[3, 2:] = 0
    seq_adv = torch.tensor([1.5, -0.7, 0.0, -2.0, 0.3, -0.1])
    weights = torch.rand(B, T) * mask
    weights[1, 2] = weights[3, 0] = weights[5, 4] = 0.0  # zero credit on real tokens of negative rows
    weights = weights / weights.sum(1, keepdim=True)
    token_adv = seq_adv[:, None] * weights * mask.sum(1, keepdim=True)
    logps = -torch.rand(B, T) * 3
    old = logps + 0.3 * torch.randn(B, T)
    is_ratio = torch.exp(0.1 * torch.randn(B, T))

    stock_mask = GRPOTrainer.get_off_policy_mask(seq_adv[:, None], logps, old, mask, 0.01)
    ours_mask = ARCAGRPOTrainer.get_off_policy_mask(token_adv, logps, old, mask, 0.01)
    assert stock_mask.shape == ours_mask.shape == (B, 1)
    assert torch.equal(ours_mask, stock_mask)
    assert 0 < stock_mask.sum() < B  # some sequences kept, some dropped
    # TRL's own method, fed token advantages, would keep the zero-credit tokens of dropped sequences
    assert not torch.equal(
        GRPOTrainer.get_off_policy_mask(token_adv, logps, old, mask, 0.01).expand(B, T),
        stock_mask.expand(B, T),
    )

    for ratio in (None, is_ratio):
        stock_phi = GRPOTrainer.get_gamma_weights(seq_adv[:, None], logps - old, mask, ratio)
        ours_phi = ARCAGRPOTrainer.get_gamma_weights(token_adv, logps - old, mask, ratio)
        assert ours_phi.shape == (B, 1)
        torch.testing.assert_close(ours_phi, stock_phi, rtol=0, atol=0)


def test_trl_has_no_fused_loss_that_reads_sequence_advantages():
    """TRL 1.16's `use_liger_kernel` (and the Hub kernels, `model_init_kwargs={"use_kernels": True}`) swap layer
    kernels only; TRL refuses Liger's fused linear cross-entropy, and there is no fused GRPO/RLOO loss, so the token
    advantages always reach `_compute_loss`. If a TRL upgrade brings a fused loss back, this fails: refuse
    non-uniform credit there."""
    for cls in (GRPOTrainer, RLOOTrainer):
        assert not [name for name in dir(cls) if "liger" in name.lower()], cls
        init = inspect.getsource(cls.__init__)
        assert '"fused_linear_cross_entropy": False' in init
        assert "liger" not in inspect.getsource(cls._compute_loss).lower()
        assert "liger" not in inspect.getsource(cls.compute_loss).lower()


# ---- gradient checkpointing ------------------------------------------------------------------------------------


def test_gradient_checkpointing_changes_nothing(tmp_path, monkeypatch):
    """With checkpointing (reentrant or not) the hook fires once per forward, the hidden state it captures is the
    one of the pass the loss used (same salience, weights and forward count as without), and training is equal."""
    runs = {}
    for name, kw in {
        "plain": dict(gradient_checkpointing=False),
        "reentrant": dict(gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": True}),
        "non_reentrant": dict(
            gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False}
        ),
    }.items():
        rec = Recorder(monkeypatch)
        trainer = build(tmp_path / name, credit="arca", credit_power=2.0, **kw)
        calls = count_scoring_forwards(trainer)
        # calls of a module inside a decoder layer: checkpointing runs the layer's forward again in the backward pass
        # (transformers 5 checkpoints `forward`, so hooks on the layer itself, like ours on the backbone, fire once)
        layer_calls = []
        trainer._backbone(trainer.model).layers[0].mlp.register_forward_pre_hook(
            lambda *a, calls=layer_calls: calls.append(1)
        )
        trainer.train()
        assert trainer.model.is_gradient_checkpointing == kw["gradient_checkpointing"]
        arca = [r for r in rec.salience if r["name"] == "arca"]
        assert len(arca) == 4 and all(r["hidden"].shape[0] == r["mask"].shape[0] for r in arca)
        runs[name] = (arca, rec.weights, len(calls), trainable(trainer), len(layer_calls))
    plain = runs.pop("plain")
    for name, (arca, weights, n_calls, params, n_layer_calls) in runs.items():
        assert n_calls == plain[2], name  # the backbone (and so the hook) ran once per forward
        assert n_layer_calls > plain[4], name  # checkpointing did recompute layers
        for a, b in zip(arca, plain[0]):
            torch.testing.assert_close(a["hidden"], b["hidden"], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(a["out"], b["out"], rtol=1e-5, atol=1e-6)
        for a, b in zip(weights, plain[1]):
            torch.testing.assert_close(a["out"], b["out"], rtol=1e-5, atol=1e-6)
        for key in params:
            torch.testing.assert_close(params[key], plain[3][key], rtol=1e-5, atol=1e-6)


# ---- RLOO ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [dict(beta=0.0), dict(beta=0.04), dict(num_iterations=2)],
    ids=["beta0", "beta0.04", "iterations2"],
)
def test_uniform_credit_equals_stock_rloo(tmp_path, extra):
    stock_args = make_args(tmp_path / "stock", cls=RLOOConfig, **extra)
    assert_same_training(
        RLOOTrainer, stock_args, extra, tmp_path, trainer_cls=ARCARLOOTrainer, config_cls=ARCARLOOConfig
    )


def rloo_args(tmp_path, **kw):
    return make_args(tmp_path, cls=ARCARLOOConfig, **kw)


def test_rloo_weights_the_sequence_log_prob_by_credit(tmp_path, monkeypatch):
    """TRL's RLOO loss reads sum_t log pi_t and old_logps: with credit both become sum_t T_i w_it (.), so on-policy the
    ratio is 1 and d loss / d log pi_t = c * A_i * T_i * w_it with one constant c per micro-batch."""
    rec = Recorder(monkeypatch)
    seen: list[dict] = []
    real = RLOOTrainer._compute_loss

    def spy(self, model, inputs):
        loss = real(self, model, inputs)
        seen.append(
            {k: inputs[k] for k in ("advantages", "old_logps", "completion_mask", "credit_old_logps")}
        )
        seen[-1]["loss"] = loss.detach()
        return loss

    monkeypatch.setattr(RLOOTrainer, "_compute_loss", spy)
    grads = record_logps_grads(monkeypatch)
    trainer = build(
        tmp_path, trainer_cls=ARCARLOOTrainer, args=rloo_args(tmp_path, credit="arca", credit_power=2.0)
    )
    trainer.train()
    assert len(seen) == len(grads) == len(rec.weights) == 4
    for batch, grad, w in zip(seen, grads, rec.weights):
        mask = batch["completion_mask"].float()
        scale = w["out"] * mask.sum(1, keepdim=True)
        assert math.isfinite(batch["loss"].item())
        assert batch["advantages"].dim() == 1  # RLOO keeps its (B,) advantage
        # the old log-prob TRL's loss read is the credit-weighted sum of the rollout's per-token log-probs
        torch.testing.assert_close(
            batch["old_logps"], (batch["credit_old_logps"] * scale).sum(1), rtol=1e-6, atol=1e-6
        )
        target = batch["advantages"][:, None] * scale
        live = mask.bool() & (target.abs() > 1e-6)
        assert live.any()
        ratio = grad[live] / target[live]
        torch.testing.assert_close(ratio, ratio[0].expand_as(ratio), rtol=1e-4, atol=0)
        assert ratio[0] < 0  # a positive advantage raises log pi_t: the loss falls
    assert any(float(w["out"][w["mask"].bool()].std()) > 1e-3 for w in rec.weights)  # credit was not uniform


def test_rloo_arca_salience_matches_manual_two_forward_computation(tmp_path, monkeypatch):
    rec = Recorder(monkeypatch)
    batches = []
    real = RLOOTrainer._compute_loss

    def spy(self, model, inputs):
        batches.append({k: v.clone() for k, v in inputs.items() if isinstance(v, torch.Tensor)})
        return real(self, model, inputs)

    monkeypatch.setattr(RLOOTrainer, "_compute_loss", spy)
    args = rloo_args(tmp_path, credit="arca", learning_rate=0.0, max_steps=1)  # lr 0: the adapter stays put
    trainer = build(tmp_path, trainer_cls=ARCARLOOTrainer, args=args)
    trainer.train()
    model = trainer.model
    arca_calls = [r for r in rec.salience if r["name"] == "arca"]
    assert len(arca_calls) == len(batches) == len(rec.weights) == 2
    for batch, call, weights in zip(batches, arca_calls, rec.weights):
        ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
        mask = batch["completion_mask"]
        attn = torch.cat([batch["prompt_mask"], mask], 1)
        P, C = batch["prompt_ids"].size(1), batch["completion_ids"].size(1)
        with torch.no_grad():
            h_on = model(input_ids=ids, attention_mask=attn, output_hidden_states=True).hidden_states[-1]
            with model.disable_adapter():
                h_off = model(input_ids=ids, attention_mask=attn, output_hidden_states=True).hidden_states[-1]
        # completion token t sits at P + t and is scored by the hidden state of position P + t - 1
        manual = (h_on - h_off)[:, P - 1 : P + C - 1].float().norm(dim=-1) * mask
        assert manual.abs().max() > 1e-2  # the adapter does change the model here
        torch.testing.assert_close(call["out"], manual, rtol=0, atol=1e-5)
        expected = (manual + 1e-8) * mask  # credit_eps = 1e-8, power 1
        expected = expected / expected.sum(1, keepdim=True)
        torch.testing.assert_close(weights["out"], expected, rtol=1e-4, atol=1e-6)


def test_rloo_trainer_needs_rloo_config(tmp_path):
    with pytest.raises(TypeError, match="must be an ARCARLOOConfig"):
        build(tmp_path, trainer_cls=ARCARLOOTrainer, args=make_args(tmp_path, credit="arca"))
    with pytest.raises(ValueError, match="credit_power must be"):
        rloo_args(tmp_path, credit_power=0)
    shared = {n for n in ARCAGRPOConfig.__dataclass_fields__ if n.startswith("credit")}
    assert shared == {n for n in ARCARLOOConfig.__dataclass_fields__ if n.startswith("credit")}
    with pytest.raises(
        ValueError, match="no PEFT adapter.*beta"
    ):  # no adapter: arca needs beta > 0, as for GRPO
        build(tmp_path, trainer_cls=ARCARLOOTrainer, args=rloo_args(tmp_path, credit="arca", beta=0.0), peft=False)


def test_yaml_trainer_rloo_trains_through_arca_train(tmp_path, tiny_run_config, monkeypatch, capsys):
    """`trainer: rloo` in the YAML: `arca train` builds an ARCARLOOTrainer and logs the credit diagnostics."""
    import yaml

    from arca_rl.cli import main
    from arca_rl.rundir import read_metrics

    built = []
    real_init = ARCARLOOTrainer.__init__

    def init(self, *args, **kwargs):
        built.append(type(self))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(ARCARLOOTrainer, "__init__", init)
    tiny_run_config["trainer"] = "rloo"
    tiny_run_config["eval"]["enabled"] = False
    config_path = tmp_path / "rloo.yaml"
    config_path.write_text(yaml.safe_dump(tiny_run_config))
    run_dir = tmp_path / "runs" / "rloo"
    assert main(["train", "--config", str(config_path), "--output-dir", str(run_dir), "--quiet"]) == 0
    assert built == [ARCARLOOTrainer]
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2] and all("credit/gini" in r for r in rows)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["trainer"] == "rloo"
