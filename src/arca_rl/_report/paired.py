"""Paired comparisons with a baseline method (`arca report --baseline NAME`, default uniform): `paired.json`.

Runs with the same seed see the same prompts in the same order and the same first-step rollouts, so a method is
compared with the baseline seed by seed: for each seed both have (and the same LoRA rank), the difference
d_s = method_s - baseline_s of a measure. Reported per method and measure: the number of seeds paired, the mean
difference, its 95% Student-t interval (mean ± t_{0.975, n-1} · sd(d) / sqrt(n), scipy's t quantile; none with
one seed) and wins / ties / losses (d > 0, d = 0, d < 0). The measures: held-out greedy accuracy and pass@k
(eval.json) and the learning-curve area (`RunData.curve_auc`: the area under the held-out curve of
`eval.every_steps`, divided by its step span, i.e. the mean held-out accuracy over training).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .tables import RunData, group_runs

__all__ = ["MEASURES", "PairedEntry", "default_baseline", "paired_differences", "paired_json", "paired_markdown"]

CONFIDENCE = 0.95
# name in paired.json -> (what it is, how a run gives it)
MEASURES: dict[str, tuple[str, Callable[[RunData], float | None]]] = {
    "greedy_accuracy": ("held-out greedy accuracy after training", lambda r: r.eval_value("greedy_accuracy")),
    "pass_at_k": ("held-out pass@k after training", lambda r: r.eval_value("pass_at_k")),
    "curve_auc": (
        "learning-curve area: held-out greedy accuracy averaged over training steps (trapezoid / step span)",
        lambda r: r.curve_auc,
    ),
}
TIE = 1e-12  # |d| at most this is a tie (accuracies are multiples of 1/n)


@dataclass
class PairedEntry:
    """One method's paired difference from the baseline on one measure."""

    method: str
    rank: int | None
    measure: str
    n_seeds: int
    seeds: list[int]
    mean: float
    ci_low: float | None
    ci_high: float | None
    wins: int
    ties: int
    losses: int
    note: str | None = None


def default_baseline(runs: Sequence[RunData]) -> str | None:
    """uniform when a uniform run is there, else None (no paired comparison)."""
    return "uniform" if any(r.method == "uniform" for r in runs) else None


def _t_quantile(dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, dof))


def _entry(method: str, rank: int | None, measure: str, pairs: list[tuple[int, float]]) -> PairedEntry:
    diffs = [d for _s, d in pairs]
    n = len(diffs)
    mean = sum(diffs) / n
    lo = hi = None
    note = None
    if n >= 2:
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
        half = _t_quantile(n - 1) * sd / math.sqrt(n)
        lo, hi = mean - half, mean + half
    else:
        note = "one seed in common: no interval"
    return PairedEntry(
        method=method,
        rank=rank,
        measure=measure,
        n_seeds=n,
        seeds=[s for s, _d in pairs],
        mean=mean,
        ci_low=lo,
        ci_high=hi,
        wins=sum(d > TIE for d in diffs),
        ties=sum(abs(d) <= TIE for d in diffs),
        losses=sum(d < -TIE for d in diffs),
        note=note,
    )


def paired_differences(runs: Sequence[RunData], baseline: str) -> tuple[list[PairedEntry], list[str]]:
    """Every other method's paired differences from `baseline` (runs of one rank paired by seed), and messages
    about the methods that could not be paired (no baseline run of their rank, no seed in common)."""
    groups = group_runs(runs)
    base = {
        rank: {r.seed: r for r in group if r.seed is not None} for (m, rank), group in groups.items() if m == baseline
    }
    entries: list[PairedEntry] = []
    messages: list[str] = []
    for (method, rank), group in groups.items():
        if method == baseline:
            continue
        theirs = base.get(rank)
        if not theirs:
            messages.append(f"{method} r{rank}: no {baseline} run of rank {rank} to pair with; not in paired.json")
            continue
        common = sorted(r.seed for r in group if r.seed is not None and r.seed in theirs)
        if not common:
            messages.append(f"{method} r{rank}: no seed in common with {baseline} r{rank}; not in paired.json")
            continue
        mine = {r.seed: r for r in group}
        for measure, (_what, value) in MEASURES.items():
            pairs = [
                (s, a - b)
                for s in common
                if (a := value(mine[s])) is not None and (b := value(theirs[s])) is not None
            ]
            if pairs:
                entries.append(_entry(method, rank, measure, pairs))
        if len(common) == 1:
            messages.append(f"{method} r{rank}: one seed in common with {baseline} ({common[0]}): no interval")
    return entries, messages


def paired_json(entries: Sequence[PairedEntry], baseline: str) -> dict[str, Any]:
    """The paired.json object."""
    return {
        "baseline": baseline,
        "confidence": CONFIDENCE,
        "difference": f"method minus {baseline}, seed by seed (same seed and LoRA rank)",
        "interval": "mean ± t_{0.975, n-1} · sd / sqrt(n) over the paired seeds (Student t); null with one seed",
        "measures": {name: what for name, (what, _v) in MEASURES.items()},
        "entries": [asdict(e) for e in entries],
    }


def _signed(x: float) -> str:
    return f"{0.0 if abs(x) < 5e-4 else x:+.3f}"


def paired_markdown(entries: Sequence[PairedEntry], baseline: str) -> str:
    """The paired table as GitHub-flavoured markdown."""
    lines = [
        f"| method | rank | measure | seeds | mean difference from {baseline} [95% CI] | wins / ties / losses |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for e in entries:
        cell = (
            f"{_signed(e.mean)} [{_signed(e.ci_low)}, {_signed(e.ci_high)}]"
            if e.ci_low is not None and e.ci_high is not None
            else f"{_signed(e.mean)} ({e.note})"
        )
        rank = "—" if e.rank is None else str(e.rank)
        lines.append(
            f"| {e.method.replace('|', chr(92) + '|')} | {rank} | {e.measure} | {e.n_seeds} | {cell} | "
            f"{e.wins} / {e.ties} / {e.losses} |"
        )
    return "\n".join(lines)
