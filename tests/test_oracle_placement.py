"""`arca_rl.oracle.placement`: a method scored at the resolution the oracle measured (per token on exhaustive rows, per
estimated interval on adaptive ones, single-interval rows left out), beside its shuffled control, with per-prompt
bootstrap intervals; the reference rows (`answer_only`, `inverted:<method>`) and answer spans.

Every figure is checked against an independent computation: numpy/scipy by hand, brute force over every
permutation of a short row, and, for exhaustive rows, the per-token scoring as it was (same process, bit for bit)."""

from __future__ import annotations

import itertools
import json
import math
import random

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from scipy.stats import spearmanr

from arca_rl._diagnose import diagnose
from arca_rl._diagnose.references import answer_tokens
from arca_rl.diagnostics import gini
from arca_rl.oracle import (
    Measured,
    OracleRow,
    cluster_bootstrap,
    rank_reversal,
    row_measures,
    score_method,
    score_signal,
    score_signed,
    segment_advantages,
    shuffled_measures,
)
from arca_rl.tasks import AnswerSpan, get_task
from tiny import char_tokenizer, tiny_model


def adaptive(values_at: dict[int, float], T: int) -> Measured:
    """An adaptive row estimated at `values_at` (0 and T included), interpolated in between."""
    pos = sorted(values_at)
    values = [0.0] * (T + 1)
    for a, b in zip(pos[:-1], pos[1:]):
        for t in range(a, b + 1):
            values[t] = values_at[a] + (t - a) * (values_at[b] - values_at[a]) / (b - a)
    stderr = [0.1 if t in values_at else math.nan for t in range(T + 1)]
    return Measured.of(OracleRow(values=values, stderr=stderr, samples=8, estimated=pos))


def exhaustive(values: list[float]) -> Measured:
    return Measured.of(OracleRow(values=values, stderr=[0.1] * len(values), samples=8))


# ---- per measured interval ----------------------------------------------------------------------------------------


def test_an_adaptive_row_is_scored_per_measured_interval():
    # T = 6, estimated at 0, 2, 6: intervals (0, 2] (V 0.2 -> 0.9) and (2, 6] (0.9 -> 1.0)
    m = adaptive({0: 0.2, 2: 0.9, 6: 1.0}, 6)
    assert m.bounds == (0, 2, 6) and m.change == pytest.approx((0.7, 0.1)) and m.resolved
    w = np.array([0.05, 0.05, 0.4, 0.1, 0.3, 0.1])
    adv = [0.5, -1.0, 2.0, 0.0, 1.5, 0.25]
    got = row_measures(m, list(w), list(w * 9.0), adv)
    mass = np.array([w[:2].sum(), w[2:].sum()])  # 0.1, 0.9
    c = np.array([0.7, 0.1])
    L = np.array([2, 4])
    assert got["lift"] == pytest.approx(6 * np.sum(np.abs(c) * mass / L) / (np.abs(c).sum() * mass.sum()), rel=1e-12)
    assert got["spearman"] == pytest.approx(spearmanr(mass, np.abs(c)).statistic)  # -1: mass on the small change
    assert got["top_match"] == 0.0  # most mass on (2, 6], the largest change is (0, 2]
    s = np.array([sum(adv[:2]), sum(adv[2:])])
    assert got["signed"] == pytest.approx(s @ c / (np.linalg.norm(s) * np.linalg.norm(c)), rel=1e-12)
    # uniform credit: lift exactly 1, its mass follows the intervals' lengths
    uni = row_measures(m, [1 / 6] * 6, [1.0] * 6)
    assert uni["lift"] == 1.0 and uni["top_match"] == 0.0 and uni["spearman"] == pytest.approx(-1.0)


def test_one_token_intervals_score_as_the_per_token_measures():
    """An adaptive row that localised every token is scored as the exhaustive row with the same values."""
    values = [0.25, 0.5, 0.5, 1.0, 0.75]
    full = exhaustive(values)
    split = adaptive(dict(enumerate(values)), 4)
    w = [0.1, 0.2, 0.3, 0.4]
    a = [1.0, -0.5, 2.0, 0.25]
    one, two = row_measures(full, w, w, a), row_measures(split, w, w, a)
    for k in ("lift", "spearman", "top_match", "signed"):
        assert one[k] == pytest.approx(two[k], rel=1e-12), k


