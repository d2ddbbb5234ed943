"""Tests of arca_rl.credit against hand-computed numbers and a plain-Python reimplementation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from arca_rl import credit
from arca_rl.credit import (
    INPUTS,
    mix_schedule,
    mix_weights,
    register_signal,
    registered_signals,
    residual_norm,
    salience,
    signal_needs,
    token_entropy,
    token_weights,
)

BUILTINS = ["uniform", "surprisal", "entropy_reduction", "divergence", "arca"]
NAN = float("nan")
FAST = settings(max_examples=60, deadline=None)


# -----------------------------------------------------------------------------
# plain-Python references: one row = the values of its real tokens only, in order


def ref_salience(name: str, row: dict) -> list[float]:
    n = len(row["logps"])
    if name == "uniform":
        return [1.0] * n
    if name == "surprisal":
        return [max(0.0, -x) for x in row["logps"]]
    if name == "entropy_reduction":
        H = row["entropies"]
        return [max(0.0, H[i] - H[i + 1]) for i in range(n - 1)] + [0.0] * min(n, 1)
    if name == "divergence":
        return [abs(a - b) for a, b in zip(row["logps"], row["ref_logps"])]
    if name == "arca":
        return [
            math.sqrt(sum((a - b) ** 2 for a, b in zip(h, hb)))
            for h, hb in zip(row["hidden"], row["base_hidden"])
        ]
    raise AssertionError(name)


def ref_weights(alpha: list[float], eps: float = 1e-8, power: float = 1.0, min_salience: float = 0.0):
    """The paper's formula computed naively in double precision (1e30 ** 2 = 1e60 fits in a double)."""
    n = len(alpha)
    if n == 0:
        return []
    x = [(a + eps) ** power for a in alpha]
    total = sum(x)
    if max(alpha) <= min_salience or total == 0 or math.isinf(total):
        return [1.0 / n] * n
    return [v / total for v in x]


def pad_rows(rows: list[list], width: int, side: str, fill) -> torch.Tensor:
    """Stack variable-length rows into [B, width(, D)], padding on `side` with `fill`."""
    out = []
    for r in rows:
        padding = [fill] * (width - len(r))
        out.append(padding + list(r) if side == "left" else list(r) + padding)
    tail = [len(fill)] if isinstance(fill, list) else []
    return torch.tensor(out, dtype=torch.float32).reshape(len(rows), width, *tail)


def mask_of(lengths: list[int], width: int, side: str) -> torch.Tensor:
    return pad_rows([[1] * n for n in lengths], width, side, 0).long()


def real_values(t: torch.Tensor, lengths: list[int], side: str) -> list[list[float]]:
    """Inverse of pad_rows for [B, width]: each row's real-token values."""
    w = t.shape[1]
    return [t[b, w - n :].tolist() if side == "left" else t[b, :n].tolist() for b, n in enumerate(lengths)]


def close(a: list[float], b: list[float], rel: float = 1e-5, abs_: float = 1e-6) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=rel, abs_tol=abs_) for x, y in zip(a, b))


@pytest.fixture
def scratch():
    """Names registered by a test are removed from the global registry afterwards."""
    names: list[str] = []
    yield names
    for n in names:
        credit._SIGNALS.pop(n, None)


# -----------------------------------------------------------------------------
# registry


def test_builtins_registered_in_order_with_their_needs():
    assert registered_signals()[:5] == BUILTINS
    assert signal_needs("uniform") == frozenset()
    assert signal_needs("surprisal") == {"logps"}
    assert signal_needs("entropy_reduction") == {"entropies"}
    assert signal_needs("divergence") == {"logps", "ref_logps"}
    assert signal_needs("arca") == {"hidden", "base_hidden"}
    assert INPUTS == ("logps", "entropies", "ref_logps", "hidden", "base_hidden")


def test_register_duplicate_and_bad_needs_are_errors(scratch):
    with pytest.raises(ValueError, match="'arca' is already registered"):
        register_signal("arca", lambda **kw: kw["mask"].float(), needs=())
    with pytest.raises(ValueError, match=r"unknown inputs \['logits'\]"):
        register_signal("bad_needs", lambda **kw: kw["mask"].float(), needs=("logps", "logits"))
    with pytest.raises(ValueError, match="iterable of input names"):
        register_signal("str_needs", lambda **kw: kw["mask"].float(), needs="hidden")
    assert "bad_needs" not in registered_signals() and "str_needs" not in registered_signals()
    scratch.append("twice")
    register_signal("twice", lambda **kw: kw["mask"].float(), needs=[])
    with pytest.raises(ValueError, match="'twice' is already registered"):
        register_signal("twice", lambda **kw: kw["mask"].float(), needs=[])


