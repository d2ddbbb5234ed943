"""The SmolLM2 reasoning-gym study's tables and curves (issue 25), from the committed run summaries.

`benchmarks/smollm2_rg_study.py` writes one summary per finished run to benchmarks/results/smollm2_rg/
(<method>-s<seed>.json: eval.json, curve.jsonl, the training reward per step). This script turns them back into
the report's own `RunData` and runs the same code as `arca report --baseline uniform` on them, so the published
table needs no run folders (runs/ is not committed):

- per method: seeds, held-out greedy accuracy and pass@1 (mean, sd), curve area, seconds a step;
- paired differences from uniform, seed by seed (mean, 95% t interval, wins / ties / losses), the primary measure
  being held-out greedy accuracy after training (decided before the runs);
- learning_curves.png: held-out greedy accuracy on the curve subset and training reward against step, a band over
  seeds per method.

    python benchmarks/smollm2_rg_tables.py --out benchmarks/results/smollm2_rg_summary.json \\
        --png docs/img/smollm2_rg_learning_curves.png
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from arca_rl._report.paired import paired_differences, paired_json, paired_markdown
from arca_rl._report.plots import plot_learning_curves
from arca_rl._report.tables import RunData

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["uniform", "surprisal", "tempo", "arca", "self_teacher", "sdpo"]


def run_from_summary(path: Path) -> RunData:
    s = json.loads(path.read_text())
    rows = [{"step": i + 1, "reward": r} for i, r in enumerate(s["train_reward"])]
    return RunData(
        path=path,
        name=path.stem,
        method=s["method"],
        rank=16,
        seed=s["seed"],
        config={},
        metrics=rows,
        eval=s["eval"],
        token_log=None,
        curve=sorted((int(c["step"]), float(c["greedy_accuracy"])) for c in s["curve"]),
        finished=s["finished"],
    )


def _mean_sd(xs: list[float]) -> dict[str, float | None]:
    return {"mean": statistics.fmean(xs), "sd": statistics.stdev(xs) if len(xs) > 1 else None}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "smollm2_rg")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "smollm2_rg_summary.json"
    )
    parser.add_argument("--png", type=Path, default=None, help="learning-curve PNG (default: none)")
    args = parser.parse_args()

    runs = [run_from_summary(p) for p in sorted(args.results.glob("*-s*.json"))]
    methods = sorted({r.method for r in runs}, key=lambda m: (ORDER.index(m) if m in ORDER else 99, m))
    per_method: dict[str, Any] = {}
    print("| method | seeds | greedy (mean ± sd) | pass@1 | curve area | s / step |")
    print("| --- | --- | --- | --- | --- | --- |")
    for m in methods:
        mine = sorted((r for r in runs if r.method == m), key=lambda r: r.seed or 0)
        greedy = [r.eval_value("greedy_accuracy") for r in mine]
        passk = [r.eval_value("pass_at_k") for r in mine]
        auc = [a for r in mine if (a := r.curve_auc) is not None]
        secs = [r.finished["train_seconds"] / r.finished["global_step"] for r in mine if r.finished]
        per_method[m] = {
            "seeds": [r.seed for r in mine],
            "greedy_accuracy": _mean_sd([g for g in greedy if g is not None]),
            "pass_at_1": _mean_sd([p for p in passk if p is not None]),
            "curve_auc": _mean_sd(auc) if auc else None,
            "seconds_per_step": statistics.fmean(secs) if secs else None,
        }
        g = per_method[m]["greedy_accuracy"]
        sd = "" if g["sd"] is None else f" ± {g['sd']:.3f}"
        auc_cell = f"{statistics.fmean(auc):.3f}" if auc else "-"
        sps = f"{statistics.fmean(secs):.0f}" if secs else "-"
        print(
            f"| {m} | {len(mine)} | {g['mean']:.3f}{sd} | {per_method[m]['pass_at_1']['mean']:.3f} | {auc_cell} | "
            f"{sps} |"
        )
    entries, messages = paired_differences(runs, "uniform") if "uniform" in methods else ([], [])
    print()
    print(paired_markdown(entries, "uniform"))
    for line in messages:
        print(line)
    out = {"per_method": per_method, "paired": paired_json(entries, "uniform"), "messages": messages}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    if args.png is not None:
        args.png.parent.mkdir(parents=True, exist_ok=True)
        plot_learning_curves(runs, args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
