"""`arca sweep`: a grid of runs (credit x rank x seed) one after another, then the report."""

from __future__ import annotations

import argparse
from pathlib import Path

# _sweep's functions are looked up at call time, so tests can stand in for run_sweep
from .. import _sweep, rundir
from .._checks import arg, check_count, check_names, check_output_folder, check_seeds
from ._common import add_quiet, add_set, config_file, parse_list, signal_names

__all__ = ["make_parser", "run"]


def make_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "sweep",
        help="train a grid (credit x rank x seed) one run after another, then report",
        description=(
            "Run the grid of a base config: one run per (credit, rank, seed), named "
            "<base>-<credit>-r<rank>-s<seed>, in <runs-dir>/. Finished runs are skipped and interrupted ones "
            "resumed, so rerunning the same command continues the sweep. lora.alpha keeps the base config's "
            "alpha/r ratio (2 when it sets no alpha, i.e. alpha = 2 * rank) unless --set lora.alpha=... fixes it. "
            "Ends with `arca report` over the grid (<runs-dir>/<base>-sweep-report/)."
        ),
        epilog=(
            "examples:\n  arca sweep --config demo --credit uniform,arca --rank 4,16 --seed 1,2,3\n"
            "  arca sweep --config smollm2-rg2/uniform --credit uniform,surprisal,entropy_reduction,arca --rank 16 "
            "--seed 0,1,2 --dry-run"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config", "-c", required=True, type=Path,
        help="base YAML config: a file, or the name of a packaged config (demo, smollm2-rg2/uniform, ...), as "
        "`arca train -c` takes it",
    )  # fmt: skip
    p.add_argument(
        "--credit",
        required=True,
        type=arg(check_names, "--credit", valid=signal_names, what="signal"),
        help="comma-separated credit signals, e.g. uniform,surprisal,arca",
    )
    p.add_argument("--rank", required=True, help="comma-separated LoRA ranks, e.g. 4,16,64")
    p.add_argument("--seed", required=True, type=arg(check_seeds, "--seed"), help="comma-separated seeds, e.g. 1,2,3")
    add_set(p, "override the base config for every run (dotted path, YAML value); repeatable")
    p.add_argument(
        "--runs-dir",
        type=arg(check_output_folder, "--runs-dir"),
        default=rundir.RUNS_DIR,
        help="where the run folders go (default runs/)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print one `accelerate launch` line per run still to do; train nothing"
    )
    p.add_argument(
        "--launcher",
        default="accelerate launch",
        help="command prefix of the --dry-run lines (default: accelerate launch)",
    )
    p.add_argument("--no-report", action="store_true", help="skip the report at the end")
    add_quiet(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:

    plan = _sweep.plan_sweep(
        config_file(args.config),  # a file, or a packaged config's name (which file: said on stderr)
        credits=args.credit,
        ranks=[check_count(r, "--rank") for r in parse_list(args.rank, int, flag="--rank")],
        seeds=args.seed,
        overrides=args.overrides,
        runs_dir=args.runs_dir,
    )
    if args.dry_run:
        print("\n".join(_sweep.dry_run_lines(plan, launcher=args.launcher)))
        return 0
    # the default runs/ too, and the report's folder, before any run trains
    check_output_folder(plan.runs_dir, "--runs-dir")
    if not args.no_report:
        check_output_folder(plan.report_dir, "--runs-dir")
    outcomes = _sweep.run_sweep(plan, report=not args.no_report, progress=not args.quiet)
    return 1 if any(o.startswith(("failed", "busy")) for o in outcomes.values()) else 0
