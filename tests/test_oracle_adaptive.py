"""The adaptive oracle (`positions="adaptive"`, the default) against the exhaustive one, and the exhaustive one against
today's output.

Scripted policies whose values are known in closed form: a completion whose value jumps at known tokens is
recovered exactly with far fewer prefixes; a flat one costs only V_0; an up-and-back-down inside a long interval is
found by the `max_gap` rule; an unsplit interval's change is spread evenly. `positions="all"` reproduces a fixture
made with the code before the adaptive oracle existed (commit e8dc31e: `diagnose` on the tiny model, and vine's
advantages on its completions): the same tokens and rollout counts, the oracle's numbers to float rounding, and the
signal statistics to the float32 rounding of another CPU (see `assert_matches`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model

from arca_rl._causal_lm import seeded
from arca_rl._diagnose import diagnose
from arca_rl.oracle import OracleRow, estimate_rollouts, oracle_values, step_boundaries
from arca_rl.oracle.sampler import model_sampler
from arca_rl.trainer.vine import vine_token_advantages
from tiny import char_tokenizer, tiny_model

EOS, UP, DOWN, FILL = 99, 7, 8, 1
PROMPT = [5, 6]


def filler_many(calls: list[list[tuple[int, int]]]):
    """A deterministic policy over several sequences (a `BatchSampler`): every continuation is one FILL token then EOS,
    so a prefix's value is the reward of the prefix itself. `calls` gets, per call, its (sequence, cut) rows."""

    def many(sequences, rows, cuts, budgets):
        calls.append([(s, c) for s, c in zip(rows, cuts)])
        assert all(1 <= c <= len(sequences[s]) for s, c in zip(rows, cuts))
        return [[FILL, EOS][:b] for b in budgets]

    def one(seq, cuts, budgets):
        return many([seq], [0] * len(cuts), cuts, budgets)

    one.many = many
    return one


def level(_g, comps):
    """Reward: (UP tokens - DOWN tokens) / 2 over the whole completion. With `filler_many`, V_t = level(y_1..y_t)."""
    return [(sum(t == UP for t in c) - sum(t == DOWN for t in c)) / 2 for c in comps]


def exact_values(y):
    """The closed form of every V_t, t = 0 .. T (V_0: the prompt alone, continued by FILL)."""
    return [level(0, [y[:t]])[0] for t in range(len(y) + 1)]


def run(groups, positions, **kw):
    calls: list = []
    sampled = []
    rows = oracle_values(groups, filler_many(calls), level, samples=4, max_new_tokens=80, positions=positions,
                         on_rollouts=sampled.append, **kw)  # fmt: skip
    return rows, sum(sampled), calls


def test_jumps_at_known_tokens_are_recovered_exactly_with_far_fewer_prefixes():
    T = 64
    y = [FILL] * T
    y[4], y[40] = UP, UP  # V jumps by 1/2 at t = 5 and t = 41
    y[-1] = EOS
    groups = [(PROMPT, [(y, level(0, [y])[0])])]
    ((ad,),), n_ad, calls = run(groups, "adaptive", max_gap=T)
    ((ex,),), n_ex, _ = run(groups, "all")
    assert ex.values == exact_values(y)  # the exhaustive oracle is exact here (deterministic policy)
    assert ad.delta == ex.delta and ad.credit == ex.credit  # every jump at its own token, nothing elsewhere
    assert ad.values == ex.values
    assert n_ex == estimate_rollouts([[T]], 4) == 4 * T
    # bisection: each jump costs about log2(64) = 6 prefixes, so at most 2 * 6 + a few, against 63
    assert n_ad <= 4 * (1 + 14) and n_ad * 4 <= n_ex, (n_ad, n_ex)
    est = ad.estimated
    assert est[0] == 0 and est[-1] == T and {4, 5, 40, 41} <= set(est)  # each jump bracketed by adjacent prefixes
    assert len(calls) >= 2 and all(len({s for s, _c in call}) == 1 for call in calls)


def test_a_flat_completion_costs_its_two_ends_only():
    T = 20
    y = [FILL] * (T - 1) + [EOS]
    ((row,),), n, calls = run([(PROMPT, [(y, 0.0)])], "adaptive")
    assert n == 4 and len(calls) == 1  # V_0 only; V_T is the completion's own reward
    assert row.estimated == [0, T] and row.delta == [0.0] * T and row.credit is None
    assert row.to_dict()["estimated"] == [0, T] and row.to_dict()["stderr"][1:-1] == [None] * (T - 1)


