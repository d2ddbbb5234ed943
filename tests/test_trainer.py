"""ARCAGRPOTrainer on a tiny random Qwen3 model (CPU): token advantages and salience against a manual
computation, fallbacks, forward-pass counts, errors."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from arca_rl import ARCAGRPOConfig, ARCAGRPOTrainer, credit, group_credit
from tiny import char_tokenizer, save_tiny, tiny_model
from tiny import tiny_lora as lora

pytestmark = pytest.mark.slow

# Prompts of different lengths, so TRL left-pads them; 8 completion tokens, so some hit the length limit.
PROMPTS = ["1+2=", "13+4=", "7=", "25+11+3=", "9+9=", "40-1=", "3*3=", "100/5="]


def reward_len(completions: list[str], **kwargs) -> list[float]:
    return [len(c) / 8 + (0.5 if "1" in c else 0.0) for c in completions]


def make_args(tmp_path, cls=ARCAGRPOConfig, **kw):
    base = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        num_generations=4,
        max_completion_length=8,
        max_steps=2,
        learning_rate=5e-3,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        seed=7,
        disable_dropout=True,
    )
    base.update(kw)
    return cls(**base)


def build(tmp_path, *, trainer_cls=ARCAGRPOTrainer, args=None, peft=True, seed=0, **kw):
    tok = char_tokenizer()
    model = tiny_model(tok, seed=seed)
    return trainer_cls(
        model=model,
        reward_funcs=reward_len,
        args=args if args is not None else make_args(tmp_path, **kw),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tok,
        peft_config=lora() if peft is True else (peft or None),
    )


def trainable(trainer) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


class Recorder:
    """Wraps credit.salience / credit.token_weights (as the trainer calls them) to record inputs and outputs."""

    def __init__(self, monkeypatch):
        self.salience: list[dict] = []
        self.weights: list[dict] = []
        real_salience, real_weights = credit.salience, credit.token_weights

        def salience(name, *, mask, **inputs):
            out = real_salience(name, mask=mask, **inputs)
            self.salience.append({"name": name, "mask": mask.clone(), "out": out.clone(), **inputs})
            return out

        def token_weights(alpha, mask, **kw):
            out = real_weights(alpha, mask, **kw)
            self.weights.append({"alpha": alpha.clone(), "mask": mask.clone(), "out": out.clone(), **kw})
            return out

        monkeypatch.setattr(credit, "salience", salience)
        monkeypatch.setattr(credit, "token_weights", token_weights)


# ---------------------------------------------------------------------------------------------------------------


# Equality with stock GRPO for every loss_type (and with stock RLOO) lives in test_trl_paths.py.


def test_token_advantages_are_sequence_advantage_times_weight_times_length(tmp_path, monkeypatch):
    """A_it = A_i * w_it * T_i, checked on what TRL's loss actually receives."""
    seen = []
    real = GRPOTrainer._compute_loss

    def spy(self, model, inputs):
        out = real(self, model, inputs)
        seen.append({k: inputs[k] for k in ("advantages", "completion_mask")})
        return out

    monkeypatch.setattr(GRPOTrainer, "_compute_loss", spy)
    rec = Recorder(monkeypatch)
    trainer = build(tmp_path, credit="arca", credit_power=2.0)
    buffered = []
    real_gen = ARCAGRPOTrainer._generate_and_score_completions

    def gen_spy(self, inputs):
        out = real_gen(self, inputs)
        buffered.append(out)
        return out

    monkeypatch.setattr(ARCAGRPOTrainer, "_generate_and_score_completions", gen_spy)
    trainer.train()
    assert len(seen) == 4 and len(rec.weights) == 4
    for batch, weights in zip(seen, rec.weights):
        adv, mask = batch["advantages"], batch["completion_mask"]
        assert adv.shape == mask.shape  # token level
        w = weights["out"]
        # sequence advantage: the same on every real token once the weight and length are divided out
        T = mask.sum(1, keepdim=True).float()
        seq = (adv / (w * T)).where(mask.bool(), torch.nan)
        for row in seq:
            vals = row[~row.isnan()]
            assert torch.allclose(vals, vals[0].expand_as(vals), rtol=1e-5, atol=1e-6)
        assert torch.all(adv[~mask.bool()] == 0)
        # sign preserved, and the row sum is A_i * T_i
        torch.testing.assert_close(adv.sum(1), seq.nanmean(1) * T.squeeze(1), rtol=1e-5, atol=1e-5)
    # the buffered generation batches keep their (B,) advantages (num_iterations > 1 recomputes weights)
    assert all(b["advantages"].dim() == 1 for b in buffered)


