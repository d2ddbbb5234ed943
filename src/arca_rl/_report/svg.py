"""The weight histograms of the HTML page, as inline SVG (the PNG versions are `plots.py`'s)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from . import _scale

__all__ = ["histogram_svg"]


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def histogram_svg(signal: str, values: Sequence[float]) -> str:
    """Inline SVG histogram of relative weights w*T (log2 x axis), bars coloured by the heatmap scale."""
    fracs, under, over, total = _scale.relative_histogram(values)
    edges = _scale.hist_edges()
    W, H, L, R, TOP, B = 300, 150, 34, 8, 8, 30
    nb = len(fracs) + 2  # underflow + regular + overflow
    bw = (W - L - R) / nb
    all_fracs = [under / total if total else 0.0, *fracs, over / total if total else 0.0]
    ymax = max(all_fracs) if any(all_fracs) else 1.0
    ymax = max(ymax, 1e-9)
    bars: list[str] = []
    for j, f in enumerate(all_fracs):
        if f <= 0:
            continue
        if j == 0:
            r, lab = 0.0, f"< x{2 ** edges[0]:.3g} (incl. 0)"
        elif j == nb - 1:
            r, lab = 2 ** edges[-1] * 2, f">= x{2 ** edges[-1]:.3g}"
        else:
            lo, hi = edges[j - 1], edges[j]
            r, lab = 2 ** ((lo + hi) / 2), f"x{2**lo:.3g} – x{2**hi:.3g}"
        colour, _ = _scale.relative_colour(r)
        h = (H - TOP - B) * f / ymax
        x = L + j * bw
        y = H - B - h
        bars.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bw - 1, 1):.1f}" height="{h:.1f}" fill="{colour}" '
            f'stroke="#555" stroke-width="0.4"><title>{_esc(lab)}: {f:.1%} of tokens</title></rect>'
        )
    ticks: list[str] = []
    for e2, lab in ((-6, "1/64"), (-3, "1/8"), (0, "1"), (3, "8"), (6, "64")):
        x = L + (1 + (e2 - edges[0]) / _scale.HIST_STEP) * bw
        ticks.append(
            f'<line x1="{x:.1f}" y1="{H - B}" x2="{x:.1f}" y2="{H - B + 4}" stroke="#444"/>'
            f'<text x="{x:.1f}" y="{H - B + 15}" text-anchor="middle">{lab}</text>'
        )
    ux = L + (1 + (0 - edges[0]) / _scale.HIST_STEP) * bw
    ticks.append(
        f'<line x1="{ux:.1f}" y1="{TOP}" x2="{ux:.1f}" y2="{H - B}" stroke="#888" stroke-dasharray="3,3"/>'
    )
    yl = (
        f'<text x="{L - 4}" y="{TOP + 8}" text-anchor="end">{ymax:.0%}</text><text x="{L - 4}" y="{H - B}" '
        'text-anchor="end">0</text>'
    )
    axis = f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="#444"/>'
    xl = (
        f'<text x="{(L + W - R) / 2:.0f}" y="{H - 3}" text-anchor="middle" class="ax">relative weight w·T (log scale, '
        '1 = uniform)</text>'
    )
    return (
        f'<figure class="hist"><figcaption>{_esc(signal)} <span class="n">{total} tokens</span></figcaption>'
        f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{_esc(signal)} weight histogram">'
        f"{''.join(bars)}{axis}{''.join(ticks)}{yl}{xl}</svg></figure>"
    )
