"""`credit: vine` (VinePPO): token advantages A_it = V_t - V_{t-1} from K continuations of every prefix, sampled by the
policy. Checked against closed forms (a scripted policy exactly; a uniform policy within 4 standard errors), for
determinism per seed, its logged cost against the continuations actually sampled, and its config refusals."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from datasets import Dataset
from trl import GRPOTrainer

import arca_rl.trainer.vine as trainer_vine
from arca_rl import ARCAGRPOTrainer, ARCARLOOConfig, group_credit
from arca_rl._diagnose.score import scorable
from arca_rl.trainer.vine import vine_token_advantages
from arca_rl.trainer_config import CreditConfigError
from test_trainer import PROMPTS, make_args, reward_len
from tiny import char_tokenizer, tiny_lora, tiny_model

EOS = 99


def scripted_sampler(prompt_len: dict[int, int], calls: list):
    """A deterministic policy: appends 1s until the completion has 3 tokens, then EOS. `prompt_len` maps a sequence's
    first token to its prompt's length (so the policy knows how far into the completion a cut is)."""

    def sampler(seq, cuts, budgets):
        calls.append(len(cuts))
        out = []
        for c, b in zip(cuts, budgets):
            done, new = c - prompt_len[seq[0]], []
            while len(new) < b:
                if done + len(new) >= 3:
                    new.append(EOS)
                    break
                new.append(1)
            out.append(new)
        return out

    return sampler


def test_token_advantages_are_the_closed_form_values_of_a_scripted_policy():
    # The policy only ever adds 1s, so a prefix's value is exact: V_t = scale * (2s among y_1..y_t) / 4, the scale
    # a column of the prompt's row (1 for prompt A's rows 0 and 2, 3 for prompt B's rows 1 and 3).
    prompts = {0: [7, 8, 9], 1: [5, 6]}
    scale = {0: 1.0, 1: 3.0}
    rows = [(0, [2, 1, 2, EOS]), (1, [2, 2, EOS]), (0, [1, 2, EOS]), (1, [])]  # (group, completion); row 3: T = 0
    seen_rows: list[int] = []

    def reward(row, comps):
        seen_rows.append(row)
        return [scale[rows[row][0]] * sum(t == 2 for t in c) / 4 for c in comps]

    calls: list[int] = []
    sampler = scripted_sampler({7: 3, 5: 2}, calls)
    R = [scale[g] * sum(t == 2 for t in y) / 4 for g, y in rows]
    adv, sampled = vine_token_advantages(
        [prompts[g] for g, _ in rows], [y for _, y in rows], [g for g, _ in rows], R, sampler, reward,
        samples=3, max_new_tokens=6, batch_rows=100, width=5,
    )  # fmt: skip
    # V (A: [0, .25, .25, .5, .5]; B: 3 * [0, .25, .5, .5]; A's second: [0, 0, .25, .25]); A_t = V_t - V_{t-1}
    want = torch.tensor(
        [
            [0.25, 0.0, 0.25, 0.0, 0.0],
            [0.75, 0.75, 0.0, 0.0, 0.0],
            [0.0, 0.25, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],  # no tokens: nothing sampled, no advantage
        ]
    )
    assert torch.equal(adv, want) and adv.dtype == torch.float32
    assert adv.sum(dim=1).tolist() == pytest.approx([R[b] - 0.0 for b in range(4)])  # sum_t A_t = R - V_0
    # K per prompt (V_0, shared by its rows) + K per prefix of 1 .. T - 1 tokens of every completion
    assert sampled == sum(calls) == 3 * (2 + 3 + 2 + 2)
    assert set(seen_rows) == {0, 1}  # each prompt's continuations are rewarded with its first row's columns


def uniform_policy_trainer(tmp_path, reward, **kw):
    """The tiny model with its final norm's weight at 0: every logit is equal, before and after any LoRA step (the
    adapter sits before the norm), so the policy samples every token with probability 1 / V."""
    tok = char_tokenizer()
    model = tiny_model(tok, seed=0)
    with torch.no_grad():
        model.model.norm.weight.zero_()
    return ARCAGRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=make_args(tmp_path, credit="vine", **kw),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tok,
        peft_config=tiny_lora(),
    ), tok


