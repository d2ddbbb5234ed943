"""Read run directories written by `arca train` and build the paper's Tables 2 and 3.

A run directory holds `config.yaml` (resolved config), `metrics.jsonl` (one JSON object per logging
step), `eval.json` (held-out accuracy) and optionally `credit_tokens.jsonl`. Runs are grouped by
(method, rank = lora.r), the method being training.credit plus the credit variant it trained with
(`arca+mix0.5`, `arca+warmup10`, `uniform+topent0.2`: see `arca_rl.variants`); every other
difference (the seed above all) is treated
as a replicate. A group's figure is the mean over its runs with a 95% Student-t confidence interval
(n - 1 degrees of freedom, half-width t_{0.975, n-1} * s / sqrt(n), s the sample standard
deviation); a group of one run has no interval.

Table 2: method, rank, greedy accuracy, pass@k, average training reward (mean of the logged
`reward` over logging steps). Table 3: method, rank, mean Gini and mean EffN/T (means of the logged
`credit/gini` and `credit/effective_token_ratio` over logging steps).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import rundir
from .._credit_fields import defaults, final_lambda
from .._run.curve import curve_auc, read_curve
from ..diagnostics import mean_ci
from ..variants import variant_name
from .checks import eval_problems

__all__ = [
    "METHOD_ORDER",
    "TABLE2_COLUMNS",
    "TABLE3_COLUMNS",
    "RunData",
    "RunLoadError",
    "deduplicate_seeds",
    "discover_runs",
    "group_runs",
    "label_methods",
    "mixed_settings",
    "load_run",
    "markdown_table",
    "mean_ci",
    "table2",
    "table3",
    "write_csv",
]

METHOD_ORDER = ("uniform", "surprisal", "entropy_reduction", "divergence", "arca")

TABLE2_COLUMNS = (
    "method",
    "rank",
    "n",
    "greedy_acc",
    "greedy_acc_ci95",
    "pass_at_k",
    "pass_at_k_ci95",
    "k",
    "avg_train_reward",
    "avg_train_reward_ci95",
)
TABLE3_COLUMNS = (
    "method",
    "rank",
    "n",
    "mean_gini",
    "mean_gini_ci95",
    "mean_effective_token_ratio",
    "mean_effective_token_ratio_ci95",
)


class RunLoadError(Exception):
    """A directory that cannot be reported on (the message says why)."""


@dataclass
class RunData:
    """What the report needs from one run directory."""

    path: Path
    name: str
    method: str
    rank: int | None
    seed: int | None
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    eval: dict[str, Any] | None
    token_log: Path | None
    warnings: list[str] = field(default_factory=list)
    curve: list[tuple[int, float]] = field(default_factory=list)
    """The held-out learning curve (curve.jsonl): (step, greedy accuracy), sorted by step."""
    finished: dict[str, Any] | None = None
    """finished.json (timings, final step), None when absent."""

    @property
    def curve_auc(self) -> float | None:
        """Area under the held-out curve over its step span (a mean accuracy); None with under two points."""
        return curve_auc(self.curve)

    @property
    def eval_seconds(self) -> float | None:
        """Wall time of the held-out evaluation after training (finished.json's eval_seconds)."""
        v = (self.finished or {}).get("eval_seconds")
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """(steps, values) of a logged scalar, skipping lines without it (or non-finite)."""
        xs: list[float] = []
        ys: list[float] = []
        for i, m in enumerate(self.metrics):
            v = m.get(key)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                continue
            step = m.get("step", i)
            xs.append(float(step) if isinstance(step, int | float) else float(i))
            ys.append(float(v))
        return xs, ys

    def mean_of(self, key: str) -> float | None:
        """Mean of a logged scalar over the logging steps that have it; None if none do."""
        _, ys = self.series(key)
        return sum(ys) / len(ys) if ys else None

    @property
    def avg_train_reward(self) -> float | None:
        return self.mean_of("reward")

    @property
    def mean_gini(self) -> float | None:
        return self.mean_of("credit/gini")

    @property
    def mean_effective_token_ratio(self) -> float | None:
        return self.mean_of("credit/effective_token_ratio")

    @property
    def final_mix(self) -> float | None:
        """The credit_mix lambda in force at the end of training (`CreditFields`' `final_lambda`): the last logged
        `credit/mix`, else computed from the config."""
        training = _section(self.config, "training")
        return final_lambda(training, self.series("credit/mix")[1])

    def eval_value(self, key: str) -> float | None:
        if not self.eval:
            return None
        v = self.eval.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return None
        return float(v)


def _section(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    """A section of a raw config.yaml, {} when it is missing or not a mapping."""
    value = cfg.get(name)
    return value if isinstance(value, dict) else {}


def _as_int(x: Any) -> int | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if isinstance(x, float) and x.is_integer():
        return int(x)
    if isinstance(x, str):
        try:
            return int(x)
        except ValueError:
            return None
    return None


def load_run(path: str | Path) -> RunData:
    """Load one run directory; raises RunLoadError (with a readable reason) if nothing usable is there."""
    p = Path(path)
    if not p.is_dir():
        raise RunLoadError(f"{p}: not a directory")
    try:
        cfg = rundir.read_raw_config(p)
    except ValueError as exc:
        raise RunLoadError(str(exc)) from None
    training, lora = _section(cfg, "training"), _section(cfg, "lora")
    method = variant_name(training, default_credit=defaults()["credit"])
    rank = _as_int(lora.get("r"))
    seed = _as_int(training.get("seed"))
    name = str(cfg.get("name") or p.name)
    warnings: list[str] = []

    metrics, bad = rundir.read_jsonl(p / rundir.METRICS_FILE)
    if bad:
        warnings.append(f"{p}: skipped {bad} unreadable line(s) in {rundir.METRICS_FILE} (not UTF-8 or not JSON)")
    if not (p / rundir.METRICS_FILE).is_file():
        warnings.append(f"{p}: no {rundir.METRICS_FILE} (training never logged)")

    ev = rundir.read_eval(p)
    if ev is None:
        if (p / rundir.EVAL_FILE).is_file():
            warnings.append(f"{p}: unreadable {rundir.EVAL_FILE} (not a JSON object); ignored")
        else:
            warnings.append(f"{p}: no {rundir.EVAL_FILE} (unfinished run?); left out of Table 2")
    else:
        warnings += [f"{p}: {rundir.EVAL_FILE}: {problem}" for problem in eval_problems(ev)]
    curve, curve_problems = read_curve(p)
    warnings += curve_problems

    if not metrics and ev is None:
        raise RunLoadError(f"{p}: neither metrics nor eval results yet (run not started or crashed early)")
    tok = p / rundir.TOKENS_FILE
    return RunData(
        path=p,
        name=name,
        method=method,
        rank=rank,
        seed=seed,
        config=cfg,
        metrics=metrics,
        eval=ev,
        token_log=tok if tok.is_file() else None,
        warnings=warnings,
        curve=curve,
        finished=rundir.read_finished(p),
    )


def deduplicate_seeds(runs: Sequence[RunData]) -> tuple[list[RunData], list[str]]:
    """Keep one run per (method, rank, seed): a second run with the same method and seed is the same seed, not
    another replicate. The first by path is kept; one message names the others."""
    kept: dict[tuple[str, int | None, int | None], RunData] = {}
    dropped: dict[tuple[str, int | None, int | None], list[RunData]] = {}
    for r in sorted(runs, key=lambda r: str(r.path)):
        key = (r.method, r.rank, r.seed)
        if key in kept:
            dropped.setdefault(key, []).append(r)
        else:
            kept[key] = r
    messages = [
        f"{', '.join(str(r.path) for r in extra)}: same method, rank and seed as {kept[key].path} ({key[0]} r{key[1]}, "
        f"seed {key[2]}): one seed, counted once (from {kept[key].path.name})"
        for key, extra in dropped.items()
    ]
    keep = {id(r) for r in kept.values()}
    return [r for r in runs if id(r) in keep], messages


def discover_runs(paths: Iterable[str | Path], *, max_depth: int = 2) -> tuple[list[Path], list[str]]:
    """Run directories under the given paths, and messages about paths that hold none.

    A path with a `config.yaml` is a run; otherwise its subdirectories are searched (up to
    `max_depth` levels), so `arca report runs/` and `arca report runs/demo` both work.
    """
    found: list[Path] = []
    messages: list[str] = []

    def walk(d: Path, depth: int) -> list[Path]:
        if (d / rundir.CONFIG_FILE).is_file():
            return [d]
        if rundir.outputs(d):
            messages.append(f"{d}: looks like a run but has no config.yaml; skipped")
            return []
        if depth <= 0:
            return []
        out: list[Path] = []
        for child in sorted(d.iterdir()):
            if child.is_dir() and not child.name.startswith(("checkpoint-", ".")):
                out.extend(walk(child, depth - 1))
        return out

    for raw in paths:
        p = Path(raw)
        if not p.exists():
            messages.append(f"{p}: does not exist; skipped")
            continue
        if not p.is_dir():
            messages.append(f"{p}: not a directory; skipped")
            continue
        runs = walk(p, max_depth)
        if not runs:
            messages.append(f"{p}: no run directories (config.yaml) found; skipped")
        for r in runs:
            if r.resolve() not in {f.resolve() for f in found}:
                found.append(r)
    return found, messages


def _method_key(method: str) -> tuple[int, str]:
    signal = method.split("+")[0]  # a variant sorts right after its signal
    return (METHOD_ORDER.index(signal) if signal in METHOD_ORDER else len(METHOD_ORDER), method)


# Settings that define the method beyond the credit variant: runs that differ in one of them are different
# methods, never seeds of one. (key in the flattened config, default when the config leaves it out)
_METHOD_KEYS = (("trainer", "grpo"), ("training.loss_type", None))


def label_methods(runs: Sequence[RunData]) -> None:
    """Make `method` name what each run is: where runs of one credit method differ in a setting that defines
    the method (the trainer, TRL's loss_type), each run's label gets those settings, e.g. `arca (rloo)` and
    `arca (grpo)`, so they are grouped, averaged and plotted apart. Labels of runs that agree stay as they are."""
    by_method: dict[str, list[tuple[RunData, dict[str, Any]]]] = {}
    for r in runs:
        flat = _flatten(r.config)
        if flat.get("trainer") == "sdpo":  # TRL's SDPO: its own loss is the method (credit is always uniform)
            r.method = "sdpo"
        by_method.setdefault(r.method, []).append((r, {k: flat.get(k, d) for k, d in _METHOD_KEYS}))
    for members in by_method.values():
        differing = [k for k, _d in _METHOD_KEYS if len({json.dumps(v[k], default=str) for _r, v in members}) > 1]
        if not differing:
            continue
        for r, values in members:
            parts = [str(values[k]) if k == "trainer" else f"{k.rsplit('.', 1)[-1]}={values[k]}" for k in differing]
            r.method = f"{r.method} ({', '.join(parts)})"


def group_runs(runs: Iterable[RunData]) -> dict[tuple[str, int | None], list[RunData]]:
    """Runs grouped by (method, rank), groups in the paper's method order then by rank."""
    groups: dict[tuple[str, int | None], list[RunData]] = {}
    for r in runs:
        groups.setdefault((r.method, r.rank), []).append(r)
    keys = sorted(groups, key=lambda k: (*_method_key(k[0]), -1 if k[1] is None else k[1]))
    return {k: sorted(groups[k], key=lambda r: (r.seed is None, r.seed or 0, r.name)) for k in keys}


# Settings that legitimately differ between the replicates of one (method, rank) group.
_REPLICATE_KEYS = {
    "name",
    "training.seed",
    "training.output_dir",
    "training.run_name",
    "training.logging_dir",
}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def mixed_settings(runs: Iterable[RunData]) -> list[str]:
    """One message per (method, rank) group whose runs differ in anything but the seed and names.

    Such runs are still averaged together (that is what the grouping says), so the report must say so.
    """
    messages = []
    for (method, rank), group in group_runs(runs).items():
        if len(group) < 2:
            continue
        flat = [_flatten(r.config) for r in group]
        keys = sorted(set().union(*flat) - _REPLICATE_KEYS)
        differing = [
            k for k in keys if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flat}) > 1
        ]
        if differing:
            shown = ", ".join(
                f"{k} ({', '.join(sorted({repr(f.get(k)) for f in flat}))})" for k in differing[:5]
            )
            more = f" and {len(differing) - 5} more" if len(differing) > 5 else ""
            messages.append(
                f"{method} r{rank}: its {len(group)} runs differ in {shown}{more}, but are averaged together "
                "as seeds of one configuration"
            )
    return messages


