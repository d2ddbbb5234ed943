"""`arca_rl.diagnose(..., oracle_samples=K)` and `arca diagnose --oracle K`: Monte Carlo token values
stored next to every completion's weights, every scored signal scored against them, bad input refused
before the expensive parts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model

import arca_rl._diagnose.oracle_sampling as oracle_mod
from arca_rl import credit, group_credit
from arca_rl._config import ConfigError
from arca_rl._diagnose import diagnose, run_diagnose
from tiny import char_tokenizer, tiny_model

PROMPTS = ["12+7=", "3+45+6="]
ODD = set("13579")


def odd_share(_i: int, text: str) -> float:
    """A real-valued reward that moves with almost every token: the share of odd digits."""
    return sum(ch in ODD for ch in text) / max(len(text), 1)


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


@pytest.fixture(scope="module")
def peft_model(tok):
    torch.manual_seed(1)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(tiny_model(tok, seed=0), cfg).eval()


@pytest.fixture(scope="module")
def result(peft_model, tok):
    return diagnose(
        peft_model, tok, PROMPTS, k=2, max_new_tokens=6, temperature=1.0, seed=4, rewards=odd_share,
        oracle_samples=3, progress=False, oracle_positions="all",
    )  # fmt: skip


def test_every_completion_carries_its_oracle_row(result, tok):
    """Every prefix sampled (`oracle_positions="all"`; the adaptive default: test_oracle_adaptive.py)."""
    K = 3
    for rec in result.completions:
        o = rec.oracle
        T = rec.length
        assert o is not None and o["samples"] == K
        assert len(o["values"]) == T + 1 and len(o["delta"]) == T and len(o["stderr"]) == T + 1
        assert o["values"][T] == rec.reward == odd_share(0, rec.completion)  # V_T = R(y)
        assert o["stderr"][T] == 0.0
        assert o["delta"] == [b - a for a, b in zip(o["values"][:-1], o["values"][1:])]
        assert all(0.0 <= v <= 1.0 for v in o["values"])
    # V_0 is the prompt's value: shared by the completions of one prompt
    by_prompt: dict[int, set[float]] = {}
    for rec in result.completions:
        by_prompt.setdefault(rec.prompt_index, set()).add(rec.oracle["values"][0])
    assert all(len(v) == 1 for v in by_prompt.values())
    n_roll = K * sum(1 + sum(r.length - 1 for r in result.completions if r.prompt_index == i) for i in by_prompt)
    assert result.settings["oracle_samples"] == K and result.settings["oracle_rollouts"] == n_roll


def test_signal_scores_match_an_independent_computation(result):
    for name, summ in result.signals.items():
        lifts, tops = [], []
        for rec in result.completions:
            d = np.abs(np.array(rec.oracle["delta"], dtype=np.float64))
            if d.sum() == 0:
                continue
            o = d / d.sum()
            w = np.array(rec.weights[name], dtype=np.float64)
            w = w / w.sum()
            lifts.append(len(o) * float((w * o).sum()))
            a, b = set(np.flatnonzero(w == w.max())), set(np.flatnonzero(d == d.max()))
            tops.append(len(a & b) / (len(a) * len(b)))
        assert summ.oracle_lift["n"] == len(lifts) >= 2
        assert summ.oracle_lift["mean"] == pytest.approx(np.mean(lifts), rel=1e-9), name
        assert summ.oracle_lift["ci_low"] <= summ.oracle_lift["mean"] <= summ.oracle_lift["ci_high"]
        assert summ.oracle_top_match == pytest.approx(np.mean(tops), rel=1e-9)
    uni = result.signals["uniform"]
    assert uni.oracle_lift["mean"] == uni.oracle_lift["ci_low"] == uni.oracle_lift["ci_high"] == 1.0
    assert uni.oracle_spearman is None  # constant salience
    assert result.signals["arca"].oracle_spearman is not None


def test_json_table_and_page_show_the_oracle(result, tmp_path):
    d = json.loads(result.to_json())
    for name in credit.registered_signals():
        sig = d["signals"][name]
        assert set(sig["oracle_lift"]) == {"mean", "ci_low", "ci_high", "n"}
        assert "oracle_spearman" in sig and "oracle_top_match" in sig
    c0 = d["completions"][0]
    assert set(c0["oracle"]) >= {"values", "delta", "stderr", "samples"} and "token_ids" in c0
    assert "oracle lift" in result.table()
    page = result.write(tmp_path / "out")["report.html"].read_text()
    assert page.count('data-signal="oracle"') == len(result.completions)
    assert "oracle lift" in page and "ρ vs |Δ|" in page


def test_greedy_policy_values_are_exact(peft_model, tok):
    """Greedy decoding is deterministic and the rollout is the greedy continuation of each of its own
    prefixes, so every V_t equals R(y) exactly: all deltas 0, rows left out and counted."""
    res = diagnose(
        peft_model, tok, PROMPTS, k=1, max_new_tokens=5, temperature=0.0, rewards=odd_share,
        oracle_samples=2, signals=["uniform", "surprisal"], progress=False,
    )  # fmt: skip
    for rec in res.completions:
        assert rec.oracle["values"] == [rec.reward] * (rec.length + 1)
        assert rec.oracle["credit"] is None
    assert res.settings["oracle_zero_rows"] == len(res.completions)
    assert res.signals["uniform"].oracle_lift["mean"] is None and res.signals["uniform"].oracle_lift["n"] == 0
    # adaptive (the default): nothing moved, so each row is one measured interval: no signal, counted, left out
    assert res.settings["oracle_unresolved_rows"] == len(res.completions)
    assert any("single measured interval" in n and "left out of every oracle score" in n for n in res.notes)


def test_no_adapter_still_scores_uniform(tok):
    res = diagnose(
        tiny_model(tok, seed=0), tok, PROMPTS[:1], k=2, max_new_tokens=4, rewards=odd_share,
        oracle_samples=2, progress=False,
    )  # fmt: skip
    # without an adapter: the signals that need no base, and the group methods (there is a reward)
    assert set(res.signals) == {
        "uniform",
        "surprisal",
        "entropy_reduction",
        *group_credit.registered_group_methods(),
    } - {"vine"}
    assert all(s.oracle_lift is not None for s in res.signals.values())


@pytest.fixture
def no_continuations(monkeypatch):
    """Fail the test if the oracle ever builds its sampler (i.e. is about to sample continuations)."""

    def refuse(*_a, **_k):
        raise AssertionError("continuations were about to be sampled")

    monkeypatch.setattr(oracle_mod, "model_sampler", refuse)


@pytest.mark.parametrize("bad", ["raises", "nan", "none"])
def test_a_broken_reward_stops_before_any_continuation(peft_model, tok, no_continuations, bad):
    def reward(_i: int, text: str) -> float | None:
        if bad == "raises":
            raise KeyError("no such answer")
        return math.nan if bad == "nan" else None

    match = "reward function raised KeyError" if bad == "raises" else "reward function returned (nan|None)"
    with pytest.raises(ValueError, match=match):
        diagnose(peft_model, tok, PROMPTS, k=1, max_new_tokens=4, rewards=reward, oracle_samples=2, progress=False)


def test_bad_oracle_arguments(peft_model, tok, no_continuations):
    for K in (0, -1, 2.5):
        with pytest.raises(ValueError, match="oracle_samples must be an integer >= 1"):
            diagnose(peft_model, tok, PROMPTS, rewards=odd_share, oracle_samples=K, progress=False)
    with pytest.raises(ValueError, match="oracle_samples needs rewards"):
        diagnose(peft_model, tok, PROMPTS, oracle_samples=2, progress=False)


def test_the_oracles_settings_without_the_oracle_are_refused(peft_model, tok, no_continuations):
    """They would do nothing: refused, not ignored (and never recorded as if they had been used)."""
    with pytest.raises(ValueError, match="oracle_step_seeds: only with oracle_samples"):
        diagnose(peft_model, tok, PROMPTS, rewards=odd_share, oracle_step_seeds=True, progress=False)
    with pytest.raises(ValueError, match="oracle_step_seeds: only with oracle_positions='adaptive'"):
        diagnose(peft_model, tok, PROMPTS, rewards=odd_share, oracle_samples=2, oracle_positions="all",
                 oracle_step_seeds=True, progress=False)  # fmt: skip
    for kwargs, flag in (({"oracle_positions": "all"}, "--oracle-positions"),
                         ({"oracle_positions": "adaptive"}, "--oracle-positions"),
                         ({"oracle_step_seeds": True}, "--oracle-step-seeds"),
                         ({"oracle_samples": 2, "oracle_positions": "all", "oracle_step_seeds": True},
                          "--oracle-step-seeds")):  # fmt: skip
        with pytest.raises(ConfigError, match=f"^{flag}: only with"):
            run_diagnose(task="arithmetic", model="/nonexistent/model", log=None, **kwargs)


def test_diagnose_records_the_step_seeds_it_used(peft_model, tok):
    for seeds in (False, True):
        res = diagnose(peft_model, tok, PROMPTS[:1], k=2, max_new_tokens=4, rewards=odd_share, oracle_samples=2,
                       oracle_step_seeds=seeds, signals=["uniform"], progress=False)  # fmt: skip
        assert res.settings["oracle_step_seeds"] is seeds and res.settings["oracle_positions"] == "adaptive"


def test_cli_oracle_with_one_completion_per_prompt_runs_without_the_signed_measure(tmp_path, tok, capsys):
    """The lift needs no group; the signed measure does (with k = 1 every A_i is 0): left out, and said."""
    from arca_rl.cli import main

    model_dir = tmp_path / "tiny"
    tiny_model(tok, seed=0).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    out = tmp_path / "diag"
    rc = main(["diagnose", "--model", str(model_dir), "--task", "arithmetic", "--n", "3", "--k", "1",
               "--max-new-tokens", "4", "--oracle", "2", "--signals", "uniform,surprisal", "--out", str(out),
               "--quiet"])  # fmt: skip
    assert rc == 0
    assert "signed measure needs k >= 2" in capsys.readouterr().out
    d = json.loads((out / "diagnose.json").read_text())
    assert d["settings"]["k"] == 1 and d["settings"]["oracle_samples"] == 2
    rows = [c for c in d["completions"] if c["oracle"]["credit"] is not None]
    for name in ("uniform", "surprisal"):
        assert d["signals"][name]["oracle_signed"] is None
        assert d["signals"][name]["oracle_lift"]["n"] == len(rows)
    # by hand: uniform weights 1/T give a lift of T * sum_t (1/T) o_t = 1 on every row with credit
    assert d["signals"]["uniform"]["oracle_lift"]["mean"] == (pytest.approx(1.0) if rows else None)


def test_run_diagnose_refuses_bad_counts_before_loading(monkeypatch, capsys):
    import arca_rl._run.evaluation as ev

    def no_load(*_a, **_k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(ev, "load_model_for_eval", no_load)
    for kwargs, match in (
        ({"oracle_samples": 0}, "--oracle: must be an integer >= 1"),
        ({"n": 0, "oracle_samples": 4}, "--n: must be an integer >= 1"),
        ({"k": 0}, "--k: must be an integer >= 1"),
    ):
        with pytest.raises(ConfigError, match=match):
            run_diagnose(task="arithmetic", model="/nonexistent/model", **{"n": 2, **kwargs})
    from arca_rl.cli import main

    assert main(["diagnose", "--task", "arithmetic", "--oracle", "0", "--model", "/nonexistent"]) == 2
    assert "--oracle: must be an integer >= 1" in capsys.readouterr().err


def test_cli_oracle_on_a_plain_model(tmp_path, tok, capsys):
    from arca_rl.cli import main

    model_dir = tmp_path / "tiny"
    tiny_model(tok, seed=0).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    out = tmp_path / "diag"
    rc = main(["diagnose", "--model", str(model_dir), "--task", "arithmetic", "--n", "2", "--k", "2",
               "--max-new-tokens", "4", "--oracle", "2", "--out", str(out), "--quiet"])  # fmt: skip
    assert rc == 0
    assert "oracle lift" in capsys.readouterr().out
    d = json.loads((out / "diagnose.json").read_text())
    assert d["settings"]["oracle_samples"] == 2
    assert d["uniform"]["oracle_lift"]["mean"] in (1.0, None)  # None only if every row's deltas are 0
    assert all(len(c["oracle"]["values"]) == c["length"] + 1 for c in d["completions"])


def test_oracle_finds_the_decisive_first_token_of_the_embedded_task():
    """On the embedded task the first completion token picks the direct answer (right about a third of
    the time) or the step-by-step one (mostly right), so the expected reward moves most there.

    Bound from measured runs of exactly this setting (shipped model, no adapter, 8 prompts x 1, K = 16,
    32 new tokens) with seeds 0-4: mean o_1 / mean 1/T = 2.31, 2.44, 2.81, 2.04, 2.13 (seed 0, used
    here: mean o_1 0.347 against mean 1/T 0.150); `arca diagnose --task arithmetic --n 12 --k 1
    --oracle 32` gave 0.377 against 0.148 (2.6x). Asserted: at least 1.5x, and at least 0.2.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from arca_rl.tasks import TINY_MODEL_PATH, get_task

    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL_PATH, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL_PATH)
    task = get_task("arithmetic")
    data = task.test_dataset(8)
    sols = list(data["solution"])
    res = diagnose(
        model, tokenizer, list(data["prompt"]), k=1, max_new_tokens=32, temperature=1.0, seed=0,
        rewards=lambda i, text: task.score(text, sols[i]), oracle_samples=16, signals=["uniform"],
        progress=False,
    )  # fmt: skip
    rows = [c for c in res.completions if c.oracle["credit"] is not None]
    assert len(rows) >= 6
    first = sum(c.oracle["credit"][0] for c in rows) / len(rows)
    uniform = sum(1 / c.length for c in rows) / len(rows)
    assert first >= 1.5 * uniform and first >= 0.2, (first, uniform)