def test_one_sampler_call_per_round_over_every_completion():
    """Two prompts, three completions with jumps at different tokens: every round is one call, holding the rows of
    every completion that still has an interval to split (V_0 rides in the first round)."""
    a = [FILL] * 15 + [EOS]
    a[2] = UP
    b = [FILL] * 9 + [EOS]
    b[6] = DOWN
    c = [FILL] * 12 + [EOS]
    c[9] = UP
    groups = [(PROMPT, [(a, 0.5), (b, -0.5)]), ([4, 4, 4], [(c, 0.5)])]
    rows, n, calls = run(groups, "adaptive")
    for (_p, comps), got in zip(groups, rows):
        for (ids, _r), row in zip(comps, got):
            assert row.delta == [x - w for w, x in zip(exact_values(ids)[:-1], exact_values(ids)[1:])]
    # round 1: both V_0s; then the bisections run side by side, one call each round
    assert {(s, cut) for s, cut in calls[0]} == {(0, 2), (1, 3)}  # (sequence in this call, cut)
    assert len({s for s, _c in calls[1]}) == 3
    depth = max(math.ceil(math.log2(len(ids))) for _p, comps in groups for ids, _r in comps)
    assert len(calls) <= depth + 1
    assert n == 4 * (2 + sum(len(r.estimated) - 2 for got in rows for r in got))  # K x (2 V_0s + sampled prefixes)


def test_max_gap_finds_an_up_and_back_down_that_flat_ends_hide():
    T = 48
    y = [FILL] * T
    y[10], y[30] = UP, DOWN  # V_0 = V_T = 0, but V_t = 1/2 for t in 11 .. 30
    y[-1] = EOS
    groups = [(PROMPT, [(y, 0.0)])]
    ((blind,),), n_blind, _ = run(groups, "adaptive", max_gap=T)
    assert blind.credit is None and n_blind == 4  # both ends agree: nothing sampled in between
    ((seen,),), _n, _c = run(groups, "adaptive", max_gap=16)  # round 1 samples 12, 24, 36: 24 is up
    assert seen.delta == [x - w for w, x in zip(exact_values(y)[:-1], exact_values(y)[1:])]


def test_an_unsplit_interval_spreads_its_change_evenly():
    # a noisy policy (each continuation: UP or FILL at random, then EOS) and split_se so large that nothing splits:
    # only V_0, the max_gap grid and V_T are estimated
    rng = __import__("random").Random(3)

    def noisy(seq, cuts, budgets):
        return [[rng.choice([UP, FILL]), EOS][:b] for b in budgets]

    y = [FILL] * 11 + [UP]
    rows = oracle_values([(PROMPT, [(y, 0.5)])], noisy, level, samples=8, max_new_tokens=20, max_gap=4, split_se=1e9)
    row = rows[0][0]
    assert all(0 < row.stderr[t] < 1 for t in (0, 3, 6, 9))
    assert row.estimated == [0, 3, 6, 9, 12]  # midpoints until no interval is longer than 4: 6, then 3 and 9
    for a, b in zip(row.estimated[:-1], row.estimated[1:]):
        step = (row.values[b] - row.values[a]) / (b - a)
        assert row.delta[a:b] == [step] * (b - a)
        for t in range(a + 1, b):
            assert row.values[t] == pytest.approx(row.values[a] + (t - a) * step, abs=1e-15)
            assert math.isnan(row.stderr[t])
    assert math.fsum(row.delta) == pytest.approx(0.5 - row.values[0])  # sum_t delta_t = R - V_0


def test_step_boundaries_seed_the_first_round():
    assert step_boundaries(["12", "+", "3", "=", "15", ".", " So", "\n", "x"]) == [4, 6, 8]
    y = [FILL] * 9 + [EOS]
    ((row,),), n, calls = run([(PROMPT, [(y, 0.0)])], "adaptive", seeds=[[[3, 7, 0, 10]]])
    assert row.estimated == [0, 3, 7, 10] and n == 4 * 3 and len(calls) == 1  # out-of-range seeds are ignored


