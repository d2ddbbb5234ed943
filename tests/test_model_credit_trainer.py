"""GRAIL, OAR-G, DelTA and answer_only inside the trainers: the gradient pass leaves no trace on the training update
(a grail step and a step whose credit replays the same weights without any pass move the adapter identically), the
methods train under RLOO, credit_mix and num_iterations > 1, and sharded setups are refused."""

from __future__ import annotations

import pytest
import torch

from arca_rl import ARCARLOOConfig, ARCARLOOTrainer, group_credit
from arca_rl.trainer.model_credit import _ModelCredit, _task_answer_span
from arca_rl.trainer_config import ARCAGRPOConfig, CreditConfigError
from test_trainer import build, make_args, trainable
from tiny import tiny_lora


def tail_answer(text: str):
    """The answer of the tests' random completions: their last two characters (the one before them as markup)."""
    n = len(text)
    return (max(0, n - 3), n, max(0, n - 2), n) if n else None


@pytest.mark.slow
@pytest.mark.parametrize("credit", ["grail", "oar_g"])
def test_gradient_pass_leaves_no_trace_on_the_update(tmp_path, monkeypatch, credit):
    """Run A trains with `credit` (LoRA dropout on, so the pass draws dropout masks and OAR-G its noise); run B
    replays A's weights through a method that reads nothing. Same completions, same update, bit for bit: no
    parameter gradient left by the pass, the training's RNG stream untouched, the adapter and dropout as they were."""
    recorded: list[torch.Tensor] = []
    real = _ModelCredit._model_credit
    seen_modes: list[tuple[bool, bool]] = []

    def spy(self, name, batch, mask):
        grads_before = [p.grad for p in self.model.parameters()]
        out = real(self, name, batch, mask)
        # no parameter gradient written by the pass; the model left in training mode with its adapter on
        assert [p.grad for p in self.model.parameters()] == grads_before
        seen_modes.append((self.model.training, not self._tuner_layer.disable_adapters))
        recorded.append(out.clone())
        return out

    monkeypatch.setattr(_ModelCredit, "_model_credit", spy)
    settings = dict(disable_dropout=False, peft=tiny_lora(lora_dropout=0.2))
    a = build(tmp_path / "a", credit=credit, **settings)
    a.answer_span = tail_answer
    start = trainable(a)
    a.train()
    assert len(recorded) == 2 and seen_modes == [(True, True)] * 2
    # the weights are not uniform: the comparison means something
    assert any(float(w[w > 0].std()) > 1e-3 for w in recorded)

    queue = list(recorded)

    def replay(*, mask, groups, **_):
        return queue.pop(0)

    monkeypatch.setitem(
        group_credit._GROUP_METHODS, "replay", group_credit._GroupMethod(replay, frozenset(), "weights")
    )
    b = build(tmp_path / "b", credit="replay", **settings)
    b.train()
    assert not queue
    after_a, after_b = trainable(a), trainable(b)
    assert after_a.keys() == after_b.keys()
    assert any((after_a[k] - start[k]).abs().max() > 1e-4 for k in start)  # the adapter moved
    for k in after_a:
        torch.testing.assert_close(after_a[k], after_b[k], rtol=0, atol=1e-7, msg=k)


@pytest.mark.slow
@pytest.mark.parametrize("credit", list(group_credit.MODEL_METHODS))
def test_model_methods_train_with_rloo_mix_and_iterations(tmp_path, monkeypatch, credit):
    """Each method once per generation batch (reused by num_iterations = 2), mixed with uniform credit, under RLOO's
    per-sequence loss; the weights TRL's loss reads are finite and sum to 1 per completion."""
    calls = []
    real = _ModelCredit._model_credit

    def spy(self, name, batch, mask):
        out = real(self, name, batch, mask)
        calls.append(out)
        return out

    monkeypatch.setattr(_ModelCredit, "_model_credit", spy)
    args = make_args(tmp_path, cls=ARCARLOOConfig, credit=credit, credit_mix=0.5, num_iterations=2, max_steps=2,
                     gradient_accumulation_steps=2)  # fmt: skip
    trainer = build(tmp_path, trainer_cls=ARCARLOOTrainer, args=args)
    trainer.answer_span = tail_answer
    trainer.train()
    assert len(calls) == 1  # one generation batch serves both optimizer steps
    assert all(torch.isfinite(c).all() for c in calls)
    logged = [h for h in trainer.state.log_history if "credit/gini" in h]
    assert logged and all(0.0 <= h["credit/gini"] < 1.0 for h in logged)


def test_a_tasks_reward_brings_its_answer_span():
    from arca_rl.tasks import get_task

    task = get_task("addition")
    assert _task_answer_span([lambda completions, **kw: [0.0] * len(completions), task.reward]) == task.answer_span
    assert _task_answer_span([lambda completions, **kw: [0.0] * len(completions)]) is None


@pytest.mark.parametrize("env", [{"ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}, {"ACCELERATE_USE_FSDP": "true"}])
def test_gradient_methods_are_refused_under_zero3_and_fsdp(monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for credit in ("grail", "oar_g"):
        with pytest.raises(CreditConfigError) as err:
            ARCAGRPOConfig(output_dir="unused", report_to="none", use_cpu=True, credit=credit)
        assert err.value.field == "credit" and "\n" not in str(err.value)
        assert "input embeddings" in str(err.value) and ("ZeRO-3" in str(err.value) or "FSDP" in str(err.value))
    # the methods without a gradient pass run there
    for credit in ("delta", "answer_only"):
        assert ARCAGRPOConfig(output_dir="unused", report_to="none", use_cpu=True, credit=credit).credit == credit