def test_single_interval_rows_carry_no_signal_and_are_counted():
    flat = adaptive({0: 0.5, 5: 1.0}, 5)  # one interval: every weighting puts all its mass there
    assert not flat.resolved and row_measures(flat, [0.6, 0.1, 0.1, 0.1, 0.1])["lift"] == 1.0
    moving = adaptive({0: 0.0, 1: 1.0, 5: 1.0}, 5)
    zero = adaptive({0: 1.0, 2: 1.0, 5: 1.0}, 5)  # two intervals, nothing changed
    rows = [flat, moving, None, zero, flat]
    peaked = [[0.6, 0.1, 0.1, 0.1, 0.1]] * 5
    got = score_method(rows, [0, 0, 1, 1, 2], peaked, None, [[1.0] * 5] * 5)
    assert (got.rows, got.unresolved_rows, got.zero_rows) == (1, 2, 1)
    for k, est in got.scores.items():
        assert est.n == (0 if k == "spearman" else 1), k  # no ranked values given: no rank measure
    assert got.scores["lift"].mean == pytest.approx(5 * 0.6)  # (0, 1] holds all the change and 0.6 of the mass


def test_exhaustive_rows_score_bit_for_bit_as_the_per_token_scores():
    """Same process, same rows: the means over exhaustive rows are the per-completion aggregates' to the last bit
    (only the intervals change: a bootstrap over prompts)."""
    rng = random.Random(0)
    rows, weights, sal, adv, deltas, prompts = [], [], [], [], [], []
    for r in range(24):
        T = rng.randint(2, 9)
        values = [rng.choice([0.0, 0.125, 0.25, 0.5, 0.75, 1.0]) for _ in range(T + 1)]
        if r % 7 == 0:
            values = [values[0]] * (T + 1)  # a zero row
        row = OracleRow(values=values, stderr=[0.1] * (T + 1), samples=8)
        raw = [rng.random() for _ in range(T)]
        w = [x / sum(raw) for x in raw]
        a_i = rng.choice([-1.0, 0.0, 0.7])
        rows.append(Measured.of(row.to_dict()))
        weights.append(w)
        sal.append([x * 3 for x in raw])
        adv.append([a_i * x * T for x in w])
        deltas.append(row.delta)
        prompts.append(r // 3)
    old, old_signed = score_signal(weights, sal, deltas), score_signed(adv, deltas)
    new = score_method(rows, prompts, weights, sal, adv)
    assert new.scores["lift"].mean == old.oracle_lift and new.scores["lift"].n == old.rows
    assert new.scores["spearman"].mean == old.oracle_spearman and new.scores["spearman"].n == old.spearman_n
    assert new.scores["top_match"].mean == old.oracle_top_match
    assert new.scores["signed"].mean == old_signed["mean"] and new.scores["signed"].n == old_signed["n"]
    assert new.zero_rows == old.zero_rows and new.zero_rows + new.signed_zero_rows == old_signed["zero_rows"]


# ---- shuffled controls ----------------------------------------------------------------------------------------------


def brute_force(m: Measured, w, ranked, adv) -> dict[str, float]:
    """The mean of each measure over every permutation of the row's tokens (undefined ones left out)."""
    got: dict[str, list[float]] = {}
    for p in itertools.permutations(range(m.length)):
        sc = row_measures(m, [w[i] for i in p], [ranked[i] for i in p], [adv[i] for i in p])
        for k, v in sc.items():
            if v is not None:
                got.setdefault(k, []).append(v)
    return {k: float(np.mean(v)) for k, v in got.items()}


@pytest.mark.parametrize("kind", ["exhaustive", "adaptive"])
def test_shuffled_control_is_the_mean_over_every_permutation(kind):
    if kind == "exhaustive":
        m = exhaustive([0.25, 0.5, 0.5, 1.0, 0.75, 1.0])
    else:
        m = adaptive({0: 0.25, 2: 0.75, 3: 0.5, 5: 1.0}, 5)
    w = [0.5, 0.2, 0.15, 0.1, 0.05]
    ranked = [5.0, 2.0, 1.5, 1.0, 0.5]
    adv = [x * 5 * 0.8 for x in w]
    want = brute_force(m, w, ranked, adv)
    got = shuffled_measures(m, w, ranked, adv, permutations=4000, seed=(3,))
    assert got["lift"] == want["lift"] == pytest.approx(1.0)  # exactly 1 by linearity
    tol = 1e-12 if kind == "exhaustive" else 0.02  # closed forms, or 4000 seeded draws
    for k in ("spearman", "top_match", "signed"):
        assert got[k] == pytest.approx(want[k], abs=tol), k


def test_placement_is_zero_for_uniform_and_for_weights_at_a_random_place():
    m = adaptive({0: 0.25, 2: 0.75, 3: 0.5, 5: 1.0}, 5)
    uni = [0.2] * 5
    sc, sh = row_measures(m, uni, uni, [1.0] * 5), shuffled_measures(m, uni, uni, [1.0] * 5)
    assert all(sc[k] == sh[k] for k in sc)  # a permutation of uniform weights is uniform: placement exactly 0
    # a measure that only sees concentration: averaged over every place the same weights could sit, placement is 0
    w = [0.6, 0.25, 0.1, 0.05, 0.0]
    perms = list(itertools.permutations(range(5)))
    for k in ("signed", "top_match"):
        placement = []
        for p in perms:
            wp = [w[i] for i in p]
            placement.append(row_measures(m, wp, wp, wp)[k] - shuffled_measures(m, wp, wp, wp, permutations=4000)[k])
        assert np.mean(placement) == pytest.approx(0.0, abs=0.02), k
    # ... while the raw signed measure of those weights is below uniform's on average: concentration alone
    raw = np.mean([row_measures(m, [w[i] for i in p], None, [w[i] for i in p])["signed"] for p in perms])
    assert raw < sc["signed"] - 0.05


def test_rank_reversal():
    w = [0.5, 0.1, 0.3, 0.05, 0.05]
    flip = rank_reversal(w)
    got = flip(w)
    # sorted by weight the slots hold 0.05, 0.05 (tokens 3, 4), 0.1, 0.3, 0.5: the largest (token 0) and the 2nd
    # (token 2) get the two bottom slots' 0.05, the middle keeps 0.1, and the tied bottom two share 0.5 and 0.3
    assert got == pytest.approx([0.05, 0.1, 0.05, 0.4, 0.4]) and math.fsum(got) == pytest.approx(1.0)
    no_ties = [0.4, 0.1, 0.3, 0.2]
    once = rank_reversal(no_ties)(no_ties)
    assert once == [0.1, 0.4, 0.2, 0.3] and rank_reversal(once)(once) == no_ties
    ones = torch.ones(1, 4, dtype=torch.bool)
    assert float(gini(torch.tensor([once]), ones)) == pytest.approx(float(gini(torch.tensor([no_ties]), ones)))
    assert rank_reversal([0.25] * 4)([1.0, 2.0, 3.0, 4.0]) == [2.5] * 4  # uniform: all tied, every value evened
    assert rank_reversal([0.25] * 4)([0.25] * 4) == [0.25] * 4


def test_cluster_bootstrap_resamples_prompts():
    assert cluster_bootstrap([1.0, 2.0], [0, 0]) == (None, None)  # one prompt: nothing to resample
    assert cluster_bootstrap([1.0] * 6, [0, 0, 1, 1, 2, 2]) == (1.0, 1.0)
    # 40 prompts x 5 completions that share their prompt's value: the spread is the prompts', not 200 i.i.d. rows'
    rng = np.random.default_rng(1)
    means = rng.normal(size=40)
    values = np.repeat(means, 5)
    lo, hi = cluster_bootstrap(list(values), list(np.repeat(np.arange(40), 5)), resamples=4000)
    half = 1.96 * means.std(ddof=0) / math.sqrt(40)  # the normal interval of a mean of 40 independent prompts
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.15)
    iid = 1.96 * values.std(ddof=0) / math.sqrt(200)
    assert (hi - lo) / 2 > 1.8 * iid  # treating completions as independent would be sqrt(5) = 2.2x too narrow


