"""One self-contained HTML page of token-credit heatmaps (no network assets; CSS, JS and SVG inline in the page).

Used by `arca diagnose` (one section: the sampled completions, every signal) and `arca report`
(one section per run that logged `credit_tokens.jsonl`). The page holds, per section: a summary
table, weight histograms (inline SVG, one per signal) and one card per completion whose tokens are
shaded by each signal's weight, one row per signal; hovering a token shows its weight, relative
weight and raw salience, and outlines the same token in the other rows. A completion with Monte Carlo
token values (`arca diagnose --oracle K`) gets an "oracle" row above its signal rows, shaded by the
oracle credit o_t = |delta_t| / sum |delta| (hover: V before and after the token, delta, standard error, or
"interpolated" for a value the adaptive oracle did not sample).

All token and prompt text is HTML-escaped; whitespace inside tokens is drawn visibly (`·` space,
`↵` newline, `→` tab, `␣` other whitespace) so token boundaries stay readable. The page's CSS and JS
are package data (`_report/assets/`), inlined into each page. The figures of a row (Gini, EffN/T) are
`arca_rl.diagnostics.row_figures`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..diagnostics import SPARSE_MAX_EFFN, SPARSE_MIN_GINI, UNIFORM_MAX_GINI, UNIFORM_MIN_EFFN, row_figures
from ..rundir import TokenRecord
from . import _scale
from .svg import histogram_svg

__all__ = ["Completion", "Section", "SummaryRow", "render_page", "write_page"]


@dataclass
class Completion:
    """One completion to draw: its tokens and, per signal, a weight and raw salience per token."""

    tokens: list[str]
    weights: dict[str, list[float]]
    salience: dict[str, list[float]] = field(default_factory=dict)
    title: str = ""
    prompt: str | None = None
    meta: dict[str, str | float | int | None] = field(default_factory=dict)
    oracle: Mapping[str, object] | None = None  # `arca_rl.oracle.OracleRow.to_dict()`


@dataclass
class SummaryRow:
    """One line of a section's summary table (None shows as an em dash)."""

    signal: str
    gini: float | None = None
    effective_token_ratio: float | None = None
    top10_mass: float | None = None
    regime: str | None = None
    spearman_vs_arca: float | None = None
    first_token_mass: float | None = None
    n_rows: int | None = None
    oracle_lift: float | None = None
    oracle_lift_ci: tuple[float | None, float | None] | None = None
    oracle_spearman: float | None = None
    oracle_top_match: float | None = None
    oracle_signed: float | None = None
    oracle_signed_ci: tuple[float | None, float | None] | None = None


@dataclass
class Section:
    """A block of the page: a heading, an optional summary table, histograms and completions."""

    title: str
    completions: list[Completion] = field(default_factory=list)
    summary: list[SummaryRow] = field(default_factory=list)
    absent: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    subtitle: str = ""
    signals: list[str] | None = None  # row order; default: order of first appearance
    histograms: bool = True
    table_note: str | None = None  # first sentence under the table (default: what the means are over)
    figures: list[tuple[str, Path]] = field(default_factory=list)  # (caption, PNG file), inlined in the page


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x: float | int | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    if abs(x) < 0.5 * 10**-digits:
        x = 0.0  # no "-0.000"
    return f"{x:.{digits}f}"


def _visible_token(tok: str) -> str:
    """Escaped HTML for a token with its whitespace drawn; a newline also ends the visual line."""
    if tok == "":
        return '<span class="ws">∅</span>'
    out: list[str] = []
    for ch in tok:
        if ch == " ":
            out.append('<span class="ws">·</span>')
        elif ch == "\n":
            out.append('<span class="ws">↵</span>')
        elif ch == "\t":
            out.append('<span class="ws">→</span>')
        elif ch.isspace() or (ord(ch) < 32):
            out.append('<span class="ws">␣</span>')
        else:
            out.append(_e(ch))
    return "".join(out)


