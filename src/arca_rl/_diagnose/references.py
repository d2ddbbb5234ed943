"""The oracle's reference rows, scored like the methods (`arca_rl.oracle.score_method`): where gains could come from
other than placing credit well.

- `answer_only`: credit spread evenly over the final answer's tokens (the task's answer extraction,
  `Task.answer_span`); a completion with no answer gets uniform credit (counted in the settings).
- `inverted:<method>`: the method's weights reversed in rank (`arca_rl.oracle.rank_reversal`: the token it credits
  most gets what it credits least, same shape), its advantages and ranked values moved the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..oracle import Measured, rank_reversal, score_method
from .results import CompletionRecord, SignalSummary
from .summarize import fill_oracle, method_inputs, summarize_signal

__all__ = ["ANSWER_ONLY", "answer_tokens", "answer_weights", "reference_rows"]

ANSWER_ONLY = "answer_only"


def answer_tokens(tokenizer: Any, completion_ids: Sequence[int], span: tuple[int, int] | None) -> list[int] | None:
    """[start, end): the completion tokens that overlap the characters `span` of the decoded completion (the text
    `diagnose` stores, special tokens skipped); None without a span or when no token covers it. Token t covers the
    characters its prefix decoding adds, `len(decode(ids[:t + 1])) - len(decode(ids[:t]))`."""
    if span is None or not completion_ids:
        return None
    s, e = span
    if e <= s:
        return None
    ends = [len(tokenizer.decode(list(completion_ids[: t + 1]), skip_special_tokens=True))
            for t in range(len(completion_ids))]  # fmt: skip
    starts = [0, *ends[:-1]]
    covered = [t for t in range(len(completion_ids)) if starts[t] < e and ends[t] > s and ends[t] > starts[t]]
    return [covered[0], covered[-1] + 1] if covered else None


def answer_weights(rec: CompletionRecord) -> list[float]:
    """1 / n on each of the answer's n tokens, 0 elsewhere; uniform credit when the completion has no answer."""
    T = rec.length
    if rec.answer_tokens is None:
        return [1.0 / T] * T if T else []
    a, b = rec.answer_tokens
    return [1.0 / (b - a) if a <= t < b else 0.0 for t in range(T)]


def _scored(
    name: str,
    records: Sequence[CompletionRecord],
    rows: Sequence[Measured | None],
    weights: list[list[float]],
    ranked: list[list[float]],
    advantages: list[list[float] | None],
    k: int,
) -> SignalSummary:
    summ = summarize_signal(name, weights, ranked)
    got = score_method(rows, [r.prompt_index for r in records], weights, ranked, advantages if k >= 2 else None)
    fill_oracle(summ, got, k=k)
    return summ


def reference_rows(
    records: Sequence[CompletionRecord], methods: Sequence[str], *, k: int
) -> dict[str, SignalSummary]:
    """`answer_only` (when the records carry answer spans, i.e. the task could extract answers) and
    `inverted:<method>` for every scored method but uniform (its reversal is itself)."""
    rows = [Measured.of(rec.oracle) if rec.oracle else None for rec in records]
    out: dict[str, SignalSummary] = {}
    if any(rec.answer_tokens is not None for rec in records):
        weights = [answer_weights(rec) for rec in records]
        adv: list[list[float] | None] = [
            None if rec.advantage is None else [rec.advantage * w * len(ws) for w in ws]
            for rec, ws in zip(records, weights)
        ]
        out[ANSWER_ONLY] = _scored(ANSWER_ONLY, records, rows, weights, weights, adv, k)
    for name in methods:
        if name == "uniform":
            continue
        weights, ranked, advantages = method_inputs(records, name)
        flips: list[Callable[[Sequence[float]], list[float]]] = [rank_reversal(w) for w in weights]
        out[f"inverted:{name}"] = _scored(
            f"inverted:{name}", records, rows,
            [f(w) for f, w in zip(flips, weights)],
            [f(x) for f, x in zip(flips, ranked)],
            [None if a is None else f(a) for f, a in zip(flips, advantages)],
            k,
        )  # fmt: skip
    return out