def test_custom_signal_round_trip(scratch):
    seen = {}

    def position(*, mask, logps, **rest):
        seen.update(rest, mask=mask)
        return torch.arange(mask.shape[1], dtype=torch.float64).expand(mask.shape) - logps

    scratch.append("position")
    register_signal("position", position, needs={"logps"})
    assert registered_signals()[-1] == "position" and registered_signals()[:5] == BUILTINS
    assert signal_needs("position") == frozenset({"logps"})

    mask = torch.tensor([[1, 1, 0], [0, 1, 1]])
    logps = torch.tensor([[-1.0, -2.0, NAN], [NAN, -0.5, -0.25]])
    alpha = salience("position", mask=mask, logps=logps)
    assert alpha.dtype == torch.float32
    assert alpha.tolist() == [[1.0, 3.0, 0.0], [0.0, 1.5, 2.25]]
    assert seen["mask"].dtype == torch.bool  # the fn gets a bool mask and every other input
    assert set(seen) == {"mask", "entropies", "ref_logps", "hidden", "base_hidden"}
    with pytest.raises(ValueError, match="'position' needs logps"):
        salience("position", mask=mask)


def test_custom_signal_with_wrong_output_shape(scratch):
    scratch.append("wrong_shape")
    register_signal("wrong_shape", lambda *, mask, **_: mask[:, :1].float(), needs=())
    with pytest.raises(ValueError, match=r"'wrong_shape' returned \(2, 1\), expected .*\(2, 3\)"):
        salience("wrong_shape", mask=torch.ones(2, 3))


# -----------------------------------------------------------------------------
# salience: errors


@pytest.mark.parametrize("name", BUILTINS[1:])
def test_missing_input_names_signal_and_tensor(name):
    B, T, D = 2, 3, 4
    full = {
        "logps": torch.zeros(B, T),
        "entropies": torch.zeros(B, T),
        "ref_logps": torch.zeros(B, T),
        "hidden": torch.zeros(B, T, D),
        "base_hidden": torch.zeros(B, T, D),
    }
    for missing in signal_needs(name):
        kwargs = {k: v for k, v in full.items() if k != missing}
        with pytest.raises(ValueError) as err:
            salience(name, mask=torch.ones(B, T), **kwargs)
        assert repr(name) in str(err.value) and missing in str(err.value)


def test_unknown_signal_lists_registered():
    with pytest.raises(ValueError, match=r"unknown salience signal 'arcaa'.*'uniform'.*'arca'"):
        salience("arcaa", mask=torch.ones(1, 2))
    with pytest.raises(ValueError, match="unknown salience signal"):
        signal_needs("nope")


def test_shape_mismatches_are_errors():
    mask = torch.ones(2, 3)
    with pytest.raises(ValueError, match=r"surprisal.*logps must be \[B, T\].*\(2, 4\)"):
        salience("surprisal", mask=mask, logps=torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"hidden must be \[B, T, D\]"):
        salience("arca", mask=mask, hidden=torch.zeros(2, 3), base_hidden=torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="differ in shape"):
        salience("arca", mask=mask, hidden=torch.zeros(2, 3, 4), base_hidden=torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match=r"mask must be \[B, T\]"):
        salience("uniform", mask=torch.ones(6))


# -----------------------------------------------------------------------------
# salience: hand-computed examples


def test_uniform_hand():
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 0, 0]])
    alpha = salience("uniform", mask=mask)
    assert alpha.dtype == torch.float32
    assert alpha.tolist() == [[1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 0, 0]]


def test_surprisal_hand():
    mask = torch.tensor([[1, 1, 1, 0]])
    logps = torch.tensor([[-0.5, -2.0, -0.125, NAN]])  # padding garbage must not leak
    assert salience("surprisal", mask=mask, logps=logps).tolist() == [[0.5, 2.0, 0.125, 0.0]]
    # log p <= 0 exactly; a rounding-noise log p of +1e-7 (bf16 log-softmax) is surprisal 0, not -1e-7
    noisy = salience("surprisal", mask=torch.ones(1, 2), logps=torch.tensor([[1e-7, -1.0]]))
    assert noisy.tolist() == [[0.0, 1.0]]