def _signal_order(section: Section) -> list[str]:
    if section.signals is not None:
        return list(section.signals)
    seen: dict[str, None] = {}
    for row in section.summary:
        seen.setdefault(row.signal, None)
    for c in section.completions:
        for s in c.weights:
            seen.setdefault(s, None)
    return list(seen)


def _token_row(
    signal: str,
    tokens: Sequence[str],
    w: Sequence[float],
    sal: Sequence[float] | None,
    tips: Sequence[str] | None = None,
) -> str:
    n = len(tokens)
    total = sum(w) if w else 0.0
    peak = max(w) if w else 0.0
    spans: list[str] = []
    for i, tok in enumerate(tokens):
        wi = float(w[i]) if i < len(w) else 0.0
        r = wi / total * n if total > 0 else 0.0
        rel_bg, rel_fg = _scale.relative_colour(r)
        max_bg, max_fg = _scale.rowmax_colour(wi / peak if peak > 0 else 0.0)
        s_txt = f"{float(sal[i]):.4g}" if sal is not None and i < len(sal) else "n/a"
        tip = f"{signal} · token {i} {tok!r}\nweight {wi:.4g}  (x{r:.3g} of uniform 1/T)\nsalience {s_txt}"
        if tips is not None and i < len(tips):
            tip = tips[i]
        spans.append(
            f'<span class="t" data-i="{i}" style="--rb:{rel_bg};--rf:{rel_fg};--mb:{max_bg};--mf:{max_fg}" '
            f'title="{_e(tip)}">{_visible_token(tok)}</span>'
        )
        if "\n" in tok:
            spans.append('<span class="brk"></span>')
    return "".join(spans)


def _completion_card(c: Completion, signals: Sequence[str], idx: int) -> str:
    n = len(c.tokens)
    meta_bits = [f"<span><b>T</b> = {n}</span>"]
    for k, v in c.meta.items():
        if v is None:
            continue
        shown = _fmt(v) if isinstance(v, float) else _e(v)
        meta_bits.append(f"<span><b>{_e(k)}</b> {shown}</span>")
    parts = [f'<article class="card" id="c{idx}">']
    parts.append(
        f'<header><h3>{_e(c.title or f"completion {idx}")}</h3><div class="meta">{"".join(meta_bits)}</div></header>'
    )
    if c.prompt:
        parts.append(f'<details class="prompt"><summary>prompt</summary><pre>{_e(c.prompt)}</pre></details>')
    parts.append('<div class="grid">')
    if c.oracle is not None:
        parts.append(_oracle_row(c))
    for s in signals:
        w = c.weights.get(s)
        if w is None:
            continue
        g, eff = row_figures(w)
        parts.append(
            f'<div class="sig" data-signal="{_e(s)}"><div class="lab"><span class="name">{_e(s)}</span>'
            f'<span class="st">G {_fmt(g, 2)} · EffN/T {_fmt(eff, 2)}</span></div>'
            f'<div class="toks">{_token_row(s, c.tokens, w, c.salience.get(s))}</div></div>'
        )
    parts.append("</div></article>")
    return "".join(parts)


def _oracle_row(c: Completion) -> str:
    """The oracle row of a card: tokens shaded by o_t; the tip gives V_{t-1} -> V_t, delta and errors."""
    o: Mapping[str, Any] = c.oracle or {}
    values = [float(v) for v in o.get("values") or []]
    delta = [float(d) for d in o.get("delta") or []]
    errs = list(o.get("stderr") or [])
    credit = o.get("credit")
    shares = [float(x) for x in credit] if isinstance(credit, list) else [0.0] * len(delta)

    sampled = o.get("estimated")  # the adaptive oracle's estimated positions; absent: every one
    est = set(range(len(values))) if not isinstance(sampled, list) else set(sampled)

    def se(t: int) -> str:
        if t not in est:
            return "interpolated"
        x = errs[t] if t < len(errs) else None
        return "n/a" if x is None else f"± {float(x):.3g}"

    tips = []
    for t, tok in enumerate(c.tokens[: len(delta)]):
        tips.append(
            f"oracle · token {t} {tok!r}\nV before {values[t]:.3f} ({se(t)})  ->  after {values[t + 1]:.3f} "
            f"({se(t + 1)})\ndelta {delta[t]:+.3f}  ·  o_t {shares[t]:.3g}"
            + ("" if t + 1 in est else "  ·  delta interpolated (spread evenly between estimated values)")
        )
    flag = " · no signal" if o.get("no_signal") else ""
    if isinstance(sampled, list):
        flag += f" · {len(sampled)} of {len(values)} values estimated, the rest interpolated"
    k = o.get("samples")
    v0 = f"V0 {values[0]:.2f} · " if values else ""
    return (
        f'<div class="sig oracle" data-signal="oracle"><div class="lab"><span class="name">oracle (K={_e(k)})</span>'
        f'<span class="st">{v0}{"all Δ = 0" if credit is None else "o_t = |Δ_t| / Σ|Δ|"}{_e(flag)}</span></div>'
        f'<div class="toks">{_token_row("oracle", c.tokens[: len(delta)], shares, delta, tips)}</div></div>'
    )


