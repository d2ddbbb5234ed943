"""Colour scales and histogram binning shared by the HTML page and the PNG plots.

Token weights are shown as the *relative weight* r_t = w_t * T: 1 is the uniform share 1/T, 2 is
twice it, 1/2 half of it. That makes rows of different lengths comparable and puts uniform credit
at a fixed, neutral colour.

Two colour modes (the page switches between them):
- "relative": a diverging scale on log2(r), clipped to [-LOG2_CLIP, LOG2_CLIP]: blue below the
  uniform share, white at it, red above it.
- "row max": a sequential scale on w_t / max_t w_t (white -> dark red), i.e. each row's own peak.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

LOG2_CLIP = 4.0  # relative weights beyond x16 / below x1/16 get the end colours

# Diverging stops (position in [-1, 1] -> RGB), blue - white - red (ColorBrewer RdBu, reversed).
_DIVERGING: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (-1.0, (33, 102, 172)),
    (-0.5, (146, 197, 222)),
    (0.0, (247, 247, 247)),
    (0.5, (244, 165, 130)),
    (1.0, (178, 24, 43)),
)
# Sequential stops (position in [0, 1] -> RGB), white - yellow - orange - dark red.
_SEQUENTIAL: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (0.0, (255, 255, 255)),
    (0.25, (254, 232, 170)),
    (0.5, (253, 174, 97)),
    (0.75, (230, 85, 13)),
    (1.0, (127, 39, 4)),
)

# Histogram of relative weights: log2 bins of width HIST_STEP on [-HIST_RANGE, HIST_RANGE], plus one
# underflow bin for r < 2^-HIST_RANGE (zero weights included) and one overflow bin.
HIST_RANGE = 7.0
HIST_STEP = 0.5


def _interp(stops: Sequence[tuple[float, tuple[int, int, int]]], x: float) -> tuple[int, int, int]:
    if x <= stops[0][0]:
        return stops[0][1]
    for (x0, c0), (x1, c1) in zip(stops, stops[1:]):
        if x <= x1:
            f = (x - x0) / (x1 - x0)
            return tuple(round(a + f * (b - a)) for a, b in zip(c0, c1))  # type: ignore[return-value]
    return stops[-1][1]


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _text_colour(rgb: tuple[int, int, int]) -> str:
    # relative luminance (sRGB approximation): dark background -> white text
    r, g, b = (c / 255 for c in rgb)
    return "#ffffff" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.55 else "#111111"


def relative_position(r: float) -> float:
    """log2(r) / LOG2_CLIP clipped to [-1, 1]; r <= 0 maps to -1."""
    if not (r > 0) or not math.isfinite(r):
        return -1.0 if not (r > 0) else 1.0
    return max(-1.0, min(1.0, math.log2(r) / LOG2_CLIP))


def relative_colour(r: float) -> tuple[str, str]:
    """(background, text) hex colours for relative weight r = w * T on the diverging scale."""
    rgb = _interp(_DIVERGING, relative_position(r))
    return _hex(rgb), _text_colour(rgb)


def rowmax_colour(v: float) -> tuple[str, str]:
    """(background, text) hex colours for v = w / max(w) in [0, 1] on the sequential scale."""
    v = 0.0 if not math.isfinite(v) else max(0.0, min(1.0, v))
    rgb = _interp(_SEQUENTIAL, v)
    return _hex(rgb), _text_colour(rgb)


def css_gradient(mode: str) -> str:
    """A CSS linear-gradient (left to right) of the whole scale, for the legend."""
    if mode == "relative":
        parts = [f"{_hex(c)} {(x + 1) * 50:.0f}%" for x, c in _DIVERGING]
    elif mode == "rowmax":
        parts = [f"{_hex(c)} {x * 100:.0f}%" for x, c in _SEQUENTIAL]
    else:
        raise ValueError(f"unknown colour mode {mode!r}")
    return "linear-gradient(to right, " + ", ".join(parts) + ")"


def hist_edges() -> list[float]:
    """log2 edges of the regular bins, from -HIST_RANGE to HIST_RANGE."""
    n = round(2 * HIST_RANGE / HIST_STEP)
    return [-HIST_RANGE + i * HIST_STEP for i in range(n + 1)]


def relative_weights(w: Sequence[float]) -> list[float]:
    """A row's relative weights r_t = w_t * T / sum w (1 = the uniform share); all 0 for a row summing to 0."""
    total = sum(w)
    return [(x / total) * len(w) if total > 0 else 0.0 for x in w]


def relative_histogram(values: Iterable[float]) -> tuple[list[float], int, int, int]:
    """Bin relative weights r on a log2 scale.

    Returns (fractions per regular bin, underflow count, overflow count, total count); fractions are
    of the total, so they sum with the two outer bins to 1. Non-finite values are ignored.
    """
    edges = hist_edges()
    counts = [0] * (len(edges) - 1)
    under = over = total = 0
    for r in values:
        if not math.isfinite(r):
            continue
        total += 1
        if r <= 0 or math.log2(r) < edges[0]:
            under += 1
            continue
        x = math.log2(r)
        if x >= edges[-1]:
            over += 1
            continue
        counts[min(len(counts) - 1, int((x - edges[0]) / HIST_STEP))] += 1
    fracs = [c / total if total else 0.0 for c in counts]
    return fracs, under, over, total