# ---- group methods and the signed measure -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def group_result(peft_model, tok):
    """3 completions per prompt at temperature 1.5, whose rewards differ within both prompts (checked below)."""
    return diagnose(
        peft_model, tok, PROMPTS, k=3, max_new_tokens=6, temperature=1.5, seed=0, rewards=odd_share,
        oracle_samples=2, progress=False,
    )  # fmt: skip


def test_group_methods_scored_with_their_group(group_result):
    """Every group method is scored (the k completions of a prompt are its group); its token advantages are
    `group_credit.group_credit` on the records (A_i = GRPO's advantage of the rewards) and its weights their shares."""
    result = group_result
    recs = result.completions
    for i in range(len(PROMPTS)):  # each group has a contrast, so the methods are not all 0
        assert len({r.reward for r in recs if r.prompt_index == i}) > 1
    for name in group_credit.registered_group_methods():
        assert (name in result.signals) != (name == "vine"), name  # vine is the oracle itself: absent
    rewards = [r.reward for r in recs]
    groups = [r.prompt_index for r in recs]
    for i, rec in enumerate(recs):  # GRPO's A_i by hand: (R - mean) / (std + 1e-4), std with K - 1
        mine = [rewards[j] for j in range(len(recs)) if groups[j] == groups[i]]
        m = sum(mine) / len(mine)
        sd = math.sqrt(sum((x - m) ** 2 for x in mine) / (len(mine) - 1))
        assert rec.advantage == pytest.approx((rec.reward - m) / (sd + 1e-4), abs=1e-6)
    T = max(r.length for r in recs)
    mask = torch.zeros(len(recs), T, dtype=torch.bool)
    ids = torch.zeros(len(recs), T, dtype=torch.long)
    for b, r in enumerate(recs):
        mask[b, : r.length] = True
        ids[b, : r.length] = torch.tensor(r.token_ids)
    adv = torch.tensor([r.advantage for r in recs])
    for name in ("ktae", "tempo"):  # the methods that read no entropies
        want = group_credit.group_credit(
            name, mask=mask, groups=torch.tensor(groups), completion_ids=ids, rewards=torch.tensor(rewards),
            advantages=adv,
        )  # fmt: skip
        for b, rec in enumerate(recs):
            assert rec.token_advantages[name] == pytest.approx(want[b, : rec.length].tolist(), abs=1e-6)
            shares = [abs(x) for x in rec.token_advantages[name]]
            if sum(shares) > 0:
                assert rec.weights[name] == pytest.approx([x / sum(shares) for x in shares], abs=1e-6)


