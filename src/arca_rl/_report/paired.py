"""Paired comparisons with a baseline method (`arca report --baseline NAME [--margin M]`, default uniform).

Written to `paired.json`, report.md and the printed output.

**Pairing.** Runs with the same seed see the same prompts in the same order and the same first-step rollouts, so a
method is compared with the baseline seed by seed: for each seed both have (and the same LoRA rank), the difference
d_s = method_s - baseline_s of a measure. That holds only for runs that differ in nothing but the method, so two
runs are paired only when their config.yaml files differ in no other key (`config_differences`) than:

- the credit method and its own settings: `training.credit`, every credit field `training.credit_*`
  (`CreditFields`) and `training.top_entropy_quantile` (the `+topent` variant);
- the trainer: `trainer`, `training.loss_type` (both name the method in the report's labels) and, where the two
  trainers differ, the training fields that only one of their config classes has;
- the seed (`training.seed`, equal within a pair anyway);
- where a run writes and what it is called, which cannot change what it learns (`NAMING_KEYS`): `name`,
  `training.output_dir`, `run_name`, `logging_dir`, `report_to`, `disable_tqdm`, and checkpointing
  (`save_strategy`, `save_steps`, `save_total_limit`: a resumed run is bit-identical to one never stopped).

A key set in one config and absent from the other differs (a config.yaml keeps the training keys it was given, and
the report does not load TRL to learn their defaults). A pair that differs elsewhere is refused: with a baseline
named (`--baseline`), `ConfigError` in one line naming the keys; with the default baseline, that method is left out
with a message naming them; with `pair_anyway` (`--pair-anyway`) it is paired and the keys are listed
(`config_differences` in paired.json, above the table in report.md and the printed output).

**Per method and measure**, over the n seeds paired (α = `ALPHA` = 0.05):

- `mean`, `sd` (n - 1 in the denominator) of the d_s, the 95% Student-t interval `ci_low`/`ci_high`
  (mean ± t_{0.975, n-1} · se, se = sd / √n, scipy's t quantile) and wins / ties / losses (d > 0, d = 0, d < 0);
- `p`: the two-sided paired t test of a mean difference of 0: t = mean / se, p = 2 P(T_{n-1} >= |t|);
- `p_holm`: `p` corrected with Holm's step-down method over the comparisons on that measure (every method and
  rank paired with the baseline that has a `p`): the i-th smallest of m p-values becomes
  max_{j <= i} min(1, (m - j + 1) p_(j)). It bounds the chance of any false "differs" among the methods compared;
- with a margin M (`--margin`, in the measure's units, an absolute accuracy difference): the equivalence test,
  two one-sided paired t tests (TOST): H0: mean <= -M, p_low = P(T_{n-1} >= (mean + M) / se); H0: mean >= +M,
  p_high = P(T_{n-1} <= (mean - M) / se); `p_tost` = max(p_low, p_high), `p_tost_holm` its Holm correction as
  above; `tost_ci_low`/`tost_ci_high` the (1 - 2α) = 90% interval mean ± t_{0.95, n-1} · se, which lies inside
  (-M, +M) exactly when `p_tost` < α;
- `verdict` (with a margin; null without one), the first that holds:
  `equivalent within ±M` when `p_tost_holm` < α; `better` when `p_holm` < α and mean > 0; `worse` when
  `p_holm` < α and mean < 0; else `undecided`. With a single comparison on a measure (Holm changes nothing) this
  reads off the intervals: equivalent = the 90% interval inside (-M, +M), better = the 95% interval above 0, worse
  = below 0. Equivalence comes first: a difference shown to be non-zero but within the margin is, by the margin's
  definition, too small to matter (the mean, interval and p still show it). With one seed, or no spread (every d_s
  equal, so t is undefined), there is no test: p, p_holm, p_tost null and the verdict `undecided`;
- `mde`: the minimum detectable effect of this design: the smallest true mean difference δ > 0 that a two-sided
  paired t test at 0.05 over these n seeds detects with 80% power when the paired sd is the observed `sd`, i.e.
  P(|T'| > t_{0.975, n-1}) = 0.8 with T' noncentral t (n - 1 degrees of freedom, noncentrality δ √n / sd),
  solved exactly with scipy's `nct` and `brentq` (not the normal or t approximation). It is per comparison (not
  Holm-corrected), and as uncertain as the observed sd; null with one seed or no spread;
- `boot_ci_low`/`boot_ci_high` (greedy_accuracy only): when every paired run of the method and of the baseline
  holds `eval_problems.jsonl` and the two runs of each seed hold the same problem ids, the 95% percentile interval
  of a paired bootstrap over seeds and problems together (`per_problem.paired_bootstrap`); otherwise null, and
  a message says which run lacks the records when some have them.

The measures: held-out greedy accuracy and pass@k (eval.json) and the learning-curve area (`RunData.curve_auc`: the
area under the held-out curve of `eval.every_steps`, divided by its step span, i.e. the mean held-out accuracy over
training). A seed whose run lacks a measure is left out of that measure, and its note and a message name the run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .._credit_fields import defaults as credit_defaults
from ..errors import ConfigError
from .per_problem import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    EVAL_PROBLEMS_FILE,
    paired_bootstrap,
    read_eval_problems,
)
from .tables import RunData, _flatten, group_runs

__all__ = [
    "ALPHA",
    "MEASURES",
    "NAMING_KEYS",
    "PairedEntry",
    "config_differences",
    "default_baseline",
    "holm",
    "minimum_detectable_effect",
    "paired_differences",
    "paired_json",
    "paired_markdown",
]

CONFIDENCE = 0.95
ALPHA = 0.05  # the tests' level: two-sided paired t (and its Holm correction), each one-sided test of TOST
POWER = 0.8  # the power of the minimum detectable effect
# name in paired.json -> (what it is, how a run gives it)
MEASURES: dict[str, tuple[str, Callable[[RunData], float | None]]] = {
    "greedy_accuracy": ("held-out greedy accuracy after training", lambda r: r.eval_value("greedy_accuracy")),
    "pass_at_k": ("held-out pass@k after training", lambda r: r.eval_value("pass_at_k")),
    "curve_auc": (
        "learning-curve area: held-out greedy accuracy averaged over training steps (trapezoid / step span)",
        lambda r: r.curve_auc,
    ),
}
TIE = 1e-12  # |d| at most this is a tie (accuracies are multiples of 1/n); an sd at most this is no spread

# Config keys two paired runs may differ in besides the credit method, its settings and the trainer: names, where
# the run writes, and checkpointing, none of which changes what a run learns.
NAMING_KEYS = frozenset(
    {
        "name",
        "training.seed",
        "training.output_dir",
        "training.run_name",
        "training.logging_dir",
        "training.report_to",
        "training.disable_tqdm",
        "training.save_strategy",
        "training.save_steps",
        "training.save_total_limit",
    }
)
_METHOD_KEYS = frozenset({"trainer", "training.loss_type", "training.credit", "training.top_entropy_quantile"})
_ABSENT = object()


@dataclass
class PairedEntry:
    """One method's paired difference from the baseline on one measure (module docstring: every figure)."""

    method: str
    rank: int | None
    measure: str
    n_seeds: int
    seeds: list[int]
    mean: float
    ci_low: float | None
    ci_high: float | None
    wins: int
    ties: int
    losses: int
    note: str | None = None
    sd: float | None = None
    p: float | None = None
    p_holm: float | None = None
    p_tost: float | None = None
    p_tost_holm: float | None = None
    tost_ci_low: float | None = None
    tost_ci_high: float | None = None
    mde: float | None = None
    verdict: str | None = None
    boot_ci_low: float | None = None
    boot_ci_high: float | None = None
    config_differences: list[str] = field(default_factory=list)