def test_arca_salience_matches_manual_two_forward_computation(tmp_path, monkeypatch):
    rec = Recorder(monkeypatch)
    batches = []
    real = GRPOTrainer._compute_loss

    def spy(self, model, inputs):
        batches.append({k: v.clone() for k, v in inputs.items() if isinstance(v, torch.Tensor)})
        return real(self, model, inputs)

    monkeypatch.setattr(GRPOTrainer, "_compute_loss", spy)
    trainer = build(tmp_path, credit="arca", learning_rate=0.0, max_steps=1)  # lr 0: the adapter stays put
    trainer.train()
    model = trainer.model
    arca_calls = [r for r in rec.salience if r["name"] == "arca"]
    assert len(arca_calls) == len(batches) == 2
    for batch, call in zip(batches, arca_calls):
        ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
        attn = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
        P, C = batch["prompt_ids"].size(1), batch["completion_ids"].size(1)
        with torch.no_grad():
            h_on = model(input_ids=ids, attention_mask=attn, output_hidden_states=True).hidden_states[-1]
            with model.disable_adapter():
                h_off = model(input_ids=ids, attention_mask=attn, output_hidden_states=True).hidden_states[-1]
        # completion token t sits at P + t and is scored by the logits (hence hidden state) of position P + t - 1
        manual = (h_on - h_off)[:, P - 1 : P + C - 1].float().norm(dim=-1) * batch["completion_mask"]
        assert manual.abs().max() > 1e-2  # the adapter does change the model here
        torch.testing.assert_close(call["out"], manual, rtol=0, atol=1e-5)


def test_fresh_lora_has_zero_residual_and_uniform_weights(tmp_path, monkeypatch):
    rec = Recorder(monkeypatch)
    trainer = build(tmp_path, credit="arca", max_steps=1, peft=lora(init_lora_weights=True))
    trainer.train()
    first = rec.weights[0]  # first micro-batch: the adapter is still exactly B = 0
    mask = first["mask"]
    assert torch.all(first["alpha"] == 0)
    expected = mask.float() / mask.sum(1, keepdim=True).clamp(min=1)
    torch.testing.assert_close(first["out"], expected, rtol=0, atol=1e-7)


def test_fresh_dora_bf16_with_min_salience_falls_back_to_uniform(tmp_path, monkeypatch):
    rec = Recorder(monkeypatch)
    tok = char_tokenizer()
    model = tiny_model(tok).to(torch.bfloat16)
    args = make_args(tmp_path, credit="arca", credit_min_salience=0.1, max_steps=1, learning_rate=0.0)
    trainer = ARCAGRPOTrainer(
        model=model,
        reward_funcs=reward_len,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tok,
        peft_config=lora(use_dora=True, init_lora_weights=True),
    )
    trainer.train()
    for call in rec.weights:
        mask = call["mask"]
        # bf16 DoRA is not exactly the base even with B = 0: noise-level residual that sharpening would amplify
        assert 0 < call["alpha"].max() <= 0.1
        torch.testing.assert_close(
            call["out"], mask.float() / mask.sum(1, keepdim=True).clamp(min=1), rtol=0, atol=1e-7
        )
        assert call["out"].dtype == torch.float32


# ---- forward-pass counts ---------------------------------------------------------------------------------------


