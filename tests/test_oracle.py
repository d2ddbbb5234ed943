"""`arca_rl.oracle`: Monte Carlo token values and the scores of a signal against them.

The values are checked against closed forms: exactly for deterministic policies (a scripted one, and
greedy decoding of a tiny random Qwen3 compared with `generate` from every prefix), within 4 standard
errors for a stochastic one (a Qwen3 whose logits are all equal, so every token is uniform).
"""

from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from scipy.stats import t as student_t

from arca_rl.oracle import (
    OracleRow,
    check_samples,
    estimate_rollouts,
    mc_estimate,
    oracle_credit,
    oracle_lift,
    oracle_values,
    row_spearman,
    score_signal,
    top_match,
)
from arca_rl.oracle.sampler import model_sampler
from tiny import char_tokenizer, tiny_model

EOS = 99


# -----------------------------------------------------------------------------
# pure functions


def test_mc_estimate_binary_and_real_rewards():
    m, se = mc_estimate([1.0, 0.0, 1.0, 1.0])
    assert m == 0.75 and se == pytest.approx(math.sqrt(0.75 * 0.25 / 4), rel=1e-15)
    assert mc_estimate([1.0] * 5) == (1.0, 0.0)
    xs = [0.5, 2.0, -1.0, 3.5]
    m, se = mc_estimate(xs)
    assert m == pytest.approx(np.mean(xs)) and se == pytest.approx(np.std(xs, ddof=1) / 2, rel=1e-12)
    m, se = mc_estimate([0.3])
    assert m == 0.3 and math.isnan(se)  # one real-valued sample: no spread to estimate


def test_row_indexing_delta_credit_and_no_signal_flag():
    row = OracleRow(values=[0.5, 0.75, 0.75, 1.0], stderr=[0.1, 0.1, 0.1, 0.0], samples=16)
    assert row.length == 3 and row.delta == [0.25, 0.0, 0.25]
    assert row.credit == [0.5, 0.0, 0.5]
    # delta[0] = 0.25 is within 2 * hypot(0.1, 0.1) = 0.283, but delta[2] = 0.25 > 2 * hypot(0.1, 0) = 0.2
    assert not row.no_signal
    quiet = OracleRow(values=[0.5, 0.6, 0.55], stderr=[0.1, 0.1, 0.0], samples=4)
    assert quiet.no_signal  # 0.1 <= 2 * 0.141 and 0.05 <= 2 * 0.1
    flat = OracleRow(values=[1.0, 1.0, 1.0], stderr=[0.0, 0.0, 0.0], samples=4)
    assert flat.credit is None and flat.no_signal
    d = row.to_dict()
    assert d["values"] == row.values and d["delta"] == row.delta and d["samples"] == 16
    assert len(d["stderr"]) == 4 and d["stderr"][-1] == 0.0
    unknown = OracleRow(values=[0.2, 0.3], stderr=[math.nan, 0.0], samples=1)
    assert not unknown.no_signal and unknown.to_dict()["stderr"] == [None, 0.0]


def test_check_samples_rejects_bad_k():
    assert check_samples(3) == 3
    for bad in (0, -2, 1.5, True, "4", None):
        with pytest.raises(ValueError, match="oracle_samples must be an integer >= 1"):
            check_samples(bad)


def _random_deltas(rng: random.Random, T: int) -> list[float]:
    return [rng.choice([0.0, rng.uniform(-1, 1)]) for _ in range(T - 1)] + [rng.uniform(0.1, 1)]


def test_uniform_lift_is_exactly_one_and_w_equal_o_gives_T_sum_o_squared():
    rng = random.Random(0)
    for T in (1, 2, 3, 7, 31, 100):
        for _ in range(5):
            d = _random_deltas(rng, T)
            # float32-rounded uniform weights, as token_weights makes them
            w = [float(np.float32(1.0 / T))] * T
            assert oracle_lift(w, d) == 1.0
            assert oracle_lift([1.0] * T, d) == 1.0
            o = np.abs(np.array(d)) / np.abs(np.array(d)).sum()
            assert oracle_lift(list(o), d) == pytest.approx(T * float((o**2).sum()), rel=1e-12)
            # all weight on the largest |delta|: T * max o
            one_hot = [0.0] * T
            one_hot[int(np.argmax(o))] = 1.0
            assert oracle_lift(one_hot, d) == pytest.approx(T * float(o.max()), rel=1e-12)
    assert oracle_lift([0.5, 0.5], [0.0, 0.0]) is None
    assert oracle_credit([0.0, -0.0]) is None
    with pytest.raises(ValueError, match="weights have 2 tokens but the oracle row has 3"):
        oracle_lift([0.5, 0.5], [0.1, 0.2, 0.3])


