"""Monte Carlo token values: a ground truth for where token credit should go.

For a sampled completion y = (y_1 .. y_T) of a prompt x with reward R(y), the value of a prefix is
the expected reward of finishing it with the same policy:

    V_0 = mean reward of K fresh completions of x          (the prompt's value)
    V_t = mean reward of K continuations of (x, y_1..y_t)   for t = 1 .. T-1
    V_T = R(y)                                              (the completion itself)

`delta_t = V_t - V_{t-1}` is how much choosing y_t changed the expected reward, and the oracle
credit `o_t = |delta_t| / sum_k |delta_k|` is the share of that change that token t carries. A
credit signal with weights w (summing to 1) is then scored by its **oracle lift** `T * sum_t w_t o_t`:
exactly 1 for uniform credit, above 1 when the signal puts its credit where the expected reward
moved. The idea of per-prefix Monte Carlo values comes from VinePPO (Kazemnejad et al., 2024).

Indexing follows the weights': T counts the real completion tokens (the first EOS included);
`values` has T + 1 entries, `delta` T (`delta[0]` belongs to the first completion token), `stderr`
T + 1 (0 for `values[T]`, which is not an estimate).

Continuations are sampled with the rollout's own policy and sampling settings, and a continuation
never makes the completion longer than the rollout's `max_new_tokens`: from a prefix of t tokens it
gets at most `max_new_tokens - t` new ones. All K continuations of every prefix of one completion
(and, for a prompt's first completion, the K fresh completions for V_0, shared by that prompt's
completions) are one batched call of a `Sampler` (split only past `batch_rows` rows). The cost,
`estimate_rollouts`, is K * (prompts + sum over completions of (T - 1)) sampled continuations.

Everything here is plain Python on lists of numbers (the estimator); scoring uses exact rational
arithmetic for the lift, so uniform credit scores exactly 1.0. The sampler for a transformers model
(one forward per completion, its KV cache shared by every continuation) and the glue that runs the
oracle for `arca diagnose` are `arca_rl._diagnose.oracle_sampling`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

from .diagnostics import mean_ci, spearman

__all__ = [
    "OracleRow",
    "OracleScore",
    "Sampler",
    "check_reward",
    "check_samples",
    "MAX_ROLLOUTS",
    "estimate_rollouts",
    "max_rollouts",
    "mc_estimate",
    "oracle_credit",
    "oracle_lift",
    "oracle_values",
    "row_spearman",
    "score_signal",
    "score_signed",
    "signed_cosine",
    "top_match",
]

#: A policy for the oracle: `sampler(sequence, cuts, budgets)` continues, for each row i, the prefix
#: `sequence[:cuts[i]]` (prompt ids + completion prefix ids) with at most `budgets[i]` new tokens,
#: and returns each row's new token ids (cut after the first EOS).
Sampler = Callable[[list[int], list[int], list[int]], list[list[int]]]

#: "No signal": every |delta_t| within this many standard errors of 0.
NO_SIGNAL_SE = 2.0


# -----------------------------------------------------------------------------
# one completion's oracle row


def check_samples(samples: Any, name: str = "oracle_samples") -> int:
    """`samples` (K) as an int >= 1, else a ValueError naming `name`."""
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ValueError(f"{name} must be an integer >= 1 (continuations per prefix), got {samples!r}")
    return samples


def mc_estimate(rewards: Sequence[float]) -> tuple[float, float]:
    """(mean, Monte Carlo standard error) of K sampled rewards.

    0/1 rewards: sqrt(V (1 - V) / K); other rewards: the sample standard deviation (K - 1 in the
    denominator) / sqrt(K), which is NaN for K = 1 (one sample says nothing about its spread).
    """
    k = len(rewards)
    if k == 0:
        raise ValueError("mc_estimate needs at least one reward")
    mean = math.fsum(rewards) / k
    if all(r in (0.0, 1.0) for r in rewards):
        return mean, math.sqrt(max(mean * (1.0 - mean), 0.0) / k)
    if k == 1:
        return mean, math.nan
    var = math.fsum((r - mean) ** 2 for r in rewards) / (k - 1)
    return mean, math.sqrt(var / k)


@dataclass
class OracleRow:
    """One completion's Monte Carlo values (see the module docstring for the indexing)."""

    values: list[float]
    stderr: list[float]
    samples: int
    delta: list[float] = field(init=False)

    def __post_init__(self) -> None:
        if len(self.values) < 2 or len(self.stderr) != len(self.values):
            raise ValueError(
                f"an oracle row needs T + 1 >= 2 values and as many standard errors, "
                f"got {len(self.values)} and {len(self.stderr)}"
            )
        self.delta = [b - a for a, b in zip(self.values[:-1], self.values[1:])]

    @property
    def length(self) -> int:
        """T, the completion's token count."""
        return len(self.delta)

    @property
    def credit(self) -> list[float] | None:
        """o_t = |delta_t| / sum |delta|, or None when every delta is 0 (the row is left out)."""
        return oracle_credit(self.delta)

    @property
    def no_signal(self) -> bool:
        """Every |delta_t| is within 2 standard errors of 0 (the standard error of a difference of
        two independent estimates, sqrt(se_{t-1}^2 + se_t^2)); unknown errors never flag."""
        for t, d in enumerate(self.delta):
            se = math.hypot(self.stderr[t], self.stderr[t + 1])
            if not math.isfinite(se) or abs(d) > NO_SIGNAL_SE * se:
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "values": list(self.values),
            "delta": list(self.delta),
            "stderr": [s if math.isfinite(s) else None for s in self.stderr],
            "samples": self.samples,
            "credit": self.credit,
            "no_signal": self.no_signal,
        }


