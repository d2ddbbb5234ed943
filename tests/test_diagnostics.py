"""Tests of arca_rl.diagnostics against hand-computed numbers and a plain-Python reimplementation."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from arca_rl import diagnostics
from arca_rl.credit import token_weights
from arca_rl.diagnostics import effective_token_ratio, gini, summarize, top_mass

FAST = settings(max_examples=80, deadline=None)
NAN = float("nan")


# -----------------------------------------------------------------------------
# plain-Python references over one row's real-token weights


def ref_gini(w: list[float]) -> float:
    T, S = len(w), sum(w)
    if T <= 1 or S == 0:
        return 0.0
    a = sorted(w)  # ascending, i = 1..T
    return sum((2 * i - T - 1) * x for i, x in enumerate(a, start=1)) / (T * S)


def ref_eff(w: list[float]) -> float:
    T, S = len(w), sum(w)
    if T == 0 or S == 0:
        return 0.0
    return 1.0 / (T * sum((x / S) ** 2 for x in w))


def ref_top(w: list[float], frac: float) -> float:
    T, S = len(w), sum(w)
    if T == 0 or S == 0:
        return 0.0
    k = max(1, math.ceil(Fraction(str(frac)) * T))  # exact: 0.07 * 100 is 7, not float 7.000000000000001
    return sum(sorted(w, reverse=True)[:k]) / S


def padded(
    rows: list[list[float]], width: int, side: str, fill: float = NAN
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (weights [B, width] with `fill` on padding, mask [B, width]) for left or right padding."""
    w, m = [], []
    for r in rows:
        pad = width - len(r)
        w.append([fill] * pad + r if side == "left" else r + [fill] * pad)
        m.append([0] * pad + [1] * len(r) if side == "left" else [1] * len(r) + [0] * pad)
    return torch.tensor(w, dtype=torch.float32).reshape(len(rows), width), torch.tensor(m).reshape(
        len(rows), width
    )


# -----------------------------------------------------------------------------
# hand-computed


def test_uniform_and_one_hot():
    T = 8
    m = torch.ones(2, T)
    uniform = torch.full((1, T), 1 / T)
    one_hot = torch.zeros(1, T)
    one_hot[0, 5] = 1.0
    w = torch.cat([uniform, one_hot])
    g, e = gini(w, m), effective_token_ratio(w, m)
    assert g[0].item() == pytest.approx(0.0, abs=1e-6) and g[1].item() == pytest.approx((T - 1) / T)
    assert e[0].item() == pytest.approx(1.0) and e[1].item() == pytest.approx(1 / T)
    tm = top_mass(w, m, frac=0.25)  # top 2 of 8
    assert tm.tolist() == pytest.approx([0.25, 1.0])


def test_worked_four_token_case():
    # w = 0.3, 0.1, 0.4, 0.2 (sum 1). Sorted ascending 0.1, 0.2, 0.3, 0.4 with coefficients
    # 2i - T - 1 = -3, -1, 1, 3:  G = (-0.3 - 0.2 + 0.3 + 1.2) / (4 * 1) = 1.0 / 4 = 0.25.
    # sum w^2 = 0.09 + 0.01 + 0.16 + 0.04 = 0.30:  EffN/T = 1 / (4 * 0.3) = 0.8333...
    # top_mass(0.1): ceil(0.4) = 1 token -> 0.4;  top_mass(0.5): 2 tokens -> 0.4 + 0.3 = 0.7
    w = torch.tensor([[0.3, 0.1, 0.4, 0.2]])
    m = torch.ones(1, 4)
    assert gini(w, m).item() == pytest.approx(0.25, abs=1e-6)
    assert effective_token_ratio(w, m).item() == pytest.approx(1 / 1.2, abs=1e-6)
    assert top_mass(w, m).item() == pytest.approx(0.4)
    assert top_mass(w, m, frac=0.5).item() == pytest.approx(0.7)
    # the same row left-padded, with garbage on the padding, and unnormalized (x 10)
    wl = torch.tensor([[NAN, 3.0, 1.0, 4.0, 2.0]])
    ml = torch.tensor([[0, 1, 1, 1, 1]])
    assert gini(wl, ml).item() == pytest.approx(0.25, abs=1e-6)
    assert effective_token_ratio(wl, ml).item() == pytest.approx(1 / 1.2, abs=1e-6)
    assert top_mass(wl, ml, frac=0.5).item() == pytest.approx(0.7)


