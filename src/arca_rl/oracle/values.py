"""One completion's Monte Carlo values: the estimate of a prefix's value from K rewards, and `OracleRow` (values,
standard errors, deltas, credit; which positions were estimated and which interpolated). See `arca_rl.oracle`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

__all__ = [
    "NO_SIGNAL_SE",
    "OracleRow",
    "check_reward",
    "check_samples",
    "mc_estimate",
    "measured_intervals",
    "oracle_credit",
    "segment_advantages",
]

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
    """One completion's Monte Carlo values (see `arca_rl.oracle` for the indexing).

    `estimated`: the positions t whose V_t was estimated (0 and T always; T's is the completion's own reward),
    ascending; None when every position was (the exhaustive oracle). Between two consecutive estimated positions
    a < b the values are interpolated linearly, so each delta_t of t in a+1 .. b is (V_b - V_a) / (b - a), and
    their standard errors are NaN (not estimates).
    """

    values: list[float]
    stderr: list[float]
    samples: int
    estimated: list[int] | None = None
    delta: list[float] = field(init=False)

    def __post_init__(self) -> None:
        if len(self.values) < 2 or len(self.stderr) != len(self.values):
            raise ValueError(
                f"an oracle row needs T + 1 >= 2 values and as many standard errors, "
                f"got {len(self.values)} and {len(self.stderr)}"
            )
        self.delta = [b - a for a, b in zip(self.values[:-1], self.values[1:])]  # delta_t = V_t - V_{t-1}
        T = len(self.delta)
        if self.estimated is None:
            return
        pos = self.estimated
        if pos[:1] != [0] or pos[-1:] != [T] or sorted(set(pos)) != pos:
            raise ValueError(f"estimated positions must ascend from 0 to T={T} without repeats, got {pos}")
        for a, b in zip(pos[:-1], pos[1:]):
            step = (self.values[b] - self.values[a]) / (b - a)  # (V_b - V_a) / (b - a), each token's equal share
            self.delta[a:b] = [step] * (b - a)

    @property
    def length(self) -> int:
        """T, the completion's token count."""
        return len(self.delta)

    @property
    def credit(self) -> list[float] | None:
        """o_t = |delta_t| / sum |delta|, or None when every delta is 0 (the row is left out)."""
        return oracle_credit(self.delta)

    def positions(self) -> list[int]:
        """The estimated positions (every one of 0 .. T for an exhaustive row)."""
        return list(range(len(self.values))) if self.estimated is None else list(self.estimated)

    def intervals(self) -> list[tuple[int, int, float]]:
        """The value changes the oracle measured: (a, b, V_b - V_a) for every two consecutive estimated positions
        a < b (`measured_intervals`); an exhaustive row's are its T one-token intervals (t - 1, t, delta_t)."""
        return measured_intervals(self.values, self.estimated)

    @property
    def resolved(self) -> bool:
        """Whether the row says anything about where its value moved: an exhaustive row always; an adaptive row
        when it has two or more measured intervals (with one, every weighting puts all its mass on it)."""
        return self.estimated is None or len(self.estimated) > 2

    def segment_advantages(self) -> list[float]:
        """VinePPO's step form of the values (`segment_advantages`): every token of a measured interval (a, b]
        gets the whole V_b - V_a; for an exhaustive row this is `delta`."""
        return segment_advantages(self.values, self.estimated)

    @property
    def no_signal(self) -> bool:
        """Between every two consecutive estimated positions a < b, |V_b - V_a| is within 2 standard errors of 0
        (the standard error of a difference of two independent estimates, sqrt(se_a^2 + se_b^2)); for an
        exhaustive row, every |delta_t|. Unknown errors never flag."""
        pos = self.positions()
        for a, b in zip(pos[:-1], pos[1:]):
            d = self.values[b] - self.values[a]  # = delta[a] when b = a + 1
            se = math.hypot(self.stderr[a], self.stderr[b])
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
            **({} if self.estimated is None else {"estimated": list(self.estimated)}),
        }


def measured_intervals(values: Sequence[float], estimated: Sequence[int] | None) -> list[tuple[int, int, float]]:
    """(a, b, V_b - V_a) for every two consecutive estimated positions a < b, in order: the changes of value the
    oracle measured. Interval (a, b] holds the completion tokens a .. b - 1 (0-based; token t's delta is
    V_{t+1} - V_t). `estimated` None (every position estimated): the T one-token intervals (t, t + 1, delta)."""
    pos = list(range(len(values))) if estimated is None else list(estimated)
    return [(a, b, values[b] - values[a]) for a, b in zip(pos[:-1], pos[1:])]


def segment_advantages(values: Sequence[float], estimated: Sequence[int] | None) -> list[float]:
    """Per token, the whole change of its measured interval: token t in (a, b] gets V_b - V_a (VinePPO's step
    advantage, its steps being the intervals between estimated positions). A one-token interval keeps its own
    delta, so an exhaustive row gives its deltas unchanged; an interval left unsplit gives each of its tokens
    the change it did not localise, where linear interpolation would give each (V_b - V_a) / (b - a)."""
    out = [0.0] * (len(values) - 1)
    for a, b, change in measured_intervals(values, estimated):
        out[a:b] = [change] * (b - a)
    return out


def oracle_credit(delta: Sequence[float]) -> list[float] | None:
    """|delta_t| / sum_k |delta_k|; None when every delta is 0."""
    total = math.fsum(abs(d) for d in delta)
    if not total > 0:
        return None
    return [abs(d) / total for d in delta]

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


class Tally:
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