def default_baseline(runs: Sequence[RunData]) -> str | None:
    """uniform when a uniform run is there, else None (no paired comparison)."""
    return "uniform" if any(r.method == "uniform" for r in runs) else None


def _t_quantile(dof: int, level: float = 0.5 + CONFIDENCE / 2) -> float:
    from scipy import stats

    return float(stats.t.ppf(level, dof))


def holm(ps: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: the i-th smallest of m becomes
    max_{j <= i} min(1, (m - j + 1) p_(j))."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    out = [0.0] * len(ps)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        out[i] = running
    return out


def minimum_detectable_effect(sd: float, n: int, *, power: float = POWER, alpha: float = ALPHA) -> float | None:
    """The smallest true mean difference a two-sided paired t test at `alpha` over `n` pairs with paired standard
    deviation `sd` detects with probability `power`: δ with P(|T'| > t_{1-alpha/2, n-1}) = power, T' noncentral t
    (n - 1 degrees of freedom, noncentrality δ √n / sd), solved with scipy's `nct` and `brentq`. None with fewer
    than two pairs or no spread."""
    if n < 2 or not sd > TIE:
        return None
    from scipy import optimize, stats

    dof = n - 1
    crit = float(stats.t.ppf(1 - alpha / 2, dof))
    se = sd / math.sqrt(n)

    def shortfall(delta: float) -> float:
        nc = delta / se
        wrong_tail = float(stats.nct.cdf(-crit, dof, nc))  # below alpha / 2, and NaN far out in scipy: 0 there
        return float(stats.nct.sf(crit, dof, nc)) + (wrong_tail if math.isfinite(wrong_tail) else 0.0) - power

    high = (crit + float(stats.norm.ppf(power))) * se
    while shortfall(high) < 0:  # power grows with delta; at 0 it is alpha < power
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-12, rtol=1e-12))


