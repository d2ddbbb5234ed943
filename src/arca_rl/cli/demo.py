"""`arca demo`: the whole loop, offline, on the embedded tiny model and arithmetic task."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import rundir
from .._checks import arg, check_count, check_number, check_output_folder, check_seeds
from ._common import add_quiet, add_set, add_threads, config_file, parse_list

__all__ = ["make_parser", "run"]


def make_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="train uniform vs arca (and more signals if time allows) on the embedded task; print a table",
        description=(
            "The whole loop, offline, on the embedded tiny model and arithmetic task: evaluate the base "
            "model, train each credit method with the same budget, evaluate again, print a table and "
            "write runs/demo/summary.json (each method's run in runs/demo/<method>/)."
        ),
    )
    p.add_argument(
        "--config", "-c", type=Path, default=None,
        help="base config, a file or a packaged config's name (default: the packaged demo config)",
    )  # fmt: skip
    p.add_argument(
        "--methods",
        default=None,
        help="comma-separated credit methods, in order: a signal or a group method (ktae, tempo, gtpo, hicra, "
        "self_teacher, vine, grail, oar_g, delta, answer_only), or sdpo (TRL's SDPO trainer, uniform credit), "
        "optionally followed by +mix<lambda> (credit_mix), +warmup<N> (credit_warmup_steps), +answer<w> "
        "(credit_grail_answer_weight; grail+answer0: no forced answer weight), +topent<q> (TRL's "
        "top_entropy_quantile), e.g. uniform,arca,arca+mix0.5,tempo,tempo+mix0.5,uniform+topent0.2 "
        "(default: uniform,arca,entropy_reduction,surprisal,divergence)",
    )
    p.add_argument(
        "--budget",
        type=arg(check_number, "--budget", low=0),
        default=None,
        help="wall-clock seconds for the whole demo; methods after uniform and arca run only while the "
        "projection fits, vine (projected from its own continuations) wherever it is listed (default 540)",
    )
    p.add_argument(
        "--seeds",
        type=arg(check_seeds, "--seeds"),
        default=None,
        help="comma-separated training seeds: each method trains once per seed and the table shows means "
        "(default 0,1,2)",
    )
    add_set(p, "override the demo config; repeatable")
    p.add_argument(
        "--output-dir", "-o", type=arg(check_output_folder, "--output-dir"), default=None,
        help="demo folder (default: runs/demo)",
    )
    p.add_argument(
        "--oracle",
        type=arg(check_count, "--oracle", low=0),
        default=None,
        metavar="K",
        help="continuations per prefix for each method's oracle lift and signed measure on 16 rollouts (4 prompts x 4) "
             "of its seed-0 adapter "
        "(default 16; 0 = off)",
    )
    add_quiet(p)
    add_threads(p, default=1)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    # imported here: _demo loads TRL, which `arca --help` does not need
    from .._demo import DEFAULT_BUDGET_S, DEFAULT_ORACLE_SAMPLES, run_demo

    run_demo(
        config=config_file(args.config) if args.config is not None else None,  # a name: which file, said
        overrides=args.overrides,
        methods=parse_list(args.methods, flag="--methods") if args.methods is not None else None,
        budget_s=args.budget if args.budget is not None else DEFAULT_BUDGET_S,
        out_dir=args.output_dir or check_output_folder(rundir.default_run_dir("demo"), "--output-dir"),
        seeds=args.seeds,
        progress=not args.quiet,
        oracle_samples=DEFAULT_ORACLE_SAMPLES if args.oracle is None else args.oracle,
    )
    return 0