# ---- vine's step form -----------------------------------------------------------------------------------------------


def test_segment_advantages_give_each_token_its_intervals_whole_change():
    values = [0.25, 0.0, 0.0, 0.75, 0.0, 1.0]
    assert segment_advantages(values, [0, 3, 4, 5]) == [0.5, 0.5, 0.5, -0.75, 1.0]
    assert segment_advantages(values, None) == [b - a for a, b in zip(values[:-1], values[1:])]
    row = OracleRow(values=[0.5, 0.0, 0.0, 1.0], stderr=[0.1, math.nan, math.nan, 0.0], samples=4, estimated=[0, 3])
    assert row.segment_advantages() == [0.5] * 3 and not row.resolved and row.intervals() == [(0, 3, 0.5)]


# ---- answer spans and reference rows --------------------------------------------------------------------------------


def test_answer_spans_follow_each_tasks_answer_extraction():
    text = "12+7=19. \\boxed{ 19 } done"
    span = get_task("arithmetic").answer_span(text)
    s, e = span.content_start, span.content_end  # the answer itself (the reference row's credit), not its box
    assert text[s:e] == "19" and s == text.index("{ 19") + 2
    assert get_task("arithmetic").answer_span("no box 19") is None
    add = get_task("addition")
    span = add.answer_span("the sum is 12 then 34")
    assert "the sum is 12 then 34"[span.content_start : span.content_end] == "34"
    tok = char_tokenizer()
    ids = tok("ab\\boxed{19}", add_special_tokens=False)["input_ids"]
    text = tok.decode(ids, skip_special_tokens=True)  # this tokenizer decodes with a space between tokens
    start = text.index("1")
    assert answer_tokens(tok, ids, (start, start + len("1 9"))) == [9, 11]  # the characters of "19": tokens 9, 10
    assert answer_tokens(tok, ids, (start + 2, start + 3)) == [10, 11]  # "9" alone
    assert answer_tokens(tok, ids, None) is None