def _entry(
    method: str, rank: int | None, measure: str, pairs: list[tuple[int, float]], margin: float | None
) -> PairedEntry:
    from scipy import stats

    diffs = [d for _s, d in pairs]
    n = len(diffs)
    mean = sum(diffs) / n
    e = PairedEntry(
        method=method,
        rank=rank,
        measure=measure,
        n_seeds=n,
        seeds=[s for s, _d in pairs],
        mean=mean,
        ci_low=None,
        ci_high=None,
        wins=sum(d > TIE for d in diffs),
        ties=sum(abs(d) <= TIE for d in diffs),
        losses=sum(d < -TIE for d in diffs),
    )
    if n < 2:
        e.note = "one seed: no interval, no test"
        return e
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    se = sd / math.sqrt(n)
    e.sd = sd
    half = _t_quantile(n - 1) * se
    e.ci_low, e.ci_high = mean - half, mean + half
    if sd <= TIE:
        e.note = "zero spread (every seed's difference equal): no t statistic, no test"
        return e
    e.p = float(2 * stats.t.sf(abs(mean / se), n - 1))
    e.mde = minimum_detectable_effect(sd, n)
    if margin is not None:
        e.p_tost = float(max(stats.t.sf((mean + margin) / se, n - 1), stats.t.cdf((mean - margin) / se, n - 1)))
        half90 = _t_quantile(n - 1, 1 - ALPHA) * se
        e.tost_ci_low, e.tost_ci_high = mean - half90, mean + half90
    return e


def _verdict(e: PairedEntry, margin: float) -> str:
    if e.p_tost_holm is not None and e.p_tost_holm < ALPHA:
        return f"equivalent within ±{margin:g}"
    if e.p_holm is not None and e.p_holm < ALPHA:
        return "better" if e.mean > 0 else "worse"
    return "undecided"


def _correct(entries: list[PairedEntry], margin: float | None) -> None:
    """Holm over the comparisons of each measure, then the verdicts."""
    for measure in MEASURES:
        tested = [e for e in entries if e.measure == measure and e.p is not None]
        for e, adjusted in zip(tested, holm([e.p for e in tested if e.p is not None])):
            e.p_holm = adjusted
        with_tost = [e for e in tested if e.p_tost is not None]
        for e, adjusted in zip(with_tost, holm([e.p_tost for e in with_tost if e.p_tost is not None])):
            e.p_tost_holm = adjusted
    if margin is not None:
        for e in entries:
            e.verdict = _verdict(e, margin)


