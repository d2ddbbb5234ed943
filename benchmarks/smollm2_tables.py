"""The paper's Table 3 and Table 2 on a real model, built from `arca train` run folders.

Table 3 (credit concentration per signal) comes from one run with ``credit_shadow: true``, where every
signal is scored on the same batches:

- p = 2 (the trained power): the run's own metrics (``credit/*`` for the active signal,
  ``shadow/<signal>/*`` for the others), averaged over the logged steps after the first;
- p = 1 (and p = 2 again, as a check): recomputed from the raw salience that
  ``credit_log_tokens_every: 1`` dumps to credit_tokens.jsonl, per completion (rows with T >= 2),
  averaged per step, then over the steps after the first.

The first step is left out because the adapter is still zero there, so adapter-dependent signals
(arca, divergence) have nothing to measure yet.

Table 2 (held-out greedy accuracy and pass@k per method) comes from each run's eval.json, plus a
base-model eval.json (``arca eval`` without an adapter); seconds per step from finished.json.

    python benchmarks/smollm2_tables.py --shadow runs/smollm2-shadow \\
        --runs runs/smollm2-shadow runs/smollm2-arca ... --base runs/smollm2-base/eval.json \\
        --out benchmarks/results/smollm2_tables.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from arca_rl.rundir import read_jsonl

METRICS = ("gini", "effective_token_ratio", "top10_mass")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a run's JSON-lines file, read as the package reads it (a torn last line is skipped)."""
    return read_jsonl(path)[0]


def _config(run_dir: Path) -> dict[str, Any]:
    import yaml

    path = run_dir / "config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def table3_from_metrics(run_dir: Path) -> dict[str, dict[str, float | None]]:
    """Per signal, the mean of the logged Gini / EffN/T / top-10% mass over training steps after the first."""
    active = (_config(run_dir).get("training") or {}).get("credit", "uniform")
    rows = [r for r in _jsonl(run_dir / "metrics.jsonl") if "credit/gini" in r]
    if not rows:
        return {}
    first = min(r["step"] for r in rows)
    later = [r for r in rows if r["step"] > first]
    prefixes = {active: "credit"}
    for key in later[0] if later else []:
        if key.startswith("shadow/") and key.endswith("/gini"):
            prefixes[key.split("/")[1]] = key.rsplit("/", 1)[0]
    out: dict[str, dict[str, float | None]] = {}
    for signal, prefix in prefixes.items():
        out[signal] = {m: _mean([float(r[f"{prefix}/{m}"]) for r in later if f"{prefix}/{m}" in r]) for m in METRICS}
        out[signal]["steps"] = len(later)
    return out