def test_no_signal_reads_the_estimated_positions():
    row = OracleRow(values=[0.5, 0.0, 0.0, 1.0], stderr=[0.1, math.nan, math.nan, 0.0], samples=4, estimated=[0, 3])
    assert row.delta == [0.5 / 3] * 3 and not row.no_signal  # 0.5 > 2 * hypot(0.1, 0)
    quiet = OracleRow(values=[0.5, 0, 0.6], stderr=[0.1, math.nan, 0.0], samples=4, estimated=[0, 2])
    assert quiet.no_signal and quiet.delta == [(0.6 - 0.5) / 2] * 2
    with pytest.raises(ValueError, match="estimated positions must ascend from 0 to T=2"):
        OracleRow(values=[0.5, 0.5, 0.6], stderr=[0.1, 0.1, 0.0], samples=4, estimated=[0, 1])


def test_bad_positions_are_refused_naming_the_argument():
    with pytest.raises(ValueError, match="positions must be one of adaptive, all"):
        run([(PROMPT, [([FILL, EOS], 0.0)])], "some")
    with pytest.raises(ValueError, match="max_gap must be an integer >= 1"):
        run([(PROMPT, [([FILL, EOS], 0.0)])], "adaptive", max_gap=0)


# -----------------------------------------------------------------------------
# on a transformers model