def hand_spearman(a: list[float], b: list[float]) -> float | None:
    """Pearson correlation of average ranks, written out (independent of scipy)."""

    def ranks(x: list[float]) -> list[float]:
        return [sum(y < v for y in x) + (sum(y == v for y in x) + 1) / 2 for v in x]

    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    va = sum((r - ma) ** 2 for r in ra)
    vb = sum((r - mb) ** 2 for r in rb)
    if va == 0 or vb == 0:
        return None
    return sum((x - ma) * (y - mb) for x, y in zip(ra, rb)) / math.sqrt(va * vb)


def test_row_spearman_matches_an_independent_rank_correlation():
    rng = random.Random(1)
    for _ in range(20):
        T = rng.randint(2, 12)
        a = [float(rng.randint(0, 4)) for _ in range(T)]  # ties on purpose
        d = [rng.choice([-1, 1]) * float(rng.randint(0, 3)) for _ in range(T)]
        expect = hand_spearman(a, [abs(x) for x in d])
        got = row_spearman(a, d)
        assert (got is None) == (expect is None)
        if got is not None:
            assert got == pytest.approx(expect, abs=1e-12)
    assert row_spearman([1.0, 1.0, 1.0], [0.1, 0.5, 0.2]) is None  # constant salience
    assert row_spearman([1.0, 2.0], [0.3, -0.3]) is None  # constant |delta|
    assert row_spearman([1.0], [0.3]) is None


def test_top_match_splits_ties():
    assert top_match([0.1, 0.7, 0.2], [0.0, -0.5, 0.2]) == 1.0
    assert top_match([0.7, 0.1, 0.2], [0.0, -0.5, 0.2]) == 0.0
    assert top_match([0.25] * 4, [0.0, 0.9, 0.1, 0.0]) == 0.25  # uniform: a random guess
    assert top_match([0.5, 0.5, 0.0], [0.3, -0.3, 0.0]) == 0.5  # |A & B| / (|A| |B|) = 2 / 4
    assert top_match([0.5, 0.5], [0.0, 0.0]) is None


def test_score_signal_leaves_zero_rows_out_and_gives_a_t_interval():
    deltas = [[0.5, 0.0, 0.5], [0.0, 0.0], [0.1, 0.3], None, [0.2, -0.2, 0.0, 0.6]]
    weights = [[0.6, 0.2, 0.2], [0.5, 0.5], [0.1, 0.9], [1.0], [0.1, 0.2, 0.3, 0.4]]
    sal = [[3.0, 1.0, 1.0], [1.0, 2.0], [1.0, 9.0], [1.0], [1.0, 2.0, 3.0, 4.0]]
    s = score_signal(weights, sal, deltas)
    assert s.rows == 3 and s.zero_rows == 1
    lifts = [oracle_lift(weights[r], deltas[r]) for r in (0, 2, 4)]
    mean = float(np.mean(lifts))
    half = float(student_t.ppf(0.975, 2)) * float(np.std(lifts, ddof=1)) / math.sqrt(3)
    assert s.oracle_lift == pytest.approx(mean, rel=1e-12)
    assert s.ci_low == pytest.approx(mean - half, rel=1e-9) and s.ci_high == pytest.approx(
        mean + half, rel=1e-9
    )
    assert s.oracle_top_match == pytest.approx((0.5 + 1 + 1) / 3)  # row 0: the oracle ties tokens 0 and 2
    rhos = [row_spearman(sal[r], deltas[r]) for r in (0, 2, 4)]
    assert s.spearman_n == 3 and s.oracle_spearman == pytest.approx(float(np.mean(rhos)))
    uni = score_signal([[1 / len(w)] * len(w) for w in weights], None, deltas)
    assert uni.oracle_lift == uni.ci_low == uni.ci_high == 1.0 and uni.oracle_spearman is None
    assert s.lift_dict() == {"mean": s.oracle_lift, "ci_low": s.ci_low, "ci_high": s.ci_high, "n": 3}


