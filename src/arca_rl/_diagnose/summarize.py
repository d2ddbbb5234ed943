"""Step 3 of diagnose: per-completion and per-signal figures of the scored completions."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import diagnostics, group_credit
from ..diagnostics import row_figures, spearman
from ..oracle import score_signal, score_signed
from .results import CompletionRecord, SignalSummary, num

__all__ = ["summarize", "summarize_oracle"]


def _summarize_signal(name: str, weights: list[list[float]], saliences: list[list[float]]) -> SignalSummary:
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
        summaries[s] = _summarize_signal(s, [r.weights[s] for r in records], [r.salience[s] for r in records])
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


def summarize_oracle(
    records: Sequence[CompletionRecord], summaries: dict[str, SignalSummary], samples: int, *, k: int
) -> list[str]:
    """Score every summarized signal against the records' oracle rows (`arca_rl.oracle.score_signal`:
    oracle lift with its 95% interval, Spearman vs |delta|, top match; `score_signed`: the signed measure, only
    with k >= 2 completions per prompt); return notes on the rows."""
    deltas = [rec.oracle["delta"] if rec.oracle else None for rec in records]
    for s, summ in summaries.items():
        # a signed group method's rank correlation reads its credit shares |A_it| (its raw output is signed)
        signed = group_credit.is_group_method(s) and group_credit.group_method_output(s) == "advantages"
        ranked = [r.weights[s] if signed else r.salience[s] for r in records]
        got = score_signal([r.weights[s] for r in records], ranked, deltas)
        summ.oracle_lift = got.lift_dict()
        summ.oracle_spearman = got.oracle_spearman
        summ.oracle_spearman_n = got.spearman_n
        summ.oracle_top_match = got.oracle_top_match
        # the signed measure: cos(A_it, delta_t) of the token advantages (A_i * w_it * T_i for a signal); a group
        # of one has A_i = 0, so with k = 1 there is nothing to measure and it is left out (None), not 0 rows
        if k >= 2:
            summ.oracle_signed = score_signed([r.token_advantages.get(s) for r in records], deltas)
    notes = []
    if k < 2:
        notes.append(
            "oracle: the signed measure needs k >= 2 completions per prompt (with k = 1 every advantage A_i is 0); "
            "left out, the lift and the rank measures need no group"
        )
    zero = sum(1 for r in records if r.oracle and r.oracle.get("credit") is None)
    quiet = sum(1 for r in records if r.oracle and r.oracle.get("no_signal"))
    if zero:
        notes.append(
            f"oracle: {zero} of {len(records)} completions have every token value change 0 (all "
            "continuations scored the same); they are left out of the oracle scores"
        )
    if quiet:
        notes.append(
            f"oracle: {quiet} of {len(records)} completions have no signal (every |delta| within 2 standard "
            f"errors of 0 at K={samples}; a larger K resolves more)"
        )
    return notes
