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

Which prefixes are sampled (`oracle_values(..., positions=...)`, `positions.py`): "all" samples every one, K *
(prompts + sum over completions of (T - 1)) continuations (`estimate_rollouts`); "adaptive" (the default) samples
the two ends and refines only where the value moves more than its standard error, interpolating V linearly in
between (`OracleRow.estimated` lists the sampled positions), at most as many and usually a few per completion.
Continuations are sampled with the rollout's own policy and sampling settings, and a continuation never makes the
completion longer than the rollout's `max_new_tokens`: from a prefix of t tokens it gets at most
`max_new_tokens - t` new ones.

The package: `values.py` (one completion's row and its estimates), `scoring.py` (the per-token measures, with exact
rational arithmetic for the lift, so uniform credit scores exactly 1.0), `placement.py` (a method scored at the
resolution the oracle measured: per token on exhaustive rows, per estimated interval on adaptive ones, beside its
shuffled control, with per-prompt bootstrap intervals: what `arca diagnose --oracle` reports), `positions.py` (which
prefixes, and sampling them), `sampler.py` (`model_sampler`, the sampler for a transformers model: one forward per
sequence, its KV cache shared by every continuation; it loads torch, so import it from `arca_rl.oracle.sampler`).
`arca diagnose --oracle` and `credit: vine` both use them.
"""

from __future__ import annotations

from .placement import (
    BOOTSTRAP_RESAMPLES,
    CONFIDENCE,
    MEASURES,
    PERMUTATIONS,
    Estimate,
    Measured,
    MethodScore,
    cluster_bootstrap,
    rank_reversal,
    row_measures,
    score_method,
    shuffled_measures,
)
from .positions import (
    ADAPTIVE_MAX_GAP,
    ADAPTIVE_SPLIT_SE,
    MAX_ROLLOUTS,
    POSITIONS,
    BatchSampler,
    Sampler,
    batch_sampler,
    check_positions,
    estimate_rollouts,
    max_rollouts,
    oracle_values,
    step_boundaries,
)
from .scoring import (
    OracleScore,
    oracle_lift,
    row_spearman,
    score_signal,
    score_signed,
    signed_cosine,
    top_match,
)
from .values import (
    NO_SIGNAL_SE,
    OracleRow,
    check_reward,
    check_samples,
    mc_estimate,
    measured_intervals,
    oracle_credit,
    segment_advantages,
)

__all__ = [
    "ADAPTIVE_MAX_GAP",
    "ADAPTIVE_SPLIT_SE",
    "BOOTSTRAP_RESAMPLES",
    "BatchSampler",
    "CONFIDENCE",
    "Estimate",
    "MAX_ROLLOUTS",
    "MEASURES",
    "Measured",
    "MethodScore",
    "NO_SIGNAL_SE",
    "OracleRow",
    "OracleScore",
    "PERMUTATIONS",
    "POSITIONS",
    "Sampler",
    "batch_sampler",
    "check_positions",
    "check_reward",
    "check_samples",
    "cluster_bootstrap",
    "estimate_rollouts",
    "max_rollouts",
    "mc_estimate",
    "measured_intervals",
    "oracle_credit",
    "oracle_lift",
    "oracle_values",
    "rank_reversal",
    "row_measures",
    "row_spearman",
    "score_method",
    "score_signal",
    "score_signed",
    "segment_advantages",
    "shuffled_measures",
    "signed_cosine",
    "step_boundaries",
    "top_match",
]