def test_entropy_reduction_hand_right_left_and_gap():
    # H = 2.0, 1.5, 1.75, 0.25  ->  max(0, 2-1.5)=0.5, max(0, 1.5-1.75)=0, max(0, 1.75-0.25)=1.5, last 0
    H = torch.tensor([[2.0, 1.5, 1.75, 0.25, 9.0]])
    right = salience("entropy_reduction", mask=torch.tensor([[1, 1, 1, 1, 0]]), entropies=H)
    assert right.tolist() == [[0.5, 0.0, 1.5, 0.0, 0.0]]
    H_left = torch.tensor([[9.0, 2.0, 1.5, 1.75, 0.25]])
    left = salience("entropy_reduction", mask=torch.tensor([[0, 1, 1, 1, 1]]), entropies=H_left)
    assert left.tolist() == [[0.0, 0.5, 0.0, 1.5, 0.0]]
    # the last *real* token gets 0 even though a padding column (H = 0) follows it
    short = salience(
        "entropy_reduction", mask=torch.tensor([[1, 1, 0]]), entropies=torch.tensor([[3.0, 2.0, 0.0]])
    )
    assert short.tolist() == [[1.0, 0.0, 0.0]]
    # a masked gap (tool output): the next real token of column 0 is column 2 -> 2.0 - 1.0 = 1.0
    gap = salience(
        "entropy_reduction", mask=torch.tensor([[1, 0, 1, 1]]), entropies=torch.tensor([[2.0, 0.0, 1.0, 0.5]])
    )
    assert gap.tolist() == [[1.0, 0.0, 0.5, 0.0]]


def test_divergence_hand():
    mask = torch.tensor([[0, 1, 1, 1]])
    logps = torch.tensor([[NAN, -1.0, -0.5, -3.0]])
    ref = torch.tensor([[-float("inf"), -1.25, -0.5, -1.0]])
    assert salience("divergence", mask=mask, logps=logps, ref_logps=ref).tolist() == [[0.0, 0.25, 0.0, 2.0]]


def test_arca_hand_fp32_and_bf16():
    mask = torch.tensor([[1, 1, 1, 0]])
    base = torch.tensor([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [2.0, 2.0, 2.0], [0.0, 0.0, 0.0]]])
    delta = torch.tensor([[[3.0, 4.0, 0.0], [1.0, 2.0, 2.0], [0.0, 0.0, 0.0], [NAN, NAN, NAN]]])
    want = [[5.0, 3.0, 0.0, 0.0]]  # sqrt(9+16), sqrt(1+4+4), 0, padding
    assert salience("arca", mask=mask, hidden=base + delta, base_hidden=base).tolist() == want
    out = salience("arca", mask=mask, hidden=(base + delta).bfloat16(), base_hidden=base.bfloat16())
    assert out.dtype == torch.float32 and out.tolist() == want


def test_salience_is_detached_float32():
    logps = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    out = salience("surprisal", mask=torch.ones(1, 2), logps=logps)
    assert not out.requires_grad and out.dtype == torch.float32
    h = torch.randn(1, 2, 3, requires_grad=True)
    assert not salience("arca", mask=torch.ones(1, 2), hidden=h, base_hidden=h.detach() + 1).requires_grad
    bf = salience("divergence", mask=torch.ones(1, 2), logps=logps.bfloat16(), ref_logps=logps.bfloat16())
    assert bf.dtype == torch.float32


# -----------------------------------------------------------------------------
# salience: every signal against the reference, left and right padding


D = 3
finite = st.floats(-30.0, 0.0, allow_nan=False, width=32)
vec = st.lists(st.floats(-10.0, 10.0, allow_nan=False, width=32), min_size=D, max_size=D)
token = st.fixed_dictionaries(
    {
        "logps": finite,
        "entropies": st.floats(0.0, 12.0, width=32),
        "ref_logps": finite,
        "hidden": vec,
        "base_hidden": vec,
    }
)
batch = st.lists(st.lists(token, max_size=6), min_size=1, max_size=4)