@pytest.mark.slow
def test_trainer_gets_the_closed_form_values_of_a_uniform_policy_mixed_with_A_i(tmp_path, monkeypatch):
    tok = char_tokenizer()
    good = set(tok.convert_tokens_to_ids(list("0123456789abcdefghijklmnopqrstuvwxyz")))

    def second_is_good(completions, completion_ids, **kw):
        return [1.0 if len(c) >= 2 and c[1] in good else 0.0 for c in completion_ids]

    K = 64
    trainer, tok = uniform_policy_trainer(tmp_path, second_is_good, max_steps=1, credit_vine_samples=K, credit_mix=0.5)
    V = trainer.model.config.vocab_size
    q = len(good) / V
    vine, losses = [], []
    real_vine, real_loss = ARCAGRPOTrainer._vine_credit, GRPOTrainer._compute_loss

    def record_vine(self, batch, mask, groups, rewards):
        out = real_vine(self, batch, mask, groups, rewards)
        vine.append(
            (
                batch["completion_ids"].clone(),
                mask.clone(),
                groups.clone(),
                rewards.clone(),
                batch["advantages"].clone(),
                out.clone(),
            )
        )
        return out

    def record_loss(self, model, inputs):
        out = real_loss(self, model, inputs)  # the routing hands TRL's loss its token advantages in `inputs`
        losses.append((inputs["completion_ids"].clone(), inputs["advantages"].clone()))
        return out

    monkeypatch.setattr(ARCAGRPOTrainer, "_vine_credit", record_vine)
    monkeypatch.setattr(GRPOTrainer, "_compute_loss", record_loss)
    trainer.train()
    assert len(vine) == 1 and len(losses) == 2
    ids, mask, groups, rewards, advantages, A = vine[0]
    v0_of: dict[int, float] = {}
    for b in range(ids.shape[0]):
        T = int(mask[b].sum())
        R = float(rewards[b])
        assert second_is_good(None, [ids[b, :T].tolist()])[0] == R
        assert A[b, T:].abs().sum() == 0
        if T >= 2:
            # V_2 .. V_T = R exactly (y_2 is fixed from a 2-token prefix on): A_t = 0 for t >= 3
            assert A[b, 2:T].abs().sum() == 0
            v1 = R - float(A[b, 1])  # A_2 = R - V_1
            se = math.sqrt(q * (1 - q) / K)
            assert abs(v1 - q) <= 4 * se, (b, v1, q)  # V_1 = P(y_2 good) = q
        else:
            v1 = R  # y_1 = EOS: the completion is over, V_1 = R = 0
        v0 = v1 - float(A[b, 0])
        v0_of.setdefault(int(groups[b]), v0)
        assert v0 == pytest.approx(v0_of[int(groups[b])], abs=1e-6)  # one V_0 per prompt
    for v0 in v0_of.values():
        exact = (1 - 1 / V) * q  # y_1 not EOS, then y_2 good
        assert abs(v0 - exact) <= 4 * math.sqrt(exact * (1 - exact) / K), (v0, exact)
    # TRL's loss gets (1 - lam) A_i + lam A_it, lam = 0.5, on every real token
    want = {tuple(ids[b].tolist()): (0.5 * advantages[b] + 0.5 * A[b])[mask[b]] for b in range(ids.shape[0])}
    checked = 0
    for seen_ids, seen_adv in losses:
        for b in range(seen_ids.shape[0]):
            w = want[tuple(seen_ids[b].tolist())]
            assert seen_adv[b, : len(w)].tolist() == pytest.approx(w.tolist(), abs=1e-6)
            checked += 1
    assert checked == ids.shape[0]


def one_step(tmp_path, name):
    tok = char_tokenizer()
    trainer = ARCAGRPOTrainer(
        model=tiny_model(tok, seed=0),
        reward_funcs=reward_len,
        args=make_args(tmp_path / name, credit="vine", max_steps=1, credit_vine_samples=2, seed=5),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tok,
        peft_config=tiny_lora(),
    )
    seen: list[torch.Tensor] = []
    real = trainer._vine_credit
    trainer._vine_credit = lambda *a: seen.append(real(*a)) or seen[-1]
    trainer.train()
    adapter = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    return adapter, seen, trainer.state.log_history


@pytest.mark.slow
def test_a_run_is_deterministic_per_seed_and_logs_its_rollouts(tmp_path, monkeypatch):
    rows: list[int] = []
    real_sampler = trainer_vine.model_sampler

    def counting_sampler(*args, **kwargs):
        sample = real_sampler(*args, **kwargs)

        def counted(seq, cuts, budgets):
            rows.append(len(cuts))
            return sample(seq, cuts, budgets)

        return counted

    monkeypatch.setattr(trainer_vine, "model_sampler", counting_sampler)
    a, adv_a, log_a = one_step(tmp_path, "a")
    sampled_a = sum(rows)
    b, adv_b, _ = one_step(tmp_path, "b")
    assert len(adv_a) == len(adv_b) == 1 and torch.equal(adv_a[0], adv_b[0])
    assert adv_a[0].abs().sum() > 0  # the values moved somewhere
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    logged = [h["credit/vine_rollouts"] for h in log_a if "credit/vine_rollouts" in h]
    assert logged == [sampled_a] and sampled_a > 0
    assert all(h["credit/vine_seconds"] > 0 for h in log_a if "credit/vine_seconds" in h)