def count_scoring_forwards(trainer) -> list[int]:
    """Backbone calls outside generation (TRL's scoring passes run with use_cache=False; generate caches)."""
    calls = []
    backbone = (
        trainer._backbone(trainer.model)
        if isinstance(trainer, ARCAGRPOTrainer)
        else trainer.model.get_base_model().base_model
    )

    def hook(module, args, kwargs):
        if kwargs.get("use_cache") is False:
            calls.append(1)

    backbone.register_forward_pre_hook(hook, with_kwargs=True)
    return calls


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_forward_pass_counts(tmp_path, beta):
    micro_batches = 2 * 2  # max_steps x gradient_accumulation_steps
    stock = build(
        tmp_path / "stock",
        trainer_cls=GRPOTrainer,
        args=make_args(tmp_path / "stock", cls=GRPOConfig, beta=beta),
    )
    stock_calls = count_scoring_forwards(stock)
    stock.train()
    # sanity of the counter itself: the training forward, plus TRL's reference pass when beta > 0
    assert len(stock_calls) == micro_batches * (2 if beta else 1)
    expected_extra = {"uniform": 0, "surprisal": 0, "entropy_reduction": 0, "divergence": 1, "arca": 1}
    for signal, extra in expected_extra.items():
        trainer = build(tmp_path / signal, credit=signal, beta=beta)
        calls = count_scoring_forwards(trainer)
        trainer.train()
        extra_here = extra if beta == 0.0 else 0  # beta > 0: the base is captured inside TRL's reference pass
        assert len(calls) == len(stock_calls) + extra_here * micro_batches, signal
    # group methods: gtpo and hicra read the sampling entropies, one no-grad adapter-on pass over each generation
    # batch (whatever beta); ktae and tempo read only ids and rewards
    for method, extra in {"ktae": 0, "tempo": 0, "gtpo": 1, "hicra": 1}.items():
        trainer = build(tmp_path / method, credit=method, beta=beta)
        calls = count_scoring_forwards(trainer)
        trainer.train()
        assert len(calls) == len(stock_calls) + extra * micro_batches, method
    # the methods that read the model, once per generation batch in chunks of a micro-batch (whatever beta): grail a
    # forward with a backward to the input embeddings, oar_g a clean no-grad forward and a noisy one with its
    # backward, delta one no-grad forward, answer_only none
    for method, extra in {"grail": 1, "oar_g": 2, "delta": 1, "answer_only": 0}.items():
        trainer = build(tmp_path / method, credit=method, beta=beta)
        trainer.answer_span = lambda text: (max(0, len(text) - 2), len(text), max(0, len(text) - 1), len(text))
        calls = count_scoring_forwards(trainer)
        trainer.train()
        assert len(calls) == len(stock_calls) + extra * micro_batches, method
    # shadow scoring of every method costs at most one adapter-off pass and one entropy pass per micro-batch
    trainer = build(tmp_path / "shadow", credit="uniform", credit_shadow=True, beta=beta)
    calls = count_scoring_forwards(trainer)
    trainer.train()
    assert len(calls) <= len(stock_calls) + 2 * micro_batches


# ---- robustness ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "peft_kw, extra",
    [
        (dict(), dict(num_iterations=2, credit_shadow=True)),
        (dict(use_rslora=True, lora_dropout=0.1), dict(credit_power=2.0)),
        (dict(use_dora=True), dict(beta=0.04, loss_type="bnpo")),
    ],
)
def test_runs_with_iterations_rslora_dora(tmp_path, peft_kw, extra):
    trainer = build(tmp_path, credit="arca", peft=lora(**peft_kw), **extra)
    trainer.train()
    logged = [h for h in trainer.state.log_history if "credit/gini" in h]
    assert logged, "credit metrics were not logged"
    for h in logged:
        for key, value in h.items():
            if key.startswith(("credit/", "shadow/")):
                assert math.isfinite(value), (key, value)
        assert 0.0 <= h["credit/gini"] <= 1.0 and 0.0 < h["credit/effective_token_ratio"] <= 1.0
        assert h["credit/residual_norm_max"] >= h["credit/residual_norm_mean"] > 0


def test_full_finetuning_needs_reference_model(tmp_path):
    with pytest.raises(ValueError, match="no PEFT adapter.*beta"):
        build(tmp_path, credit="arca", peft=False)
    # with beta > 0, TRL holds a reference model (loaded from the policy's path) and the residual is taken
    # against it
    path = save_tiny(tmp_path / "tiny")
    trainer = ARCAGRPOTrainer(
        model=str(path),
        reward_funcs=reward_len,
        args=make_args(tmp_path, credit="arca", beta=0.04, max_steps=2),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=char_tokenizer(),
    )
    assert trainer.ref_model is not None
    trainer.train()
    residuals = [
        h["credit/residual_norm_mean"] for h in trainer.state.log_history if "credit/residual_norm_mean" in h
    ]
    # step 1: policy == reference, so the residual is exactly 0; step 2: the update shows up
    assert residuals[0] == 0.0 and residuals[1] > 0
    # signals that need no base work without an adapter
    build(tmp_path, credit="surprisal", peft=False, max_steps=1).train()


