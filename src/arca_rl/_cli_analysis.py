"""`arca diagnose`, `arca report` and `arca sweep`: argparse front ends of the analysis functions.

`register(subparsers)` is called by `arca_rl.cli.build_parser`; each command's handler takes the
parsed namespace and returns an exit status. Heavy imports happen inside the handlers.

    arca diagnose [--model M] [--adapter A] --task T [--n 32 --k 4] [--out diagnose/<name>]
        -> arca_rl._diagnose.run_diagnose -> arca_rl._diagnose.diagnose
    arca report RUN_DIR... [--out DIR]                  -> arca_rl.report.write_report
    arca sweep --config BASE --credit a,b --rank 4,16 --seed 1,2 [--set k=v] [--dry-run]
        -> arca_rl.sweep.plan_sweep / run_sweep
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _kv(text: str) -> tuple[str, Any]:
    import yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value) if value.strip() else None


def _add_diagnose(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose",
        help="score every credit signal on one model (+ adapter) and write a heatmap page",
        description=(
            "Sample n prompts x k completions, score all registered credit signals on the same tokens "
            "(one adapter-on and one adapter-off pass), print per signal: mean Gini, EffN/T, top-10% "
            "mass, regime and Spearman correlation with arca; write report.html (token heatmaps), "
            "diagnose.json and PNG histograms. Without an adapter, arca and divergence are reported "
            "absent with the reason."
        ),
        epilog="examples:\n  arca diagnose --task arithmetic\n  arca diagnose --adapter runs/demo/arca --n 16 --k 4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        "-m",
        default=None,
        help="model name or path (default: the run's / adapter's base model, else the embedded tiny model)",
    )
    p.add_argument(
        "--adapter",
        "-a",
        default=None,
        help="PEFT adapter folder, or a run folder from `arca train` (its adapter/)",
    )
    p.add_argument(
        "--task",
        "-t",
        default=None,
        help="task name: arithmetic, math, gsm8k (default: the run's task; required otherwise)",
    )
    p.add_argument(
        "--task-option",
        dest="task_options",
        action="append",
        default=[],
        type=_kv,
        metavar="KEY=VALUE",
        help="task option, value parsed as YAML (e.g. source=data/math); repeatable",
    )
    p.add_argument("--n", type=int, default=32, help="number of held-out prompts (default 32)")
    p.add_argument("--k", type=int, default=4, help="completions per prompt (default 4)")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="completion budget (default: the run's max_completion_length, else 128)",
    )
    p.add_argument(
        "--temperature", type=float, default=None, help="sampling temperature (default: the run's, else 1.0)"
    )
    p.add_argument(
        "--top-p", type=float, default=None, help="nucleus sampling (default: the run's, else 1.0)"
    )
    p.add_argument(
        "--power",
        type=float,
        default=None,
        help="sharpening power p of the weights (default: the run's credit_power, else 1)",
    )
    p.add_argument(
        "--signals", default=None, help="comma-separated signals to score (default: all registered)"
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument(
        "--batch-size", type=int, default=16, help="sequences per generate / forward call (default 16)"
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument(
        "--oracle",
        type=int,
        default=None,
        metavar="K",
        help="Monte Carlo token values as ground truth: K continuations of every prefix of every completion "
        "(about n*k*(T+1)*K sampled rollouts; default off)",
    )
    p.add_argument("--out", "-o", type=Path, default=None, help="output folder (default: diagnose/<name>)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    from .cli import _add_threads

    _add_threads(p, default=1)
    p.set_defaults(func=_cmd_diagnose)


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from ._diagnose import run_diagnose

    if args.n < 1 or args.k < 1:
        print("arca diagnose: error: --n and --k must be >= 1", file=sys.stderr)
        return 2
    if args.oracle is not None and args.oracle < 1:
        print("arca diagnose: error: --oracle K must be >= 1 (continuations per prefix)", file=sys.stderr)
        return 2
    signals = [s.strip() for s in args.signals.split(",") if s.strip()] if args.signals else None
    run_diagnose(
        task=args.task,
        task_options=dict(args.task_options),
        model=args.model,
        adapter=args.adapter,
        n=args.n,
        k=args.k,
        out=args.out,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        power=args.power,
        seed=args.seed,
        batch_size=args.batch_size,
        signals=signals,
        device=args.device,
        progress=not args.quiet,
        oracle_samples=args.oracle,
    )
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="Tables 2 and 3 (mean ± 95%% CI over seeds), curves and heatmaps from finished runs",
        description=(
            "Read run folders written by `arca train` (or folders holding them) and write report.md, "
            "table2.csv (method, rank, greedy acc, pass@k, avg train reward), table3.csv (method, rank, "
            "mean Gini, mean EffN/T), curves.png and, for runs that logged credit_tokens.jsonl, "
            "heatmaps.html. Runs are grouped by (method, rank); several seeds give mean ± 95% Student-t "
            "CI. Missing or partial runs are reported and skipped."
        ),
        epilog="example:\n  arca report runs/demo-* --out reports/demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders, or folders containing run folders"
    )
    p.add_argument(
        "--out", "-o", type=Path, default=None, help="output folder (default: <common parent>/report)"
    )
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    res = write_report(args.runs, args.out)
    return 0 if res.runs else 1


def _add_sweep(sub: argparse._SubParsersAction) -> None:
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
            "examples:\n  arca sweep --config configs/demo.yaml --credit uniform,arca --rank 4,16 --seed 1,2,3\n"
            "  arca sweep --config configs/paper/arca_r64.yaml --credit uniform,surprisal,entropy_reduction,"
            "divergence,arca --rank 64 --seed 1337 --dry-run"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", "-c", required=True, type=Path, help="base YAML config")
    p.add_argument(
        "--credit", required=True, help="comma-separated credit signals, e.g. uniform,surprisal,arca"
    )
    p.add_argument("--rank", required=True, help="comma-separated LoRA ranks, e.g. 4,16,64")
    p.add_argument("--seed", required=True, help="comma-separated seeds, e.g. 1,2,3")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the base config for every run (dotted path, YAML value); repeatable",
    )
    p.add_argument(
        "--runs-dir", type=Path, default=Path("runs"), help="where the run folders go (default runs/)"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print one `accelerate launch` line per run still to do; train nothing",
    )
    p.add_argument(
        "--launcher",
        default="accelerate launch",
        help="command prefix of the --dry-run lines (default: accelerate launch)",
    )
    p.add_argument("--no-report", action="store_true", help="skip the report at the end")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .sweep import dry_run_lines, parse_list, plan_sweep, run_sweep

    try:
        credits = parse_list(args.credit, str)
        ranks = parse_list(args.rank, int)
        seeds = parse_list(args.seed, int)
    except ValueError as exc:
        raise ConfigError(f"sweep: {exc}") from exc
    plan = plan_sweep(
        args.config,
        credits=credits,
        ranks=ranks,
        seeds=seeds,
        overrides=args.overrides,
        runs_dir=args.runs_dir,
    )
    if args.dry_run:
        print("\n".join(dry_run_lines(plan, launcher=args.launcher)))
        return 0
    outcomes = run_sweep(plan, report=not args.no_report, progress=not args.quiet)
    return 1 if any(o.startswith("failed") for o in outcomes.values()) else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `diagnose`, `report` and `sweep` subcommands to the `arca` parser."""
    _add_diagnose(subparsers)
    _add_report(subparsers)
    _add_sweep(subparsers)