def _show(value: Any) -> str:
    return "absent" if value is _ABSENT else repr(value)


def _trainer_fields(trainer: str) -> set[str] | None:
    """The training fields of `trainer`'s config class (loads TRL); None when it cannot be loaded."""
    import dataclasses

    try:
        from .._config.build import config_class

        return {f.name for f in dataclasses.fields(config_class(trainer))}
    except (ImportError, KeyError, AttributeError, TypeError):
        return None


def config_differences(mine: RunData, theirs: RunData) -> list[str]:
    """The keys of two runs' configs that pairing them by seed may not differ in (module docstring), each as
    `key (mine / theirs)`, `absent` for a key one of them lacks."""
    a, b = _flatten(mine.config), _flatten(theirs.config)
    a.setdefault("trainer", "grpo")
    b.setdefault("trainer", "grpo")
    credit = {f"training.{name}" for name in credit_defaults()}
    free = NAMING_KEYS | _METHOD_KEYS | credit
    differing = [
        k
        for k in sorted(set(a) | set(b))
        if k not in free
        and json.dumps(a.get(k, "\0absent"), sort_keys=True, default=str)
        != json.dumps(b.get(k, "\0absent"), sort_keys=True, default=str)
    ]
    if differing and a["trainer"] != b["trainer"]:  # a field only one of the two trainers has is the trainer's own
        fa, fb = _trainer_fields(str(a["trainer"])), _trainer_fields(str(b["trainer"]))
        if fa is not None and fb is not None:
            own = {f"training.{name}" for name in fa ^ fb}
            differing = [k for k in differing if k not in own]
    return [f"{k} ({_show(a.get(k, _ABSENT))} / {_show(b.get(k, _ABSENT))})" for k in differing]


def _lacks(run: RunData, measure: str) -> str:
    """Why `run` has no value of `measure`."""
    if measure == "curve_auc":
        return "no curve.jsonl" if not (run.path / "curve.jsonl").is_file() else "fewer than two curve points"
    if run.eval is None:
        return "no eval.json"
    return f"no {measure} in eval.json"


def _bootstrap(
    method: str, rank: int | None, pairs: list[tuple[RunData, RunData]], cache: dict[Any, Any]
) -> tuple[tuple[float, float] | None, str | None]:
    """The paired bootstrap interval of greedy accuracy over `pairs` (method run, baseline run), or None and why
    (None when no run has records: nothing to say)."""
    records = {}
    for run in {id(r): r for pair in pairs for r in pair}.values():
        if run.path not in cache:
            try:
                cache[run.path] = read_eval_problems(run.path)
            except ValueError as exc:
                cache[run.path] = exc
        records[id(run)] = cache[run.path]
    if all(rec is None for rec in records.values()):
        return None, None
    label = f"{method} r{rank}"
    for pair in pairs:
        for run in pair:
            rec = records[id(run)]
            if isinstance(rec, ValueError):
                return None, f"{rec}; no bootstrap over problems for {label}"
            if rec is None:
                return None, (
                    f"{run.path}: no {EVAL_PROBLEMS_FILE} (its partner runs have one); no bootstrap over problems for "
                    f"{label}"
                )
            if not rec:
                return None, f"{run.path}: {EVAL_PROBLEMS_FILE} holds no record; no bootstrap over problems for {label}"
    diffs = []
    for mine, theirs in pairs:
        m_rec, b_rec = records[id(mine)], records[id(theirs)]
        base = {r.id: r.correct for r in b_rec}
        only = {r.id for r in m_rec} ^ set(base)
        if only:
            return None, (
                f"{mine.path} and {theirs.path} hold different problem ids in {EVAL_PROBLEMS_FILE} "
                f"({len(only)} in only one, e.g. {sorted(only)[0]!r}); no bootstrap over problems for {label}"
            )
        diffs.append([float(r.correct) - float(base[r.id]) for r in m_rec])
    return paired_bootstrap(diffs), None