def _figure(caption: str, png: Path) -> str:
    """A PNG inlined as a data URI (the page loads nothing), with its caption."""
    import base64

    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (
        f'<figure class="plot"><img src="data:image/png;base64,{data}" alt="{_e(caption)}" style="max-width:100%">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _regime_badge(regime: str | None) -> str:
    if not regime:
        return "—"
    cls = {"uniform": "b-uni", "sparse": "b-sparse", "middle": "b-mid"}.get(regime, "b-other")
    return f'<span class="badge {cls}">{_e(regime)}</span>'


def _summary_table(section: Section) -> str:
    if not section.summary and not section.absent:
        return ""
    rows_in = section.summary
    show_first = any(r.first_token_mass is not None for r in rows_in)
    show_regime = any(r.regime is not None for r in rows_in)
    show_rho = any(r.spearman_vs_arca is not None for r in rows_in)
    show_n = any(r.n_rows is not None for r in rows_in)
    show_oracle = any(r.oracle_lift is not None for r in rows_in)
    show_signed = any(r.oracle_signed is not None for r in rows_in)
    head = ["signal", "mean Gini", "EffN/T", "top-10% mass"]
    head += (
        ["first-token mass"] * show_first
        + ["regime"] * show_regime
        + ["ρ vs arca"] * show_rho
        + ["rows"] * show_n
        + ["oracle lift [95% CI]", "ρ vs |Δ|", "top match"] * show_oracle
        + ["signed cos(A, Δ) [95% CI]"] * show_signed
    )
    rows = [
        "<table class='summary'><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
    ]
    for r in rows_in:
        cells = [
            f"<td class='sn'>{_e(r.signal)}</td>",
            f"<td>{_fmt(r.gini)}</td>",
            f"<td>{_fmt(r.effective_token_ratio)}</td>",
            f"<td>{_fmt(r.top10_mass)}</td>",
        ]
        if show_first:
            cells.append(f"<td>{_fmt(r.first_token_mass)}</td>")
        if show_regime:
            cells.append(f"<td>{_regime_badge(r.regime)}</td>")
        if show_rho:
            cells.append(f"<td>{_fmt(r.spearman_vs_arca)}</td>")
        if show_n:
            cells.append(f"<td>{_fmt(r.n_rows)}</td>")
        if show_oracle:
            ci = r.oracle_lift_ci
            ci_txt = f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci is not None else ""
            cells.append(f"<td>{_fmt(r.oracle_lift)}{ci_txt}</td>")
            cells.append(f"<td>{_fmt(r.oracle_spearman)}</td>")
            cells.append(f"<td>{_fmt(r.oracle_top_match)}</td>")
        if show_signed:
            ci = r.oracle_signed_ci
            ci_txt = f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci is not None else ""
            cells.append(f"<td>{_fmt(r.oracle_signed)}{ci_txt}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    for name, why in section.absent.items():
        span = len(head) - 1
        rows.append(
            f"<tr class='absent'><td class='sn'>{_e(name)}</td><td colspan='{span}'>absent: {_e(why)}</td></tr>"
        )
    rows.append("</tbody></table>")
    foot = [section.table_note or "Means over completions with T ≥ 2."]
    foot.append("top-10% mass: share of a row's credit on its top 10% of tokens.")
    if show_first:
        foot.append("first-token mass: mean weight of the first completion token.")
    if show_regime:
        foot.append(
            f"regime: sparse (G > {SPARSE_MIN_GINI:g} or EffN/T < {SPARSE_MAX_EFFN:g}), uniform "
            f"(G < {UNIFORM_MAX_GINI:g} and EffN/T > {UNIFORM_MIN_EFFN:g}), else middle."
        )
    if show_rho:
        foot.append(
            "ρ vs arca: mean per-completion Spearman rank correlation of the signal's salience with arca's "
            "(average ranks for ties; — for constant rows such as uniform's)."
        )
    if show_oracle:
        foot.append(
            "oracle lift: T · Σ_t w_t o_t against Monte Carlo token values (o_t = |Δ_t| / Σ|Δ|, Δ_t = V_t − V_{t−1}); "
            "1 for uniform credit, above 1 when credit lands on the tokens that changed the expected reward; "
            "mean and 95% t interval over completions. ρ vs |Δ|: mean per-completion Spearman of the salience "
            "with |Δ|. top match: share of completions whose largest-weight token is the largest-|Δ| token "
            "(ties split)."
        )
    if show_signed:
        foot.append(
            "signed cos(A, Δ): mean per-completion cosine between the method's signed token advantages "
            "(A_i · w_t · T for a signal; a group method's own A_it) and the oracle's Δ_t, with its 95% t interval; "
            "uniform gets sign(A_i) (R − V_0) / (√T ‖Δ‖). A group method's weights above are its shares |A_t| / Σ|A|."
        )
    rows.append(f'<p class="foot">{_e(" ".join(foot))}</p>')
    return "".join(rows)


def _histograms(section: Section, signals: Sequence[str]) -> str:
    figs: list[str] = []
    for s in signals:
        vals = [r for c in section.completions for r in _scale.relative_weights(c.weights.get(s) or [])]
        if vals:
            figs.append(histogram_svg(s, vals))
    if not figs:
        return ""
    return f'<h3 class="sub">Token weight histograms</h3><div class="hists">{"".join(figs)}</div>'


def _legend() -> str:
    rel = _scale.css_gradient("relative")
    mx = _scale.css_gradient("rowmax")
    rel_ticks = "".join(
        f'<span style="left:{(e / _scale.LOG2_CLIP + 1) * 50:.1f}%">{lab}</span>'
        for e, lab in ((-4, "≤1/16"), (-2, "1/4"), (0, "1 (uniform)"), (2, "4"), (4, "≥16"))
    )
    mx_ticks = "".join(
        f'<span style="left:{p}%">{lab}</span>' for p, lab in ((0, "0"), (50, "0.5"), (100, "row max"))
    )
    return f"""
<div class="legend">
  <div class="modes" role="radiogroup" aria-label="colour scale">
    <label><input type="radio" name="mode" value="rel" checked> relative to uniform (w·T, log scale)</label>
    <label><input type="radio" name="mode" value="max"> share of row maximum (w / max w)</label>
  </div>
  <div class="scale scale-rel"><div class="bar" style="background:{rel}"></div>
    <div class="ticks">{rel_ticks}</div></div>
  <div class="scale scale-max"><div class="bar" style="background:{mx}"></div>
    <div class="ticks">{mx_ticks}</div></div>
  <p class="hint">Each row is one signal's credit over the same completion (weights sum to 1 per row; T counts
  tokens up to and including the first EOS). Hover a token for its weight and raw salience; the same token is
  outlined in every row. <span class="ws">·</span> space, <span class="ws">↵</span> newline,
  <span class="ws">→</span> tab.</p>
</div>"""


def _asset(name: str) -> str:
    """A file of the page's CSS / JS, shipped as package data in `_report/assets/`."""
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def render_page(title: str, sections: Sequence[Section], *, subtitle: str = "", footer: str = "") -> str:
    """The whole page as one HTML string (UTF-8, no external resources)."""
    body: list[str] = []
    for k, sec in enumerate(sections):
        signals = _signal_order(sec)
        body.append(f'<section id="s{k}" class="section">')
        body.append(f"<h2>{_e(sec.title)}</h2>")
        if sec.subtitle:
            body.append(f'<p class="lead">{_e(sec.subtitle)}</p>')
        if sec.notes:
            body.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in sec.notes) + "</ul>")
        body.append("".join(_figure(caption, png) for caption, png in sec.figures))
        body.append(_summary_table(sec))
        if sec.histograms:
            body.append(_histograms(sec, signals))
        if sec.completions:
            body.append(f'<h3 class="sub">Completions ({len(sec.completions)})</h3>')
            for i, c in enumerate(sec.completions):
                body.append(_completion_card(c, signals, k * 100000 + i))
        body.append("</section>")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<script>
{_asset("error_hook.js")}</script>
<style>
{_asset("page.css")}</style>
</head>
<body>
<main>
<div id="js-errors"></div>
<h1>{_e(title)}</h1>
{f'<p class="lead">{_e(subtitle)}</p>' if subtitle else ""}
{_legend()}
{"".join(body)}
<footer>{_e(footer) if footer else "arca-rl token credit report"} ·
<span id="js-status" data-status="pending"></span></footer>
</main>
<script>
{_asset("page.js")}</script>
</body>
</html>
"""


def write_page(path: str | Path, title: str, sections: Sequence[Section], **kwargs: str) -> Path:
    """Render the page and write it to `path` (parents created). Returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_page(title, sections, **kwargs), encoding="utf-8")
    return p