def test_estimate_rollouts():
    # prompt 1: V_0 + prefixes 1..3 and 1..0; prompt 2: V_0 + prefix 1
    assert estimate_rollouts([[4, 1], [2]], 8) == 8 * ((1 + 3 + 0) + (1 + 1))
    assert estimate_rollouts([[], [3]], 2) == 2 * 3


# -----------------------------------------------------------------------------
# the values, on scripted policies


def _scripted(fill: int, stop_at: int | None):
    """A deterministic policy: append `fill` until the completion has `stop_at` tokens, then EOS
    (never, when stop_at is None); returns the sampler and the list of calls it got."""
    calls: list[tuple[list[int], list[int], list[int]]] = []

    def sampler(seq, cuts, budgets):
        calls.append((list(seq), list(cuts), list(budgets)))
        out = []
        for c, b in zip(cuts, budgets):
            done = c - PROMPT_LEN
            new: list[int] = []
            while len(new) < b:
                if stop_at is not None and done + len(new) >= stop_at:
                    new.append(EOS)
                    break
                new.append(fill)
            out.append(new)
        return out

    return sampler, calls


PROMPT_LEN = 3


def _count_twos(group, comps):
    return [sum(t == 2 for t in c) / 4 for c in comps]


def test_values_exact_for_a_deterministic_scripted_policy():
    # the policy only ever adds 1s, so V_t = (2s among y_1..y_t) / 4, exactly
    sampler, calls = _scripted(fill=1, stop_at=3)
    y = [2, 1, 2, EOS]
    z = [1, 2, EOS]
    groups = [([7, 8, 9], [(y, _count_twos(0, [y])[0]), (z, _count_twos(0, [z])[0])])]
    rows = oracle_values(groups, sampler, _count_twos, samples=3, max_new_tokens=6, positions="all")
    ry, rz = rows[0]
    assert ry.values == [0.0, 0.25, 0.25, 0.5, 0.5] and ry.delta == [0.25, 0.0, 0.25, 0.0]
    assert ry.stderr == [0.0] * 5 and ry.samples == 3
    assert rz.values == [0.0, 0.0, 0.25, 0.25]
    assert ry.credit == [0.5, 0.0, 0.5, 0.0]
    # one call per completion; V_0 (cut = prompt length) only in the first completion's call
    assert len(calls) == 2
    assert calls[0][0] == [7, 8, 9, 2, 1, 2] and sorted(set(calls[0][1])) == [3, 4, 5, 6]
    assert calls[1][0] == [7, 8, 9, 1, 2] and sorted(set(calls[1][1])) == [4, 5]
    assert all(len(c[1]) == 3 * len(set(c[1])) for c in calls)  # K rows per prefix
    # budgets: a t-token prefix gets max_new_tokens - t
    for _seq, cuts, budgets in calls:
        assert all(b == 6 - (c - PROMPT_LEN) for c, b in zip(cuts, budgets))


def test_continuations_never_exceed_the_rollout_length():
    # a policy that never stops: every continuation is cut at max_new_tokens in total, so a reward
    # equal to the completion's length gives V_t = max_new_tokens for every t < T
    sampler, _ = _scripted(fill=5, stop_at=None)
    y = [5, 5, 5, 5, 5]

    def length(group, comps):
        return [float(len(c)) for c in comps]

    rows = oracle_values([([1, 2, 3], [(y, 5.0)])], sampler, length, samples=2, max_new_tokens=5, positions="all")
    assert rows[0][0].values == [5.0] * 6 and rows[0][0].credit is None
    assert rows[0][0].stderr[:-1] == [0.0] * 5  # real-valued rewards: the sample std / sqrt(K)


@pytest.mark.parametrize("bad", [math.nan, None, "x", math.inf])
def test_bad_rewards_are_refused(bad):
    sampler, calls = _scripted(fill=1, stop_at=2)
    with pytest.raises(ValueError, match="reward function returned .* completion 0 of prompt 0"):
        oracle_values([([1, 2, 3], [([1, EOS], bad)])], sampler, _count_twos, samples=2, max_new_tokens=4)
    assert calls == []  # refused before any continuation is sampled

    def bad_reward(group, comps):
        return [bad] * len(comps)

    with pytest.raises(ValueError, match="reward function returned .* continuation of prompt 0"):
        oracle_values([([1, 2, 3], [([1, EOS], 0.0)])], sampler, bad_reward, samples=2, max_new_tokens=4)