def test_top_mass_uses_exact_ceil():
    # in floats 0.07 * 100 = 7.000000000000001 and 0.14 * 50 = 7.000000000000001: still 7 tokens
    assert top_mass(torch.full((1, 100), 0.01), torch.ones(1, 100), frac=0.07).item() == pytest.approx(0.07)
    assert top_mass(torch.full((1, 50), 0.02), torch.ones(1, 50), frac=0.14).item() == pytest.approx(0.14)
    assert top_mass(torch.full((1, 31), 1 / 31), torch.ones(1, 31), frac=0.1).item() == pytest.approx(4 / 31)
    assert top_mass(torch.full((1, 3), 1 / 3), torch.ones(1, 3), frac=0.01).item() == pytest.approx(1 / 3)


def test_edge_rows_never_nan():
    w = torch.tensor([[NAN, NAN, NAN], [NAN, 1.0, NAN], [0.0, 0.0, 0.0], [0.5, 0.5, 9.0]])
    m = torch.tensor([[0, 0, 0], [0, 1, 0], [1, 1, 1], [1, 1, 0]])
    assert gini(w, m).tolist() == [0.0, 0.0, 0.0, 0.0]  # T = 0, T = 1, all-zero weights, uniform
    assert effective_token_ratio(w, m).tolist() == [0.0, 1.0, 0.0, 1.0]  # T = 0 and zero rows give 0
    assert top_mass(w, m).tolist() == [0.0, 1.0, 0.0, 0.5]
    empty = torch.zeros(3, 0)
    for f in (gini, effective_token_ratio, top_mass):
        assert f(empty, empty).tolist() == [0.0, 0.0, 0.0]


def test_scale_invariant_even_for_huge_raw_values():
    m = torch.ones(2, 4)
    raw = torch.tensor([[3e38, 1e38, 2e38, 0.0], [3e-38, 1e-38, 2e-38, 0.0]])  # sum overflows / tiny
    norm = torch.tensor([[0.5, 1 / 6, 1 / 3, 0.0]] * 2)
    for f in (gini, effective_token_ratio, top_mass):
        assert torch.isfinite(f(raw, m)).all()
        assert torch.allclose(f(raw, m), f(norm, m), rtol=1e-5, atol=1e-6), f.__name__
    assert summarize(raw, m)["gini"] == pytest.approx(summarize(norm, m)["gini"], rel=1e-5)


def test_bad_inputs_are_errors():
    m = torch.ones(1, 2)
    for bad in (-0.5, NAN, float("inf")):
        with pytest.raises(ValueError, match="finite and >= 0"):
            gini(torch.tensor([[0.5, bad]]), m)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        effective_token_ratio(torch.ones(1, 3), m)
    with pytest.raises(ValueError, match="frac"):
        top_mass(torch.ones(1, 2), m, frac=0.0)


def test_float32_for_any_input_dtype():
    w = torch.tensor([[0.25, 0.75, 0.0]])
    m = torch.tensor([[1, 1, 0]])
    for dtype in (torch.bfloat16, torch.float16, torch.float64):
        for f in (gini, effective_token_ratio, top_mass):
            out = f(w.to(dtype), m)
            assert out.dtype == torch.float32 and torch.allclose(out, f(w, m))
    assert gini(w, m).item() == pytest.approx(0.25)  # (-1 * 0.25 + 1 * 0.75) / 2


# -----------------------------------------------------------------------------
# properties against the reference, left and right padding


weight_value = st.one_of(st.just(0.0), st.floats(2.0**-10, 1.0, width=32))
weight_rows = st.lists(st.lists(weight_value, max_size=12), min_size=1, max_size=5)