def oracle_credit(delta: Sequence[float]) -> list[float] | None:
    """|delta_t| / sum_k |delta_k|; None when every delta is 0."""
    total = math.fsum(abs(d) for d in delta)
    if not total > 0:
        return None
    return [abs(d) / total for d in delta]


# -----------------------------------------------------------------------------
# scoring a signal against the oracle


def oracle_lift(weights: Sequence[float], delta: Sequence[float]) -> float | None:
    """T * sum_t w_t o_t, with w normalised to sum 1 and o the oracle credit of `delta`.

    Computed in exact rational arithmetic (floats are exact rationals) and rounded once, so uniform
    weights give exactly 1.0 and w = o gives T * sum o^2 to the last bit. None when every delta or
    every weight is 0.
    """
    if len(weights) != len(delta):
        raise ValueError(f"weights have {len(weights)} tokens but the oracle row has {len(delta)}")
    abs_d = [abs(Fraction(d)) for d in delta]
    w = [Fraction(x) for x in weights]
    sd, sw = sum(abs_d), sum(w)
    if sd == 0 or sw == 0:
        return None
    return float(len(delta) * sum(a * b for a, b in zip(w, abs_d)) / (sw * sd))


def row_spearman(salience: Sequence[float], delta: Sequence[float]) -> float | None:
    """Spearman correlation (average ranks for ties) between a signal's salience and |delta| on one
    completion; None when either side is constant or T < 2."""
    if len(salience) != len(delta):
        raise ValueError(f"salience has {len(salience)} tokens but the oracle row has {len(delta)}")
    return spearman([float(x) for x in salience], [abs(float(d)) for d in delta])


def top_match(weights: Sequence[float], delta: Sequence[float]) -> float | None:
    """Whether the signal's largest-weight token is the oracle's largest-|delta| token.

    Ties are broken at random, in expectation: with A the tokens tied for the largest weight and B
    those tied for the largest |delta|, the match is |A & B| / (|A| |B|). So uniform weights score
    1/T, like a random guess, rather than 1. None when every delta is 0.
    """
    if len(weights) != len(delta):
        raise ValueError(f"weights have {len(weights)} tokens but the oracle row has {len(delta)}")
    d = [abs(x) for x in delta]
    if not d or max(d) <= 0:
        return None
    wmax, dmax = max(weights), max(d)
    a = {t for t, x in enumerate(weights) if x == wmax}
    b = {t for t, x in enumerate(d) if x == dmax}
    return len(a & b) / (len(a) * len(b))


@dataclass
class OracleScore:
    """One signal scored against the oracle, over the completions with an oracle row.

    oracle_lift: mean T * sum w o over rows whose deltas are not all 0, with its 95% Student t
    interval (ci_low / ci_high; equal to the mean when every row has the same lift, None for one
    row); oracle_spearman: mean per-row Spearman(salience, |delta|) over the rows where neither side
    is constant (spearman_n of them); oracle_top_match: share of rows whose largest-weight token is
    the largest-|delta| token (ties split, see `top_match`); rows: rows scored; zero_rows: rows left
    out because every delta is 0.
    """

    oracle_lift: float | None
    ci_low: float | None
    ci_high: float | None
    oracle_spearman: float | None
    oracle_top_match: float | None
    rows: int
    zero_rows: int
    spearman_n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lift_dict(self) -> dict[str, Any]:
        """{"mean", "ci_low", "ci_high", "n"}: the form `diagnose.json` stores per signal."""
        return {"mean": self.oracle_lift, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.rows}


