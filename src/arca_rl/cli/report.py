"""`arca report`: Tables 2 and 3, curves and heatmaps from finished runs (`arca_rl.write_report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._checks import arg, check_number, check_output_folder
from .._report import default_out_dir, write_report

__all__ = ["make_parser", "run"]


def make_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report",
        help="Tables 2 and 3 (mean ± 95%% CI over seeds), curves and heatmaps from finished runs",
        description=(
            "Read run folders written by `arca train` (or folders holding them) and write report.md, "
            "table2.csv (method, rank, greedy acc, pass@k, avg train reward), table3.csv (method, rank, "
            "mean Gini, mean EffN/T), curves.png and, for runs that logged credit_tokens.jsonl, "
            "heatmaps.html. Runs are grouped by (method, rank); several seeds give mean ± 95% Student-t "
            "CI. With a baseline method (--baseline, default uniform when a uniform run is there), every other "
            "method's paired difference from it over the seeds both have (mean, 95% t interval, wins / ties / "
            "losses, the paired t test's p Holm-corrected across the methods, the minimum detectable effect at 80% "
            "power) for held-out greedy accuracy, pass@k and the learning-curve area goes into report.md and "
            "paired.json; --margin M adds an equivalence test at ±M with a verdict (equivalent within ±M, better, "
            "worse or undecided), and runs with eval_problems.jsonl a bootstrap interval over seeds and problems. "
            "Only runs whose configs differ in the credit method, its credit settings, the trainer and the seed "
            "are paired (--pair-anyway pairs others, listing the keys). Runs with eval.every_steps also get "
            "learning_curves.png. Only finished runs count: a run "
            "still training or unfinished is reported and skipped, two runs of one method and seed are one seed. "
            "A path that is missing, a file or holds no run folder is an error, and nothing is written."
        ),
        epilog=(
            "examples:\n  arca report runs/demo-* --out reports/demo\n  arca report runs/study --baseline uniform\n"
            "  arca report runs/study --baseline uniform --margin 0.03"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders, or folders containing run folders"
    )
    p.add_argument(
        "--out",
        "-o",
        type=arg(check_output_folder, "--out"),
        default=None,
        help="output folder (default: <common parent>/report)",
    )
    p.add_argument(
        "--baseline",
        default=None,
        metavar="METHOD",
        help="method the others are paired with, seed by seed (default: uniform when a uniform run is there)",
    )
    p.add_argument(
        "--margin",
        type=arg(check_number, "--margin", low=0, low_open=True),
        default=None,
        metavar="M",
        help="equivalence margin (> 0, an absolute difference, e.g. 0.03): two one-sided paired t tests at ±M give "
        "each method and measure a verdict: equivalent within ±M, better, worse or undecided (default: no verdict)",
    )
    p.add_argument(
        "--pair-anyway",
        action="store_true",
        help="pair runs whose configs differ beyond the credit method, its settings, the trainer and the seed "
        "(refused otherwise), and list the differing keys above the paired table",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    # the default folder is checked as --out is, before any run is read
    out = args.out if args.out is not None else check_output_folder(default_out_dir(args.runs), "--out")
    res = write_report(args.runs, out, baseline=args.baseline, margin=args.margin, pair_anyway=args.pair_anyway)
    return 0 if res.runs else 1
