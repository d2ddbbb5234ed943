"""Step 3 of diagnose: per-completion and per-signal figures of the scored completions."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import diagnostics, group_credit
from ..diagnostics import row_figures, spearman
from ..oracle import MEASURES, Measured, MethodScore, score_method
from .results import CompletionRecord, SignalSummary, num

__all__ = ["fill_oracle", "method_inputs", "summarize", "summarize_oracle", "summarize_signal"]


def summarize_signal(name: str, weights: list[list[float]], saliences: list[list[float]]) -> SignalSummary:
    N = len(weights)
    L = max((len(w) for w in weights), default=0)
    W = torch.zeros(N, max(L, 1), dtype=torch.float32)
    M = torch.zeros(N, max(L, 1), dtype=torch.bool)
    for r, w in enumerate(weights):
        if w:
            W[r, : len(w)] = torch.tensor(w, dtype=torch.float32)
            M[r, : len(w)] = True
    summ = (
        diagnostics.summarize(W, M)
        if N
        else {"gini": None, "effective_token_ratio": None, "top10_mass": None, "n_rows": 0, "regime": None}
    )
    rows = [w for w in weights if len(w) >= 2]
    first = sum(w[0] / (sum(w) or 1.0) for w in rows) / len(rows) if rows else None
    flat = [x for a in saliences for x in a]
    return SignalSummary(
        name=name,
        gini=num(summ.get("gini")),
        effective_token_ratio=num(summ.get("effective_token_ratio")),
        top10_mass=num(summ.get("top10_mass")),
        regime=regime if isinstance(regime := summ.get("regime"), str) else None,
        n_rows=int(summ.get("n_rows") or 0),
        first_token_mass=num(first),
        salience_mean=num(sum(flat) / len(flat)) if flat else None,
        salience_max=num(max(flat)) if flat else None,
    )


def summarize(
    records: Sequence[CompletionRecord], signals: Sequence[str], *, max_new_tokens: int
) -> tuple[dict[str, SignalSummary], list[str]]:
    """Fill each record's per-signal Gini, EffN/T and Spearman vs arca; return the per-signal
    summaries (in `signals` order) and notes on what the figures cannot show."""
    summaries: dict[str, SignalSummary] = {}
    for s in signals:
        summaries[s] = summarize_signal(s, [r.weights[s] for r in records], [r.salience[s] for r in records])
        for rec in records:
            rec.gini[s], rec.effective_token_ratio[s] = row_figures(rec.weights[s])
    notes: list[str] = []
    if "arca" in summaries:
        for s, summ in summaries.items():
            vals = []
            for rec in records:
                rho = spearman(rec.salience[s], rec.salience["arca"])
                rec.spearman_vs_arca[s] = rho
                if rho is not None:
                    vals.append(rho)
            summ.spearman_vs_arca = sum(vals) / len(vals) if vals else None
            summ.spearman_n = len(vals)
        if summaries["arca"].salience_max is not None and summaries["arca"].salience_max == 0.0:
            notes.append(
                "arca salience is 0 on every token: the adapter does not change the last hidden state "
                "(a freshly initialised LoRA has B = 0), so arca's weights are uniform"
            )
    n_cut = sum(not r.finished for r in records)
    if n_cut:
        notes.append(f"{n_cut} of {len(records)} completions hit max_new_tokens={max_new_tokens} without EOS")
    return summaries, notes


def _k_note(k: int) -> list[str]:
    if k >= 2:
        return []
    return [
        "oracle: the signed measure needs k >= 2 completions per prompt (with k = 1 every advantage A_i is 0); "
        "left out, the lift and the rank measures need no group"
    ]


def fill_oracle(summ: SignalSummary, got: MethodScore, *, k: int) -> None:
    """Put one method's `score_method` result on its summary (the signed measure only with k >= 2)."""
    measures = [m for m in MEASURES if m != "signed" or k >= 2]
    sc = got.scores
    summ.oracle_lift = sc["lift"].to_dict()
    summ.oracle_spearman = sc["spearman"].mean
    summ.oracle_spearman_n = sc["spearman"].n
    summ.oracle_top_match = sc["top_match"].mean
    summ.oracle_top_match_ci = [sc["top_match"].ci_low, sc["top_match"].ci_high]
    summ.oracle_spearman_ci = [sc["spearman"].ci_low, sc["spearman"].ci_high]
    if k >= 2:
        # left out of the signed measure: rows whose measured changes are all 0 and rows whose advantages are
        summ.oracle_signed = {**sc["signed"].to_dict(), "zero_rows": got.zero_rows + got.signed_zero_rows}
    summ.oracle_shuffled = {m: got.shuffled[m].to_dict() for m in measures}
    summ.oracle_placement = {m: got.placement[m].to_dict() for m in measures}
    summ.oracle_rows = got.rows


def method_inputs(
    records: Sequence[CompletionRecord], name: str
) -> tuple[list[list[float]], list[list[float]], list[list[float] | None]]:
    """(weights, what the per-token rank measure reads, signed token advantages) of method `name` per completion:
    a signed group method's rank measure reads its credit shares |A_it| (its raw output is signed), a signal's
    its raw salience."""
    signed = group_credit.is_group_method(name) and group_credit.group_method_output(name) == "advantages"
    weights = [r.weights[name] for r in records]
    ranked = [r.weights[name] if signed else r.salience[name] for r in records]
    return weights, ranked, [r.token_advantages.get(name) for r in records]


def summarize_oracle(
    records: Sequence[CompletionRecord], summaries: dict[str, SignalSummary], samples: int, *, k: int
) -> list[str]:
    """Score every summarized method against the records' oracle rows (`arca_rl.oracle.score_method`: the lift,
    rank correlation, top match and, with k >= 2 completions per prompt, the signed measure, each beside its
    shuffled control and their difference, the placement, with per-prompt bootstrap intervals; adaptive rows per
    measured interval, rows with one interval left out); return notes on the rows."""
    rows = [Measured.of(rec.oracle) if rec.oracle else None for rec in records]
    prompts = [rec.prompt_index for rec in records]
    for s, summ in summaries.items():
        weights, ranked, advantages = method_inputs(records, s)
        got = score_method(rows, prompts, weights, ranked, advantages if k >= 2 else None)
        fill_oracle(summ, got, k=k)
    notes = _k_note(k)
    zero = sum(1 for m in rows if m is not None and m.resolved and m.zero)
    unresolved = sum(1 for m in rows if m is not None and not m.resolved)
    quiet = sum(1 for r in records if r.oracle and r.oracle.get("no_signal"))
    if unresolved:
        notes.append(
            f"oracle: {unresolved} of {len(records)} completions have a single measured interval (the adaptive "
            "oracle localised no change in them): they carry no signal and are left out of every oracle score"
        )
    if zero:
        notes.append(
            f"oracle: {zero} of {len(records)} completions have every measured value change 0 (all "
            "continuations scored the same); they are left out of the oracle scores"
        )
    if quiet:
        notes.append(
            f"oracle: {quiet} of {len(records)} completions have no signal (every |delta| within 2 standard "
            f"errors of 0 at K={samples}; a larger K resolves more)"
        )
    return notes
