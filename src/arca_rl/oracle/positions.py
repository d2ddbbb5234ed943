"""Which prefixes the oracle samples, and sampling them: `oracle_values`, exhaustive (`positions="all"`: every prefix)
or adaptive (`positions="adaptive"`, the default: the two ends, then only where the value moves). See
`arca_rl.oracle` for the definitions and the cost of each.

Adaptive, per completion of T tokens: V_0 (the prompt's, shared by its completions) and V_T = R(y) are known
first. Round 1 also samples the seeds (e.g. `step_boundaries`) and, so that an up-and-back-down inside a long
flat-looking interval is not missed, the midpoints that leave no interval longer than `max_gap` tokens. Each
later round samples the midpoint m = (a + b) // 2 of every interval [a, b] of consecutive estimated positions
with b - a >= 2 whose ends differ by more than `split_se` combined standard errors,
|V_b - V_a| > split_se * sqrt(se_a^2 + se_b^2) (an unknown error always splits); it stops when no interval splits
(at worst at adjacent prefixes, which is then the exhaustive oracle). Inside an interval left unsplit the value
is interpolated linearly, so its tokens share its change evenly (`OracleRow.estimated` says which were sampled).
Every round is one batched sampler call over all completions with an interval to split (split only past
`batch_rows` rows).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .values import OracleRow, Tally, check_reward, check_samples

__all__ = [
    "ADAPTIVE_MAX_GAP",
    "ADAPTIVE_SPLIT_SE",
    "BatchSampler",
    "MAX_ROLLOUTS",
    "POSITIONS",
    "Sampler",
    "batch_sampler",
    "check_positions",
    "estimate_rollouts",
    "max_rollouts",
    "oracle_values",
    "step_boundaries",
]

#: A policy for the oracle: `sampler(sequence, cuts, budgets)` continues, for each row i, the prefix
#: `sequence[:cuts[i]]` (prompt ids + completion prefix ids) with at most `budgets[i]` new tokens,
#: and returns each row's new token ids (cut after the first EOS).
Sampler = Callable[[list[int], list[int], list[int]], list[list[int]]]

#: The same over several sequences in one call: `many(sequences, rows, cuts, budgets)` continues, for each row i,
#: `sequences[rows[i]][:cuts[i]]`. A `Sampler` may carry one as its `many` attribute (`model_sampler` does).
BatchSampler = Callable[[list[list[int]], list[int], list[int], list[int]], list[list[int]]]

#: The position schedules: "adaptive" (the default) and "all" (every prefix).
POSITIONS = ("adaptive", "all")

#: Adaptive: split an interval when its ends differ by more than this many combined standard errors.
ADAPTIVE_SPLIT_SE = 2.0

#: Adaptive: no interval left unsampled is longer than this many tokens, whatever its ends.
ADAPTIVE_MAX_GAP = 32

#: The most continuations one `arca diagnose --oracle` run may ask for (a larger request is refused up
#: front, with its figure). Memory stays bounded whatever K is; this bounds the time.
MAX_ROLLOUTS = 10**8


def check_positions(value: Any, name: str = "oracle_positions") -> str:
    """`value` as one of `POSITIONS`, else a ValueError naming `name`."""
    if value not in POSITIONS:
        raise ValueError(f"{name} must be one of {', '.join(POSITIONS)} (which prefixes get values), got {value!r}")
    return str(value)


def estimate_rollouts(lengths_per_prompt: Sequence[Sequence[int]], samples: int) -> int:
    """Continuations the exhaustive oracle samples (the adaptive one's worst case): K per prompt (V_0, shared by its
    completions) plus K per prefix of 1 .. T-1 tokens of every completion."""
    return samples * sum(1 + sum(max(t - 1, 0) for t in lengths) for lengths in lengths_per_prompt if lengths)


def max_rollouts(prompts: int, completions: int, max_new_tokens: int, samples: int) -> int:
    """The most continuations the oracle can sample before the completions are known: K per prompt (V_0)
    plus K per prefix of 1 .. max_new_tokens - 1 tokens of every completion (`estimate_rollouts` with every
    completion at full length)."""
    return samples * (prompts + completions * max(max_new_tokens - 1, 0))


def step_boundaries(tokens: Sequence[str], marks: str = ".=\n") -> list[int]:
    """The prefixes that end a reasoning step: t in 1 .. T-1 where token t (1-based; `tokens[t - 1]`, its text)
    contains a newline or, stripped of spaces, ends with one of `marks` (a sentence end, an `=`). Seeds for the
    adaptive oracle (VinePPO evaluates values at step boundaries)."""
    out = []
    for t in range(1, len(tokens)):
        text = tokens[t - 1]
        if "\n" in text or (text.strip() and text.strip()[-1] in marks):
            out.append(t)
    return out


def batch_sampler(sampler: Sampler) -> BatchSampler:
    """`sampler.many` when it has one; otherwise one `sampler` call per sequence, in order of first appearance."""
    many = getattr(sampler, "many", None)
    if many is not None:
        return many

    def one_by_one(sequences: list[list[int]], rows: list[int], cuts: list[int], budgets: list[int]) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in rows]
        for s in dict.fromkeys(rows):
            idx = [i for i, r in enumerate(rows) if r == s]
            got = sampler(sequences[s], [cuts[i] for i in idx], [budgets[i] for i in idx])
            if len(got) != len(idx):
                raise RuntimeError(f"sampler returned {len(got)} continuations for {len(idx)} rows")
            for i, x in zip(idx, got):
                out[i] = x
        return out

    return one_by_one


Groups = Sequence[tuple[list[int], Sequence[tuple[list[int], float]]]]
Reward = Callable[[int, list[list[int]]], Sequence[float]]


@dataclass(frozen=True)
class _Draw:
    """How every schedule draws and scores continuations (`oracle_values`' arguments of the same names)."""

    reward: Reward
    samples: int
    max_new_tokens: int
    batch_rows: int
    on_rollouts: Callable[[int], None] | None


def oracle_values(
    groups: Groups,
    sampler: Sampler,
    reward: Reward,
    *,
    samples: int,
    max_new_tokens: int,
    batch_rows: int = 1024,
    on_rollouts: Callable[[int], None] | None = None,
    positions: str = "adaptive",
    split_se: float = ADAPTIVE_SPLIT_SE,
    max_gap: int = ADAPTIVE_MAX_GAP,
    seeds: Sequence[Sequence[Sequence[int]]] | None = None,
) -> list[list[OracleRow]]:
    """Monte Carlo values of the prefixes of every completion.

    Args:
        groups: per prompt, (prompt ids, [(completion ids, the completion's reward R(y)), ...]).
            Completion ids are the real tokens (up to and including the first EOS).
        sampler: the policy (`arca_rl.oracle.sampler.model_sampler` for a transformers model).
        reward: `fn(group index, [completion ids, ...]) -> rewards`, each completion a whole one
            (prefix + continuation); every reward must be a finite number.
        samples: K, continuations per prefix.
        max_new_tokens: the rollouts' completion length limit; a continuation of a t-token prefix
            gets at most max_new_tokens - t new tokens.
        batch_rows: most rows (continuations) per `sampler` call; larger calls are split.
        on_rollouts: called with the number of continuations just sampled (progress).
        positions: "adaptive" (see the module docstring) or "all": every prefix of 1 .. T-1 tokens, one
            `sampler` call per completion (and, for a prompt's first completion, the prompt alone: V_0).
        split_se, max_gap, seeds: adaptive only: the split threshold in combined standard errors, the longest
            interval left unsampled, and per group, per completion, prefixes to sample in the first round.

    Returns:
        per group, one `OracleRow` per completion, in order.
    """
    check_samples(samples)
    check_positions(positions, "positions")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    if not (isinstance(max_gap, int) and max_gap >= 1):
        raise ValueError(f"max_gap must be an integer >= 1 (the longest interval left unsampled), got {max_gap!r}")
    if not (isinstance(split_se, int | float) and math.isfinite(split_se) and split_se >= 0):
        raise ValueError(f"split_se must be a finite number >= 0 (standard errors), got {split_se!r}")
    # every completion's own reward is checked before anything is sampled
    for g, (_p, completions) in enumerate(groups):
        for c, (_ids, r) in enumerate(completions):
            check_reward(r, f"completion {c} of prompt {g}")
    for g, (prompt_ids, completions) in enumerate(groups):
        if len(prompt_ids) < 1:
            raise ValueError(f"prompt {g} has no tokens; the oracle needs a prompt to continue from")
        for ids, _r in completions:
            if len(ids) > max_new_tokens:
                raise ValueError(f"a completion has {len(ids)} tokens, more than max_new_tokens={max_new_tokens}")
    if seeds is not None and (
        len(seeds) != len(groups) or any(len(s) != len(comps) for s, (_p, comps) in zip(seeds, groups))
    ):
        raise ValueError("seeds must hold, per group, one list of positions per completion")
    draw = _Draw(reward, samples, max_new_tokens, batch_rows, on_rollouts)
    if positions == "all":
        return _exhaustive(groups, sampler, draw)
    return _adaptive(groups, batch_sampler(sampler), draw, split_se, max_gap, seeds)


def _exhaustive(groups: Groups, sampler: Sampler, draw: _Draw) -> list[list[OracleRow]]:
    """Every prefix: one `sampler` call per completion (its prefixes of 1 .. T-1 tokens, K rows each, and for the
    first completion of a prompt also the prompt alone, V_0)."""
    out: list[list[OracleRow]] = []
    for g, (prompt_ids, completions) in enumerate(groups):
        P = len(prompt_ids)
        # Streamed: at most `batch_rows` continuations exist at a time, each scored as soon as it is sampled
        # and kept only as a running tally per prefix, so memory does not grow with K.
        tallies: dict[tuple[int, int], Tally] = {}  # (completion, t) -> rewards so far; t = 0: V_0
        for c, (ids, _r) in enumerate(completions):
            cuts = ([0] if c == 0 else []) + list(range(1, len(ids)))
            seq = list(prompt_ids) + list(ids[: max(len(ids) - 1, 0)])
            for chunk in _chunks(((c, t) for t in cuts for _ in range(draw.samples)), draw.batch_rows):
                got = sampler(seq, [P + t for _c, t in chunk], [draw.max_new_tokens - t for _c, t in chunk])
                if len(got) != len(chunk):
                    raise RuntimeError(f"sampler returned {len(got)} continuations for {len(chunk)} rows")
                full = [list(ids[: key[1]]) + list(x) for key, x in zip(chunk, got)]
                scores = list(draw.reward(g, full))
                if len(scores) != len(full):
                    raise RuntimeError(f"reward function returned {len(scores)} rewards for {len(full)} completions")
                for key, score in zip(chunk, scores):
                    tallies.setdefault(key, Tally()).add(check_reward(score, f"a continuation of prompt {g}"))
                if draw.on_rollouts is not None:
                    draw.on_rollouts(len(got))
        rows_g: list[OracleRow] = []
        if completions:
            v0, se0 = tallies[(0, 0)].estimate()
        for c, (ids, r) in enumerate(completions):
            values, errs = [v0], [se0]
            for t in range(1, len(ids)):
                v, se = tallies[(c, t)].estimate()
                values.append(v)
                errs.append(se)
            values.append(check_reward(r, f"completion {c} of prompt {g}"))
            errs.append(0.0)
            rows_g.append(OracleRow(values=values, stderr=errs, samples=draw.samples))
        out.append(rows_g)
    return out


def _grid(a: int, b: int, max_gap: int) -> list[int]:
    """Midpoints splitting [a, b] until no interval is longer than `max_gap` tokens."""
    if b - a <= max_gap:
        return []
    m = (a + b) // 2
    return _grid(a, m, max_gap) + [m] + _grid(m, b, max_gap)


def _adaptive(
    groups: Groups,
    many: BatchSampler,
    draw: _Draw,
    split_se: float,
    max_gap: int,
    seeds: Sequence[Sequence[Sequence[int]]] | None,
) -> list[list[OracleRow]]:
    """The adaptive schedule (module docstring): rounds of one batched call each, until no interval splits."""
    keys = [(g, c) for g, (_p, comps) in enumerate(groups) for c in range(len(comps))]
    ids_of = {(g, c): list(groups[g][1][c][0]) for g, c in keys}
    # completion (g, c)'s sequence: prompt + its first T - 1 tokens (every prefix it needs); V_0 uses (g, 0)'s
    sequences = [list(groups[g][0]) + ids_of[(g, c)][: max(len(ids_of[(g, c)]) - 1, 0)] for g, c in keys]
    seq_of = {key: i for i, key in enumerate(keys)}
    # known[(g, c)]: position t -> (V_t, se_t); V_T = R(y) is exact
    known: dict[tuple[int, int], dict[int, tuple[float, float]]] = {
        (g, c): {len(ids_of[(g, c)]): (check_reward(groups[g][1][c][1], f"completion {c} of prompt {g}"), 0.0)}
        for g, c in keys
    }
    v0: dict[int, tuple[float, float]] = {}
    # round 1: V_0 of every prompt ((g, -1, 0)), the seeds and the max_gap grid of every completion
    pending: list[tuple[int, int, int]] = [(g, -1, 0) for g, (_p, comps) in enumerate(groups) if comps]
    for g, c in keys:
        T = len(ids_of[(g, c)])
        first = set(_grid(0, T, max_gap))
        if seeds is not None:
            first.update(t for t in seeds[g][c] if isinstance(t, int) and 0 < t < T)
        pending.extend((g, c, t) for t in sorted(first))
    while pending:
        estimates = _sample_round(pending, groups, ids_of, sequences, seq_of, many, draw)
        for (g, c, t), est in zip(pending, estimates):
            if c < 0:
                v0[g] = est
            else:
                known[(g, c)][t] = est
        pending = []
        for g, c in keys:
            pos = known[(g, c)]
            pos.setdefault(0, v0[g])
            ts = sorted(pos)
            for a, b in zip(ts[:-1], ts[1:]):
                if b - a >= 2 and _moves(pos[a], pos[b], split_se):
                    pending.append((g, c, (a + b) // 2))
    out: list[list[OracleRow]] = [[] for _ in groups]
    for g, c in keys:
        if not ids_of[(g, c)]:  # no tokens: the exhaustive oracle's row [V_0, R] (one delta), for the same shape
            r = known[(g, c)][0]
            out[g].append(OracleRow(values=[v0[g][0], r[0]], stderr=[v0[g][1], r[1]], samples=draw.samples))
        else:
            out[g].append(_row(known[(g, c)], draw.samples))
    return out


def _moves(a: tuple[float, float], b: tuple[float, float], split_se: float) -> bool:
    """|V_b - V_a| > split_se * sqrt(se_a^2 + se_b^2); an unknown standard error (NaN) always moves."""
    se = math.hypot(a[1], b[1])  # the standard error of a difference of two independent estimates
    return not math.isfinite(se) or abs(b[0] - a[0]) > split_se * se


def _row(pos: dict[int, tuple[float, float]], samples: int) -> OracleRow:
    """An `OracleRow` from the estimated positions, linear in between (standard error NaN there)."""
    ts = sorted(pos)
    T = ts[-1]
    values = [math.nan] * (T + 1)
    errs = [math.nan] * (T + 1)
    for a, b in zip(ts[:-1], ts[1:]):
        step = (pos[b][0] - pos[a][0]) / (b - a)  # the interval's change, spread evenly over its b - a tokens
        for t in range(a + 1, b):
            values[t] = pos[a][0] + (t - a) * step  # V_t = V_a + (t - a) (V_b - V_a) / (b - a)
    for t in ts:
        values[t], errs[t] = pos[t]
    return OracleRow(values=values, stderr=errs, samples=samples, estimated=ts)


def _sample_round(
    pending: list[tuple[int, int, int]],
    groups: Groups,
    ids_of: dict[tuple[int, int], list[int]],
    sequences: list[list[int]],
    seq_of: dict[tuple[int, int], int],
    many: BatchSampler,
    draw: _Draw,
) -> list[tuple[float, float]]:
    """(V_t, se_t) of every pending (group, completion, t) (completion -1: the prompt's V_0) from K continuations
    each: one `many` call per `batch_rows` rows, each row scored as soon as it is sampled (running tallies)."""
    tallies = [Tally() for _ in pending]
    rows = ((i, key) for i, key in enumerate(pending) for _ in range(draw.samples))
    for chunk in _chunks(rows, draw.batch_rows):
        used: dict[int, int] = {}  # sequence index -> its index in this call
        row_seq, cuts, budgets = [], [], []
        for _i, (g, c, t) in chunk:
            s = seq_of[(g, max(c, 0))]
            row_seq.append(used.setdefault(s, len(used)))
            cuts.append(len(groups[g][0]) + t)
            budgets.append(draw.max_new_tokens - t)
        got = many([sequences[s] for s in used], row_seq, cuts, budgets)
        if len(got) != len(chunk):
            raise RuntimeError(f"sampler returned {len(got)} continuations for {len(chunk)} rows")
        by_group: dict[int, list[int]] = {}  # rows of this call per prompt, in order: one reward call each
        for j, (_i, (g, _c, _t)) in enumerate(chunk):
            by_group.setdefault(g, []).append(j)
        for g, js in by_group.items():
            full = []
            for j in js:
                _i, (_g, c, t) = chunk[j]
                full.append((ids_of[(g, c)][:t] if c >= 0 else []) + list(got[j]))
            scores = list(draw.reward(g, full))
            if len(scores) != len(full):
                raise RuntimeError(f"reward function returned {len(scores)} rewards for {len(full)} completions")
            for j, score in zip(js, scores):
                tallies[chunk[j][0]].add(check_reward(score, f"a continuation of prompt {g}"))
        if draw.on_rollouts is not None:
            draw.on_rollouts(len(got))
    return [tally.estimate() for tally in tallies]


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    """Lists of at most `size` items, drawn lazily (the rows of one sampler call)."""
    while chunk := list(itertools.islice(items, size)):
        yield chunk