@FAST
@given(batch, st.integers(0, 2), st.sampled_from(BUILTINS))
def test_every_signal_matches_reference_for_left_and_right_padding(rows, extra, name):
    lengths = [len(r) for r in rows]
    width = max(lengths) + extra
    cols = [{k: [tok[k] for tok in r] for k in INPUTS} for r in rows]
    want = [ref_salience(name, c) for c in cols]
    by_side = {}
    for side in ("left", "right"):
        kwargs = {
            k: pad_rows([c[k] for c in cols], width, side, [NAN] * D if k in credit._HIDDEN_INPUTS else NAN)
            for k in INPUTS
        }
        mask = mask_of(lengths, width, side)
        alpha = salience(name, mask=mask, **kwargs)
        assert alpha.dtype == torch.float32 and torch.isfinite(alpha).all()
        assert (alpha[mask == 0] == 0).all() and (alpha >= 0).all()
        got = real_values(alpha, lengths, side)
        assert all(close(g, w, rel=1e-5, abs_=1e-5) for g, w in zip(got, want)), (got, want)
        by_side[side] = got
    assert by_side["left"] == by_side["right"]


# -----------------------------------------------------------------------------
# token_weights: hand-computed and edge rows


def test_weights_worked_example():
    s = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    m = torch.ones(1, 4)
    assert torch.allclose(token_weights(s, m, eps=0.0), torch.tensor([[0.1, 0.2, 0.3, 0.4]]))
    # power 2: 1, 4, 9, 16 over 30
    assert torch.allclose(token_weights(s, m, eps=0.0, power=2.0), torch.tensor([[1, 4, 9, 16]]) / 30.0)
    # default eps = 1e-8 only nudges: (1 + 1e-8) / (10 + 4e-8)
    assert torch.allclose(token_weights(s, m), torch.tensor([[0.1, 0.2, 0.3, 0.4]]), atol=1e-7)
    # padding on either side, weights 0 there and the same on real tokens
    sl = torch.tensor([[9.0, 1.0, 3.0]])
    assert torch.allclose(
        token_weights(sl, torch.tensor([[0, 1, 1]]), eps=0.0), torch.tensor([[0.0, 0.25, 0.75]])
    )


def test_weights_edge_rows():
    mask = torch.tensor([[0, 0, 0], [0, 1, 0], [1, 1, 1], [1, 1, 0]])
    s = torch.tensor([[5.0, 5.0, 5.0], [0.0, 7.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    for eps in (0.0, 1e-8):
        w = token_weights(s, mask, eps=eps)
        assert w[0].tolist() == [0.0, 0.0, 0.0]  # T = 0: all zeros
        assert w[1].tolist() == [0.0, 1.0, 0.0]  # T = 1: the one token gets it all
        assert torch.allclose(w[2], torch.full((3,), 1 / 3))  # all-zero salience: uniform
        assert w[3].tolist() == [0.5, 0.5, 0.0]  # all-zero on real tokens, 3.0 is padding
        assert torch.isfinite(w).all()


# -----------------------------------------------------------------------------
# credit_mix / credit_warmup_steps: hand-computed


def test_mix_weights_hand():
    # signal weights 0.1, 0.2, 0.3, 0.4 on T = 4; lam = 0.5: 0.5 / 4 + 0.5 * w = 0.125 + (0.05, 0.1, 0.15, 0.2)
    w = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    m = torch.ones(1, 4)
    got = mix_weights(w, m, 0.5)
    assert torch.allclose(got, torch.tensor([[0.175, 0.225, 0.275, 0.325]]), rtol=0, atol=1e-7)
    # lam = 0.2 on a one-hot row with left padding (T = 2): 0.8 / 2 + 0.2 * (1, 0) = (0.6, 0.4)
    got = mix_weights(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[0, 1, 1]]), 0.2)
    assert torch.allclose(got, torch.tensor([[0.0, 0.6, 0.4]]), rtol=0, atol=1e-7)
    # every real token keeps at least (1 - lam) / T, and the row still sums to 1
    sal = torch.tensor([[0.0, 0.0, 9.0, 1.0, 5.0]])
    m5 = torch.tensor([[1, 1, 1, 1, 0]])
    for lam in (0.0, 0.3, 0.75, 1.0):
        mixed = mix_weights(token_weights(sal, m5, power=2.0), m5, lam)
        assert mixed[0, 4] == 0.0
        assert float(mixed[0, :4].min()) >= (1 - lam) / 4 - 1e-7
        assert float(mixed.sum()) == pytest.approx(1.0, abs=1e-6)


def test_mix_weights_ends_are_exact():
    sal = torch.tensor([[0.3, 2.0, 0.0, 7.0], [1.0, 1.0, 4.0, 0.0], [5.0, 5.0, 5.0, 5.0]])
    mask = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1], [0, 0, 0, 0]])
    w = token_weights(sal, mask, power=2.0)
    assert torch.equal(mix_weights(w, mask, 1.0), w)  # the signal alone, bit for bit
    assert torch.equal(mix_weights(w, mask, 1), w)
    # lam = 0: exactly the uniform credit token_weights gives an all-zero row (stock GRPO)
    assert torch.equal(mix_weights(w, mask, 0.0), token_weights(torch.zeros_like(sal), mask))
    assert mix_weights(w, mask, 0.4)[2].tolist() == [0.0] * 4  # no real token: all zeros
    assert mix_weights(w, mask, 0.4).dtype == torch.float32