def table3_from_dumps(run_dir: Path, power: float, eps: float | None = None) -> dict[str, dict[str, float | None]]:
    """Per signal, Gini / EffN/T / top-10% mass of weights recomputed with `power` from the dumped raw salience."""
    import torch

    from arca_rl import credit, diagnostics

    if eps is None:
        eps = float((_config(run_dir).get("training") or {}).get("credit_eps", 1e-8))
    per_step: dict[str, dict[int, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for rec in _jsonl(run_dir / "credit_tokens.jsonl"):
        salience = rec.get("salience") or []
        if len(salience) < 2:
            continue  # as in training: rows with T < 2 are not averaged
        alpha = torch.tensor([salience], dtype=torch.float32)
        mask = torch.ones_like(alpha)
        w = credit.token_weights(alpha, mask, eps=eps, power=power)
        values = {
            "gini": diagnostics.gini(w, mask),
            "effective_token_ratio": diagnostics.effective_token_ratio(w, mask),
            "top10_mass": diagnostics.top_mass(w, mask, frac=0.1),
        }
        for m, v in values.items():
            per_step[rec["signal"]][int(rec["step"])][m].append(float(v[0]))
    out: dict[str, dict[str, float | None]] = {}
    for signal, steps in per_step.items():
        first = min(steps)
        later = [s for s in sorted(steps) if s > first]
        out[signal] = {m: _mean([_mean(steps[s][m]) for s in later]) for m in METRICS}  # type: ignore[misc]
        out[signal]["steps"] = len(later)
    return out


def table2(run_dirs: list[Path], base_eval: Path | None) -> list[dict[str, Any]]:
    """One row per run (method, steps, greedy accuracy, pass@k, seconds per step), the base model first."""
    rows: list[dict[str, Any]] = []
    if base_eval is not None and base_eval.is_file():
        ev = json.loads(base_eval.read_text())
        rows.append({"method": "base", "run": None, "steps": 0, **_eval_fields(ev), "seconds_per_step": None})
    for run_dir in run_dirs:
        cfg = _config(run_dir)
        training = cfg.get("training") or {}
        method = training.get("credit", "?") + (" (+shadow)" if training.get("credit_shadow") else "")
        finished_path = run_dir / "finished.json"
        finished = json.loads(finished_path.read_text()) if finished_path.is_file() else {}
        eval_path = run_dir / "eval.json"
        ev = json.loads(eval_path.read_text()) if eval_path.is_file() else {}
        steps = finished.get("global_step")
        seconds = finished.get("train_seconds")
        rows.append(
            {
                "method": method,
                "run": run_dir.name,
                "seed": training.get("seed"),
                "steps": steps,
                **_eval_fields(ev),
                "seconds_per_step": round(seconds / steps, 1) if steps and seconds else None,
                "train_reward_mean": _mean(
                    [
                        float(r["reward"])
                        for r in _jsonl(run_dir / "metrics.jsonl")
                        if "reward" in r and "credit/gini" in r
                    ]
                ),
            }
        )
    return rows


def _eval_fields(ev: dict[str, Any]) -> dict[str, Any]:
    return {
        "greedy_accuracy": ev.get("greedy_accuracy"),
        "pass_at_k": ev.get("pass_at_k"),
        "k": ev.get("k"),
        "n": ev.get("n"),
    }


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(result: dict[str, Any]) -> str:
    lines = ["Table 3 (means over steps after the first)", ""]
    lines.append("| signal | G (p=1) | EffN/T (p=1) | top-10% (p=1) | G (p=2) | EffN/T (p=2) | top-10% (p=2) |")
    lines.append("|---|---|---|---|---|---|---|")
    p1, p2 = result["table3"]["p1_from_salience"], result["table3"]["p2_from_metrics"]
    for signal in sorted(set(p1) | set(p2), key=lambda s: (s != "uniform", s)):
        a, b = p1.get(signal, {}), p2.get(signal, {})
        lines.append(
            f"| {signal} | "
            + " | ".join(_fmt(a.get(m)) for m in METRICS)
            + " | "
            + " | ".join(_fmt(b.get(m)) for m in METRICS)
            + " |"
        )
    lines += ["", "Table 2 (held-out)", ""]
    lines.append("| method | steps | greedy acc | pass@k | n | s/step | mean train reward |")
    lines.append("|---|---|---|---|---|---|---|")
    for row in result["table2"]:
        lines.append(
            f"| {row['method']} | {_fmt(row['steps'])} | {_fmt(row['greedy_accuracy'])} | {_fmt(row['pass_at_k'])}"
            f" (k={_fmt(row['k'])}) | {_fmt(row['n'])} | {_fmt(row['seconds_per_step'], 1)} | "
            f"{_fmt(row.get('train_reward_mean'))} |"
        )
    return "\n".join(lines)


def build(shadow: Path, runs: list[Path], base_eval: Path | None) -> dict[str, Any]:
    p2_metrics = table3_from_metrics(shadow)
    p2_dumps = table3_from_dumps(shadow, power=2.0)
    # The dumps hold every completion of every step, so p = 2 recomputed from them must give the logged values.
    gap = max(
        (abs(p2_metrics[s][m] - p2_dumps[s][m]) for s in p2_metrics if s in p2_dumps for m in METRICS
         if p2_metrics[s][m] is not None and p2_dumps[s][m] is not None),
        default=None,
    )
    return {
        "shadow_run": shadow.name,
        "table3": {
            "p1_from_salience": table3_from_dumps(shadow, power=1.0),
            "p2_from_metrics": p2_metrics,
            "p2_from_salience": p2_dumps,
            "p2_max_abs_gap_metrics_vs_salience": gap,
        },
        "table2": table2(runs, base_eval),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shadow", type=Path, required=True, help="the credit_shadow run folder (Table 3)")
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="run folders for Table 2")
    parser.add_argument("--base", type=Path, default=None, help="eval.json of the base model (Table 2's base row)")
    parser.add_argument("--out", type=Path, default=None, help="write the tables as JSON here")
    args = parser.parse_args(argv)
    if not (args.shadow / "metrics.jsonl").is_file():
        print(f"error: {args.shadow}/metrics.jsonl not found (not a run folder?)", file=sys.stderr)
        return 1
    result = build(args.shadow, args.runs, args.base)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
