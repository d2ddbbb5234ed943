"""The group-credit measurement (issue 19, item 5): every credit method at two budgets, from `arca demo` folders.

Each budget is one `arca demo` run of the nine methods (the five signals, then ktae, tempo, gtpo, hicra) over
seeds 0, 1, 2 with the demo's settings, e.g.

    arca demo --methods uniform,arca,entropy_reduction,surprisal,divergence,ktae,tempo,gtpo,hicra \\
        --seeds 0,1,2 --budget 100000 --set training.max_steps=40 -o runs/bench19/steps40
    arca demo ... --set training.max_steps=20 -o runs/bench19/steps20
    python benchmarks/group_credit_tables.py runs/bench19/steps40 runs/bench19/steps20 \\
        --out benchmarks/results/group_credit.json

The runs of `benchmarks/results/group_credit*.json` were made on branch h19 (the trainer and `arca demo`
wiring of the group methods, not yet on main) on
the 2-core build machine shared with other jobs.

Per method and budget: greedy accuracy after training (mean and [min, max] over seeds), pass@4 (mean), the
decisive-token share (mean), the oracle lift and the signed oracle measure on the seed-0 adapter, and seconds
per optimizer step (median of the trainer's `step_time` over every logged step of every seed) against uniform's.
"Beats uniform beyond the seed spread" means the method's worst seed is above uniform's best seed (and
"below" the reverse). The rank agreement is Spearman's rho, over the methods, between the signed oracle
measure and the greedy accuracy after 20 steps (learning speed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from arca_rl.rundir import read_jsonl


def _jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a run's JSON-lines file, read as the package reads it (a torn last line is skipped)."""
    return read_jsonl(path)[0]


def _seconds_per_step(demo: Path, method: str, seeds: list[int]) -> float | None:
    times = []
    for j, seed in enumerate(seeds):
        run = demo / (method if j == 0 else f"{method}-s{seed}")
        times += [r["step_time"] for r in _jsonl(run / "metrics.jsonl") if isinstance(r.get("step_time"), int | float)]
    return statistics.median(times) if times else None


def budget_table(demo: Path) -> dict[str, Any]:
    """One budget's rows (method -> figures), from <demo>/summary.json and its run folders."""
    summary = json.loads((demo / "summary.json").read_text())
    seeds = list(summary["seeds"])
    rows: dict[str, Any] = {}
    for method, m in summary["methods"].items():
        per_seed = m.get("seeds") or {str(seeds[0]): m}
        greedy = [per_seed[str(s)]["greedy_after"] for s in seeds if str(s) in per_seed]
        rows[method] = {
            "greedy_after": m["greedy_after"],
            "greedy_min": min(greedy),
            "greedy_max": max(greedy),
            "greedy_per_seed": greedy,
            "pass_at_k": m["pass_at_k"],
            "decisive_token_share": m["decisive_token_share"],
            "oracle_lift": m.get("oracle_lift"),
            "oracle_lift_ci": m.get("oracle_lift_ci"),
            "oracle_signed": m.get("oracle_signed"),
            "oracle_signed_ci": m.get("oracle_signed_ci"),
            "seconds_per_step": _seconds_per_step(demo, method, seeds),
        }
    base = rows.get("uniform", {})
    for r in rows.values():
        sps, ref = r["seconds_per_step"], base.get("seconds_per_step")
        r["step_cost_vs_uniform"] = sps / ref if sps and ref else None
        if base:
            r["vs_uniform"] = (
                "above"
                if r["greedy_min"] > base["greedy_max"]
                else "below"
                if r["greedy_max"] < base["greedy_min"]
                else "within"
            )
    return {
        "steps": summary["steps"],
        "seeds": seeds,
        "greedy_before": next(iter(summary["methods"].values()))["greedy_before"],
        "k": summary["k"],
        "oracle": summary.get("oracle"),
        "skipped": summary.get("skipped", []),
        "methods": rows,
    }


def spearman(a: list[float], b: list[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(a) < 3:
        return None
    return float(spearmanr(a, b).statistic)


def _f(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(table: dict[str, Any]) -> str:
    k = table["k"]
    lines = [
        f"| method | greedy after [min, max] | pass@{k} | decisive share | oracle lift (seed 0) | signed cos (seed 0) "
        "| s/step (x uniform) | vs uniform |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in table["methods"].items():
        lines.append(
            f"| {name} | {_f(r['greedy_after'])} [{_f(r['greedy_min'], 2)}, {_f(r['greedy_max'], 2)}] | "
            f"{_f(r['pass_at_k'])} "
            f"| {_f(r['decisive_token_share'])} | {_f(r['oracle_lift'], 2)} | {_f(r['oracle_signed'], 2)} "
            f"| {_f(r['seconds_per_step'], 2)} ({_f(r['step_cost_vs_uniform'], 2)}) | {r.get('vs_uniform', '-')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("demos", nargs="+", type=Path, help="arca demo output folders, one per budget")
    p.add_argument("--out", type=Path, help="write the tables as JSON here")
    a = p.parse_args(argv)
    tables = {}
    for demo in a.demos:
        if not (demo / "summary.json").is_file():
            print(f"{demo}: no summary.json (unfinished?)", file=sys.stderr)
            continue
        t = budget_table(demo)
        tables[str(t["steps"])] = t
        print(f"\n{t['steps']} steps, seeds {t['seeds']}, greedy before {t['greedy_before']:.3f}")
        print(markdown(t))
    out: dict[str, Any] = {"budgets": tables}
    if "20" in tables:  # does the signed measure order the methods as their learning speed does?
        speed = {m: r["greedy_after"] for m, r in tables["20"]["methods"].items()}
        for steps, t in tables.items():
            names = [m for m, r in t["methods"].items() if r["oracle_signed"] is not None and m in speed]
            rho = spearman([t["methods"][m]["oracle_signed"] for m in names], [speed[m] for m in names])
            rho_lift = spearman([t["methods"][m]["oracle_lift"] or 0.0 for m in names], [speed[m] for m in names])
            out.setdefault("rank_agreement", {})[steps] = {
                "signed_vs_greedy20": rho,
                "lift_vs_greedy20": rho_lift,
                "methods": names,
            }
            print(f"Spearman over methods, greedy after 20 steps vs the signed measure of the {steps}-step adapters: "
                  f"{_f(rho, 2)} (vs oracle lift: {_f(rho_lift, 2)})")  # fmt: skip
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