@pytest.mark.parametrize("lam", [-0.1, 1.5, NAN, float("inf"), True, "0.5"])
def test_mix_weights_rejects_bad_lambda(lam):
    with pytest.raises(ValueError, match="lam must be a number in \\[0, 1\\]"):
        mix_weights(torch.ones(1, 2) / 2, torch.ones(1, 2), lam)


def test_mix_schedule_hand():
    # credit_mix 0.6, warm-up 4 steps: 0, 0.15, 0.3, 0.45, then 0.6 for good
    assert [mix_schedule(s, 0.6, 4) for s in range(7)] == pytest.approx([0.0, 0.15, 0.3, 0.45, 0.6, 0.6, 0.6])
    assert mix_schedule(0, 0.6, 0) == 0.6  # no warm-up: the mix from the first step
    assert mix_schedule(3, 1.0, 10) == pytest.approx(0.3)
    assert mix_schedule(10, 1.0, 10) == 1.0 and mix_schedule(0, 0.0, 5) == 0.0
    for bad in (dict(step=-1), dict(step=1.5), dict(warmup_steps=-2), dict(mix=1.1), dict(mix=NAN)):
        kw = dict(step=1, mix=0.5, warmup_steps=2) | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            mix_schedule(**kw)


def test_weights_huge_values_power_2():
    s = torch.tensor([[1e30, 2e30, 0.0], [1e30, 1.0, 3e38]])
    w = token_weights(s, torch.ones(2, 3), power=2.0)
    assert torch.isfinite(w).all()
    assert torch.allclose(w[0], torch.tensor([0.2, 0.8, 0.0]))  # 1e60 / 5e60, 4e60 / 5e60
    assert torch.allclose(w[1], torch.tensor([1e60 / 9e76, 0.0, 1.0]))
    w3 = token_weights(torch.tensor([[1e30, 1e30]]), torch.ones(1, 2), power=3.0)
    assert w3.tolist() == [[0.5, 0.5]]


def test_weights_infinite_salience_row_falls_back_to_uniform():
    w = token_weights(torch.tensor([[float("inf"), 1.0, 2.0, 5.0]]), torch.tensor([[1, 1, 1, 0]]))
    assert torch.allclose(w, torch.tensor([[1 / 3, 1 / 3, 1 / 3, 0.0]]))


def test_weights_bf16_in_fp32_out_detached():
    s = torch.tensor([[1.0, 3.0, 0.0]], dtype=torch.bfloat16, requires_grad=True)
    w = token_weights(s, torch.tensor([[1, 1, 0]]), eps=0.0)
    assert w.dtype == torch.float32 and not w.requires_grad
    assert w.tolist() == [[0.25, 0.75, 0.0]]


def test_weights_reject_nan_and_negative_on_real_tokens_only():
    m = torch.tensor([[1, 1, 0]])
    with pytest.raises(ValueError, match="NaN"):
        token_weights(torch.tensor([[1.0, NAN, 0.0]]), m)
    with pytest.raises(ValueError, match="negative"):
        token_weights(torch.tensor([[1.0, -1e-3, 0.0]]), m)
    # garbage on padding is ignored
    w = token_weights(torch.tensor([[1.0, 1.0, NAN]]), m)
    assert w.tolist() == [[0.5, 0.5, 0.0]]
    w = token_weights(torch.tensor([[1.0, 1.0, -5.0]]), m)
    assert w.tolist() == [[0.5, 0.5, 0.0]]