def test_token_dump(tmp_path):
    import json

    trainer = build(
        tmp_path, credit="arca", credit_log_tokens_every=1, credit_log_tokens_count=2, credit_shadow=True
    )
    trainer.train()
    lines = [json.loads(x) for x in (tmp_path / "out" / "credit_tokens.jsonl").read_text().splitlines()]
    assert {x["step"] for x in lines} == {0, 1}
    active = [x for x in lines if x["active"]]
    assert len(active) == 4 and all(x["signal"] == "arca" for x in active)
    # signals and group methods, but vine, self_teacher, grail, oar_g, delta, answer_only (they run the policy or
    # read the task's answer: never shadows)
    trainer_methods = {"vine", "self_teacher", *group_credit.MODEL_METHODS}
    assert all(group_credit.is_trainer_method(m) for m in trainer_methods)
    assert {x["signal"] for x in lines} == set(group_credit.registered_methods()) - trainer_methods
    for x in lines:
        assert set(x) >= {"step", "signal", "tokens", "weights", "salience", "advantage"}
        assert len(x["tokens"]) == len(x["weights"]) == len(x["salience"]) > 0
        assert abs(sum(x["weights"]) - 1) < 1e-4


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("credit", "nope", "credit='nope' is not a registered signal"),
        ("credit_power", 0, "credit_power must be"),
        ("credit_eps", -1.0, "credit_eps must be"),
        ("credit_base", "ref", "credit_base must be one of"),
        ("credit_log_tokens_every", -2, "credit_log_tokens_every must be"),
        ("credit_min_salience", -0.1, "credit_min_salience must be"),
        ("credit_mix", 1.5, r"credit_mix must be a number in \[0, 1\].*credit_mix: 0.5"),
        ("credit_mix", -0.1, r"credit_mix must be a number in \[0, 1\]"),
        ("credit_mix", float("nan"), r"credit_mix must be a number in \[0, 1\].*got nan"),
        ("credit_mix", float("inf"), r"credit_mix must be a number in \[0, 1\].*got inf"),
        ("credit_mix", "0.5", r"credit_mix must be a number"),
        ("credit_warmup_steps", -1, "credit_warmup_steps must be an integer >= 0"),
        ("credit_warmup_steps", 2.5, "credit_warmup_steps must be an integer >= 0"),
    ],
)
def test_config_errors_name_the_field(tmp_path, field, value, match):
    with pytest.raises(ValueError, match=match):
        ARCAGRPOConfig(output_dir=str(tmp_path), **{field: value})


@pytest.mark.parametrize("credit_base", ["reference", "disabled"])
def test_credit_base_reference_uses_trls_ref_adapter(tmp_path, credit_base):
    """Re-training an existing adapter with beta > 0: TRL keeps a frozen copy named "ref". Against it the
    residual starts at exactly 0 (same weights); against the adapter-off model it does not."""
    from peft import get_peft_model

    tok = char_tokenizer()
    model = get_peft_model(tiny_model(tok), lora())  # a "pretrained" adapter: B != 0
    trainer = ARCAGRPOTrainer(
        model=model,
        reward_funcs=reward_len,
        args=make_args(
            tmp_path, credit="arca", credit_base=credit_base, beta=0.04, max_steps=1, learning_rate=0.0
        ),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tok,
    )
    assert "ref" in trainer.model.peft_config
    calls = count_scoring_forwards(trainer)
    trainer.train()
    residual = next(
        h["credit/residual_norm_mean"] for h in trainer.state.log_history if "credit/residual_norm_mean" in h
    )
    micro_batches = 2
    if credit_base == "reference":
        assert residual == 0.0
        assert len(calls) == 2 * micro_batches  # training forward + TRL's reference pass: nothing extra
    else:
        assert residual > 1e-2
        assert len(calls) == 3 * micro_batches  # TRL's reference pass is the "ref" adapter, so one own pass


