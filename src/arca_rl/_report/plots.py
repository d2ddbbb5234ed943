"""PNG figures (matplotlib, Agg backend): training curves of runs and token-weight histograms."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import _scale

if TYPE_CHECKING:  # pragma: no cover
    from .tables import RunData

__all__ = ["band_over_seeds", "plot_curves", "plot_learning_curves", "plot_weight_histograms", "safe_filename"]

CURVES = (
    ("reward", "reward (mean over the batch)"),
    ("credit/gini", "weight Gini G(w)"),
    ("credit/effective_token_ratio", "effective-token ratio EffN/T"),
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def safe_filename(name: str) -> str:
    """A file-name-safe version of a signal or run name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "unnamed"


def plot_curves(runs: Sequence[RunData], path: str | Path) -> Path | None:
    """One figure, three panels (reward, Gini, EffN/T against step), one line per run.

    Lines of the same method share a colour; ranks differ by line style. Returns None when no run
    logged any of the three figures.
    """
    if not any(r.series(key)[0] for r in runs for key, _ in CURVES):
        return None
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    methods = list(dict.fromkeys(r.method for r in runs))
    ranks = list(dict.fromkeys(r.rank for r in runs))
    cmap = plt.get_cmap("tab10")
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    for ax, (key, label) in zip(axes, CURVES):
        for r in runs:
            xs, ys = r.series(key)
            if not xs:
                continue
            ax.plot(
                xs,
                ys,
                color=cmap(methods.index(r.method) % 10),
                linestyle=styles[ranks.index(r.rank) % len(styles)],
                linewidth=1.4,
                alpha=0.9,
                label=r.name,
            )
        ax.set_title(label, fontsize=11)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[1].set_ylim(-0.02, 1.02)
    axes[2].set_ylim(-0.02, 1.02)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        h, lab = ax.get_legend_handles_labels()
        for hh, ll in zip(h, lab):
            if ll not in labels:
                handles.append(hh)
                labels.append(ll)
    if handles:
        fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def band_over_seeds(
    series: Sequence[tuple[Sequence[float], Sequence[float]]],
) -> tuple[list[float], list[float], list[float], list[float]]:
    """(steps, mean, min, max) over the seeds' (steps, values) series, at every step any seed has: the mean and
    the range of the seeds that have that step."""
    at: dict[float, list[float]] = {}
    for xs, ys in series:
        for x, y in zip(xs, ys):
            at.setdefault(float(x), []).append(float(y))
    steps = sorted(at)
    return (
        steps,
        [sum(at[x]) / len(at[x]) for x in steps],
        [min(at[x]) for x in steps],
        [max(at[x]) for x in steps],
    )


def plot_learning_curves(runs: Sequence[RunData], path: str | Path) -> Path | None:
    """One figure, two panels: held-out greedy accuracy (curve.jsonl) and training reward (metrics.jsonl) against
    step; per (method, rank) a line through the mean over seeds and a band from the lowest to the highest seed.
    Returns None when no run has either."""
    if not any(r.curve or r.series("reward")[0] for r in runs):
        return None
    from .tables import group_runs

    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    groups = group_runs(runs)
    one_rank = len({rank for _m, rank in groups}) == 1
    cmap = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), constrained_layout=True)
    panels = (
        (
            axes[0],
            "held-out greedy accuracy (curve.jsonl)",
            lambda r: ([s for s, _a in r.curve], [a for _s, a in r.curve]),
        ),
        (axes[1], "training reward (mean over the batch)", lambda r: r.series("reward")),
    )
    for ax, title, get in panels:
        for i, ((method, rank), group) in enumerate(groups.items()):
            series = [get(r) for r in group]
            series = [s for s in series if s[0]]
            if not series:
                continue
            xs, mean, low, high = band_over_seeds(series)
            colour = cmap(i % 10)
            label = f"{method} ({len(series)} seed{'s' if len(series) > 1 else ''})" if one_rank else (
                f"{method} r{rank} ({len(series)} seed{'s' if len(series) > 1 else ''})"
            )
            ax.plot(xs, mean, color=colour, linewidth=1.6, marker="o" if len(xs) <= 30 else None, markersize=3,
                    label=label)
            if len(series) > 1:
                ax.fill_between(xs, low, high, color=colour, alpha=0.18, linewidth=0)
        if not ax.lines:
            what = "no held-out curve (curve.jsonl): set eval.every_steps" if ax is axes[0] else "no reward logged"
            ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="#666")
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("optimizer step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-0.02, 1.02)
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle("line: mean over seeds; band: lowest to highest seed", fontsize=9)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def _draw_hist(ax, signal: str, values: Sequence[float]) -> None:
    fracs, under, over, total = _scale.relative_histogram(values)
    edges = _scale.hist_edges()
    step = _scale.HIST_STEP
    xs = [edges[0] - step, *edges[:-1], edges[-1]]  # left edges: underflow, regular bins, overflow
    hs = [under / total if total else 0.0, *fracs, over / total if total else 0.0]
    colours = [_scale.relative_colour(2 ** (x + step / 2))[0] for x in xs]
    colours[0] = _scale.relative_colour(0.0)[0]
    ax.bar(xs, hs, width=step, align="edge", color=colours, edgecolor="#555", linewidth=0.4)
    ax.axvline(0.0, color="#888", linestyle="--", linewidth=0.8)
    ticks = [-6, -3, 0, 3, 6]
    ax.set_xticks(ticks, ["1/64", "1/8", "1", "8", "64"])
    ax.set_xlim(xs[0], xs[-1] + step)
    ax.set_title(f"{signal}  ({total} tokens)", fontsize=10)
    ax.set_xlabel("relative weight w·T (log scale, 1 = uniform)", fontsize=8)
    ax.set_ylabel("share of tokens", fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def plot_weight_histograms(
    values_by_signal: Mapping[str, Sequence[float]], out_dir: str | Path
) -> list[Path]:
    """Histograms of relative token weights w·T: `hist_<signal>.png` per signal and `histograms.png`
    with every signal side by side. Returns the written paths (none when there is nothing to plot)."""
    items = [(s, v) for s, v in values_by_signal.items() if len(v)]
    if not items:
        return []
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for s, v in items:
        fig, ax = plt.subplots(figsize=(4.6, 3.2), constrained_layout=True)
        _draw_hist(ax, s, v)
        p = out / f"hist_{safe_filename(s)}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    cols = min(len(items), 3)
    rows = (len(items) + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.6 * cols, 3.2 * rows), constrained_layout=True, squeeze=False
    )
    for ax, (s, v) in zip(axes.flat, items):
        _draw_hist(ax, s, v)
    for ax in list(axes.flat)[len(items) :]:
        ax.set_visible(False)
    p = out / "histograms.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    written.append(p)
    return written
