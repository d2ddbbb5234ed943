"""`arca diagnose`: every credit signal on one model (+ adapter) from one set of rollouts (`arca_rl.diagnose`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import rundir
from .._checks import (
    arg,
    check_count,
    check_device,
    check_names,
    check_number,
    check_output_folder,
    check_seed,
)
from .._config import ConfigError, load_config
from ..tasks import TASKS
from ._common import add_quiet, add_set, add_task_options, add_threads, config_file, signal_names, task_options

__all__ = ["make_parser", "run"]


def make_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "diagnose",
        help="score every credit signal on one model (+ adapter) and write a heatmap page",
        description=(
            "Sample n prompts x k completions, score all registered credit signals on the same tokens "
            "(one adapter-on and one adapter-off pass), print per signal: mean Gini, EffN/T, top-10% "
            "mass, regime and Spearman correlation with arca; write report.html (token heatmaps), "
            "diagnose.json and PNG histograms. Without an adapter, arca and divergence are reported "
            "absent with the reason. On a run folder, sampling and weighting follow the run's config."
        ),
        epilog="examples:\n  arca diagnose --task arithmetic\n  arca diagnose --adapter runs/demo/arca --n 16 --k 4\n"
        "  arca diagnose -c demo --set training.credit_power=2 --oracle 16",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        "-c",
        type=Path,
        default=None,
        help="score every method with this config's credit settings (power, eps, mix, group settings): a YAML file "
        "(e.g. a run's config.yaml) or a packaged config's name; without --adapter it also gives model, task and "
        "sampling",
    )
    p.add_argument(
        "--model",
        "-m",
        default=None,
        help="model name or path (default: the run's / adapter's base model, else the embedded tiny model)",
    )
    p.add_argument(
        "--adapter", "-a", default=None, help="PEFT adapter folder, or a run folder from `arca train` (its adapter/)"
    )
    p.add_argument(
        "--task",
        "-t",
        default=None,
        help=f"task name: {', '.join(TASKS)} (default: the run's task; required otherwise)",
    )
    add_task_options(p)
    p.add_argument("--n", type=arg(check_count, "--n"), default=32, help="number of held-out prompts (default 32)")
    p.add_argument("--k", type=arg(check_count, "--k"), default=4, help="completions per prompt (default 4)")
    p.add_argument(
        "--max-new-tokens",
        type=arg(check_count, "--max-new-tokens"),
        default=None,
        help="completion budget (default: the run's max_completion_length, else 128)",
    )
    p.add_argument(
        "--temperature",
        type=arg(check_number, "--temperature", low=0, low_open=True),
        default=None,
        help="sampling temperature (default: the run's, else 1.0)",
    )
    p.add_argument(
        "--top-p",
        type=arg(check_number, "--top-p", low=0, low_open=True, high=1),
        default=None,
        help="nucleus sampling (default: the run's, else 1.0)",
    )
    p.add_argument(
        "--power",
        type=arg(check_number, "--power", low=0, low_open=True),
        default=None,
        help="sharpening power p of the weights (default: the run's credit_power, else 1)",
    )
    p.add_argument(
        "--mix",
        type=arg(check_number, "--mix", low=0, high=1),
        default=None,
        help="credit_mix lambda applied to every signal's weights, (1 - lambda)/T + lambda * w "
        "(default: the lambda the run ended with, else 1 = the signals alone)",
    )
    p.add_argument(
        "--signals",
        type=arg(check_names, "--signals", valid=signal_names, what="signal"),
        default=None,
        help="comma-separated signals to score (default: all registered)",
    )
    p.add_argument("--seed", type=arg(check_seed, "--seed"), default=0, help="sampling seed (default 0)")
    p.add_argument(
        "--batch-size",
        type=arg(check_count, "--batch-size"),
        default=16,
        help="sequences per generate / forward call (default 16)",
    )
    p.add_argument(
        "--device",
        type=arg(check_device, "--device"),
        default=None,
        help="torch device (default: cuda if available, else cpu)",
    )
    p.add_argument(
        "--oracle",
        type=arg(check_count, "--oracle"),
        default=None,
        metavar="K",
        help="Monte Carlo token values as ground truth: K continuations of each sampled prefix of every completion "
        "(at most n*k*(T+1)*K sampled rollouts, see --oracle-positions; default off); its signed measure needs "
        "--k 2 or more, its lift does not",
    )
    p.add_argument(
        "--oracle-positions",
        choices=("adaptive", "all"),
        default=None,
        help="with --oracle, which prefixes it samples: adaptive (default: the two ends, then only where the value "
        "moves more than its standard error, linear in between) or all (every prefix)",
    )
    p.add_argument(
        "--oracle-step-seeds",
        action="store_true",
        help="with --oracle and adaptive positions: also sample the prefixes ending at a step boundary (newline, "
        "'.', '=') first",
    )
    p.add_argument(
        "--out",
        "-o",
        type=arg(check_output_folder, "--out"),
        default=None,
        help="output folder (default: diagnose/<name>)",
    )
    add_set(p, "with --config: override its settings, e.g. --set training.credit_power=2; repeatable")
    add_quiet(p, "no progress lines")
    add_threads(p, default=1)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from .._diagnose import run_diagnose  # here: it loads transformers, which `arca --help` does not need

    # --out is held for the whole diagnosis (a second one into it is refused, before any model loads); a folder of
    # the user's is refused, and only files an earlier diagnosis recorded writing there are replaced (`_outfolder`)
    try:
        _diagnose(run_diagnose, args)
    except rundir.RunLockedError as exc:
        raise rundir.RunLockedError(str(exc).replace("another run", "another arca command").replace(
            "--output-dir (or name)", "--out")) from None
    return 0


def _diagnose(run_diagnose: Any, args: argparse.Namespace) -> Any:
    config = None
    if args.config is not None:
        path = config_file(args.config)  # a name: which file, said
        config = load_config(path, args.overrides) if args.overrides else path
    elif args.overrides:
        raise ConfigError("--set: only with --config (it overrides the config's settings); add -c CONFIG")
    return run_diagnose(
        config=config,
        task=args.task,
        task_options=task_options(args.task_options),
        model=args.model,
        adapter=args.adapter,
        n=args.n,
        k=args.k,
        out=args.out,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        power=args.power,
        mix=args.mix,
        seed=args.seed,
        batch_size=args.batch_size,
        signals=args.signals,
        device=args.device,
        progress=not args.quiet,
        oracle_samples=args.oracle,
        oracle_positions=args.oracle_positions,
        oracle_step_seeds=args.oracle_step_seeds,
    )
