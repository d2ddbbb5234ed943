"""The pre-registered confirmation: TEMPO against uniform on new seeds (benchmarks/results/smollm2_rg2_confirm/PLAN.md).

Reads the run summaries `benchmarks/smollm2_rg_study.py` wrote for the new seeds (`--confirm`) and for the first
study (`--first`), and prints and writes, for each measure (held-out greedy accuracy, the primary; the curve area):

- over the new seeds whose two runs both finished: the per-seed differences method - baseline, their mean, the
  two-sided 95% t interval, wins / ties / losses, and the one-sided paired t p-value in the direction the plan fixed
  (method above baseline); `replicates` is p < 0.05 on the primary measure with at least `MIN_SEEDS` seeds;
- over every seed of both folders pooled: the same numbers (secondary).

    python benchmarks/smollm2_rg_confirm.py --out benchmarks/results/smollm2_rg2_confirm_summary.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

from scipy import stats

from arca_rl._run.curve import curve_auc

ROOT = Path(__file__).resolve().parent.parent
MIN_SEEDS = 4  # the plan: fewer complete new seeds than this, no test


def measures(path: Path) -> dict[str, float]:
    s = json.loads(path.read_text())
    area = curve_auc(
        [(int(c["step"]), float(c["greedy_accuracy"])) for c in s["curve"]]
    )  # as `arca report`'s
    return {
        "greedy_accuracy": float(s["eval"]["greedy_accuracy"]),
        "curve_area": math.nan if area is None else area,
    }


def load(folder: Path, method: str) -> dict[int, dict[str, float]]:
    """seed -> measures, for every `<method>-s<seed>.json` in `folder`."""
    out = {}
    for path in sorted(folder.glob(f"{method}-s*.json")):
        seed = path.stem.removeprefix(f"{method}-s")
        if seed.isdigit():
            out[int(seed)] = measures(path)
    return out


def paired(diffs: list[float]) -> dict[str, Any]:
    """Mean, two-sided 95% t interval, wins / ties / losses and the one-sided p (H1: mean > 0) of paired differences."""
    n = len(diffs)
    row: dict[str, Any] = {"n_seeds": n, "diffs": [round(d, 4) for d in diffs]}
    if n == 0:
        return row
    mean = statistics.fmean(diffs)
    row.update(
        mean=mean,
        wins=sum(d > 0 for d in diffs),
        ties=sum(d == 0 for d in diffs),
        losses=sum(d < 0 for d in diffs),
    )
    if n >= 2:
        se = statistics.stdev(diffs) / math.sqrt(n)
        half = float(stats.t.ppf(0.975, n - 1)) * se
        row.update(ci_low=mean - half, ci_high=mean + half)
        # t = mean / se, p = P(T_{n-1} >= t); a zero spread makes the sign of the mean decide
        row["p_one_sided"] = float(stats.t.sf(mean / se, n - 1)) if se > 0 else (0.0 if mean > 0 else 1.0)
    return row


def compare(first: Path, confirm: Path, method: str, baseline: str) -> dict[str, Any]:
    new_m, new_b = load(confirm, method), load(confirm, baseline)
    old_m, old_b = load(first, method), load(first, baseline)
    new_seeds = sorted(set(new_m) & set(new_b))
    if set(new_seeds) & (set(old_m) | set(old_b)):
        raise SystemExit(f"seeds {sorted(set(new_seeds) & (set(old_m) | set(old_b)))} are in both folders")
    result: dict[str, Any] = {"method": method, "baseline": baseline, "new_seeds": new_seeds, "measures": {}}
    for measure in ("greedy_accuracy", "curve_area"):
        new = paired([new_m[s][measure] - new_b[s][measure] for s in new_seeds])
        both_m, both_b = {**old_m, **new_m}, {**old_b, **new_b}
        pooled = paired([both_m[s][measure] - both_b[s][measure] for s in sorted(set(both_m) & set(both_b))])
        result["measures"][measure] = {"new_seeds": new, "pooled": pooled}
    primary = result["measures"]["greedy_accuracy"]["new_seeds"]
    result["tested"] = primary["n_seeds"] >= MIN_SEEDS
    result["replicates"] = bool(result["tested"] and primary.get("p_one_sided", 1.0) < 0.05)
    return result


def _fmt(row: dict[str, Any]) -> str:
    if not row["n_seeds"]:
        return "no seeds"
    text = f"{row['mean']:+.3f}"
    if "ci_low" in row:
        text += f" [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}], one-sided p = {row['p_one_sided']:.3f}"
    return f"{text} ({row['wins']} / {row['ties']} / {row['losses']}, {row['n_seeds']} seeds)"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--first", type=Path, default=ROOT / "benchmarks" / "results" / "smollm2_rg2")
    parser.add_argument(
        "--confirm", type=Path, default=ROOT / "benchmarks" / "results" / "smollm2_rg2_confirm"
    )
    parser.add_argument("--method", default="tempo")
    parser.add_argument("--baseline", default="uniform")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    for flag, folder in (("--first", args.first), ("--confirm", args.confirm)):
        if not folder.is_dir():
            parser.error(
                f"{flag} {folder}: no such folder of run summaries (benchmarks/smollm2_rg_study.py writes them)"
            )
    result = compare(args.first, args.confirm, args.method, args.baseline)
    for measure, rows in result["measures"].items():
        print(f"{measure}: new seeds {_fmt(rows['new_seeds'])}; pooled {_fmt(rows['pooled'])}")
    verdict = (
        "replicates" if result["replicates"] else ("not confirmed" if result["tested"] else "too few seeds")
    )
    print(f"{args.method} against {args.baseline} on new seeds {result['new_seeds']}: {verdict}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
