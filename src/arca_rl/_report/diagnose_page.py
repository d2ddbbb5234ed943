"""The `arca diagnose` page: diagnose's result as report.html and PNG histograms (beside the report's page).

One `report.html.Section` holds every sampled completion's tokens shaded by each signal's weights,
the per-signal summary table, and what could not be scored; `report.plots` draws the histograms.
The page is drawn from the result's JSON form (`DiagnoseResult.to_dict()`, what `diagnose.json` holds),
so this module needs nothing from `_diagnose`: diagnose imports the report, never the other way.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import _scale
from .html import Completion, Section, SummaryRow, write_page
from .plots import plot_weight_histograms

__all__ = ["write_diagnose_page"]


def write_diagnose_page(
    result: Mapping[str, Any], out: Path, *, title: str | None = None, max_html_completions: int = 64
) -> dict[str, Path]:
    """Write `report.html` and the weight histograms (PNG) of a diagnosis into the folder `out`.

    `result` is the diagnosis in its JSON form (`DiagnoseResult.to_dict()`, as in `diagnose.json`).
    """
    files: dict[str, Path] = {}
    signals: Mapping[str, Mapping[str, Any]] = result["signals"]
    completions: list[Mapping[str, Any]] = result.get("completions", [])
    rel: dict[str, list[float]] = {name: [] for name in signals}
    for c in completions:
        for name, w in c["weights"].items():
            rel[name].extend(_scale.relative_weights(w))
    for p in plot_weight_histograms(rel, out):
        files[p.name] = p

    summary = [
        SummaryRow(
            signal=s["name"],
            gini=s["gini"],
            effective_token_ratio=s["effective_token_ratio"],
            top10_mass=s["top10_mass"],
            regime=s["regime"],
            spearman_vs_arca=s["spearman_vs_arca"],
            first_token_mass=s["first_token_mass"],
            n_rows=s["n_rows"],
            oracle_lift=(s["oracle_lift"] or {}).get("mean"),
            oracle_lift_ci=_ci(s["oracle_lift"]),
            oracle_spearman=s["oracle_spearman"],
            oracle_top_match=s["oracle_top_match"],
            oracle_signed=(s.get("oracle_signed") or {}).get("mean"),
            oracle_signed_ci=_ci(s.get("oracle_signed")),
        )
        for s in signals.values()
    ]
    cards = []
    for c in completions[:max_html_completions]:
        meta: dict[str, Any] = {"reward": c["reward"]}
        if not c["finished"]:
            meta["cut"] = "no EOS (max_new_tokens)"
        cards.append(
            Completion(
                tokens=c["tokens"],
                weights=c["weights"],
                salience=c["salience"],
                title=f"prompt {c['prompt_index']} · sample {c['sample_index']}",
                prompt=c["prompt"],
                meta=meta,
                oracle=c["oracle"],
            )
        )
    st = result["settings"]
    sub = (
        f"model {st.get('model', '?')}"
        + (
            f", adapter {st.get('adapter')}"
            if st.get("adapter")
            else (", with a PEFT adapter" if result["has_adapter"] else ", no adapter")
        )
        + f"; {st.get('n_prompts')} prompts x k={st.get('k')}, temperature {st.get('temperature')}, "
        f"top-p {st.get('top_p')}, power p={st.get('power')}, credit mix lambda={st.get('mix', 1.0):g}, "
        f"seed {st.get('seed')}"
        + (
            f"; oracle: K={st['oracle_samples']} continuations per prefix, {st.get('oracle_rollouts')} rollouts"
            if st.get("oracle_samples")
            else ""
        )
    )
    notes = list(result["notes"])
    if len(completions) > max_html_completions:
        notes.append(f"showing the first {max_html_completions} of {len(completions)} completions")
    section = Section(
        title="Credit signals on the same rollouts",
        subtitle=sub,
        completions=cards,
        summary=summary,
        absent=dict(result["absent"]),
        notes=notes,
        signals=list(signals),
    )
    files["report.html"] = write_page(
        out / "report.html",
        title or "arca diagnose",
        [section],
        subtitle="Every registered credit signal scored on the same sampled completions "
        "(one adapter-on and one adapter-off forward pass).",
    )
    return files




def _ci(figure: dict[str, Any] | None) -> tuple[float | None, float | None] | None:
    """(ci_low, ci_high) of an oracle figure {"mean", "ci_low", "ci_high", ...}; None without an interval."""
    if figure is None or figure.get("ci_low") is None:
        return None
    return figure["ci_low"], figure["ci_high"]