def paired_differences(
    runs: Sequence[RunData],
    baseline: str,
    *,
    margin: float | None = None,
    refuse: bool = False,
    pair_anyway: bool = False,
) -> tuple[list[PairedEntry], list[str]]:
    """Every other method's paired differences from `baseline` (runs of one rank paired by seed), and messages
    about the methods that could not be paired (no baseline run of their rank, no seed in common, configs that
    differ beyond the method) and the seeds a measure left out. Runs whose configs differ beyond the method: with
    `pair_anyway` paired (the keys in the entries' `config_differences`), else with `refuse` ConfigError naming
    the keys, else left out with a message."""
    groups = group_runs(runs)
    base = {
        rank: {r.seed: r for r in group if r.seed is not None} for (m, rank), group in groups.items() if m == baseline
    }
    entries: list[PairedEntry] = []
    messages: list[str] = []
    cache: dict[Any, Any] = {}
    for (method, rank), group in groups.items():
        if method == baseline:
            continue
        theirs = base.get(rank)
        if not theirs:
            messages.append(f"{method} r{rank}: no {baseline} run of rank {rank} to pair with; not in paired.json")
            continue
        common = sorted(r.seed for r in group if r.seed is not None and r.seed in theirs)
        if not common:
            messages.append(f"{method} r{rank}: no seed in common with {baseline} r{rank}; not in paired.json")
            continue
        mine = {r.seed: r for r in group}
        differ: dict[str, str] = {}
        for s in common:
            for text in config_differences(mine[s], theirs[s]):
                differ.setdefault(text.split(" ", 1)[0], text)
        if differ and not pair_anyway:
            keys = list(differ.values())
            shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
            why = (
                f"{method} r{rank} and {baseline} r{rank} differ beyond the credit method, its settings, the trainer "
                f"and the seed: {shown}"
            )
            if refuse:
                raise ConfigError(
                    f"arca report --baseline {baseline}: {why}; pairing them by seed would compare more than the "
                    "method: compare runs of one config, or pass --pair-anyway to pair them with these keys listed"
                )
            messages.append(f"{why}; not paired (--pair-anyway pairs them), not in paired.json")
            continue
        for measure, (_what, value) in MEASURES.items():
            pairs, lacking = [], []
            for s in common:
                a, b = value(mine[s]), value(theirs[s])
                if a is not None and b is not None:
                    pairs.append((s, a - b))
                else:
                    lacking += [
                        f"{r.name} ({_lacks(r, measure)})" for r, v in ((mine[s], a), (theirs[s], b)) if v is None
                    ]
            if not pairs:
                if any(value(r) is not None for s in common for r in (mine[s], theirs[s])):
                    missing = ", ".join(lacking)
                    messages.append(f"{method} r{rank} - {baseline}, {measure}: no seed with both: {missing}")
                continue
            e = _entry(method, rank, measure, pairs, margin)
            e.config_differences = list(differ.values())
            if lacking:
                left = f"{len(common) - len(pairs)} seed(s) left out: {', '.join(lacking)}"
                e.note = f"{e.note}; {left}" if e.note else left
                messages.append(f"{method} r{rank} - {baseline}, {measure}: {left}")
            if measure == "greedy_accuracy":
                chosen = [(mine[s], theirs[s]) for s, _d in pairs]
                interval, why_not = _bootstrap(method, rank, chosen, cache)
                if interval is not None:
                    e.boot_ci_low, e.boot_ci_high = interval
                if why_not:
                    messages.append(why_not)
            entries.append(e)
        if len(common) == 1:
            messages.append(f"{method} r{rank}: one seed in common with {baseline} ({common[0]}): no interval")
    _correct(entries, margin)
    return entries, messages