def test_evaluation_logs_credit_metrics(tmp_path):
    """TRL's evaluation loop goes through the same rollout and loss; credit metrics get the eval_ prefix."""
    tok = char_tokenizer()
    trainer = ARCAGRPOTrainer(
        model=tiny_model(tok),
        reward_funcs=reward_len,
        args=make_args(
            tmp_path,
            credit="arca",
            max_steps=1,
            eval_strategy="steps",
            eval_steps=1,
            per_device_eval_batch_size=4,
            num_generations_eval=4,
        ),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        eval_dataset=Dataset.from_dict({"prompt": PROMPTS[:2]}),
        processing_class=tok,
        peft_config=lora(),
    )
    trainer.train()
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    assert evals and all(
        math.isfinite(h["eval_credit/gini"]) and h["eval_credit/residual_norm_mean"] > 0 for h in evals
    )


# ---- credit_mix / credit_warmup_steps / top_entropy_quantile ------------------------------------------------------


def test_credit_mix_zero_equals_stock_grpo(tmp_path):
    """lambda = 0 is uniform credit whatever the signal: the same parameters as TRL's GRPOTrainer after two steps."""
    stock = build(tmp_path / "stock", trainer_cls=GRPOTrainer, args=make_args(tmp_path / "stock", cls=GRPOConfig))
    start = trainable(stock)
    stock.train()
    ours = build(tmp_path / "ours", credit="arca", credit_mix=0.0, credit_power=2.0)
    ours.train()
    after_stock, after_ours = trainable(stock), trainable(ours)
    assert max((after_stock[n] - start[n]).abs().max().item() for n in start) > 1e-4
    for name in after_stock:
        torch.testing.assert_close(after_ours[name], after_stock[name], rtol=1e-5, atol=1e-6)
    logged = [h for h in ours.state.log_history if "credit/gini" in h]
    assert len(logged) == 2 and all(h["credit/mix"] == 0.0 and abs(h["credit/gini"]) < 1e-6 for h in logged)


def test_credit_mix_one_is_todays_trainer_bit_for_bit(tmp_path, monkeypatch):
    """lambda = 1 (the default) must not touch the signal's weights: the same parameters, bit for bit, as the
    trainer without the mixing step (mix_weights replaced by the identity)."""
    mixed = build(tmp_path / "mixed", credit="arca", credit_power=2.0)
    assert mixed.args.credit_mix == 1.0 and mixed.args.credit_warmup_steps == 0  # the defaults
    start = trainable(mixed)
    mixed.train()
    with monkeypatch.context() as m:
        m.setattr(credit, "mix_weights", lambda weights, mask, lam: weights)
        plain = build(tmp_path / "plain", credit="arca", credit_power=2.0)
        plain.train()
    after_mixed, after_plain = trainable(mixed), trainable(plain)
    assert max((after_mixed[n] - start[n]).abs().max().item() for n in start) > 1e-4
    for name in after_plain:
        assert torch.equal(after_mixed[name], after_plain[name]), name