@pytest.fixture(scope="module")
def result():
    tok = char_tokenizer()
    torch.manual_seed(1)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(tiny_model(tok, seed=0), cfg).eval()

    def odd_share(_i: int, text: str) -> float:
        return sum(ch in "13579" for ch in text) / max(len(text), 1)

    def last_digit(text: str) -> AnswerSpan | None:
        digits = [i for i, ch in enumerate(text) if ch.isdigit()]
        return AnswerSpan(digits[-1], digits[-1] + 1, digits[-1], digits[-1] + 1) if digits else None

    return diagnose(
        model, tok, ["12+7=", "3+45+6=", "8+8="], k=3, max_new_tokens=7, temperature=1.5, seed=0,
        rewards=odd_share, oracle_samples=4, progress=False, oracle_positions="all", answer_span=last_digit,
    )  # fmt: skip


def test_diagnose_reports_shuffled_controls_placement_and_reference_rows(result):
    d = json.loads(result.to_json())
    measures = {"lift", "spearman", "top_match", "signed"}
    for name, sig in d["signals"].items():
        assert set(sig["oracle_shuffled"]) == set(sig["oracle_placement"]) == measures, name
        # placement = score - shuffled, per row: its mean is the difference of the two means (same rows here)
        lift, shuf, place = sig["oracle_lift"], sig["oracle_shuffled"]["lift"], sig["oracle_placement"]["lift"]
        assert shuf["mean"] == 1.0 and place["mean"] == pytest.approx(lift["mean"] - 1.0, abs=1e-12)
    uni = d["signals"]["uniform"]["oracle_placement"]
    assert all(uni[k]["mean"] in (0.0, None) for k in measures)
    refs = d["references"]
    assert set(refs) == {"answer_only"} | {f"inverted:{s}" for s in d["signals"] if s != "uniform"}
    for rec in result.completions:  # the answer's tokens: the last digit of each completion
        digits = [i for i, ch in enumerate(rec.tokens) if ch.isdigit()]
        assert rec.answer_tokens == ([digits[-1], digits[-1] + 1] if digits else None)
    # answer_only's lift by hand: the oracle credit of the answer token (uniform where there is none)
    lifts = []
    for rec in result.completions:
        delta = np.abs(np.array(rec.oracle["delta"]))
        if delta.sum() == 0:
            continue
        o = delta / delta.sum()
        lifts.append(rec.length * (o[rec.answer_tokens[0]] if rec.answer_tokens else 1 / rec.length))
    assert refs["answer_only"]["oracle_lift"]["mean"] == pytest.approx(np.mean(lifts), rel=1e-9)
    assert result.settings["oracle_unresolved_rows"] == 0  # exhaustive rows are always resolved
    table = result.table()
    assert "placement" in table and "inverted:surprisal" in table and "answer_only" in table
