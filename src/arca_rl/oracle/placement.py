"""A method's credit scored against the oracle at the resolution the oracle measured, beside its shuffled control,
with intervals that resample prompts (`score_method`). See `arca_rl.oracle`.

**Measured resolution.** An exhaustive row (`positions="all"`) measured every token's delta_t and is scored per token,
exactly as `scoring.py`'s per-token functions score it (`oracle_lift`, `row_spearman`, `top_match`,
`signed_cosine`). An adaptive row measured only the changes V_b - V_a over the intervals (a, b] between its
estimated positions; the per-token deltas inside an interval are interpolated, not measured, so it is scored per
interval: the method's credit mass over (a, b] (the sum of its weights there) against |V_b - V_a|:

    lift      T * sum_j |c_j| W_j / L_j / (sum_j |c_j| * sum_j W_j)      (1 for uniform credit, as per token)
    spearman  Spearman(W_j, |c_j|) over the intervals
    top match whether the interval of largest mass is the one of largest |c_j| (ties split)
    signed    cos(S_j, c_j), S_j the method's signed token advantages summed over the interval

with c_j = V_b - V_a, W_j the mass, L_j = b - a. On one-token intervals these are the per-token measures. A row with
one interval (nothing was localised: every weighting puts all its mass there) carries no signal: it is counted
(`unresolved_rows`) and left out of every score; so is a row whose measured changes are all 0 (`zero_rows`).

**Shuffled control.** The same weights permuted within each completion: same Gini, same EffN/T, random place. Its
score is the average over all permutations, in closed form where one exists (the lift: exactly 1; per token, the
rank correlation 0, the top match 1/T and the signed measure mean(A) * sum(delta) / (||A|| ||delta||), as ||A||
is the same under every permutation) and otherwise over `PERMUTATIONS` seeded permutations (the same ones for
every method on a row). **Placement** = score minus shuffled score, per row: a measure that only rewards
concentration gives every method placement 0.

**Intervals.** The completions of one prompt share its V_0 and its rollouts, so they are not independent: every
interval is a percentile bootstrap that resamples prompts with all their completions (`cluster_bootstrap`), the
same resamples for every method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ..diagnostics import spearman
from .scoring import oracle_lift, row_spearman, signed_cosine, top_match
from .values import OracleRow

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "CONFIDENCE",
    "MEASURES",
    "PERMUTATIONS",
    "Estimate",
    "Measured",
    "MethodScore",
    "cluster_bootstrap",
    "rank_reversal",
    "row_measures",
    "score_method",
    "shuffled_measures",
]

#: The four measures, in the order they are reported.
MEASURES = ("lift", "spearman", "top_match", "signed")

#: Permutations per row for the shuffled controls without a closed form (adaptive rows' rank, top and signed).
PERMUTATIONS = 256

#: Bootstrap resamples (of prompts) per interval, and its confidence.
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95

# masses within this relative distance are one tie (sums of the same weights in another order differ in the last bit)
_TIE_DIGITS = 12


@dataclass(frozen=True)
class Measured:
    """One completion's oracle at the resolution it was measured.

    `length`: T. `delta`: an exhaustive row's per-token deltas (None for an adaptive row). `bounds`: the estimated
    positions 0 = a_0 < .. < a_J = T; `change`: V_{a_j} - V_{a_{j-1}}, the J measured changes."""

    length: int
    delta: tuple[float, ...] | None
    bounds: tuple[int, ...]
    change: tuple[float, ...]

    @classmethod
    def of(cls, oracle: OracleRow | Mapping[str, Any]) -> Measured:
        """From an `OracleRow` or its `to_dict()` form (what `diagnose.json` stores per completion)."""
        if isinstance(oracle, OracleRow):
            values, estimated, delta = oracle.values, oracle.estimated, oracle.delta
        else:
            values, estimated, delta = oracle["values"], oracle.get("estimated"), oracle["delta"]
        T = len(values) - 1
        pos = list(range(T + 1)) if estimated is None else [int(t) for t in estimated]
        change = tuple(float(values[b]) - float(values[a]) for a, b in zip(pos[:-1], pos[1:]))
        return cls(
            length=T,
            delta=None if estimated is not None else tuple(float(d) for d in delta),
            bounds=tuple(pos),
            change=change,
        )

    @property
    def exhaustive(self) -> bool:
        return self.delta is not None

    @property
    def resolved(self) -> bool:
        """An exhaustive row, or an adaptive one with two or more intervals."""
        return self.exhaustive or len(self.change) >= 2

    @property
    def zero(self) -> bool:
        """Every measured change is 0 (for an exhaustive row: every delta, as `oracle_credit` reads it)."""
        if self.delta is not None:
            return not math.fsum(abs(d) for d in self.delta) > 0
        return all(c == 0 for c in self.change)

    def masses(self, x: Sequence[float]) -> list[float]:
        """Per interval (a, b], the sum of x over its tokens a .. b - 1 (exactly rounded)."""
        return [math.fsum(x[a:b]) for a, b in zip(self.bounds[:-1], self.bounds[1:])]


def _check(name: str, x: Sequence[float] | None, m: Measured) -> None:
    if x is not None and len(x) != m.length:
        raise ValueError(f"{name} have {len(x)} tokens but the oracle row has {m.length}")


def row_measures(
    m: Measured,
    weights: Sequence[float],
    ranked: Sequence[float] | None = None,
    advantages: Sequence[float] | None = None,
) -> dict[str, float | None]:
    """The four measures of one row (None where undefined). `weights`: the method's credit (any positive scale);
    `ranked`: what an exhaustive row's rank correlation reads (a signal's raw salience; None: no rank measure);
    `advantages`: the signed token advantages (None: no signed measure). An adaptive row reads weight masses for
    every measure but the signed one (its rank measure too, when `ranked` is given)."""
    _check("weights", weights, m)
    _check("ranked values", ranked, m)
    _check("token advantages", advantages, m)
    if m.delta is not None:  # exhaustive: the per-token functions, exactly as they always scored these rows
        d = list(m.delta)
        return {
            "lift": oracle_lift(weights, d),
            "spearman": None if ranked is None else row_spearman(ranked, d),
            "top_match": top_match(weights, d),
            "signed": None if advantages is None else signed_cosine(advantages, d),
        }
    c = list(m.change)
    mass = [sum((Fraction(x) for x in weights[a:b]), Fraction(0)) for a, b in zip(m.bounds[:-1], m.bounds[1:])]
    abs_c = [abs(Fraction(x)) for x in c]
    sc, sw = sum(abs_c), sum(mass)
    lift = None
    if sc != 0 and sw != 0:
        lengths = [b - a for a, b in zip(m.bounds[:-1], m.bounds[1:])]
        lift = float(m.length * sum(x * w / n for x, w, n in zip(abs_c, mass, lengths)) / (sc * sw))
    # shares of the mass, to 12 digits: sums of the same weights in another order are one tie (as in the control)
    share = [round(float(w / sw), _TIE_DIGITS) if sw != 0 else 0.0 for w in mass]
    top = None
    if sc != 0:
        wmax, cmax = max(share), max(abs_c)
        a = {j for j, w in enumerate(share) if w == wmax}
        b = {j for j, x in enumerate(abs_c) if x == cmax}
        top = len(a & b) / (len(a) * len(b))
    return {
        "lift": lift,
        "spearman": None if ranked is None else spearman(share, [abs(x) for x in c]),
        "top_match": top,
        "signed": None if advantages is None else signed_cosine(m.masses(advantages), c),
    }


def _permutations(T: int, n: int, seed: Sequence[int]) -> np.ndarray:
    """[n, T] row-wise permutations of 0 .. T - 1 from a generator seeded by `seed`."""
    rng = np.random.default_rng(list(seed))
    return rng.permuted(np.tile(np.arange(T), (n, 1)), axis=1)


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=-1)


def shuffled_measures(
    m: Measured,
    weights: Sequence[float],
    ranked: Sequence[float] | None = None,
    advantages: Sequence[float] | None = None,
    *,
    permutations: int = PERMUTATIONS,
    seed: Sequence[int] = (0,),
) -> dict[str, float | None]:
    """`row_measures` averaged over permutations of the row's tokens (weights, ranked values and advantages moved
    together): closed forms where they exist (module docstring), else the mean over `permutations` draws seeded by
    `seed` (undefined draws left out). None where the measure itself is undefined on every permutation."""
    _check("weights", weights, m)
    if all(x is None or len(set(x)) <= 1 for x in (weights, ranked, advantages)):
        return row_measures(m, weights, ranked, advantages)  # every permutation is the row itself (uniform credit)
    T = m.length
    w = np.asarray(weights, dtype=np.float64)
    lift = 1.0 if (not m.zero and w.sum() != 0) else None
    if m.delta is not None:
        d = list(m.delta)
        signed = None
        if advantages is not None:
            _check("token advantages", advantages, m)
            na = math.sqrt(math.fsum(x * x for x in advantages))
            nd = math.sqrt(math.fsum(x * x for x in d))
            if na > 0 and nd > 0:
                signed = math.fsum(advantages) / T * math.fsum(d) / (na * nd)
        return {
            "lift": lift,
            "spearman": None if ranked is None or row_spearman(ranked, d) is None else 0.0,
            "top_match": None if top_match(weights, d) is None else 1.0 / T,
            "signed": signed,
        }
    c = np.asarray(m.change, dtype=np.float64)
    abs_c = np.abs(c)
    out: dict[str, float | None] = {"lift": lift, "spearman": None, "top_match": None, "signed": None}
    if m.zero:
        return out
    perms = _permutations(T, permutations, seed)
    starts = np.asarray(m.bounds[:-1])
    W = np.add.reduceat(w[perms], starts, axis=1)  # [P, J] masses of the permuted weights
    total = W.sum(axis=1, keepdims=True)
    Wn = np.round(W / np.where(total == 0, 1.0, total), _TIE_DIGITS)
    best = abs_c == abs_c.max()
    top = Wn == Wn.max(axis=1, keepdims=True)
    out["top_match"] = float(np.mean((top & best).sum(axis=1) / (top.sum(axis=1) * best.sum())))
    if ranked is not None and len(set(abs_c.tolist())) >= 2:
        varied = Wn.max(axis=1) != Wn.min(axis=1)
        if varied.any():
            rw = _ranks(Wn[varied])
            rc = _ranks(abs_c)
            rw = rw - rw.mean(axis=1, keepdims=True)
            rc = rc - rc.mean()
            rho = (rw @ rc) / (np.linalg.norm(rw, axis=1) * np.linalg.norm(rc))
            out["spearman"] = float(np.clip(rho, -1.0, 1.0).mean())
    if advantages is not None:
        _check("token advantages", advantages, m)
        A = np.add.reduceat(np.asarray(advantages, dtype=np.float64)[perms], starts, axis=1)
        na, nc = np.linalg.norm(A, axis=1), float(np.linalg.norm(c))
        ok = na > 0
        if ok.any() and nc > 0:
            out["signed"] = float(np.clip((A[ok] @ c) / (na[ok] * nc), -1.0, 1.0).mean())
    return out


def rank_reversal(key: Sequence[float]) -> Callable[[Sequence[float]], list[float]]:
    """The map that reverses a row's credit in rank: the token of largest `key` gets what the token of smallest key
    had, the second largest the second smallest's, and so on. A vector x (the weights themselves, or advantages
    and salience moved the same way) is mapped by slot: sorting tokens by `key`, slot s holds x of its token, and
    the token in slot s receives slot T - 1 - s's. Tokens tied in `key` share their slots' values evenly (the
    average over the ways to break the tie), so uniform weights map to themselves; without ties it is a
    permutation (same Gini, same EffN/T)."""
    T = len(key)
    order = sorted(range(T), key=lambda t: key[t])
    groups: list[list[int]] = []  # tokens tied in key, in ascending key order; their slots are contiguous
    for t in order:
        if groups and key[groups[-1][0]] == key[t]:
            groups[-1].append(t)
        else:
            groups.append([t])

    def apply(x: Sequence[float]) -> list[float]:
        if len(x) != T:
            raise ValueError(f"rank_reversal: {len(x)} values for a row of {T} tokens")
        slot: list[float] = []
        for g in groups:  # a tied group's slots each hold the group's mean
            mean = math.fsum(x[t] for t in g) / len(g)
            slot.extend([mean] * len(g))
        out = [0.0] * T
        s = 0
        for g in groups:
            got = math.fsum(slot[T - 1 - k] for k in range(s, s + len(g))) / len(g)
            for t in g:
                out[t] = got
            s += len(g)
        return out

    return apply


def cluster_bootstrap(
    values: Sequence[float],
    clusters: Sequence[int],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean of `values` that resamples clusters (prompts) with replacement,
    each with all its values; (None, None) with fewer than 2 clusters. The resamples depend only on `seed` and the
    number of clusters, so two methods scored on the same prompts share them."""
    if len(values) != len(clusters):
        raise ValueError("cluster_bootstrap: one cluster per value")
    ids = sorted(set(clusters))
    if len(ids) < 2:
        return None, None
    index = {c: i for i, c in enumerate(ids)}
    sums = np.zeros(len(ids))
    counts = np.zeros(len(ids))
    for v, c in zip(values, clusters):
        sums[index[c]] += v
        counts[index[c]] += 1
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(ids), np.full(len(ids), 1.0 / len(ids)), size=resamples)
    means = (draws @ sums) / (draws @ counts)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