@pytest.mark.slow
def test_arca_train_logs_the_cost_in_metrics_jsonl(tmp_path, tiny_run_config):
    from arca_rl.cli import main

    raw = tiny_run_config
    raw["training"].update(
        credit="vine",
        credit_vine_samples=2,
        credit_vine_positions="all",
        credit_log_tokens_every=1,
        credit_log_tokens_count=4,
        save_steps=2,
    )
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--output-dir", str(run), "--quiet"]) == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if "credit/vine_rollouts" in m]
    assert len(steps) == 2 and all(m["credit/vine_seconds"] > 0 for m in steps)
    tokens = [json.loads(line) for line in (run / "credit_tokens.jsonl").read_text().splitlines()]
    for m in steps:  # 1 prompt x 4 completions a step: K * (1 + sum of (T - 1))
        lengths = [len(r["tokens"]) for r in tokens if r["step"] == m["step"] - 1 and r["active"]]
        assert len(lengths) == 4
        assert m["credit/vine_rollouts"] == 2 * (1 + sum(max(t - 1, 0) for t in lengths))


def test_config_refusals_name_the_field(tmp_path):
    for field, value in (("credit_vine_samples", 0), ("credit_vine_batch_rows", 0), ("credit_vine_samples", 2.5)):
        with pytest.raises(CreditConfigError, match=rf"^{field} must be an integer >= 1") as err:
            make_args(tmp_path, credit="vine", **{field: value})
        assert err.value.field == field
    with pytest.raises(CreditConfigError, match="RLOO's per-sequence loss takes token weights only") as err:
        make_args(tmp_path, cls=ARCARLOOConfig, credit="vine")
    assert err.value.field == "credit"
    args = make_args(tmp_path, credit="vine", credit_vine_samples=4)
    assert args.group_credit_kwargs("vine") == {"vine_samples": 4, "vine_batch_rows": 256, "vine_positions": "adaptive"}
    with pytest.raises(CreditConfigError, match=r"^credit_vine_positions must be one of \('adaptive', 'all'\)") as err:
        make_args(tmp_path, credit="vine", credit_vine_positions="some")
    assert err.value.field == "credit_vine_positions"


def test_vine_is_a_registered_method_the_trainer_computes():
    assert "vine" in group_credit.registered_methods() and group_credit.is_sampled_method("vine")
    assert not any(group_credit.is_sampled_method(m) for m in group_credit.registered_methods() if m != "vine")
    with pytest.raises(ValueError, match="only the trainer computes it"):
        group_credit.group_credit("vine", mask=torch.ones(1, 2), groups=torch.zeros(1, dtype=torch.long))
    scored, absent = scorable(["uniform", "vine"], has_adapter=True)
    assert scored == ["uniform"] and "the Monte Carlo oracle itself" in absent["vine"]


