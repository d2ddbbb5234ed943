"""The pre-registered confirmation: TEMPO against uniform on new seeds (benchmarks/results/smollm2_rg2_confirm/PLAN.md).

Reads the run summaries `benchmarks/smollm2_rg_study.py` wrote for the new seeds (`--confirm`) and for the first
study (`--first`), and prints and writes, for each measure (held-out greedy accuracy, the primary; the curve area):

- over the new seeds whose two runs both finished: the per-seed differences method - baseline, their mean, the
  two-sided 95% t interval, wins / ties / losses, and the one-sided paired t p-value in the direction the plan fixed
  (method above baseline); `replicates` is p < 0.05 on the primary measure with at least `MIN_SEEDS` seeds;
- over every seed of both folders pooled: the same numbers (secondary).

A run whose curve has fewer than two points has no curve area: its seed is left out of that row, which names the
file (`left_out`). Differences with zero spread have no t statistic: no p-value (`p_one_sided` null, a `note`
says why), so they cannot replicate.

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
NO_SPREAD = 1e-12  # a standard error at most this is no spread (accuracies differ in steps of 1 / n, not 1e-12)


# what a summary lacks when a measure has no value
MISSING = {
    "greedy_accuracy": "no held-out greedy accuracy",
    "curve_area": "no curve area (fewer than two curve points)",
}


def measures(path: Path) -> dict[str, Any]:
    """The measures of one run summary (None where it has none: a curve of fewer than two points has no area),
    and its file name under "file"."""
    s = json.loads(path.read_text())
    area = curve_auc(
        [(int(c["step"]), float(c["greedy_accuracy"])) for c in s.get("curve") or []]
    )  # as `arca report`'s
    greedy = (s.get("eval") or {}).get("greedy_accuracy")
    return {
        "file": path.name,
        "greedy_accuracy": None if greedy is None else float(greedy),
        "curve_area": area,
    }


def load(folder: Path, method: str) -> dict[int, dict[str, Any]]:
    """seed -> measures, for every `<method>-s<seed>.json` in `folder`."""
    out = {}
    for path in sorted(folder.glob(f"{method}-s*.json")):
        seed = path.stem.removeprefix(f"{method}-s")
        if seed.isdigit():
            out[int(seed)] = measures(path)
    return out


def differences(
    mine: dict[int, dict[str, Any]], theirs: dict[int, dict[str, Any]], seeds: list[int], measure: str
) -> tuple[list[float], list[str]]:
    """The differences mine - theirs of `measure` over `seeds`, and one line per seed left out (naming the file
    without a value)."""
    diffs, left_out = [], []
    for s in seeds:
        lacking = [runs[s]["file"] for runs in (mine, theirs) if runs[s][measure] is None]
        if lacking:
            verb = "have" if len(lacking) > 1 else "has"
            left_out.append(f"seed {s}: {' and '.join(lacking)} {verb} {MISSING[measure]}")
        else:
            diffs.append(mine[s][measure] - theirs[s][measure])
    return diffs, left_out


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
        # t = mean / se, p = P(T_{n-1} >= t); with zero spread (up to float rounding) t is undefined: no test
        spread = se > NO_SPREAD
        row["p_one_sided"] = float(stats.t.sf(mean / se, n - 1)) if spread else None
        if not spread:
            row["note"] = "zero spread (every difference equal): no t statistic, no p-value"
    return row


def compare(first: Path, confirm: Path, method: str, baseline: str) -> dict[str, Any]:
    new_m, new_b = load(confirm, method), load(confirm, baseline)
    old_m, old_b = load(first, method), load(first, baseline)
    new_seeds = sorted(set(new_m) & set(new_b))
    if set(new_seeds) & (set(old_m) | set(old_b)):
        raise SystemExit(f"seeds {sorted(set(new_seeds) & (set(old_m) | set(old_b)))} are in both folders")
    result: dict[str, Any] = {"method": method, "baseline": baseline, "new_seeds": new_seeds, "measures": {}}
    both_m, both_b = {**old_m, **new_m}, {**old_b, **new_b}
    all_seeds = sorted(set(both_m) & set(both_b))
    for measure in MISSING:
        rows = {}
        for which, (mine, theirs, seeds) in {
            "new_seeds": (new_m, new_b, new_seeds), "pooled": (both_m, both_b, all_seeds)
        }.items():
            diffs, left_out = differences(mine, theirs, seeds, measure)
            rows[which] = paired(diffs)
            if left_out:
                rows[which]["left_out"] = left_out
        result["measures"][measure] = rows
    primary = result["measures"]["greedy_accuracy"]["new_seeds"]
    result["tested"] = primary["n_seeds"] >= MIN_SEEDS
    p = primary.get("p_one_sided")
    result["replicates"] = bool(result["tested"] and p is not None and p < 0.05)
    return result


def _fmt(row: dict[str, Any]) -> str:
    if not row["n_seeds"]:
        return "no seeds"
    text = f"{row['mean']:+.3f}"
    if "ci_low" in row:
        text += f" [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}], "
        text += row["note"] if row.get("p_one_sided") is None else f"one-sided p = {row['p_one_sided']:.3f}"
    text += f" ({row['wins']} / {row['ties']} / {row['losses']}, {row['n_seeds']} seeds)"
    return text + "".join(f"; left out {why}" for why in row.get("left_out", ()))


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