def completions_from_token_log(records: Iterable[TokenRecord | Mapping[str, Any]]) -> list[Completion]:
    """Build completions from `credit_tokens.jsonl` records (one signal per record; `rundir.read_token_log`
    reads them, a parsed line is read with `rundir.TokenRecord.from_json`).

    Records of one completion (same step and `sample` index, or, for records without `sample`,
    same step and identical tokens) merge into one Completion with one row per signal (the
    trainer logs the active signal and, with `credit_shadow`, every other one). The active signal
    (`"active": true`) comes first. Malformed records and records without tokens are skipped.
    """
    merged: dict[tuple[object, ...], Completion] = {}
    order: list[tuple[object, ...]] = []
    active: dict[tuple[object, ...], str] = {}
    seen: dict[tuple[object, ...], int] = {}
    for item in records:
        rec = item if isinstance(item, TokenRecord) else TokenRecord.from_json(item)
        if rec is None or rec.tokens is None:
            continue
        toks, step, sample, signal = tuple(rec.tokens), rec.step, rec.sample, rec.signal
        if sample is not None:
            key: tuple[object, ...] = (step, "sample", sample, toks)
        else:  # the n-th record of a signal with these tokens belongs to the n-th such completion
            nth = seen.get((step, toks, signal), 0)
            seen[(step, toks, signal)] = nth + 1
            key = (step, toks, nth)
        if key not in merged:
            meta: dict[str, str | float | int | None] = {"step": step}
            if rec.advantage is not None:
                meta["advantage"] = rec.advantage
            title = f"step {step} · sample {sample}" if sample is not None else ""
            merged[key] = Completion(tokens=list(toks), weights={}, salience={}, title=title, meta=meta)
            order.append(key)
        c = merged[key]
        c.weights[signal] = rec.weights
        if rec.salience is not None:
            c.salience[signal] = rec.salience
        if rec.active is True:
            active[key] = signal
    out: list[Completion] = []
    for i, key in enumerate(order):
        c = merged[key]
        if key in active:  # active signal first
            first = active[key]
            c.weights = {first: c.weights[first], **{k: v for k, v in c.weights.items() if k != first}}
            c.meta["credit"] = first
        if not c.title:
            c.title = f"step {c.meta.get('step', '?')} · completion {i}"
        out.append(c)
    return out
