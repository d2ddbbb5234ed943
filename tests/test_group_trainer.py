"""The group methods (ktae, tempo, gtpo, hicra) inside ARCAGRPOTrainer: computed once per generation batch over the
whole group, carried to the micro-batches, mixed with A_i, reused by num_iterations; config refusals."""

from __future__ import annotations

import json

import pytest
import torch
from trl import GRPOTrainer

from arca_rl import ARCAGRPOConfig, ARCAGRPOTrainer, ARCARLOOConfig, group_credit
from arca_rl.trainer_config import CreditConfigError
from test_trainer import build, make_args
from tiny import char_tokenizer

GROUP_METHODS = ["ktae", "tempo", "gtpo", "hicra"]


class Spy:
    """Records each generation batch (with the rewards TRL computed for it) and what TRL's loss receives."""

    def __init__(self, monkeypatch):
        self.generations: list[dict] = []
        self.losses: list[dict] = []
        self.group_calls = 0
        real_gen = ARCAGRPOTrainer._generate_and_score_completions
        real_rewards = ARCAGRPOTrainer._calculate_rewards
        real_loss = GRPOTrainer._compute_loss
        real_group = group_credit.group_credit
        spy = self

        def gen(self, inputs):
            out = real_gen(self, inputs)
            spy.generations.append({**out, "rewards": spy._rewards})
            return out

        def rewards(self, *args):
            out = real_rewards(self, *args)
            spy._rewards = out[:, 0].clone()  # one reward function
            return out

        def loss(self, model, inputs):
            out = real_loss(self, model, inputs)
            spy.losses.append({k: inputs[k].clone() for k in ("advantages", "completion_ids", "prompt_ids")})
            return out

        def group(*args, **kwargs):
            spy.group_calls += 1
            return real_group(*args, **kwargs)

        monkeypatch.setattr(ARCAGRPOTrainer, "_generate_and_score_completions", gen)
        monkeypatch.setattr(ARCAGRPOTrainer, "_calculate_rewards", rewards)
        monkeypatch.setattr(GRPOTrainer, "_compute_loss", loss)
        monkeypatch.setattr(group_credit, "group_credit", group)


def row_key(prompt_ids, completion_ids, b):
    return (tuple(prompt_ids[b].tolist()), tuple(completion_ids[b].tolist()))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tempo", "ktae"])
def test_loss_gets_mixed_group_advantages(tmp_path, monkeypatch, name):
    """TRL's loss receives (1 - lam) A_i + lam A_it, A_it = the method on the whole generation batch, recomputed
    here from the batch TRL generated (its completion ids, rewards and advantages)."""
    spy = Spy(monkeypatch)
    trainer = build(tmp_path, credit=name, credit_mix=0.5)
    trainer.train()
    assert len(spy.losses) == 4 and len(spy.generations) == 2
    expected: dict[tuple, list[float]] = {}
    for gen in spy.generations:
        mask = gen["completion_mask"].bool()
        B = mask.shape[0]
        tok = group_credit.group_credit(
            name, mask=mask, groups=torch.arange(B) // 4, completion_ids=gen["completion_ids"],
            rewards=gen["rewards"], advantages=gen["advantages"],
        )  # fmt: skip
        mixed = 0.5 * gen["advantages"].unsqueeze(1) + 0.5 * tok  # (1 - lam) A_i + lam A_it
        for b in range(B):
            expected[row_key(gen["prompt_ids"], gen["completion_ids"], b)] = mixed[b][mask[b]].tolist()
    checked = 0
    for seen in spy.losses:
        adv = seen["advantages"]
        assert adv.dim() == 2
        for b in range(adv.shape[0]):
            want = expected[row_key(seen["prompt_ids"], seen["completion_ids"], b)]
            assert adv[b, : len(want)].tolist() == pytest.approx(want, abs=1e-5)
            checked += 1
    assert checked == 16  # every row of both generation batches