def test_credit_warmup_schedule_per_optimizer_step(tmp_path, monkeypatch):
    """lambda = mix * min(1, s / N), s = optimizer steps taken: the same for both micro-batches of a step
    (gradient_accumulation_steps = 2) and both num_iterations passes, for the active and the shadow signals;
    logged as credit/mix; the dump's weights are the mixed ones and its salience the raw one."""
    import json

    calls = []  # (lambda, weights in, weights out) per mix_weights call
    real_mix = credit.mix_weights

    def spy(weights, mask, lam):
        out = real_mix(weights, mask, lam)
        calls.append((lam, weights.clone(), out.clone(), mask.clone()))
        return out

    monkeypatch.setattr(credit, "mix_weights", spy)
    mix, warmup, steps, gas = 0.8, 3, 4, 2
    trainer = build(
        tmp_path,
        credit="arca",
        credit_mix=mix,
        credit_warmup_steps=warmup,
        max_steps=steps,
        num_iterations=2,
        credit_shadow=True,
        credit_log_tokens_every=1,
        credit_log_tokens_count=4,
    )
    trainer.train()
    per_batch = len(credit.registered_signals())  # the active signal and every shadow signal
    assert len(calls) == steps * gas * per_batch
    hand = [0.0, 0.8 / 3, 1.6 / 3, 0.8]  # 0.8 * min(1, s / 3), s = 0, 1, 2, 3
    for i, (lam, w_in, w_out, mask) in enumerate(calls):
        step = i // (gas * per_batch)
        assert lam == pytest.approx(hand[step], abs=1e-12), (i, lam)
        T = mask.sum(1, keepdim=True).clamp(min=1)
        torch.testing.assert_close(w_out, ((1 - lam) / T + lam * w_in) * mask, rtol=0, atol=1e-7)
    logged = [h for h in trainer.state.log_history if "credit/mix" in h]
    assert [h["credit/mix"] for h in logged] == pytest.approx(hand)
    assert abs(logged[0]["credit/gini"]) < 1e-6 and logged[-1]["credit/gini"] > 1e-3  # uniform at s = 0
    # credit_tokens.jsonl: weights = mix(token_weights(salience)) with the step's lambda, salience raw
    dumps = [json.loads(x) for x in (tmp_path / "out" / "credit_tokens.jsonl").read_text().splitlines()]
    assert {d["step"] for d in dumps} == set(range(steps))
    for d in dumps:
        sal = torch.tensor([d["salience"]], dtype=torch.float32)
        ones = torch.ones_like(sal)
        if group_credit.is_group_method(d["signal"]):  # signed: (1 - lam) A_i + lam A_it, A_it the raw output
            lam = hand[d["step"]]
            want = (1 - lam) * d["advantage"] + lam * sal
            torch.testing.assert_close(torch.tensor([d["token_advantages"]]), want, rtol=1e-4, atol=2e-5)
            continue
        signal = credit.token_weights(sal, ones, eps=trainer.args.credit_eps, power=trainer.args.credit_power)
        want = real_mix(signal, ones, hand[d["step"]])
        torch.testing.assert_close(torch.tensor([d["weights"]]), want, rtol=1e-4, atol=2e-6)


@pytest.mark.parametrize("signal", ["uniform", "surprisal", "entropy_reduction", "divergence", "arca"])
def test_top_entropy_quantile_composes_with_every_signal(tmp_path, monkeypatch, signal):
    """With TRL's top_entropy_quantile, the loss is TRL's over the token advantages A_i * w_it * T_i, masked to
    the top-q entropy tokens: checked against the loss computed by hand from the recorded tensors (lr = 0, so
    the importance ratio is exactly 1 and `grpo`'s loss is -mean_i sum_t A_it * m_it / T_i)."""
    rec = Recorder(monkeypatch)
    seen = []
    real = GRPOTrainer._compute_loss

    def spy(self, model, inputs):
        seq_adv = inputs["advantages"].clone()  # (B,) until the training forward has run
        loss = real(self, model, inputs)
        seen.append(
            {
                "seq": seq_adv,
                "tok": inputs["advantages"].clone(),
                "mask": inputs["completion_mask"].clone(),
                "loss": loss.detach(),
            }
        )
        return loss

    monkeypatch.setattr(GRPOTrainer, "_compute_loss", spy)
    q, gas = 0.2, 2
    trainer = build(
        tmp_path,
        credit=signal,
        credit_mix=0.7,
        top_entropy_quantile=q,
        loss_type="grpo",
        learning_rate=0.0,
        max_steps=1,
    )
    trainer.train()
    assert len(seen) == len(rec.weights) == gas
    active = [r for r in rec.salience if r["name"] == signal]
    for batch, weights, sal in zip(seen, rec.weights, active):
        mask = batch["mask"].bool()
        T = mask.sum(1, keepdim=True).float()
        w = credit.mix_weights(weights["out"], mask, 0.7)
        adv = batch["seq"].float().unsqueeze(1) * w * T
        torch.testing.assert_close(batch["tok"].float(), adv, rtol=1e-5, atol=1e-6)
        # TRL's mask: entropy >= the (1 - q) quantile of the micro-batch's real-token entropies
        H = sal["entropies"]
        threshold = torch.quantile(H[mask], 1 - q)
        top = H.ge(threshold) & mask
        assert 0 < int(top.sum()) < int(mask.sum())  # the mask does select
        by_hand = -((adv * top).sum(1) / T.squeeze(1)).mean() / gas
        torch.testing.assert_close(batch["loss"], by_hand, rtol=1e-5, atol=1e-6)
        if signal != "uniform":  # the credit is not uniform, so the composition is not vacuous
            assert (w[mask] - (mask / T)[mask]).abs().max() > 1e-4
