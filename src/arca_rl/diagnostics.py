"""Concentration diagnostics of token credit weights (the paper's concentration diagnostics), and the
package's other statistics: every figure that diagnose, report and the oracle show is computed here.

The tensor functions take weights w [B, T] and a mask [B, T] (1 on real tokens, padding on either side),
work per row in float32 whatever the input dtype, and are vectorized over rows. Every statistic
is scale-invariant: it sees w / sum(w) over the row's real tokens, so it equals the paper's formula
for weights that sum to 1 (as `token_weights` returns) and stays meaningful for raw salience.
Degenerate rows give 0, never NaN: T_b = 0, or real weights that sum to 0. Negative, NaN or inf
weights on a real token are a ValueError.

On plain lists of numbers: `row_figures` (Gini and EffN/T of one row, through the tensor functions),
`regime` (the label of a mean Gini and EffN/T), `spearman` (rank correlation) and `mean_ci` (a mean with
its Student t interval).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

__all__ = [
    "SPARSE_MAX_EFFN",
    "SPARSE_MIN_GINI",
    "UNIFORM_MAX_GINI",
    "UNIFORM_MIN_EFFN",
    "effective_token_ratio",
    "gini",
    "mean_ci",
    "regime",
    "row_figures",
    "spearman",
    "summarize",
    "top_mass",
]

# Regime thresholds, on the batch means of G(w) and EffN/T. The paper's Table 3 (averaged over training):
#   uniform                                 G = 0.000         EffN/T = 1.000
#   ARCA r = 4 / 16 / 64 (the middle)       G = 0.353-0.490   EffN/T = 0.334-0.467
#   surprisal / entropy red. / divergence   G = 0.920-0.941   EffN/T = 0.052-0.073
# Each boundary sits near the midpoint of the gap between neighbouring reported regimes, so every
# method of the table lands in its own regime with a margin of at least ~0.13 on each figure:
#   uniform:  G < 0.15 and EffN/T > 0.75 (gaps 0 .. 0.353 and 0.467 .. 1)
#   sparse:   G > 0.70 or EffN/T < 0.20  (gaps 0.490 .. 0.920 and 0.073 .. 0.334)
#   middle:   everything else.
# Sparse is tested first and needs only one figure: spuriously concentrated credit is the failure
# mode either statistic alone reveals. Uniform needs both to agree.
UNIFORM_MAX_GINI = 0.15
UNIFORM_MIN_EFFN = 0.75
SPARSE_MIN_GINI = 0.70
SPARSE_MAX_EFFN = 0.20


def _prepare(weights: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """-> (p [B, T] float32: w / row sum on real tokens, 0 elsewhere; n [B] long: T_b per row)."""
    if weights.dim() != 2 or weights.shape != mask.shape:
        raise ValueError(
            f"weights and mask must both be [B, T], got {tuple(weights.shape)} and {tuple(mask.shape)}"
        )
    real = mask != 0
    w = torch.where(real, weights.detach().to(torch.float32), 0.0)
    bad = ~torch.isfinite(w) | (w < 0)
    if bad.any():
        raise ValueError(f"weights must be finite and >= 0 on real tokens; {int(bad.sum())} value(s) are not")
    top = w.amax(-1, keepdim=True) if w.shape[1] else w.sum(-1, keepdim=True)
    w = w / torch.where(top > 0, top, 1.0)  # w / max first, so that huge raw values cannot overflow the sum
    total = w.sum(-1, keepdim=True)
    p = w / torch.where(total > 0, total, 1.0)  # w / sum w; rows summing to 0 stay 0
    return p, real.sum(-1)


def _sorted_desc(p: Tensor) -> Tensor:
    """Each row sorted descending, [B, T]. Padding is 0 and real weights are >= 0, so the row's real
    weights fill its first T_b columns (ties with real zeros are interchangeable)."""
    return p.sort(dim=-1, descending=True).values


def _gini_sorted(s: Tensor, n: Tensor) -> Tensor:
    # The paper's G = sum_i (2i - T - 1) w_i / (T sum w), i = 1..T ascending. Descending column j = 0..T-1
    # holds ascending rank i = T - j, so the coefficient is 2(T - j) - T - 1 = T - 2j - 1 (sum w = 1).
    j = torch.arange(s.shape[1], device=s.device, dtype=torch.float32)
    nf = n.to(torch.float32).unsqueeze(-1)
    coef = torch.where(j < nf, nf - 2 * j - 1, 0.0)
    # T <= 1 rows (coefficient 0) and all-zero rows give 0; the clamp drops rounding noise below 0
    return ((coef * s).sum(-1) / nf.squeeze(-1).clamp_min(1)).clamp_min(0.0)


def _top_mass_sorted(s: Tensor, n: Tensor, frac: float) -> Tensor:
    # k = ceil(frac * T) (at least 1); the relative slack keeps float 0.07 * 100 = 7.000000000000001 at 7
    if s.shape[1] == 0:
        return torch.zeros_like(n, dtype=torch.float32)
    k = torch.ceil(n.to(torch.float64) * frac * (1 - 1e-12)).long().clamp_min(1)
    last = (k - 1).clamp(max=s.shape[1] - 1).unsqueeze(-1)  # column of the k-th largest weight
    top = s.cumsum(-1).gather(1, last).squeeze(-1)  # sum of the k largest (sum w = 1)
    return torch.where(n > 0, top, 0.0)


def _eff(p: Tensor, n: Tensor) -> Tensor:
    q = (p * p).sum(-1)  # sum_t w_t^2, in [1/T, 1] for a distribution
    return torch.where(
        q > 0, 1.0 / (n.to(torch.float32) * torch.where(q > 0, q, 1.0)), 0.0
    )  # 1 / (T sum w^2)


def gini(weights: Tensor, mask: Tensor) -> Tensor:
    """Weight Gini per row, [B, T] x2 -> [B] float32: 0 uniform, (T-1)/T one-hot; 0 for T <= 1."""
    p, n = _prepare(weights, mask)
    return _gini_sorted(_sorted_desc(p), n)


def effective_token_ratio(weights: Tensor, mask: Tensor) -> Tensor:
    """EffN/T = 1 / (T sum_t w_t^2) per row, [B, T] x2 -> [B] float32: 1 uniform, 1/T one-hot.

    Rows with T = 0 (or real weights summing to 0) give 0.
    """
    return _eff(*_prepare(weights, mask))


def top_mass(weights: Tensor, mask: Tensor, frac: float = 0.1) -> Tensor:
    """Share of each row's credit on its top ceil(frac * T) tokens (at least one): [B, T] x2 -> [B].

    1 for one-hot, ceil(frac * T) / T for uniform, 0 for T = 0.
    """
    if not (0 < frac <= 1):
        raise ValueError(f"top_mass: frac must be in (0, 1], got {frac}")
    p, n = _prepare(weights, mask)
    return _top_mass_sorted(_sorted_desc(p), n, frac)


def summarize(weights: Tensor, mask: Tensor) -> dict[str, float | int | str | None]:
    """Batch concentration summary of weights [B, T] (mask [B, T]).

    Returns {"gini", "effective_token_ratio", "top10_mass"}: Python float means over the rows with
    T >= 2 (the paper's batch figures; top10_mass is `top_mass(frac=0.1)`), "n_rows": how many such rows,
    and "regime": "uniform" | "middle" | "sparse" from the mean G and EffN/T (module thresholds).
    With no row of T >= 2 the three figures and the regime are None.
    """
    p, n = _prepare(weights, mask)
    s = _sorted_desc(p)  # one sort serves Gini and top mass
    rows = n >= 2
    n_rows = int(rows.sum())
    if n_rows == 0:
        return {"gini": None, "effective_token_ratio": None, "top10_mass": None, "n_rows": 0, "regime": None}

    g = float(_gini_sorted(s, n)[rows].mean())
    e = float(_eff(p, n)[rows].mean())
    top = float(_top_mass_sorted(s, n, 0.1)[rows].mean())
    return {
        "gini": g,
        "effective_token_ratio": e,
        "top10_mass": top,
        "n_rows": n_rows,
        "regime": regime(g, e),
    }


def regime(g: float | None, eff: float | None) -> str | None:
    """The credit regime of a mean Gini G and EffN/T: "sparse", "uniform" or "middle" (the module's
    thresholds; sparse first, on either figure), None when either figure is unknown."""
    if g is None or eff is None:
        return None
    if g > SPARSE_MIN_GINI or eff < SPARSE_MAX_EFFN:
        return "sparse"
    if g < UNIFORM_MAX_GINI and eff > UNIFORM_MIN_EFFN:
        return "uniform"
    return "middle"


# -----------------------------------------------------------------------------
# statistics of plain lists of numbers


def row_figures(w: Sequence[float]) -> tuple[float | None, float | None]:
    """(Gini, EffN/T) of one row of weights (normalized by `gini` / `effective_token_ratio`); None for
    fewer than 2 tokens or a row whose weights sum to 0, where neither is defined."""
    if len(w) < 2 or not sum(w) > 0:
        return None, None
    wt = torch.tensor([list(w)], dtype=torch.float32)
    mask = torch.ones_like(wt, dtype=torch.bool)
    return float(gini(wt, mask)[0]), float(effective_token_ratio(wt, mask)[0])


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman rank correlation of two equally long sequences (average ranks for ties, scipy's), in
    [-1, 1]; None when either side is constant or there are fewer than 2 values."""
    if len(a) != len(b):
        raise ValueError(f"spearman: the two sides have {len(a)} and {len(b)} values")
    if len(a) < 2 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    from scipy.stats import spearmanr  # scipy loads only when a figure needs it

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = float(spearmanr(a, b).statistic)
    return max(-1.0, min(1.0, rho)) if math.isfinite(rho) else None


def mean_ci(values: Iterable[float | None], confidence: float = 0.95) -> tuple[float | None, float | None, int]:
    """(mean, interval half-width, n) of the finite values; half-width None for n < 2, everything None for n = 0.

    The interval is Student t with n - 1 degrees of freedom: t_{(1+c)/2, n-1} * s / sqrt(n), s the sample
    standard deviation (0 when every value is the same).
    """
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return None, None, 0
    mean = math.fsum(xs) / n
    if n < 2:
        return mean, None, 1
    s = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    if s == 0:
        return mean, 0.0, n
    from scipy.stats import t  # scipy loads only when a figure needs it

    return mean, float(t.ppf((1 + confidence) / 2, n - 1)) * s / math.sqrt(n), n