def score_signal(
    weights: Sequence[Sequence[float]],
    salience: Sequence[Sequence[float]] | None,
    deltas: Sequence[Sequence[float] | None],
) -> OracleScore:
    """Score one signal's per-completion weights (and raw salience, for the rank correlation)
    against the oracle deltas of the same completions (None: that completion has no oracle row)."""
    if len(weights) != len(deltas) or (salience is not None and len(salience) != len(deltas)):
        raise ValueError("score_signal: weights, salience and deltas must cover the same completions")
    lifts: list[float] = []
    rhos: list[float] = []
    tops: list[float] = []
    zero = 0
    for r, d in enumerate(deltas):
        if d is None:
            continue
        if oracle_credit(d) is None:
            zero += 1
            continue
        lift = oracle_lift(weights[r], d)
        if lift is not None:
            lifts.append(lift)
        tm = top_match(weights[r], d)
        if tm is not None:
            tops.append(tm)
        if salience is not None:
            rho = row_spearman(salience[r], d)
            if rho is not None:
                rhos.append(rho)
    mean, half, _ = mean_ci(lifts)  # 95% Student t interval
    lo, hi = (None, None) if mean is None or half is None else (mean - half, mean + half)
    return OracleScore(
        oracle_lift=mean,
        ci_low=lo,
        ci_high=hi,
        oracle_spearman=math.fsum(rhos) / len(rhos) if rhos else None,
        oracle_top_match=math.fsum(tops) / len(tops) if tops else None,
        rows=len(lifts),
        zero_rows=zero,
        spearman_n=len(rhos),
    )


def signed_cosine(token_advantages: Sequence[float], delta: Sequence[float]) -> float | None:
    """The signed oracle measure of one completion: cos(A, delta) = sum_t A_t delta_t / (||A|| ||delta||) in
    [-1, 1], A a method's signed token advantages (A_i * w_t * T for a weighting signal). Uniform credit gets
    sign(A_i) (R - V_0) / (sqrt(T) ||delta||), since sum_t delta_t = R - V_0. None when every A_t or delta_t is 0."""
    if len(token_advantages) != len(delta):
        raise ValueError(f"token advantages have {len(token_advantages)} tokens but the oracle row has {len(delta)}")
    a = [float(x) for x in token_advantages]
    d = [float(x) for x in delta]
    na = math.sqrt(math.fsum(x * x for x in a))  # ||A||
    nd = math.sqrt(math.fsum(x * x for x in d))  # ||delta||
    if not (na > 0 and nd > 0):
        return None
    return max(-1.0, min(1.0, math.fsum(x * y for x, y in zip(a, d)) / (na * nd)))


def score_signed(
    token_advantages: Sequence[Sequence[float] | None], deltas: Sequence[Sequence[float] | None]
) -> dict[str, Any]:
    """The signed oracle measure of one method over completions: {"mean", "ci_low", "ci_high", "n", "zero_rows"},
    the mean per-completion `signed_cosine` with its 95% Student t interval; `zero_rows` counts completions left
    out because their advantages or deltas are all 0 (None entries are skipped)."""
    if len(token_advantages) != len(deltas):
        raise ValueError("score_signed: token_advantages and deltas must cover the same completions")
    cos: list[float] = []
    zero = 0
    for a, d in zip(token_advantages, deltas):
        if a is None or d is None:
            continue
        c = signed_cosine(a, d)
        if c is None:
            zero += 1
        else:
            cos.append(c)
    mean, half, n = mean_ci(cos)
    lo = hi = None
    if mean is not None and half is not None:
        lo, hi = mean - half, mean + half
    return {"mean": mean, "ci_low": lo, "ci_high": hi, "n": n, "zero_rows": zero}


# -----------------------------------------------------------------------------
# sampling the values


def estimate_rollouts(lengths_per_prompt: Sequence[Sequence[int]], samples: int) -> int:
    """Continuations the oracle samples: K per prompt (V_0, shared by its completions) plus K per
    prefix of 1 .. T-1 tokens of every completion."""
    return samples * sum(1 + sum(max(t - 1, 0) for t in lengths) for lengths in lengths_per_prompt if lengths)


