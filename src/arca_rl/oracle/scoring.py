"""The per-token measures of a credit signal against the oracle's deltas: oracle lift, rank correlation, top match and
the signed cosine, and their per-completion aggregates (`score_signal`, `score_signed`: every row's per-token deltas
as given, with Student t intervals over completions). `arca diagnose` scores with `placement.score_method`, which
uses these functions on exhaustive rows, scores adaptive rows per measured interval instead of on interpolated
deltas, and replaces the intervals by a bootstrap over prompts. See `arca_rl.oracle`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from ..diagnostics import mean_ci, spearman
from .values import oracle_credit

__all__ = [
    "OracleScore",
    "oracle_lift",
    "row_spearman",
    "score_signal",
    "score_signed",
    "signed_cosine",
    "top_match",
]

def oracle_lift(weights: Sequence[float], delta: Sequence[float]) -> float | None:
    """T * sum_t w_t o_t, with w normalised to sum 1 and o the oracle credit of `delta`.

    Computed in exact rational arithmetic (floats are exact rationals) and rounded once, so uniform
    weights give exactly 1.0 and w = o gives T * sum o^2 to the last bit. None when every delta or
    every weight is 0.
    """
    if len(weights) != len(delta):
        raise ValueError(f"weights have {len(weights)} tokens but the oracle row has {len(delta)}")
    abs_d = [abs(Fraction(d)) for d in delta]
    w = [Fraction(x) for x in weights]
    sd, sw = sum(abs_d), sum(w)
    if sd == 0 or sw == 0:
        return None
    return float(len(delta) * sum(a * b for a, b in zip(w, abs_d)) / (sw * sd))


def row_spearman(salience: Sequence[float], delta: Sequence[float]) -> float | None:
    """Spearman correlation (average ranks for ties) between a signal's salience and |delta| on one
    completion; None when either side is constant or T < 2."""
    if len(salience) != len(delta):
        raise ValueError(f"salience has {len(salience)} tokens but the oracle row has {len(delta)}")
    return spearman([float(x) for x in salience], [abs(float(d)) for d in delta])


def top_match(weights: Sequence[float], delta: Sequence[float]) -> float | None:
    """Whether the signal's largest-weight token is the oracle's largest-|delta| token.

    Ties are broken at random, in expectation: with A the tokens tied for the largest weight and B
    those tied for the largest |delta|, the match is |A & B| / (|A| |B|). So uniform weights score
    1/T, like a random guess, rather than 1. None when every delta is 0.
    """
    if len(weights) != len(delta):
        raise ValueError(f"weights have {len(weights)} tokens but the oracle row has {len(delta)}")
    d = [abs(x) for x in delta]
    if not d or max(d) <= 0:
        return None
    wmax, dmax = max(weights), max(d)
    a = {t for t, x in enumerate(weights) if x == wmax}
    b = {t for t, x in enumerate(d) if x == dmax}
    return len(a & b) / (len(a) * len(b))


@dataclass
class OracleScore:
    """One signal scored against the oracle, over the completions with an oracle row.

    oracle_lift: mean T * sum w o over rows whose deltas are not all 0, with its 95% Student t
    interval (ci_low / ci_high; equal to the mean when every row has the same lift, None for one
    row); oracle_spearman: mean per-row Spearman(salience, |delta|) over the rows where neither side
    is constant (spearman_n of them); oracle_top_match: share of rows whose largest-weight token is
    the largest-|delta| token (ties split, see `top_match`); rows: rows scored; zero_rows: rows left
    out because every delta is 0.
    """

    oracle_lift: float | None
    ci_low: float | None
    ci_high: float | None
    oracle_spearman: float | None
    oracle_top_match: float | None
    rows: int
    zero_rows: int
    spearman_n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lift_dict(self) -> dict[str, Any]:
        """{"mean", "ci_low", "ci_high", "n"}: the form `diagnose.json` stores per signal."""
        return {"mean": self.oracle_lift, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.rows}


def score_signal(
    weights: Sequence[Sequence[float]],
    salience: Sequence[Sequence[float]] | None,
    deltas: Sequence[Sequence[float] | None],
) -> OracleScore:
    """Score one signal's per-completion weights (and raw salience, for the rank correlation)
    against the oracle deltas of the same completions (None: that completion has no oracle row)."""
    if len(weights) != len(deltas) or (salience is not None and len(salience) != len(deltas)):
        raise ValueError("score_signal: weights, salience and deltas must cover the same completions")
    lifts: list[float] = []
    rhos: list[float] = []
    tops: list[float] = []
    zero = 0
    for r, d in enumerate(deltas):
        if d is None:
            continue
        if oracle_credit(d) is None:
            zero += 1
            continue
        lift = oracle_lift(weights[r], d)
        if lift is not None:
            lifts.append(lift)
        tm = top_match(weights[r], d)
        if tm is not None:
            tops.append(tm)
        if salience is not None:
            rho = row_spearman(salience[r], d)
            if rho is not None:
                rhos.append(rho)
    mean, half, _ = mean_ci(lifts)  # 95% Student t interval
    lo, hi = (None, None) if mean is None or half is None else (mean - half, mean + half)
    return OracleScore(
        oracle_lift=mean,
        ci_low=lo,
        ci_high=hi,
        oracle_spearman=math.fsum(rhos) / len(rhos) if rhos else None,
        oracle_top_match=math.fsum(tops) / len(tops) if tops else None,
        rows=len(lifts),
        zero_rows=zero,
        spearman_n=len(rhos),
    )


def signed_cosine(token_advantages: Sequence[float], delta: Sequence[float]) -> float | None:
    """The signed oracle measure of one completion: cos(A, delta) = sum_t A_t delta_t / (||A|| ||delta||) in
    [-1, 1], A a method's signed token advantages (A_i * w_t * T for a weighting signal). Uniform credit gets
    sign(A_i) (R - V_0) / (sqrt(T) ||delta||), since sum_t delta_t = R - V_0. None when every A_t or delta_t is 0."""
    if len(token_advantages) != len(delta):
        raise ValueError(f"token advantages have {len(token_advantages)} tokens but the oracle row has {len(delta)}")
    a = [float(x) for x in token_advantages]
    d = [float(x) for x in delta]
    na = math.sqrt(math.fsum(x * x for x in a))  # ||A||
    nd = math.sqrt(math.fsum(x * x for x in d))  # ||delta||
    if not (na > 0 and nd > 0):
        return None
    return max(-1.0, min(1.0, math.fsum(x * y for x, y in zip(a, d)) / (na * nd)))


def score_signed(
    token_advantages: Sequence[Sequence[float] | None], deltas: Sequence[Sequence[float] | None]
) -> dict[str, Any]:
    """The signed oracle measure of one method over completions: {"mean", "ci_low", "ci_high", "n", "zero_rows"},
    the mean per-completion `signed_cosine` with its 95% Student t interval; `zero_rows` counts completions left
    out because their advantages or deltas are all 0 (None entries are skipped)."""
    if len(token_advantages) != len(deltas):
        raise ValueError("score_signed: token_advantages and deltas must cover the same completions")
    cos: list[float] = []
    zero = 0
    for a, d in zip(token_advantages, deltas):
        if a is None or d is None:
            continue
        c = signed_cosine(a, d)
        if c is None:
            zero += 1
        else:
            cos.append(c)
    mean, half, n = mean_ci(cos)
    lo = hi = None
    if mean is not None and half is not None:
        lo, hi = mean - half, mean + half
    return {"mean": mean, "ci_low": lo, "ci_high": hi, "n": n, "zero_rows": zero}