@FAST
@given(weight_rows, st.integers(0, 3), st.sampled_from([0.1, 0.25, 0.3, 0.5, 1.0]))
def test_diagnostics_match_reference_on_either_padding_side(rows, extra, frac):
    width = max(len(r) for r in rows) + extra
    results = {}
    for side in ("left", "right"):
        w, m = padded(rows, width, side)
        g, e, t = gini(w, m), effective_token_ratio(w, m), top_mass(w, m, frac)
        assert all(x.dtype == torch.float32 and x.shape == (len(rows),) for x in (g, e, t))
        for b, r in enumerate(rows):
            T = len(r)
            assert g[b].item() == pytest.approx(ref_gini(r), abs=1e-5)
            assert e[b].item() == pytest.approx(ref_eff(r), rel=1e-5, abs=1e-6)
            assert t[b].item() == pytest.approx(ref_top(r, frac), rel=1e-5, abs=1e-6)
            if T and sum(r) > 0:  # the ranges the definitions imply
                assert -1e-6 <= g[b].item() <= (T - 1) / T + 1e-6
                assert 1 / T - 1e-6 <= e[b].item() <= 1 + 1e-5
        results[side] = (g, e, t)
    for a, b in zip(results["left"], results["right"]):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-6)


@FAST
@given(
    st.lists(st.lists(st.floats(0.0, 1e6, width=32), min_size=1, max_size=10), min_size=1, max_size=5),
    st.integers(0, 2),
)
def test_summarize_matches_reference_means(rows, extra):
    width = max(len(r) for r in rows) + extra
    alpha, m = padded(rows, width, "left", fill=0.0)
    w = token_weights(alpha, m, power=2.0)
    s = summarize(w, m)
    real = [x for x in (w[b, width - len(r) :].tolist() for b, r in enumerate(rows)) if len(x) >= 2]
    assert s["n_rows"] == len(real)
    if not real:
        assert s == {
            "gini": None,
            "effective_token_ratio": None,
            "top10_mass": None,
            "n_rows": 0,
            "regime": None,
        }
        return
    assert s["gini"] == pytest.approx(sum(map(ref_gini, real)) / len(real), abs=1e-5)
    assert s["effective_token_ratio"] == pytest.approx(sum(map(ref_eff, real)) / len(real), rel=1e-5)
    assert s["top10_mass"] == pytest.approx(sum(ref_top(r, 0.1) for r in real) / len(real), rel=1e-5)
    assert s["regime"] in {"uniform", "middle", "sparse"}
    w_right, m_right = padded([x[width - len(r) :] for x, r in zip(w.tolist(), rows)], width, "right")
    s_right = summarize(w_right, m_right)
    assert s_right["n_rows"] == s["n_rows"] and s_right["regime"] == s["regime"]
    for k in ("gini", "effective_token_ratio", "top10_mass"):
        assert s_right[k] == pytest.approx(s[k], rel=1e-6, abs=1e-7)


# -----------------------------------------------------------------------------
# summarize


def test_summarize_keys_types_and_row_selection():
    # rows: T = 0, T = 1 (excluded from the means), uniform T = 4, one-hot T = 4
    w = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.25] * 4, [0.0, 0.0, 1.0, 0.0]])
    m = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]])
    s = summarize(w, m)
    assert set(s) == {"gini", "effective_token_ratio", "top10_mass", "n_rows", "regime"}
    assert type(s["n_rows"]) is int and s["n_rows"] == 2
    assert all(type(s[k]) is float for k in ("gini", "effective_token_ratio", "top10_mass"))
    assert s["gini"] == pytest.approx((0.0 + 0.75) / 2)  # (T-1)/T = 0.75 for the one-hot row
    assert s["effective_token_ratio"] == pytest.approx((1.0 + 0.25) / 2)
    assert s["top10_mass"] == pytest.approx((0.25 + 1.0) / 2)  # ceil(0.4) = 1 token each


def test_summarize_no_eligible_rows_gives_none():
    for w, m in [
        (torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[1, 0], [0, 0]])),
        (torch.zeros(0, 5), torch.zeros(0, 5)),
        (torch.zeros(2, 0), torch.zeros(2, 0)),
    ]:
        s = summarize(w, m)
        assert s == {
            "gini": None,
            "effective_token_ratio": None,
            "top10_mass": None,
            "n_rows": 0,
            "regime": None,
        }