@dataclass
class Estimate:
    """A mean over rows with its per-prompt bootstrap interval: {"mean", "ci_low", "ci_high", "n"}."""

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float], clusters: Sequence[int], **bootstrap: Any) -> Estimate:
        if not values:
            return cls(None, None, None, 0)
        lo, hi = cluster_bootstrap(values, clusters, **bootstrap)
        return cls(math.fsum(values) / len(values), lo, hi, len(values))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}


@dataclass
class MethodScore:
    """One method (or reference row) scored against the oracle over the completions.

    `scores`, `shuffled` and `placement` hold one `Estimate` per measure (`MEASURES`): the measure, its shuffled
    control and their difference per row, each a mean over the rows where it is defined with its per-prompt
    bootstrap interval. `rows`: rows scored; `zero_rows`: left out, every measured change 0; `unresolved_rows`:
    left out, one measured interval; `signed_zero_rows`: rows left out of the signed measure because every token
    advantage is 0 (a group whose completions all got the same reward)."""

    scores: dict[str, Estimate]
    shuffled: dict[str, Estimate]
    placement: dict[str, Estimate]
    rows: int
    zero_rows: int
    unresolved_rows: int
    signed_zero_rows: int = 0
    per_row: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scores": {k: v.to_dict() for k, v in self.scores.items()},
            "shuffled": {k: v.to_dict() for k, v in self.shuffled.items()},
            "placement": {k: v.to_dict() for k, v in self.placement.items()},
            "rows": self.rows,
            "zero_rows": self.zero_rows,
            "unresolved_rows": self.unresolved_rows,
            "signed_zero_rows": self.signed_zero_rows,
        }