def paired_json(entries: Sequence[PairedEntry], baseline: str, *, margin: float | None = None) -> dict[str, Any]:
    """The paired.json object."""
    rows = []
    for e in entries:
        row = asdict(e)
        del row["config_differences"]  # once per method, at the top
        rows.append(row)
    return {
        "baseline": baseline,
        "confidence": CONFIDENCE,
        "alpha": ALPHA,
        "margin": margin,
        "difference": f"method minus {baseline}, seed by seed (same seed and LoRA rank)",
        "interval": "mean ± t_{0.975, n-1} · sd / sqrt(n) over the paired seeds (Student t); null with one seed",
        "tests": {
            "p": "two-sided paired t test of a mean difference of 0 (uncorrected)",
            "p_holm": "p, Holm-corrected (step-down) over the methods compared with the baseline on the same measure",
            "p_tost": "equivalence at ±margin: the larger p of the two one-sided paired t tests (TOST); null without "
            "a margin",
            "p_tost_holm": "p_tost, Holm-corrected over the methods compared on the same measure",
            "tost_ci": "tost_ci_low / tost_ci_high: the 90% (1 - 2 alpha) t interval; inside ±margin iff "
            "p_tost < alpha",
            "verdict": "first that holds: 'equivalent within ±margin' if p_tost_holm < alpha; 'better' / 'worse' if "
            "p_holm < alpha and the mean is above / below 0; else 'undecided' (also with one seed or zero spread); "
            "null without a margin",
            "mde": "minimum detectable effect: the true mean difference a two-sided paired t test at 0.05 over these "
            "seeds detects with 80% power given the observed paired sd (noncentral t, solved exactly)",
        },
        "bootstrap": {
            "what": "boot_ci_low / boot_ci_high (greedy_accuracy): 95% percentile interval of a paired bootstrap "
            f"over seeds and problems together, from every paired run's {EVAL_PROBLEMS_FILE} (same problem ids for "
            "method and baseline); null when a run lacks the records",
            "resamples": BOOTSTRAP_RESAMPLES,
            "rng_seed": BOOTSTRAP_SEED,
        },
        "measures": {name: what for name, (what, _v) in MEASURES.items()},
        "config_differences": {f"{e.method} r{e.rank}": e.config_differences for e in entries if e.config_differences},
        "entries": rows,
    }


def _signed(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{0.0 if abs(x) < 5e-4 else x:+.3f}"


def _p_cell(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def differences_above_table(entries: Sequence[PairedEntry], baseline: str) -> list[str]:
    """Lines naming the config keys of methods paired although their configs differ (--pair-anyway)."""
    seen: dict[str, list[str]] = {}
    for e in entries:
        if e.config_differences:
            seen.setdefault(f"{e.method} r{e.rank} and {baseline} r{e.rank}", e.config_differences)
    return [
        f"- {pair} paired by seed although their configs differ (--pair-anyway): {', '.join(keys)}"
        for pair, keys in seen.items()
    ]


def paired_markdown(entries: Sequence[PairedEntry], baseline: str, *, margin: float | None = None) -> str:
    """The paired table as GitHub-flavoured markdown, after a list of config differences paired anyway."""
    boot = any(e.boot_ci_low is not None for e in entries)
    head = [
        "method",
        "rank",
        "measure",
        "seeds",
        f"mean difference from {baseline} [95% CI]",
        "wins / ties / losses",
        "p (Holm)",
        "MDE (80% power)",
    ]
    if boot:
        head.append("bootstrap 95% CI (seeds × problems)")
    if margin is not None:
        head.append(f"verdict (±{margin:g})")
    above = differences_above_table(entries, baseline)
    lines = [*above, ""] if above else []
    lines += ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for e in entries:
        cell = (
            f"{_signed(e.mean)} [{_signed(e.ci_low)}, {_signed(e.ci_high)}]"
            if e.ci_low is not None and e.ci_high is not None
            else f"{_signed(e.mean)}"
        )
        if e.note:
            cell += f" ({e.note})"
        rank = "—" if e.rank is None else str(e.rank)
        row = [
            e.method.replace("|", chr(92) + "|"),
            rank,
            e.measure,
            str(e.n_seeds),
            cell,
            f"{e.wins} / {e.ties} / {e.losses}",
            _p_cell(e.p_holm),
            "—" if e.mde is None else f"{e.mde:.3f}",
        ]
        if boot:
            row.append(
                "—" if e.boot_ci_low is None else f"[{_signed(e.boot_ci_low)}, {_signed(e.boot_ci_high)}]"
            )
        if margin is not None:
            row.append(e.verdict or "—")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
