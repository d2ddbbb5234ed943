"""Every credit method on the real model (SmolLM2-135M-Instruct, task `addition`): two tables.

1. *What training gains*: per method, the held-out greedy accuracy and pass@k of its 20-step runs, one row per
   seed and a summary per method (mean, and the seed range). Rows come from `arca train` run folders
   (`smollm2_tables.table2`: eval.json, finished.json, metrics.jsonl) and, with ``--previous``, from the
   rows an earlier ``smollm2_tables.py`` or ``smollm2_compare.py`` run stored (their run folders need not
   exist any more; several files: later ones win). A
   ``credit_shadow`` run trains with its active method (the shadow signals are only logged), so it counts
   as a seed of that method.
2. *Where credit should go*: per method, the oracle lift and the signed oracle measure, with 95% intervals,
   on one shared set of rollouts, from an ``arca diagnose --oracle K`` diagnose.json (``--diagnose``, one or
   more: e.g. the base model's and an adapter's), and, paired completion by completion, each method's signed
   measure minus uniform's, with its interval; the oracle tables of a ``--previous`` compare file are
   kept unless a diagnosis of the same name is given again.

    python benchmarks/smollm2_compare.py --runs runs/smollm2-uniform-s2 runs/smollm2-tempo-s0 ... \\
        --previous benchmarks/results/smollm2_tables.json benchmarks/results/smollm2_compare.json \\
        --diagnose runs/smollm2-oracle-uniform-s2/diagnose.json --out benchmarks/results/smollm2_compare.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smollm2_tables import table2  # noqa: E402

from arca_rl.diagnostics import mean_ci  # noqa: E402
from arca_rl.oracle import signed_cosine  # noqa: E402

__all__ = ["method_summary", "oracle_table", "paired_signed", "training_rows"]


def _stored_rows(stored: dict[str, Any]) -> list[dict[str, Any]]:
    """The trained-run rows of an earlier JSON: a compare file's ``runs``, or a tables file's ``table2``."""
    return [r for r in stored.get("runs", stored.get("table2", [])) if r.get("run")]


def training_rows(runs: list[Path], previous: Path | list[Path] | None) -> list[dict[str, Any]]:
    """One row per trained run (no base row): the stored rows of ``previous`` first (a run stored again in a
    later file replaces its earlier row), then ``runs``'; a run folder given again replaces its stored row."""
    files = [] if previous is None else [previous] if isinstance(previous, Path) else previous
    rows: list[dict[str, Any]] = []
    for path in files:
        stored = _stored_rows(json.loads(path.read_text()))
        names = {r["run"] for r in stored}
        rows = [r for r in rows if r["run"] not in names] + stored
    fresh = table2(runs, None)
    names = {r["run"] for r in fresh}
    rows = [r for r in rows if r["run"] not in names] + fresh
    for r in rows:
        r["method"] = r["method"].replace(" (+shadow)", "")
    return rows


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "min": None, "max": None}
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}