def check_reward(value: Any, what: str) -> float:
    """`value` as a finite float; otherwise a ValueError saying it came from the reward function for `what`."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"reward function returned {value!r} for {what}; it must return a finite number"
        ) from None
    if not math.isfinite(v):
        raise ValueError(f"reward function returned {v} for {what}; it must return a finite number")
    return v


def oracle_values(
    groups: Sequence[tuple[list[int], Sequence[tuple[list[int], float]]]],
    sampler: Sampler,
    reward: Callable[[int, list[list[int]]], Sequence[float]],
    *,
    samples: int,
    max_new_tokens: int,
    batch_rows: int = 1024,
    on_rollouts: Callable[[int], None] | None = None,
) -> list[list[OracleRow]]:
    """Monte Carlo values of every prefix of every completion.

    Args:
        groups: per prompt, (prompt ids, [(completion ids, the completion's reward R(y)), ...]).
            Completion ids are the real tokens (up to and including the first EOS).
        sampler: the policy (`_diagnose.oracle_sampling.model_sampler` for a transformers model).
        reward: `fn(group index, [completion ids, ...]) -> rewards`, each completion a whole one
            (prefix + continuation); every reward must be a finite number.
        samples: K, continuations per prefix.
        max_new_tokens: the rollouts' completion length limit; a continuation of a t-token prefix
            gets at most max_new_tokens - t new tokens.
        batch_rows: most rows (continuations) per `sampler` call; larger calls are split.
        on_rollouts: called with the number of continuations just sampled (progress).

    Returns:
        per group, one `OracleRow` per completion, in order.

    One `sampler` call per completion: its prefixes of 1 .. T-1 tokens (K rows each), and for the
    first completion of a prompt also the prompt alone (K rows, V_0).
    """
    check_samples(samples)
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
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
    out: list[list[OracleRow]] = []
    for g, (prompt_ids, completions) in enumerate(groups):
        P = len(prompt_ids)
        # Streamed: at most `batch_rows` continuations exist at a time, each scored as soon as it is sampled
        # and kept only as a running tally per prefix, so memory does not grow with K.
        tallies: dict[tuple[int, int], _Tally] = {}  # (completion, t) -> rewards so far; t = 0: V_0
        for c, (ids, _r) in enumerate(completions):
            cuts = ([0] if c == 0 else []) + list(range(1, len(ids)))
            seq = list(prompt_ids) + list(ids[: max(len(ids) - 1, 0)])
            for chunk in _chunks(((c, t) for t in cuts for _ in range(samples)), batch_rows):
                got = sampler(seq, [P + t for _c, t in chunk], [max_new_tokens - t for _c, t in chunk])
                if len(got) != len(chunk):
                    raise RuntimeError(f"sampler returned {len(got)} continuations for {len(chunk)} rows")
                full = [list(ids[: key[1]]) + list(x) for key, x in zip(chunk, got)]
                scores = list(reward(g, full))
                if len(scores) != len(full):
                    raise RuntimeError(f"reward function returned {len(scores)} rewards for {len(full)} completions")
                for key, score in zip(chunk, scores):
                    tallies.setdefault(key, _Tally()).add(check_reward(score, f"a continuation of prompt {g}"))
                if on_rollouts is not None:
                    on_rollouts(len(got))
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
            rows_g.append(OracleRow(values=values, stderr=errs, samples=samples))
        out.append(rows_g)
    return out


def _chunks(items: Iterator[tuple[int, int]], size: int) -> Iterator[list[tuple[int, int]]]:
    """Lists of at most `size` items, drawn lazily (the rows of one sampler call)."""
    while chunk := list(itertools.islice(items, size)):
        yield chunk


class _Tally:
    """`mc_estimate` of a stream of rewards in constant memory: the count and exact (rational) sums of the
    rewards and of their squares. The mean is `mc_estimate`'s to the last bit (its fsum is the exact sum
    rounded once); the standard error agrees with it to rounding."""

    def __init__(self) -> None:
        self.k = 0
        self.total = Fraction(0)
        self.squares = Fraction(0)
        self.binary = True

    def add(self, reward: float) -> None:
        self.k += 1
        self.total += Fraction(reward)
        self.squares += Fraction(reward) ** 2
        self.binary = self.binary and reward in (0.0, 1.0)

    def estimate(self) -> tuple[float, float]:
        if self.k == 0:
            raise ValueError("mc_estimate needs at least one reward")
        mean = float(self.total) / self.k  # = math.fsum(rewards) / k
        if self.binary:
            return mean, math.sqrt(max(mean * (1.0 - mean), 0.0) / self.k)
        if self.k == 1:
            return mean, math.nan
        m = Fraction(mean)
        # sum_i (r_i - m)^2 = sum r^2 - 2 m sum r + k m^2, exactly
        var = float(self.squares - 2 * m * self.total + self.k * m * m) / (self.k - 1)
        return mean, math.sqrt(max(var, 0.0) / self.k)


def max_rollouts(prompts: int, completions: int, max_new_tokens: int, samples: int) -> int:
    """The most continuations the oracle can sample before the completions are known: K per prompt (V_0)
    plus K per prefix of 1 .. max_new_tokens - 1 tokens of every completion (`estimate_rollouts` with every
    completion at full length)."""
    return samples * (prompts + completions * max(max_new_tokens - 1, 0))


#: The most continuations one `arca diagnose --oracle` run may ask for (a larger request is refused up
#: front, with its figure). Memory stays bounded whatever K is; this bounds the time.
MAX_ROLLOUTS = 10**8