@pytest.mark.parametrize(
    "training, env, field",
    [({"use_vllm": True}, {}, "use_vllm"),
     ({}, {"ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}, "credit"),
     ({"deepspeed": {"zero_optimization": {"stage": 3}}}, {}, "credit")],
    ids=["use_vllm-without-vllm", "zero3-accelerate", "zero3-deepspeed-arg"],
)
def test_vine_where_it_cannot_sample_is_refused_at_validation(training, env, field, monkeypatch):
    """Issue 28 §4: vine with use_vllm and no vLLM, or under ZeRO-3, failed with a traceback after the model loaded;
    now one line at validation (arca train --dry-run too), naming the field."""
    import importlib.util

    from arca_rl._config import ConfigError, parse_config

    if field == "use_vllm" and importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    raw = {"training": {"credit": "vine", **training}}
    with pytest.raises(ConfigError, match=rf"^training\.{field}: .*(vLLM|ZeRO-3)"):
        parse_config(raw).training_args("unused", for_validation=True)
    raw["training"]["credit"] = "tempo"
    if field == "credit":  # another method is not refused for it
        parse_config(raw).training_args("unused", for_validation=True)


def test_vine_samples_past_the_rollout_cap_are_refused_and_the_dry_run_bounds_its_tokens(tmp_path, capsys):
    """Issue 28 §4: credit_vine_samples=1e9 had no cap (diagnose refuses over 1e8 rollouts) and the dry run's
    generated-token bound left vine's continuations out."""
    from pathlib import Path

    from arca_rl._config import ConfigError, parse_config
    from arca_rl.cli import main

    with pytest.raises(ConfigError, match=r"^training\.credit_vine_samples: .* over the cap of 1e\+08"):
        parse_config({"training": {"credit": "vine", "credit_vine_samples": 10**9}}).training_args(
            "unused", for_validation=True)
    config = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"
    argv = ["train", "--config", str(config), "--output-dir", str(tmp_path / "r"), "--dry-run",
            "--set", "training.credit=vine", "--set", "training.max_steps=2", "--set", "training.credit_vine_samples=4"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    per_step, length = 32, 32  # the demo config: 4 prompts x 8 completions of at most 32 tokens
    assert f"plus at most {2 * per_step * 4 * length * length} tokens of vine continuations" in out, out


def vine_reward_of(tmp_path, *funcs):
    """A vine trainer on the tiny model with reward functions `funcs`: its `_vine_reward` of three continuations of
    prompt row 0 (as vine rewards them), before any training."""
    tok = char_tokenizer()
    trainer = ARCAGRPOTrainer(
        model=tiny_model(tok, seed=0),
        reward_funcs=list(funcs),
        args=make_args(tmp_path, credit="vine", max_steps=1, credit_vine_samples=2),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tok,
        peft_config=tiny_lora(),
    )
    ids = tok(["12", "34", "5"], add_special_tokens=False)["input_ids"]
    return lambda: trainer._vine_reward([{"prompt": PROMPTS[0]}], [PROMPTS[0]], 0, ids)


def test_a_vine_reward_returning_none_or_a_bare_float_is_named(tmp_path):
    """Issue 28: a reward function that returns None for vine's continuations (all of them, or some, with no other
    function scoring those) is named, saying it returned None; before, the oracle said "reward function returned nan
    for a continuation of prompt 0" and named neither. A bare float is a TypeError naming the function, as in TRL's
    own reward pass. A None next to another function's number is left out of the sum, as TRL leaves it."""

    def says_nothing(completions, **kw):
        return [None] * len(completions)

    def some_none(completions, **kw):
        return [None if c.startswith("3") else 1.0 for c in completions]

    def one_value(completions, **kw):
        return 0.5

    with pytest.raises(ValueError, match=r"^reward function 'says_nothing' returned None for 3 of 3 continuations"):
        vine_reward_of(tmp_path / "a", says_nothing)()
    with pytest.raises(ValueError, match=r"^reward function 'some_none' returned None for 1 of 3 continuations"):
        vine_reward_of(tmp_path / "b", some_none)()
    with pytest.raises(ValueError, match=r"^reward functions 'says_nothing', 'some_none' returned None for 1 of 3"):
        vine_reward_of(tmp_path / "c", says_nothing, some_none)()
    with pytest.raises(TypeError, match=r"reward function 'one_value' returned a bare float 0.5, not a list"):
        vine_reward_of(tmp_path / "d", one_value)()
    lengths = reward_len(char_tokenizer().batch_decode(char_tokenizer()(["12", "34", "5"])["input_ids"]))
    assert vine_reward_of(tmp_path / "e", some_none, reward_len)() == pytest.approx(
        [1.0 + lengths[0], lengths[1], 1.0 + lengths[2]]
    )


def test_an_unsplit_adaptive_interval_gives_each_token_its_whole_change(monkeypatch):
    """Issue 34 §5, VinePPO's step form: where the adaptive oracle left (a, b] unsplit, every token in it gets
    V_b - V_a (not (V_b - V_a) / (b - a)); a localised one-token interval keeps its own delta."""
    from arca_rl.oracle import OracleRow

    row = OracleRow(
        values=[0.25, 0.0, 0.0, 0.75, 0.0, 1.0], stderr=[0.1, math.nan, math.nan, 0.1, 0.1, 0.0], samples=4,
        estimated=[0, 3, 4, 5],
    )  # fmt: skip
    monkeypatch.setattr(trainer_vine, "oracle_values", lambda groups, *a, **k: [[row]])
    adv, _ = vine_token_advantages(
        [[7, 8]], [[1, 1, 1, 1, EOS]], [0], [1.0], lambda *a: [], lambda *a: [], samples=4, max_new_tokens=8,
        batch_rows=10, width=6,
    )  # fmt: skip
    assert adv.tolist() == [[0.5, 0.5, 0.5, -0.75, 1.0, 0.0]]