def method_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method: seeds, greedy accuracy and pass@k (mean, min, max over seeds), seconds per step (mean)."""
    out: dict[str, dict[str, Any]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        secs = [r["seconds_per_step"] for r in mine if r.get("seconds_per_step") is not None]
        out[method] = {
            "seeds": sorted(r.get("seed") for r in mine),
            "greedy_accuracy": _stats([r["greedy_accuracy"] for r in mine if r.get("greedy_accuracy") is not None]),
            "pass_at_k": _stats([r["pass_at_k"] for r in mine if r.get("pass_at_k") is not None]),
            "seconds_per_step": sum(secs) / len(secs) if secs else None,
        }
    return out


def paired_signed(completions: list[dict[str, Any]], method: str, reference: str = "uniform") -> dict[str, Any]:
    """The signed measure of ``method`` minus ``reference``'s, completion by completion on the same rollouts:
    mean of cos(A_method, delta) - cos(A_reference, delta) with its 95% Student t interval, over the completions
    where both are defined. Paired, so it resolves a difference the two methods' own intervals (which overlap
    whenever the rows vary much) cannot."""
    diffs = []
    for c in completions:
        advantages, delta = c.get("token_advantages") or {}, (c.get("oracle") or {}).get("delta")
        if delta is None or method not in advantages or reference not in advantages:
            continue
        a, b = signed_cosine(advantages[method], delta), signed_cosine(advantages[reference], delta)
        if a is not None and b is not None:
            diffs.append(a - b)
    mean, half, n = mean_ci(diffs)
    ci = [None, None] if mean is None or half is None else [mean - half, mean + half]
    return {"mean": mean, "ci": ci, "n": n}


def oracle_table(diagnose_json: Path) -> dict[str, Any]:
    """Per scored method of one diagnosis: oracle lift and signed measure (mean, 95% interval, rows)."""
    d = json.loads(diagnose_json.read_text())
    settings = d["settings"]
    methods = {}
    for name, s in d["signals"].items():
        lift, signed = s.get("oracle_lift") or {}, s.get("oracle_signed") or {}
        methods[name] = {
            "oracle_lift": lift.get("mean"),
            "oracle_lift_ci": [lift.get("ci_low"), lift.get("ci_high")],
            "oracle_signed": signed.get("mean"),
            "oracle_signed_ci": [signed.get("ci_low"), signed.get("ci_high")],
            "signed_rows": signed.get("n"),
            "signed_minus_uniform": paired_signed(d.get("completions", []), name),
            "gini": s.get("gini"),
            "effective_token_ratio": s.get("effective_token_ratio"),
        }
    keys = ("model", "adapter", "n_prompts", "k", "oracle_samples", "oracle_rollouts", "oracle_seconds")
    return {
        "settings": {k: settings.get(k) for k in keys},
        "no_signal_rows": settings.get("oracle_no_signal_rows"),
        "zero_rows": settings.get("oracle_zero_rows"),
        "rows": settings.get("n_completions"),
        "absent": d.get("absent", {}),
        "methods": methods,
    }


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ci(pair: list[Any]) -> str:
    return "-" if not pair or pair[0] is None else f"[{pair[0]:.2f}, {pair[1]:.2f}]"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| method | seeds | greedy (mean) | greedy (range) | pass@4 (mean) | s/step |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in result["training"].items():
        g, p = m["greedy_accuracy"], m["pass_at_k"]
        lines.append(
            f"| {name} | {', '.join(str(s) for s in m['seeds'])} | {_fmt(g['mean'])} | "
            f"{_fmt(g['min'], 3)}-{_fmt(g['max'], 3)} | {_fmt(p['mean'])} | {_fmt(m['seconds_per_step'], 1)} |"
        )
    for label, table in result["oracle"].items():
        lines += ["", f"{label}: {table['rows']} rollouts, no_signal {table['no_signal_rows']}", ""]
        lines += [
            "| method | oracle lift | 95% CI | signed cos | 95% CI | rows | signed - uniform's (paired) | 95% CI |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, m in table["methods"].items():
            paired = m.get("signed_minus_uniform") or {}
            lines.append(
                f"| {name} | {_fmt(m['oracle_lift'], 2)} | {_ci(m['oracle_lift_ci'])} | {_fmt(m['oracle_signed'], 2)} "
                "| "
                f"{_ci(m['oracle_signed_ci'])} | {m['signed_rows']} | {_fmt(paired.get('mean'), 2)} | "
                f"{_ci(paired.get('ci', []))} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="20-step run folders")
    parser.add_argument("--previous", type=Path, nargs="*", default=[],
                        help="earlier smollm2_tables.py / smollm2_compare.py JSON files (their rows; later files win)")
    parser.add_argument("--diagnose", type=Path, nargs="*", default=[],
                        help="diagnose.json files of `arca diagnose --oracle`")
    parser.add_argument("--out", type=Path, default=None, help="write both tables as JSON here")
    args = parser.parse_args(argv)
    rows = training_rows(args.runs, args.previous)
    oracle: dict[str, Any] = {}
    for path in args.previous:
        oracle.update(json.loads(path.read_text()).get("oracle", {}))
    oracle.update({str(p.parent.name): oracle_table(p) for p in args.diagnose})
    result = {"runs": rows, "training": method_summary(rows), "oracle": oracle}
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