def table2(runs: Iterable[RunData]) -> list[dict[str, Any]]:
    """Table 2 rows (TABLE2_COLUMNS) over the runs that have eval results."""
    rows: list[dict[str, Any]] = []
    for (method, rank), group in group_runs(r for r in runs if r.eval is not None).items():
        g_mean, g_ci, n = mean_ci([v for r in group if (v := r.eval_value("greedy_accuracy")) is not None])
        p_mean, p_ci, _ = mean_ci([v for r in group if (v := r.eval_value("pass_at_k")) is not None])
        r_mean, r_ci, _ = mean_ci([v for r in group if (v := r.avg_train_reward) is not None])
        ks = sorted({int(k) for r in group if (k := r.eval_value("k")) is not None})
        rows.append(
            {
                "method": method,
                "rank": rank,
                "n": len(group),
                "greedy_acc": g_mean,
                "greedy_acc_ci95": g_ci,
                "pass_at_k": p_mean,
                "pass_at_k_ci95": p_ci,
                "k": ks[0] if len(ks) == 1 else ("/".join(map(str, ks)) if ks else None),
                "avg_train_reward": r_mean,
                "avg_train_reward_ci95": r_ci,
            }
        )
    return rows


def table3(runs: Iterable[RunData]) -> list[dict[str, Any]]:
    """Table 3 rows (TABLE3_COLUMNS) over the runs that logged credit diagnostics."""
    have = [r for r in runs if r.mean_gini is not None or r.mean_effective_token_ratio is not None]
    rows: list[dict[str, Any]] = []
    for (method, rank), group in group_runs(have).items():
        g_mean, g_ci, _ = mean_ci([v for r in group if (v := r.mean_gini) is not None])
        e_mean, e_ci, _ = mean_ci([v for r in group if (v := r.mean_effective_token_ratio) is not None])
        rows.append(
            {
                "method": method,
                "rank": rank,
                "n": len(group),
                "mean_gini": g_mean,
                "mean_gini_ci95": g_ci,
                "mean_effective_token_ratio": e_mean,
                "mean_effective_token_ratio_ci95": e_ci,
            }
        )
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path, columns: Sequence[str]) -> Path:
    """Write rows as CSV (None -> empty cell, floats to 10 significant digits)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="", encoding="utf-8") as fh:
        wr = csv.writer(fh)
        wr.writerow(columns)
        for row in rows:
            wr.writerow(
                [
                    "" if row.get(c) is None else (f"{row[c]:.10g}" if isinstance(row[c], float) else row[c])
                    for c in columns
                ]
            )
    return p


def _cell(mean: float | None, ci: float | None, digits: int = 3) -> str:
    if mean is None:
        return "—"
    return f"{mean:.{digits}f}" if ci is None else f"{mean:.{digits}f} ± {ci:.{digits}f}"


def markdown_table(rows: Sequence[dict[str, Any]], which: int) -> str:
    """Table 2 or 3 as a GitHub-flavoured markdown table, cells as `mean ± CI half-width`."""
    if which == 2:
        head = ["method", "rank", "seeds", "greedy acc", "pass@k", "avg train reward"]
        body = [
            [
                str(r["method"]),
                "—" if r["rank"] is None else str(r["rank"]),
                str(r["n"]),
                _cell(r["greedy_acc"], r["greedy_acc_ci95"]),
                _cell(r["pass_at_k"], r["pass_at_k_ci95"])
                + (f" (k={r['k']})" if r.get("k") is not None else ""),
                _cell(r["avg_train_reward"], r["avg_train_reward_ci95"]),
            ]
            for r in rows
        ]
    elif which == 3:
        head = ["method", "rank", "seeds", "mean G(w)", "mean EffN/T"]
        body = [
            [
                str(r["method"]),
                "—" if r["rank"] is None else str(r["rank"]),
                str(r["n"]),
                _cell(r["mean_gini"], r["mean_gini_ci95"]),
                _cell(r["mean_effective_token_ratio"], r["mean_effective_token_ratio_ci95"]),
            ]
            for r in rows
        ]
    else:
        raise ValueError(f"which must be 2 or 3, got {which}")
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)