def test_oracle_values_argument_errors():
    sampler, _ = _scripted(fill=1, stop_at=2)
    with pytest.raises(ValueError, match="oracle_samples must be an integer >= 1"):
        oracle_values([([1], [([1], 0.0)])], sampler, _count_twos, samples=0, max_new_tokens=4)
    with pytest.raises(ValueError, match="more than max_new_tokens=2"):
        oracle_values([([1], [([1, 1, 1], 0.0)])], sampler, _count_twos, samples=1, max_new_tokens=2)


def test_batch_rows_splits_calls_without_changing_values():
    sampler, calls = _scripted(fill=1, stop_at=3)
    y = [2, 1, 2, EOS]
    a = oracle_values(
        [([7, 8, 9], [(y, 0.5)])], sampler, _count_twos, samples=3, max_new_tokens=6, batch_rows=5, positions="all"
    )
    assert len(calls) == math.ceil(4 * 3 / 5)
    assert a[0][0].values == [0.0, 0.25, 0.25, 0.5, 0.5]


# -----------------------------------------------------------------------------
# the values, on a real transformers model


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


@pytest.fixture(scope="module")
def shipped():
    """The shipped warm-started model: its greedy continuations depend on position and context (a
    random tiny model just repeats its last token, which would not notice a wrong position)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from arca_rl.tasks import TINY_MODEL_PATH

    return AutoModelForCausalLM.from_pretrained(
        TINY_MODEL_PATH, dtype=torch.float32
    ).eval(), AutoTokenizer.from_pretrained(TINY_MODEL_PATH)


def _generate_from(model, eos: int, pad: int, seq: list[int], budget: int) -> list[int]:
    with torch.no_grad():
        out = model.generate(
            torch.tensor([seq]),
            attention_mask=torch.ones(1, len(seq), dtype=torch.long),
            do_sample=False,
            max_new_tokens=budget,
            pad_token_id=pad,
            eos_token_id=eos,
        )
    new = out[0, len(seq) :].tolist()
    if eos in new:
        new = new[: new.index(eos) + 1]
    return new


@pytest.mark.parametrize("adapter", [False, True])
def test_model_sampler_greedy_equals_generate_from_each_prefix(shipped, adapter):
    """Greedy decoding is deterministic, so the shared-prefix sampler must give exactly what
    `generate` gives from each prefix on its own (a wrong position or a visible masked position
    changes the continuations)."""
    base, tok = shipped
    model = base
    if adapter:
        torch.manual_seed(2)
        cfg = LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        model = get_peft_model(copy.deepcopy(base), cfg).eval()
    prompt = tok("Q: 80+33+95=?\nA: ", add_special_tokens=False)["input_ids"]
    y = tok("80+33=113. 113+95=208. \\boxed{208}", add_special_tokens=False)["input_ids"]
    seq, P = prompt + y, len(prompt)
    cuts = list(range(P, len(seq) + 1, 3)) * 2
    budgets = [32 - (c - P) for c in cuts]
    eos, pad = tok.eos_token_id, tok.pad_token_id
    sampler = model_sampler(model, temperature=0.0, top_p=1.0, eos_ids=[eos])
    got = sampler(seq, cuts, budgets)
    distinct = set()
    for c, b, g in zip(cuts, budgets, got):
        assert g == _generate_from(model, eos, pad, seq[:c], b), f"prefix of {c} tokens"
        assert 1 <= len(g) <= b
        distinct.add(tuple(g))
    assert len(distinct) >= len(cuts) // 2 - 1  # the continuations differ from prefix to prefix


def _uniform_model(tok):
    """All logits equal (the final norm's weight is 0, so the LM head reads a zero vector): every
    token, EOS included, has probability 1 / V at every step."""
    model = tiny_model(tok, seed=0)
    with torch.no_grad():
        model.model.norm.weight.zero_()
    return model.eval()


def test_values_within_4_standard_errors_of_the_closed_form_on_a_stochastic_policy(tok):
    model = _uniform_model(tok)
    V = model.config.vocab_size
    good = set(tok.convert_tokens_to_ids(list("0123456789abcdefghijklmnopqrstuvwxyz")))
    q = len(good) / V
    eos = tok.eos_token_id

    def second_is_good(group, comps):
        return [1.0 if len(c) >= 2 and c[1] in good else 0.0 for c in comps]

    y = tok("a7b", add_special_tokens=False)["input_ids"] + [eos]  # y_2 = "7" is good: R(y) = 1
    prompt = tok("Q:", add_special_tokens=False)["input_ids"]
    K = 600
    torch.manual_seed(0)
    sampler = model_sampler(model, temperature=1.0, top_p=1.0, eos_ids=[eos])
    (row,) = oracle_values(
        [(prompt, [(y, 1.0)])], sampler, second_is_good, samples=K, max_new_tokens=6, positions="all"
    )[0]
    # V_0: y_1 must not be EOS, then y_2 good; V_1: y_2 good; V_t = R(y) = 1 once y_2 is fixed
    exact = [(1 - 1 / V) * q, q, 1.0, 1.0, 1.0]
    assert len(row.values) == len(y) + 1
    for t in (0, 1):
        se = math.sqrt(exact[t] * (1 - exact[t]) / K)
        assert abs(row.values[t] - exact[t]) <= 4 * se, (t, row.values[t], exact[t])
        assert row.stderr[t] == pytest.approx(math.sqrt(row.values[t] * (1 - row.values[t]) / K))
    assert row.values[2:] == exact[2:] and row.stderr[2:] == [0.0, 0.0, 0.0]


def test_model_sampler_respects_budgets_and_stops_at_eos(tok):
    model = _uniform_model(tok)
    eos = tok.eos_token_id
    torch.manual_seed(1)
    sampler = model_sampler(model, temperature=1.0, top_p=1.0, eos_ids=[eos])
    seq = tok("1+1=22", add_special_tokens=False)["input_ids"]
    cuts = [4, 5, 6] * 200
    budgets = [1, 3, 7] * 200
    got = sampler(seq, cuts, budgets)
    assert all(1 <= len(g) <= b for g, b in zip(got, budgets))
    assert all(eos not in g[:-1] for g in got)
    assert any(len(g) == 7 and g[-1] != eos for g in got)  # some rows run to their budget
    assert any(g and g[-1] == eos for g in got)  # some stop at EOS (1/V per step)
    with pytest.raises(ValueError, match="each cut must be in 1 .. len"):
        sampler(seq, [len(seq) + 1], [2])


def test_the_oracle_streams_so_memory_does_not_grow_with_k():
    """With K far above batch_rows, no sampler call or reward call ever holds more than batch_rows
    continuations, and the values equal mc_estimate over the same rewards (recomputed here)."""
    calls: list[int] = []

    def sampler(seq, cuts, budgets):
        calls.append(len(cuts))
        return [[(c + i) % 3] for i, c in enumerate(cuts)]  # deterministic continuations

    seen: list[list[float]] = []

    def reward(g, comps):
        assert len(comps) <= 7
        out = [float(sum(x) % 2) for x in comps]
        seen.append(out)
        return out

    K, y = 50, [1, 2, 0]
    (row,) = oracle_values(
        [([5, 6], [(y, 1.0)])], sampler, reward, samples=K, max_new_tokens=4, batch_rows=7, positions="all"
    )[0]
    assert max(calls) <= 7 and sum(calls) == K * 3  # V_0 and the prefixes of 1 and 2 tokens
    flat = [r for chunk in seen for r in chunk]
    by_cut = [flat[i * K:(i + 1) * K] for i in range(3)]  # rows are drawn cut by cut
    for t in range(3):
        assert (row.values[t], row.stderr[t]) == mc_estimate(by_cut[t])


def test_the_oracle_refuses_a_request_too_large_before_any_model_loads(monkeypatch, capsys):
    import arca_rl._demo as demo
    import arca_rl._run.evaluation as ev
    from arca_rl.cli import main

    for module in (ev, demo):  # _demo holds the name from its own import
        monkeypatch.setattr(
            module, "load_model_for_eval", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded"))
        )
    assert main(["diagnose", "--task", "arithmetic", "--n", "2", "--k", "2", "--oracle", "100000000", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--oracle" in err[0] and "51,000,000,000" in err[0], err  # 1e8 x (2 + 2 x 2 x 127)