def test_weights_min_salience_guard():
    s = torch.tensor([[1e-4, 3e-4], [1.0, 3.0]])
    w = token_weights(s, torch.ones(2, 2), eps=0.0, min_salience=1e-3)
    assert w[0].tolist() == [0.5, 0.5]  # max 3e-4 <= 1e-3: noise-level, uniform
    assert torch.allclose(w[1], torch.tensor([0.25, 0.75]))


def test_weights_argument_errors():
    s, m = torch.ones(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match="eps"):
        token_weights(s, m, eps=-1.0)
    with pytest.raises(ValueError, match="power"):
        token_weights(s, m, power=-1.0)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        token_weights(s, torch.ones(2, 4))


# -----------------------------------------------------------------------------
# token_weights: properties


salience_value = st.one_of(
    st.just(0.0), st.floats(2.0**-20, 2.0**100, width=32), st.floats(0.0, 10.0, width=32)
)
salience_rows = st.lists(st.lists(salience_value, max_size=7), min_size=1, max_size=4)


@FAST
@given(
    salience_rows,
    st.integers(0, 2),
    st.sampled_from([0.0, 1e-8, 0.5]),
    st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]),
)
def test_weights_properties_and_reference(rows, extra, eps, power):
    lengths = [len(r) for r in rows]
    width = max(lengths) + extra
    got = {}
    for side in ("left", "right"):
        mask = mask_of(lengths, width, side)
        w = token_weights(pad_rows(rows, width, side, NAN), mask, eps=eps, power=power)
        assert w.dtype == torch.float32 and torch.isfinite(w).all()
        assert (w >= 0).all() and (w[mask == 0] == 0).all()
        sums = w.sum(-1)
        for b, n in enumerate(lengths):
            assert math.isclose(sums[b].item(), 1.0 if n else 0.0, abs_tol=1e-5)
        got[side] = real_values(w, lengths, side)
        want = [ref_weights(r, eps, power) for r in rows]
        assert all(close(g, x, rel=1e-4, abs_=1e-6) for g, x in zip(got[side], want)), (got[side], want)
    # same rows, other padding side: equal up to float32 summation order
    assert all(close(a, b, rel=1e-6, abs_=1e-9) for a, b in zip(got["left"], got["right"]))


@FAST
@given(
    st.lists(
        st.lists(st.one_of(st.just(0.0), st.floats(2.0**-10, 2.0**20, width=32)), min_size=1, max_size=7),
        min_size=1,
        max_size=4,
    ),
    st.floats(1e-3, 1e3),
)
def test_weights_invariant_to_scaling_salience(rows, scale):
    width = max(len(r) for r in rows)
    mask = mask_of([len(r) for r in rows], width, "right")
    s = pad_rows(rows, width, "right", 0.0)
    assert torch.allclose(
        token_weights(s, mask, eps=0.0), token_weights(s * scale, mask, eps=0.0), rtol=1e-5, atol=1e-7
    )


def test_extreme_inputs_end_to_end_stay_finite():
    from arca_rl.diagnostics import summarize

    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]])
    logps = torch.tensor([[-1e30, -1.0, 0.0, NAN], [NAN, -3e38, -1e-30, 0.0]])
    ref = torch.tensor([[0.0, -1e30, 0.0, NAN], [NAN, 0.0, -1e30, -1.0]])
    ent = torch.tensor([[1e30, 0.0, 1e30, NAN], [NAN, 3e38, 0.0, 1e-30]])
    h = torch.tensor([[1e30, -1e30, 1.0, NAN], [NAN, 3e37, -3e37, 0.0]]).unsqueeze(-1).expand(2, 4, 8)
    inputs = dict(logps=logps, ref_logps=ref, entropies=ent, hidden=h, base_hidden=torch.zeros(2, 4, 8))
    for name in BUILTINS:
        for dtype in (torch.float32, torch.bfloat16):
            cast = {k: v.to(dtype) for k, v in inputs.items()}
            alpha = salience(name, mask=mask, **cast)
            assert torch.isfinite(alpha).all(), name
            for power in (1.0, 2.0, 3.0):
                w = token_weights(alpha, mask, power=power)
                assert torch.isfinite(w).all() and torch.allclose(w.sum(-1), torch.ones(2)), (name, power)
                s = summarize(w, mask)
                assert all(math.isfinite(s[k]) for k in ("gini", "effective_token_ratio", "top10_mass"))
    # |h - h_base| = 1e30 * sqrt(8) on token 0: the naive float32 sum of squares would be inf
    assert salience("arca", mask=mask, hidden=h, base_hidden=torch.zeros(2, 4, 8))[
        0, 0
    ].item() == pytest.approx(1e30 * math.sqrt(8), rel=1e-6)


