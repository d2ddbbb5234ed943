"""The adaptive oracle against the exhaustive one on the same rollouts: two `diagnose.json` of the same command and
seed, one with `--oracle-positions all`, one with `adaptive` (issue 27 §2).

Checks first that both hold the same completions (token ids, in order). Then: continuations sampled and oracle
seconds of each; per method, the signed measure (mean cos(A_it, delta_t) [95% t CI]) and the oracle lift [CI]
under each; the Spearman correlation of the methods' order by signed measure (and by lift) between the two; and
per method the paired per-completion difference of the signed measure, adaptive minus all, mean [95% t CI].

    python benchmarks/oracle_positions_compare.py ALL/diagnose.json ADAPTIVE/diagnose.json --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from arca_rl.diagnostics import mean_ci, spearman  # noqa: E402
from arca_rl.oracle import signed_cosine  # noqa: E402


def _ci(values: list[float]) -> dict[str, Any]:
    mean, half, n = mean_ci(values)  # 95% Student t interval
    lo = hi = None
    if mean is not None and half is not None:
        lo, hi = mean - half, mean + half
    return {"mean": mean, "ci_low": lo, "ci_high": hi, "n": n}


def compare(exhaustive: dict[str, Any], adaptive: dict[str, Any]) -> dict[str, Any]:
    ce, ca = exhaustive["completions"], adaptive["completions"]
    if [c["token_ids"] for c in ce] != [c["token_ids"] for c in ca]:
        raise ValueError("the two runs hold different completions (same command and seed needed)")
    methods = [m for m in exhaustive["signals"] if m in adaptive["signals"]]
    rows: dict[str, Any] = {}
    for m in methods:
        diffs = []
        for a, b in zip(ce, ca):
            adv = a.get("token_advantages", {}).get(m)
            if adv is None or not a.get("oracle") or not b.get("oracle"):
                continue
            x, y = signed_cosine(adv, a["oracle"]["delta"]), signed_cosine(adv, b["oracle"]["delta"])
            if x is not None and y is not None:
                diffs.append(y - x)  # adaptive minus all, on one completion
        se, sa = exhaustive["signals"][m], adaptive["signals"][m]
        rows[m] = {
            "signed_all": se.get("oracle_signed"),
            "signed_adaptive": sa.get("oracle_signed"),
            "lift_all": se.get("oracle_lift"),
            "lift_adaptive": sa.get("oracle_lift"),
            "paired_signed_diff": _ci(diffs),
        }

    def order(key: str) -> float | None:
        xs = [rows[m][f"{key}_all"] for m in methods]
        ys = [rows[m][f"{key}_adaptive"] for m in methods]
        keep = [
            i
            for i in range(len(methods))
            if xs[i] and ys[i] and xs[i]["mean"] is not None and ys[i]["mean"] is not None
        ]
        return spearman([xs[i]["mean"] for i in keep], [ys[i]["mean"] for i in keep]) if len(keep) >= 2 else None

    st_e, st_a = exhaustive["settings"], adaptive["settings"]
    return {
        "model": st_e.get("model"),
        "task": st_e.get("task"),
        "seed": st_e.get("seed"),
        "completions": len(ce),
        "rollouts_all": st_e.get("oracle_rollouts"),
        "rollouts_adaptive": st_a.get("oracle_rollouts"),
        "rollout_share": st_a["oracle_rollouts"] / st_e["oracle_rollouts"],
        "oracle_seconds_all": st_e.get("oracle_seconds"),
        "oracle_seconds_adaptive": st_a.get("oracle_seconds"),
        "no_signal_rows_all": st_e.get("oracle_no_signal_rows"),
        "no_signal_rows_adaptive": st_a.get("oracle_no_signal_rows"),
        "spearman_signed_order": order("signed"),
        "spearman_lift_order": order("lift"),
        "methods": rows,
    }


def _f(x: Any) -> str:
    return "–" if x is None else f"{x:+.3f}"


def _c(d: dict[str, Any] | None) -> str:
    if not d or d.get("mean") is None:
        return "–"
    if d.get("ci_low") is None:
        return _f(d["mean"])
    return f"{_f(d['mean'])} [{_f(d['ci_low'])}, {_f(d['ci_high'])}]"


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "| method | signed, all | signed, adaptive | paired diff (adaptive - all) | lift, all | lift, adaptive |",
        "|---|---|---|---|---|---|",
    ]
    for m, row in r["methods"].items():
        lines.append(
            f"| {m} | {_c(row['signed_all'])} | {_c(row['signed_adaptive'])} | {_c(row['paired_signed_diff'])} "
            f"| {_c(row['lift_all'])} | {_c(row['lift_adaptive'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("all_json", type=Path)
    p.add_argument("adaptive_json", type=Path)
    p.add_argument("--json", type=Path, help="write the comparison here")
    opts = p.parse_args(argv)
    r = compare(json.loads(opts.all_json.read_text()), json.loads(opts.adaptive_json.read_text()))
    if opts.json:
        opts.json.write_text(json.dumps(r, indent=1) + "\n")
    print(json.dumps({k: v for k, v in r.items() if k != "methods"}, indent=1))
    print(markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