def test_signed_measure_matches_an_independent_computation(group_result):
    result = group_result
    for name, summ in result.signals.items():
        cos = []
        for rec in result.completions:
            a = np.array(rec.token_advantages[name], dtype=np.float64)
            if name in credit.registered_signals():  # a signal's token advantages: A_i * w_it * T_i
                w = np.array(rec.weights[name], dtype=np.float64)
                assert a == pytest.approx(rec.advantage * w * len(w))
            # adaptive positions (the default): scored per measured interval, the advantages summed over each
            # interval against its V_b - V_a; a row with one interval carries no signal and is left out
            pos = rec.oracle["estimated"]
            if len(pos) < 3:
                continue
            v = rec.oracle["values"]
            a = np.array([a[s:e].sum() for s, e in zip(pos[:-1], pos[1:])])
            d = np.array([v[e] - v[s] for s, e in zip(pos[:-1], pos[1:])], dtype=np.float64)
            if np.linalg.norm(a) > 0 and np.linalg.norm(d) > 0:
                cos.append(float(a @ d / (np.linalg.norm(a) * np.linalg.norm(d))))
        signed = summ.oracle_signed
        assert signed["n"] == len(cos) >= 2, name
        assert signed["mean"] == pytest.approx(np.mean(cos), rel=1e-9), name
        assert signed["ci_low"] <= signed["ci_high"]
    d = json.loads(result.to_json())
    assert set(d["signals"]["tempo"]["oracle_signed"]) == {"mean", "ci_low", "ci_high", "n", "zero_rows"}
    assert "signed cos" in result.table()


def test_group_methods_absent_without_a_reward(peft_model, tok):
    res = diagnose(peft_model, tok, PROMPTS, k=2, max_new_tokens=3, progress=False)
    for name in group_credit.registered_group_methods():
        assert name not in res.signals
        assert ("the Monte Carlo oracle itself" if name == "vine" else "needs the completions' rewards") in res.absent[
            name
        ]
    assert "uniform" in res.signals