@pytest.mark.slow
def test_num_iterations_two_reuses_the_group_credit(tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    trainer = build(tmp_path, credit="tempo", num_iterations=2, max_steps=2, gradient_accumulation_steps=2)
    trainer.train()
    # 2 optimizer steps x 2 micro-batches; num_iterations = 2 reuses one generation batch for both steps
    assert len(spy.generations) == 1 and spy.group_calls == 1
    assert len(spy.losses) == 4
    by_row: dict[tuple, list[list[float]]] = {}
    for seen in spy.losses:
        for b in range(seen["advantages"].shape[0]):
            by_row.setdefault(row_key(seen["prompt_ids"], seen["completion_ids"], b), []).append(
                seen["advantages"][b].tolist()
            )
    assert all(len(v) == 2 and v[0] == v[1] for v in by_row.values())  # the same token advantages both passes


@pytest.mark.slow
def test_all_equal_rewards_zero_token_advantages_every_method(tmp_path):
    """A constant reward: every group method (active gtpo, the others as shadows) gives A_it = 0, no NaN."""
    trainer = build(tmp_path, credit="gtpo", credit_shadow=True, credit_log_tokens_every=1, credit_log_tokens_count=8)
    trainer.reward_funcs = [lambda completions, **kw: [1.0] * len(completions)]
    trainer.reward_func_names = ["const"]
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "out" / "credit_tokens.jsonl").read_text().splitlines()]
    seen = {r["signal"] for r in rows if "token_advantages" in r}
    assert set(GROUP_METHODS) <= seen
    for r in rows:
        if "token_advantages" in r:
            assert all(v == 0.0 for v in r["token_advantages"]), r["signal"]
    logged = [h for h in trainer.state.log_history if "shadow/ktae/gini" in h]
    assert logged and all(v == v for h in logged for v in h.values() if isinstance(v, float))  # no NaN


def test_signed_methods_refuse_weight_settings(tmp_path):
    for field, value in (("credit_power", 2.0), ("credit_eps", 1e-3), ("credit_min_salience", 0.1)):
        with pytest.raises(CreditConfigError, match=f"{field} applies to salience weights only") as err:
            make_args(tmp_path, credit="tempo", **{field: value})
        assert err.value.field == field
    make_args(tmp_path, credit="tempo", credit_mix=0.5)  # the mix applies to signed advantages too


def test_rloo_refuses_signed_methods(tmp_path):
    with pytest.raises(CreditConfigError, match="RLOO's per-sequence loss takes token weights only"):
        make_args(tmp_path, cls=ARCARLOOConfig, credit="ktae")


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("credit_ktae_scale", -1.0, "credit_ktae_scale must be a number >= 0"),
        ("credit_hicra_alpha", 1.5, r"credit_hicra_alpha must be a number in \[0, 1\]"),
        ("credit_hicra_entropy_frac", 0.0, r"credit_hicra_entropy_frac must be a number in \(0, 1\]"),
        ("credit_hicra_grams", 3, "credit_hicra_grams must be a string"),
    ],
)
def test_group_field_errors(tmp_path, field, value, match):
    with pytest.raises(CreditConfigError, match=match):
        make_args(tmp_path, credit="hicra", **{field: value})


def test_group_kwargs_from_the_config(tmp_path):
    args = make_args(tmp_path, credit="hicra", credit_hicra_alpha=0.5, credit_ktae_scale=2.0, credit_shadow=True)
    assert args.group_credit_kwargs("ktae") == {"ktae_scale": 2.0}
    assert args.group_credit_kwargs("tempo") == {"tempo_td_weight": 1.0}
    assert args.group_credit_kwargs("gtpo") == {"gtpo_alpha1": 1.0, "gtpo_alpha2": 1.0}
    assert args.group_credit_kwargs("hicra") == {"hicra_alpha": 0.5, "hicra_entropy_frac": 0.2, "hicra_grams": []}
    assert args.group_credit_kwargs("someone_elses") == {}


def test_hicra_grams_become_token_ids(tmp_path):
    args = make_args(tmp_path, credit="hicra", credit_hicra_grams="12| 3+ ")
    assert args.hicra_phrases() == ["12", "3+"]
    tok = char_tokenizer()
    grams = args.group_credit_kwargs("hicra", tok)["hicra_grams"]
    want = [tok.encode(t, add_special_tokens=False) for t in ("12", " 12", "3+", " 3+")]
    assert grams == [g for i, g in enumerate(want) if g and g not in want[:i]]
    assert isinstance(args, ARCAGRPOConfig)
