"""The `arca` command: one module per command, each with `make_parser(subparsers)` and `run(args)`.

    arca train     train.py      one run from a YAML config            -> arca_rl.train
    arca eval      evaluate.py   greedy accuracy and pass@k            -> arca_rl.evaluate
    arca demo      demo.py       the whole loop on the embedded task
    arca diagnose  diagnose.py   every signal on the same rollouts     -> arca_rl.diagnose
    arca report    report.py     Tables 2 and 3 over run folders       -> arca_rl.write_report
    arca sweep     sweep.py      a grid of runs, then the report       -> arca_rl.plan_sweep / run_sweep

The options several commands share (--set, --threads, --quiet, --task-option, comma lists) are in
`_common.py`. The imports that load TRL or transformers happen inside the commands, so `arca --help` is quick.
`python -m arca_rl.cli` (and `accelerate launch -m arca_rl.cli`) runs `main`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from ..errors import ConfigError
from ..rundir import RunExistsError
from . import demo, diagnose, evaluate, report, sweep, train
from ._common import set_threads

__all__ = ["build_parser", "main"]

COMMANDS = (train, evaluate, demo, diagnose, report, sweep)

_EPILOG = """\
examples (-c takes a YAML file, or the name of a config that ships in the package: demo, smollm2-rg2/uniform, ...):
  arca train -c demo
  arca train -c demo --set training.credit=arca --set name=demo-arca
  arca train -c smollm2-rg2/uniform --dry-run
  arca train -c demo --set training.learning_rate=1e-4 --set name=demo-lr
  arca train -c demo --set training.save_strategy=steps --set training.save_steps=10 --set name=demo-ckpt
  arca train -c demo --set training.save_strategy=steps --set training.save_steps=10 --set name=demo-ckpt --resume
  arca eval --adapter runs/demo-uniform --task arithmetic --n 200
  arca demo
  arca demo --methods uniform,arca --seeds 0 --output-dir runs/demo-seed0
  arca demo --methods uniform,arca,arca+mix0.5,arca+warmup10,uniform+topent0.2 --output-dir runs/demo-credit-mix
  arca sweep -c demo --credit uniform,arca --rank 4,16 --seed 1,2,3 --dry-run
"""


class UsageError(Exception):
    """A command line argparse refuses: `main` prints it as one line and returns 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line (`arca <command>: error: --flag: ...`), not the usage
    block, and `main` returns 2 instead of argparse exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message.removeprefix('argument ')}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="arca",
        description="Token-level credit assignment for GRPO with LoRA (ARCA and intrinsic baselines) on TRL.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging, library deprecation warnings")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        command.make_parser(sub)
    return parser


def _version() -> str:
    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `arca` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"{exc} (see {exc.args[0].split(':')[0]} --help)", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        # Library deprecation notices (transformers' v6 renames that TRL still calls) are not for `arca` users.
        warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        set_threads(args)
        result = args.func(args)
    except KeyboardInterrupt:
        print(f"arca {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ConfigError, FileNotFoundError, RunExistsError) as exc:
        print(f"arca {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)