def score_method(
    rows: Sequence[Measured | None],
    prompts: Sequence[int],
    weights: Sequence[Sequence[float]],
    ranked: Sequence[Sequence[float]] | None = None,
    advantages: Sequence[Sequence[float] | None] | None = None,
    *,
    permutations: int = PERMUTATIONS,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> MethodScore:
    """Score one method's per-completion `weights` (with `ranked` values for the rank measure and signed
    `advantages` for the signed one, each optional) against the oracle `rows` (None: no oracle row) of completions
    whose prompts are `prompts`. Row r's permutations are seeded by (seed, r), the bootstrap by `seed`."""
    n = len(rows)
    if len(prompts) != n or len(weights) != n or (ranked is not None and len(ranked) != n):
        raise ValueError("score_method: rows, prompts, weights and ranked values must cover the same completions")
    if advantages is not None and len(advantages) != n:
        raise ValueError("score_method: one list of token advantages (or None) per completion")
    got: dict[str, list[tuple[float, int]]] = {k: [] for k in MEASURES}
    base: dict[str, list[tuple[float, int]]] = {k: [] for k in MEASURES}
    diff: dict[str, list[tuple[float, int]]] = {k: [] for k in MEASURES}
    zero = unresolved = scored = signed_zero = 0
    per_row: list[dict[str, Any]] = []
    for r, m in enumerate(rows):
        if m is None:
            continue
        if not m.resolved:
            unresolved += 1
            continue
        if m.zero:
            zero += 1
            continue
        adv = None if advantages is None else advantages[r]
        rk = None if ranked is None else ranked[r]
        score = row_measures(m, weights[r], rk, adv)
        shuf = shuffled_measures(m, weights[r], rk, adv, permutations=permutations, seed=(seed, r))
        scored += 1
        if adv is not None and score["signed"] is None:
            signed_zero += 1
        for k in MEASURES:
            if score[k] is not None:
                got[k].append((score[k], prompts[r]))  # type: ignore[arg-type]
            if shuf[k] is not None:
                base[k].append((shuf[k], prompts[r]))  # type: ignore[arg-type]
            if score[k] is not None and shuf[k] is not None:
                diff[k].append((score[k] - shuf[k], prompts[r]))  # type: ignore[operator]
        per_row.append({"row": r, "prompt": prompts[r], "score": score, "shuffled": shuf})
    boot = {"resamples": resamples, "confidence": confidence, "seed": seed}

    def est(pairs: list[tuple[float, int]]) -> Estimate:
        return Estimate.of([v for v, _ in pairs], [c for _, c in pairs], **boot)

    return MethodScore(
        scores={k: est(v) for k, v in got.items()},
        shuffled={k: est(v) for k, v in base.items()},
        placement={k: est(v) for k, v in diff.items()},
        rows=scored,
        zero_rows=zero,
        unresolved_rows=unresolved,
        signed_zero_rows=signed_zero,
        per_row=per_row,
    )