def test_summarize_regimes():
    T = 100
    m = torch.ones(4, T)
    uniform = torch.full((4, T), 1 / T)
    s = summarize(uniform.bfloat16(), m)
    assert s["regime"] == "uniform" and s["gini"] == pytest.approx(0.0, abs=1e-4)
    assert s["effective_token_ratio"] == pytest.approx(1.0, abs=1e-4) and s["top10_mass"] == pytest.approx(
        0.1, abs=1e-3
    )

    one_hot = torch.zeros(4, T)
    one_hot[:, 7] = 1.0
    s = summarize(one_hot, m)
    assert (
        s["regime"] == "sparse"
        and s["gini"] == pytest.approx(0.99)
        and s["effective_token_ratio"] == pytest.approx(0.01)
    )

    # w_t ~ t^2: Gini -> 2/4 = 0.5 and EffN/T -> (1/3)^2 / (1/5) = 5/9: the middle, like ARCA r=64
    t = torch.arange(1, T + 1, dtype=torch.float32)
    quad = (t**2 / (t**2).sum()).expand(4, T)
    s = summarize(quad, m)
    assert s["regime"] == "middle"
    assert s["gini"] == pytest.approx(0.5, abs=0.02) and s["effective_token_ratio"] == pytest.approx(
        5 / 9, abs=0.02
    )


@pytest.mark.parametrize(
    ("method", "g", "eff", "regime"),
    [  # the paper's Table 3
        ("uniform r64", 0.000, 1.000, "uniform"),
        ("surprisal r64", 0.941, 0.052, "sparse"),
        ("entropy reduction r64", 0.920, 0.073, "sparse"),
        ("divergence r64", 0.939, 0.055, "sparse"),
        ("ARCA r4", 0.353, 0.467, "middle"),
        ("ARCA r16", 0.388, 0.460, "middle"),
        ("ARCA r64", 0.490, 0.334, "middle"),
    ],
)
def test_thresholds_classify_the_papers_table(method, g, eff, regime):
    assert diagnostics.regime(g, eff) == regime, method
    # with margin: each figure may move 0.1 toward the nearest boundary without changing regime
    assert diagnostics.regime(min(g + 0.1, 1.0), eff) == regime or regime == "sparse"
    assert diagnostics.regime(g, max(eff - 0.1, 0.0)) == regime or regime == "sparse"


def test_threshold_constants_are_ordered():
    d = diagnostics
    assert 0 < d.UNIFORM_MAX_GINI < 0.353 and 0.490 < d.SPARSE_MIN_GINI < 0.920
    assert 0.467 < d.UNIFORM_MIN_EFFN < 1 and 0.073 < d.SPARSE_MAX_EFFN < 0.334
    assert d.UNIFORM_MAX_GINI < d.SPARSE_MIN_GINI and d.SPARSE_MAX_EFFN < d.UNIFORM_MIN_EFFN


def test_row_figures_of_a_plain_row_by_hand():
    # w = (1, 1, 2) / 4 = (0.25, 0.25, 0.5): G = sum_i (2i - T - 1) w_i / T over ascending w, EffN/T = 1 / (T sum w^2)
    g, eff = diagnostics.row_figures([1.0, 2.0, 1.0])  # not normalized: the figures normalize it
    assert g == pytest.approx(((2 - 4) * 0.25 + (4 - 4) * 0.25 + (6 - 4) * 0.5) / 3, abs=1e-6)
    assert eff == pytest.approx(1 / (3 * (0.25**2 + 0.25**2 + 0.5**2)), abs=1e-6)
    assert diagnostics.row_figures([0.5, 0.5]) == pytest.approx((0.0, 1.0))
    assert diagnostics.row_figures([1.0]) == (None, None)  # T < 2
    assert diagnostics.row_figures([0.0, 0.0, 0.0]) == (None, None)  # no mass: undefined
    assert diagnostics.regime(None, 0.5) is None and diagnostics.regime(0.5, None) is None
