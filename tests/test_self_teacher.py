"""`credit: self_teacher` (SC-GRPO): each token's weight is KL(pi_S || pi_T), pi_T the policy shown a verified sibling.
Checked on a scripted two-token model against a hand computation, for the teacher choice, the context cut, and in
the trainer: no teacher gives exactly A_i, all-equal rewards leave the adapter unmoved, the refusals."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
import yaml
from datasets import Dataset

from arca_rl import ARCAGRPOTrainer, ARCARLOOConfig, credit, group_credit
from arca_rl.self_teacher import choose_teachers, cut_solution, teacher_kl, teacher_messages
from arca_rl.trainer_config import CreditConfigError
from test_group_trainer import Spy, row_key
from test_trainer import PROMPTS, make_args, trainable
from tiny import char_tokenizer, tiny_lora, tiny_model

C = 0.7  # the scripted model's logit gain per 1 seen


class TwoTokens(torch.nn.Module):
    """A scripted causal LM over the vocabulary {0, 1}: after a prefix holding n ones (attended positions only), the
    next-token logits are [0, C * n], so pi(1 | prefix) = sigmoid(C * n)."""

    def forward(self, input_ids, attention_mask, **_):
        ones = ((input_ids == 1) & attention_mask.bool()).long().cumsum(-1).float()
        return SimpleNamespace(logits=torch.stack([torch.zeros_like(ones), C * ones], dim=-1))


def kl_by_hand(n_student: int, n_teacher: int) -> float:
    """KL(Bernoulli(sigmoid(C n_s)) || Bernoulli(sigmoid(C n_t))) over the two tokens."""
    p, q = 1 / (1 + math.exp(-C * n_student)), 1 / (1 + math.exp(-C * n_teacher))
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def test_teachers_are_verified_siblings_never_the_completion_itself():
    groups = [0, 0, 0, 1, 1, 1, 2, 2]
    rewards = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.5, 0.5]
    # default threshold: the group's max when above its mean; row 5 is group 1's only success, so it has no teacher
    assert choose_teachers(rewards, groups) == [2, 0, 0, 5, 5, -1, -1, -1]
    assert choose_teachers(rewards, groups, threshold=0.5) == [2, 0, 0, 5, 5, -1, 7, 6]
    assert choose_teachers(rewards, groups, threshold=2.0) == [-1] * 8


def test_teacher_context_shows_the_solution_then_the_prompt_again():
    assert teacher_messages("Q: 1+2=?\nA: ", "3") == "Q: 1+2=?\nA: 3\n\nQ: 1+2=?\nA: "
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "1+2?"}]
    assert teacher_messages(chat, "3") == [*chat, {"role": "assistant", "content": "3"}, chat[1]]


def test_a_context_too_long_is_cut_from_the_left_of_the_solution_and_counted():
    before, sol, after = [1, 2], [10, 11, 12, 13], [3]
    assert cut_solution(before, sol, after, 4, None) == ([1, 2, 10, 11, 12, 13, 3], 0)
    assert cut_solution(before, sol, after, 4, 11) == ([1, 2, 10, 11, 12, 13, 3], 0)
    assert cut_solution(before, sol, after, 4, 9) == ([1, 2, 12, 13, 3], 2)  # the solution's end is kept
    assert cut_solution(before, sol, after, 4, 8) == ([1, 2, 13, 3], 3)  # one solution token: still a teacher
    # not one solution token fits beside the question and the completion: no teacher (issue 38: the question was
    # cut instead, down to nothing for a completion at max_len, and the pass failed)
    assert cut_solution(before, sol, after, 4, 7) is None
    assert cut_solution(before, sol, after, 4, 6) is None
    assert cut_solution(before, sol, after, 9, 8) is None  # the completion alone is longer than the model's positions


def test_identical_contexts_give_no_kl_with_dropout_on_and_the_modes_are_put_back():
    """Issue 38: the KL pass ran in train mode, so LoRA's dropout (lora.dropout, 0.05 by default) made two identical
    contexts disagree (KL 2.8e-4). It runs with dropout off now, as SDPO's teacher does, and leaves every module's
    mode as it found it (the trainer goes on training)."""
    from peft import get_peft_model

    tok = char_tokenizer()
    model = get_peft_model(tiny_model(tok, seed=0), tiny_lora(lora_dropout=0.5))
    model.train()
    model.base_model.model.lm_head.eval()  # one module in another mode: put back as it was, not as the model's
    modes = {name: m.training for name, m in model.named_modules()}
    ids = torch.tensor([tok("12+7=19")["input_ids"], tok("30+4=34")["input_ids"]])
    att = torch.ones_like(ids)
    mask = torch.ones(2, 3, dtype=torch.bool)
    torch.manual_seed(0)
    kl, t_logps = teacher_kl(model, ids, att, ids.clone(), att.clone(), 3, mask, rows=2)
    assert kl.abs().max().item() <= 1e-6  # the same context twice: the same distribution
    assert {name: m.training for name, m in model.named_modules()} == modes
    with torch.no_grad():  # in train mode the same two forwards differ: the dropout is real
        a, b = model(input_ids=ids).logits, model(input_ids=ids).logits
    assert not torch.equal(a, b)


def test_teacher_log_probs_kl_and_advantages_match_a_hand_computation():
    # two rows; completion y = [1, 1, 0] (row 0) and [0, 1] (row 1, padded). Student prompt [0, 1]; the teacher
    # prompt shows a solution [1, 1, 1] before it: [0, 1, 1, 1, 1] (row 1's teacher prompt is left-padded to the same).
    model = TwoTokens()
    comp = torch.tensor([[1, 1, 0], [0, 1, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    s_ids = torch.cat([torch.tensor([[0, 1], [0, 1]]), comp], dim=1)
    s_att = torch.cat([torch.ones(2, 2, dtype=torch.long), mask.long()], dim=1)
    t_prompt = torch.tensor([[0, 1, 1, 1, 1], [0, 0, 1, 1, 1]])  # row 1: one pad (0) then [0, 1, 1, 1]
    t_att = torch.cat([torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]]), mask.long()], dim=1)
    t_ids = torch.cat([t_prompt, comp], dim=1)
    kl, t_logps = teacher_kl(model, s_ids, s_att, t_ids, t_att, 3, mask, rows=1)
    # ones seen before each completion token: student 1 + ones of y_<t; teacher 4 (row 0) / 3 (row 1) + ones of y_<t
    seen = {0: ([1, 2, 3], [4, 5, 6]), 1: ([1, 1, 2], [3, 3, 4])}
    for b, (ns, nt) in seen.items():
        for t in range(int(mask[b].sum())):
            p1 = 1 / (1 + math.exp(-C * nt[t]))  # the teacher's pi(1)
            want_logp = math.log(p1 if comp[b, t] == 1 else 1 - p1)
            assert t_logps[b, t].item() == pytest.approx(want_logp, abs=1e-5)
            assert kl[b, t].item() == pytest.approx(kl_by_hand(ns[t], nt[t]), abs=1e-6)
    assert kl[1, 2] == 0 and t_logps[1, 2] == 0  # padding
    # advantages: A_it = A_i * w_it * T_i, w_it = d_it / sum_k d_ik (SC-GRPO's KL as a multiplicative token weight)
    A = torch.tensor([0.8, -1.2])
    w = credit.token_weights(kl, mask, eps=0.0)
    adv = A.unsqueeze(1) * w * mask.sum(1, keepdim=True)
    for b, (ns, nt) in seen.items():
        T = int(mask[b].sum())
        d = [kl_by_hand(ns[t], nt[t]) for t in range(T)]
        for t in range(T):
            assert adv[b, t].item() == pytest.approx(A[b].item() * d[t] / sum(d) * T, abs=1e-5)


def test_registered_as_a_weights_method_the_trainer_computes(tmp_path):
    assert group_credit.is_group_method("self_teacher") and group_credit.is_trainer_method("self_teacher")
    assert group_credit.group_method_output("self_teacher") == "weights"
    assert not group_credit.is_sampled_method("self_teacher")
    with pytest.raises(ValueError, match="only the trainer computes it"):
        group_credit.group_credit("self_teacher", mask=torch.ones(1, 2), groups=torch.zeros(1, dtype=torch.long))
    make_args(tmp_path, cls=ARCARLOOConfig, credit="self_teacher")  # weights: RLOO's loss takes it
    with pytest.raises(CreditConfigError, match="credit_teacher_success must be a finite number or null"):
        make_args(tmp_path, credit="self_teacher", credit_teacher_success=math.inf)


def trainer(tmp_path, reward, **kw):
    tok = char_tokenizer()
    return ARCAGRPOTrainer(
        model=tiny_model(tok, seed=0),
        reward_funcs=reward,
        args=make_args(tmp_path, credit="self_teacher", **kw),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tok,
        peft_config=tiny_lora(),
    )


def spread(completions, **_):  # differs within a group, so A_i != 0
    return [float(len(c) % 3) for c in completions]


@pytest.mark.slow
def test_no_teacher_gives_exactly_A_i_and_teachers_move_the_weights(tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    t = trainer(tmp_path / "none", spread, max_steps=1, credit_teacher_success=99.0)  # nobody reaches it
    t.train()
    assert [h["credit/teacher_fraction"] for h in t.state.log_history if "credit/teacher_fraction" in h] == [0.0]
    for gen in spy.generations:
        assert gen["credit_group/self_teacher"].abs().sum() == 0
    A_of = {}  # (prompt, completion) -> (A_i, its real-token mask)
    for gen in spy.generations:
        for b in range(gen["completion_ids"].shape[0]):
            A_of[row_key(gen["prompt_ids"], gen["completion_ids"], b)] = (
                gen["advantages"][b],
                gen["completion_mask"][b].bool(),
            )
    checked = 0
    for seen in spy.losses:
        adv = seen["advantages"]
        for b in range(adv.shape[0]):
            A, real = A_of[row_key(seen["prompt_ids"], seen["completion_ids"], b)]
            # uniform weights: A_i * (1 / T_i) * T_i on every real token, A_i to float32 rounding
            assert torch.allclose(adv[b, : real.numel()][real], A.expand(int(real.sum())), rtol=1e-6, atol=0)
            checked += 1
    assert checked == 8 and any(A.abs() > 0 for A, _ in A_of.values())
    spy.generations.clear()
    t2 = trainer(tmp_path / "some", spread, max_steps=1)
    t2.train()
    fraction = [h["credit/teacher_fraction"] for h in t2.state.log_history if "credit/teacher_fraction" in h]
    assert fraction and fraction[0] > 0
    d = spy.generations[0]["credit_group/self_teacher"]
    assert torch.isfinite(d).all() and d.min() >= 0 and d.sum() > 0  # a KL: >= 0, somewhere > 0


@pytest.mark.slow
def test_completions_at_the_models_positions_get_no_teacher_and_are_counted(tmp_path, monkeypatch):
    """Issue 38: completions reaching `max_position_embeddings` (256 on the tiny model) left the teacher no room:
    `RuntimeError: model returned 260 positions, need >= 261`. Now such a completion gets no teacher (salience 0:
    exactly A_i), counted in `credit/teacher_unfit`, and training goes on."""
    spy = Spy(monkeypatch)
    # success threshold 0: every completion's first sibling is its teacher (4 completions of one prompt)
    t = trainer(tmp_path, spread, max_steps=1, credit_teacher_success=0.0, max_completion_length=260,
                generation_kwargs={"min_new_tokens": 260}, gradient_accumulation_steps=1)
    assert t.model.config.max_position_embeddings == 256
    t.train()
    gen = spy.generations[0]
    assert (gen["completion_mask"].sum(1) == 260).all()  # every completion is longer than the model's positions
    logs = [h for h in t.state.log_history if "credit/teacher_unfit" in h]
    assert [h["credit/teacher_unfit"] for h in logs] == [4]  # all 4 had a teacher chosen, and none fit
    assert [h["credit/teacher_fraction"] for h in logs] == [0.0]
    assert gen["credit_group/self_teacher"].abs().sum() == 0  # no teacher: uniform weights
    losses = [h["loss"] for h in t.state.log_history if "loss" in h]
    assert losses and all(math.isfinite(v) for v in losses)


@pytest.mark.slow
def test_all_equal_rewards_leave_the_adapter_unmoved_with_a_finite_loss(tmp_path):
    t = trainer(tmp_path, lambda completions, **_: [1.0] * len(completions), max_steps=1)
    before = trainable(t)
    t.train()
    after = trainable(t)
    assert all(torch.equal(before[n], after[n]) for n in before)
    losses = [h["loss"] for h in t.state.log_history if "loss" in h]
    assert losses and all(math.isfinite(v) for v in losses)
    assert [h["credit/teacher_fraction"] for h in t.state.log_history if "credit/teacher_fraction" in h] == [0.0]


@pytest.mark.slow
def test_arca_train_logs_the_teacher_share_and_dumps_its_weights(tmp_path, tiny_run_config):
    from arca_rl.cli import main

    raw = tiny_run_config
    raw["training"].update(credit="self_teacher", credit_log_tokens_every=1, credit_log_tokens_count=4, save_steps=2)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--output-dir", str(run), "--quiet"]) == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if "credit/teacher_fraction" in m]
    assert len(steps) == 2 and all(
        0.0 <= m["credit/teacher_fraction"] <= 1.0 and m["credit/teacher_cut"] == 0 for m in steps
    )
    tokens = [json.loads(line) for line in (run / "credit_tokens.jsonl").read_text().splitlines()]
    active = [r for r in tokens if r["active"]]
    assert active and all(r["signal"] == "self_teacher" for r in active)
    for r in active:  # weights = the KL salience normalised over the row (uniform where it is all 0)
        s = r["salience"]
        want = [x / sum(s) for x in s] if sum(s) > 0 else [1 / len(s)] * len(s)
        assert r["weights"] == pytest.approx(want, abs=1e-5)


@pytest.mark.slow
def test_num_iterations_two_reuses_the_salience_and_credit_mix_blends_it(tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    t = trainer(tmp_path, spread, num_iterations=2, max_steps=2, gradient_accumulation_steps=2, credit_mix=0.5)
    calls = []
    real = t._teacher_credit
    t._teacher_credit = lambda *a: calls.append(1) or real(*a)
    t.train()
    assert len(spy.generations) == 1 and len(calls) == 1  # one generation batch, scored once, used by both passes
    gen = spy.generations[0]
    d, mask, A = gen["credit_group/self_teacher"], gen["completion_mask"].bool(), gen["advantages"]
    assert d.sum() > 0  # some completion had a teacher that disagreed: the weights are not all uniform
    T = mask.sum(1, keepdim=True).float()
    # lambda = 0.5: w = (1 - lambda) / T + lambda * d / sum(d) (uniform where d is all 0), A_it = A_i * w_it * T_i
    share = torch.where(d.sum(1, keepdim=True) > 0, d / d.sum(1, keepdim=True).clamp_min(1e-30), 1.0 / T)
    want = A.unsqueeze(1) * (0.5 / T + 0.5 * share) * T
    seen_rows = 0
    for seen in spy.losses:
        for b in range(seen["advantages"].shape[0]):
            i = next(i for i in range(mask.shape[0]) if row_key(gen["prompt_ids"], gen["completion_ids"], i)
                     == row_key(seen["prompt_ids"], seen["completion_ids"], b))  # fmt: skip
            n = int(mask[i].sum())
            assert seen["advantages"][b, :n].tolist() == pytest.approx(want[i, :n].tolist(), abs=1e-5)
            seen_rows += 1
    assert seen_rows == 16  # 2 optimizer steps x 2 micro-batches x 4 rows, the same batch both iterations


@pytest.mark.slow
def test_rloo_trains_with_it(tmp_path):
    from arca_rl import ARCARLOOTrainer

    tok = char_tokenizer()
    t = ARCARLOOTrainer(
        model=tiny_model(tok, seed=0),
        reward_funcs=spread,
        args=make_args(tmp_path, cls=ARCARLOOConfig, credit="self_teacher", max_steps=1),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tok,
        peft_config=tiny_lora(),
    )
    t.train()
    losses = [h["loss"] for h in t.state.log_history if "loss" in h]
    assert losses and all(math.isfinite(v) for v in losses)
    assert [h for h in t.state.log_history if "credit/teacher_fraction" in h]