def test_weights_accept_bool_and_float_masks():
    s = torch.tensor([[2.0, 6.0, 1.0]])
    ref = token_weights(s, torch.tensor([[1, 1, 0]]), eps=0.0)
    assert torch.equal(ref, token_weights(s, torch.tensor([[True, True, False]]), eps=0.0))
    assert torch.equal(ref, token_weights(s, torch.tensor([[1.0, 1.0, 0.0]]), eps=0.0))
    assert ref.tolist() == [[0.25, 0.75, 0.0]]


# -----------------------------------------------------------------------------
# residual_norm and token_entropy


def test_residual_norm_chunking_strides_and_overflow():
    g = torch.Generator().manual_seed(0)
    h, hb = torch.randn(3, 10, 5, generator=g), torch.randn(3, 10, 5, generator=g)
    ref = [[math.dist(h[b, t].tolist(), hb[b, t].tolist()) for t in range(10)] for b in range(3)]
    for chunk in (1, 3, 10, 11, 29, 30, 31, 8192):
        out = residual_norm(h, hb, chunk_tokens=chunk)
        assert out.shape == (3, 10) and all(close(o, r, rel=1e-5) for o, r in zip(out.tolist(), ref)), chunk
    full = torch.randn(3, 14, 5, generator=g)  # a strided slice like hidden_states[:, -T:]
    sl = full[:, -10:]
    assert torch.allclose(residual_norm(sl, hb, chunk_tokens=4), torch.linalg.vector_norm(sl - hb, dim=-1))
    # bf16 inputs are subtracted in float32: (1 + 2^-7) - 1 is exact, 2^-7 * sqrt(5)
    one = torch.ones(1, 1, 5, dtype=torch.bfloat16)
    assert math.isclose(residual_norm(one + 2**-7, one).item(), 2**-7 * math.sqrt(5), rel_tol=1e-6)
    # |d| = 2e30 per coordinate: the naive sum of squares overflows float32
    big = torch.full((1, 2, 3), 1e30)
    big[0, 1] = 1.0
    assert close(residual_norm(big, -big).tolist()[0], [2e30 * math.sqrt(3), 2 * math.sqrt(3)], rel=1e-5)
    with pytest.raises(ValueError, match="chunk_tokens"):
        residual_norm(h, hb, chunk_tokens=0)


def ref_entropy(logits: list[float]) -> float:
    m = max(logits)
    z = [math.exp(x - m) for x in logits]
    s = sum(z)
    return -sum((v / s) * math.log(v / s) for v in z if v > 0)


def test_token_entropy_matches_reference():
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(2, 5, 11, generator=g)
    logits[1, 2, :4] = -float("inf")  # filtered vocabulary
    logits[0, 4] = NAN  # padding garbage
    mask = torch.tensor([[1, 1, 1, 1, 0], [0, 1, 1, 1, 1]])
    before = logits.clone()
    for chunk in (1, 2, 3, 1024):
        H = token_entropy(logits, mask, chunk=chunk)
        assert H.dtype == torch.float32 and torch.isfinite(H).all() and (H[mask == 0] == 0).all()
        for b in range(2):
            for t in range(5):
                if mask[b, t]:
                    assert math.isclose(
                        H[b, t].item(), ref_entropy(logits[b, t].tolist()), rel_tol=1e-5, abs_tol=1e-6
                    )
    assert torch.equal(logits.nan_to_num(), before.nan_to_num())  # input untouched
    # uniform over V -> log V; one-hot-ish -> ~0; bf16 input; no mask; non-contiguous
    flat = token_entropy(torch.zeros(1, 2, 8, dtype=torch.bfloat16))
    assert flat.dtype == torch.float32 and torch.allclose(flat, torch.full((1, 2), math.log(8)))
    peaked = torch.tensor([[[0.0, -1e4, -1e4]]])
    assert token_entropy(peaked).item() == pytest.approx(0.0, abs=1e-6)
    nc = logits[:, :, ::2].transpose(0, 1).transpose(0, 1)
    assert torch.allclose(token_entropy(nc, mask), token_entropy(nc.contiguous(), mask))