def test_many_sequences_in_one_call_equal_one_call_each():
    """Greedy decoding of the shipped model: a multi-sequence call (right-padded, caches selected per row) gives
    each row what a call on its own sequence gives."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from arca_rl.tasks import TINY_MODEL_PATH

    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL_PATH, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(TINY_MODEL_PATH)
    sampler = model_sampler(model, temperature=0.0, top_p=1.0, eos_ids=[tok.eos_token_id])
    s1 = tok("Q: 12+7=? A: 12+7=19", add_special_tokens=False)["input_ids"]
    s2 = tok("Q: 3+4=? A:", add_special_tokens=False)["input_ids"]
    rows, cuts, budgets = [0, 1, 0, 1], [5, len(s2), len(s1), 3], [6, 6, 4, 5]
    got = sampler.many([s1, s2], rows, cuts, budgets)
    one = [sampler([s1, s2][r], [c], [b])[0] for r, c, b in zip(rows, cuts, budgets)]
    assert got == one and any(len(g) > 1 for g in got)


@pytest.fixture(scope="module")
def fixture_data():
    return json.loads((Path(__file__).parent / "fixtures" / "oracle_exhaustive.json").read_text())


@pytest.fixture(scope="module")
def peft_setup():
    tok = char_tokenizer()
    torch.manual_seed(1)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(tiny_model(tok, seed=0), cfg).eval(), tok


def odd_share(_i: int, text: str) -> float:
    return sum(ch in "13579" for ch in text) / max(len(text), 1)


# The fixture was written on one CPU; another CPU sums float32 in another order (another SIMD width), so a number the
# model computed is reproduced to its rounding, not bit for bit. Tokens, counts and names must match exactly.
#  - Oracle values and vine's advantages are arithmetic on rewards (means of a few odd-digit shares, float32 at worst):
#    a few ulps, rel 1e-6 (float32 eps = 2**-23 ~ 1.2e-7).
#  - Signal statistics come from the tiny model's log-probs: an 80-way float32 log-softmax over a 32-wide, 2-layer
#    model is good to ~80 eps ~ 1e-5 relative, so rel 1e-4, abs 1e-5.
#  - entropy_reduction weights a token by the *difference* of two entropies of ~ln 80 = 4.4 (each good to ~80 eps x
#    4.4 ~ 4e-5 worst case); on this untrained model the drops are 1e-4 .. 2e-3, so a weight moves by up to a few
#    percent of itself and a statistic in [-1, 1] over 6 rows by ~1e-3 (seen between two x86 CPUs: 3.7e-4): abs 5e-3.
ORACLE_TOL = {"rel": 1e-6, "abs": 1e-7}
SIGNAL_TOL = {"rel": 1e-4, "abs": 1e-5}
ENTROPY_REDUCTION_TOL = {"rel": 1e-4, "abs": 5e-3}


def assert_matches(got, want, tol: dict[str, float], where: str = "") -> None:
    """`got` has `want`'s structure; floats within `tol` (pytest.approx), everything else (ints, str, None) equal."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), where
        for key in want:
            assert_matches(got[key], want[key], tol, f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_matches(g, w, tol, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert isinstance(got, int | float) and got == pytest.approx(want, **tol), (where, got, want)
    else:
        assert type(got) is type(want) and got == want, (where, got, want)


def _no_ci(x):
    return {k: v for k, v in x.items() if k not in ("ci_low", "ci_high")} if isinstance(x, dict) else x


def test_assert_matches_checks_structure_exactly_and_floats_to_the_tolerance():
    tol = {"rel": 0.0, "abs": 1e-3}
    assert_matches({"a": [1, 0.5, None, "x"]}, {"a": [1, 0.5005, None, "x"]}, tol)
    for got in ({"a": [2, 0.5, None, "x"]}, {"a": [1, 0.502, None, "x"]}, {"a": [1, 0.5, None]}, {"b": 1},
                {"a": [1, 0.5, 0.0, "x"]}):  # fmt: skip
        with pytest.raises(AssertionError):
            assert_matches(got, {"a": [1, 0.5, None, "x"]}, tol)


def test_all_reproduces_the_output_before_the_adaptive_oracle(fixture_data, peft_setup):
    model, tok = peft_setup
    res = diagnose(model, tok, ["12+7=", "3+45+6="], k=3, max_new_tokens=7, temperature=1.0, seed=5,
                   rewards=odd_share, oracle_samples=3, progress=False, oracle_positions="all")  # fmt: skip
    d = json.loads(json.dumps(res.to_dict()))
    want = fixture_data["diagnose"]
    assert [c["token_ids"] for c in d["completions"]] == [c["token_ids"] for c in want["completions"]]
    assert_matches([c["oracle"] for c in d["completions"]], [c["oracle"] for c in want["completions"]], ORACLE_TOL)
    # the fixture predates the self-teacher, which diagnose now scores too (it draws no random numbers)
    # the methods registered after the fixture was written: the self-teacher, and the model-credit family (issue 35)
    assert set(d["signals"]) - set(want["signals"]) == {"self_teacher", "grail", "oar_g", "delta", "answer_only"}
    for name in want["signals"]:
        tol = ENTROPY_REDUCTION_TOL if name == "entropy_reduction" else SIGNAL_TOL
        # the fixture's fields; its intervals were Student t over completions, now a bootstrap over prompts
        # (test_oracle_placement.py checks that exhaustive rows' means are the per-token scores, bit for bit)
        got = {key: _no_ci(d["signals"][name][key]) for key in want["signals"][name]}
        assert_matches(got, {key: _no_ci(x) for key, x in want["signals"][name].items()}, tol, name)
    assert d["settings"]["oracle_rollouts"] == d["settings"]["oracle_rollouts_worst"] == want["oracle_rollouts"]
    v = fixture_data["vine"]
    sampler = model_sampler(model, temperature=1.0, top_p=1.0, eos_ids=[tok.eos_token_id])
    with seeded(model, 11):
        adv, n = vine_token_advantages(
            [v["prompt_ids"][g] for g, _ in v["rows"]], [ids for _, ids in v["rows"]], [g for g, _ in v["rows"]],
            v["rewards"], sampler,
            lambda b, comps: [odd_share(0, tok.decode(c, skip_special_tokens=True)) for c in comps],
            samples=2, max_new_tokens=7, batch_rows=5, width=7, positions="all",
        )  # fmt: skip
    assert n == v["rollouts"]
    assert_matches(adv.tolist(), v["advantages"], ORACLE_TOL, "vine")


def test_adaptive_diagnose_records_what_it_sampled(peft_setup, tmp_path, capsys):
    model, tok = peft_setup
    kw = dict(k=3, max_new_tokens=7, temperature=1.0, seed=5, rewards=odd_share, oracle_samples=3)
    res = diagnose(model, tok, ["12+7=", "3+45+6="], progress=True, **kw)  # adaptive is the default
    err = capsys.readouterr().err
    st = res.settings
    assert st["oracle_positions"] == "adaptive" and st["oracle_rollouts_worst"] == 114  # the fixture's exhaustive count
    assert 6 <= st["oracle_rollouts"] <= st["oracle_rollouts_worst"]
    assert "at most 114 rollouts" in err and f"sampled {st['oracle_rollouts']} rollouts" in err
    n_pos = sum(len(c.oracle["estimated"]) - 2 for c in res.completions)  # sampled prefixes (not 0, not T)
    assert st["oracle_rollouts"] == 3 * (2 + n_pos)  # K x (prompts + sampled prefixes)
    for c in res.completions:
        est = c.oracle["estimated"]
        assert est[0] == 0 and est[-1] == c.length
        assert all((c.oracle["stderr"][t] is None) == (t not in est) for t in range(c.length + 1))
    page = res.write(tmp_path / "out")["report.html"].read_text()
    if any(len(c.oracle["estimated"]) < c.length + 1 for c in res.completions):
        assert "interpolated" in page and "values estimated, the rest interpolated" in page
