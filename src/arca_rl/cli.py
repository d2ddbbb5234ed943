"""The `arca` command: a thin argparse layer over the Python API.

    arca train --config FILE [--set k=v ...] [--resume] [--dry-run] [--output-dir DIR]
    arca eval  --model M [--adapter A] --task T [--n N --k K --samples-per-problem S] [--out FILE]
    arca demo  [--budget SECONDS] [--methods uniform,arca,...]
    arca diagnose | report | sweep        (from arca_rl._cli_analysis, when installed)

Heavy imports (torch, TRL) happen inside the commands, so `arca --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

_EPILOG = """\
examples:
  arca train --config configs/demo.yaml
  arca train --config configs/paper/arca_r16.yaml --dry-run
  arca train --config configs/demo.yaml --set training.learning_rate=1e-4 --set name=demo-lr
  arca train --config configs/demo.yaml --resume
  arca eval --adapter runs/demo-arca --task arithmetic --n 200
  arca demo
  arca demo --methods uniform,arca --seeds 0
"""


def _add_threads(p: argparse.ArgumentParser, default: int | None) -> None:
    what = "torch's default" if default is None else str(default)
    p.add_argument(
        "--threads",
        type=int,
        default=default,
        help=f"CPU threads for torch (default: {what}). The tiny model's matrices are too small to gain from "
        "more than one, and on a busy CPU extra threads spin-wait and slow everything down",
    )


def _set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one run from a YAML config (GRPO or RLOO + token credit), then evaluate it",
        description=(
            "Train one run from a YAML config into runs/<name>/ (config.yaml, metrics.jsonl, "
            "checkpoints, adapter/, eval.json, plots/). Sections: name, trainer (grpo or rloo), model, "
            "lora, task, training (any ARCAGRPOConfig field; ARCARLOOConfig with trainer: rloo), eval."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", "-c", required=True, type=Path, help="YAML config file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value by dotted path, value parsed as YAML "
        "(e.g. training.learning_rate=1e-5, lora.r=64, training.credit=uniform); repeatable",
    )
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the run folder")
    p.add_argument(
        "--dry-run", action="store_true", help="validate and print the resolved config; load no model or data"
    )
    p.add_argument("--output-dir", "-o", type=Path, default=None, help="run folder (default: runs/<name>)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    _add_threads(p, default=None)
    p.set_defaults(func=_cmd_train)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="greedy accuracy and unbiased pass@k of a model (+ adapter) on a task's held-out split",
        description=(
            "Evaluate a model, optionally with a PEFT adapter (an adapter folder or a run folder), on "
            "a task's held-out split: greedy accuracy and unbiased pass@k. Prints the eval.json object "
            "and writes it to --out. With --config, or an --adapter inside a run folder from `arca train`, "
            "model/task/eval settings default to that config's (so the run's eval.json is reproduced)."
        ),
    )
    p.add_argument("--model", "-m", default=None, help="model name or path (default: the adapter's base model, else the embedded tiny model)")
    p.add_argument("--adapter", "-a", default=None, help="PEFT adapter folder, or a run folder from `arca train`")
    p.add_argument("--task", "-t", default=None, help="task name: arithmetic, math, gsm8k (default: arithmetic)")
    p.add_argument(
        "--task-option",
        dest="task_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option, value parsed as YAML (e.g. source=data/math); repeatable",
    )
    p.add_argument("--config", "-c", type=Path, default=None, help="take model, task and eval settings from a config")
    p.add_argument("--n", type=int, default=None, help="number of held-out problems (default 200)")
    p.add_argument("--k", type=int, default=None, help="k of pass@k (default 4)")
    p.add_argument("--samples-per-problem", type=int, default=None, help="samples per problem for pass@k (default 4)")
    p.add_argument("--batch-size", type=int, default=None, help="prompts per generate call (default 64)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="completion budget (default 256)")
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature for pass@k (default 1.0)")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling for pass@k (default 1.0)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default 42)")
    p.add_argument("--max-prompt-tokens", type=int, default=None, help="left-truncate prompts to this many tokens")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16", "auto"], help="weight dtype")
    p.add_argument("--out", type=Path, default=None, help="also write the eval.json object to this file")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _add_threads(p, default=None)
    p.set_defaults(func=_cmd_eval)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train uniform vs arca (and more signals if time allows) on the embedded task; print a table",
        description=(
            "The whole loop, offline, on the embedded tiny model and arithmetic task: evaluate the base "
            "model, train each credit method with the same budget, evaluate again, print a table and "
            "write runs/demo/summary.json (each method's run in runs/demo/<method>/)."
        ),
    )
    p.add_argument("--config", "-c", type=Path, default=None, help="base config (default: the built-in demo config = configs/demo.yaml)")
    p.add_argument(
        "--methods",
        default=None,
        help="comma-separated credit signals, in order (default: uniform,arca,entropy_reduction,surprisal,divergence)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="wall-clock seconds for the whole demo; methods after uniform and arca run only while the "
        "projection fits (default 540)",
    )
    p.add_argument(
        "--seeds",
        default=None,
        help="comma-separated training seeds: each method trains once per seed and the table shows means "
        "(default 0,1,2)",
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override the demo config; repeatable")
    p.add_argument("--output-dir", "-o", type=Path, default=None, help="demo folder (default: runs/demo)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    _add_threads(p, default=1)
    p.set_defaults(func=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arca",
        description="Token-level credit assignment for GRPO with LoRA (ARCA and intrinsic baselines) on TRL.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging, library deprecation warnings")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_train(sub)
    _add_eval(sub)
    _add_demo(sub)
    if importlib.util.find_spec("arca_rl._cli_analysis") is not None:
        from . import _cli_analysis

        _cli_analysis.register(sub)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


# ---------------------------------------------------------------------------------------------------
# commands


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config, require_max_steps

    cfg = load_config(args.config, args.overrides)
    run_dir = args.output_dir or Path("runs") / cfg.name
    if args.dry_run:
        from .rundir import read_metrics, state

        steps = require_max_steps(cfg)
        model = cfg.model_path(check=True)
        training = cfg.training_args(run_dir, for_validation=True)
        print(f"# {args.config}: valid. Resolved config (arca train would write {run_dir}/config.yaml):")
        print(cfg.to_yaml(), end="")
        per_step = training.per_device_train_batch_size * training.gradient_accumulation_steps * training.world_size
        # The only time estimate possible without loading the model: from the step times of this run
        # folder, when it has trained before.
        times = sorted(r["step_time"] for r in read_metrics(run_dir) if isinstance(r.get("step_time"), int | float))
        if times:
            median = times[len(times) // 2]
            when = f"~{median * steps:.0f} s of training at the {median:.2f} s median step time logged in {run_dir}"
        else:
            when = "no time estimate before a step has run (metrics.jsonl records step_time)"
        print(
            f"# model: {model}\n"
            f"# per optimizer step: {per_step} completions = {per_step // training.num_generations} prompts "
            f"x {training.num_generations}; steps_per_generation={training.steps_per_generation}; "
            f"credit={training.credit}\n"
            f"# optimizer steps: {steps} (training.max_steps); at most {steps} x {per_step} completions x "
            f"{training.max_completion_length} tokens = {steps * per_step * training.max_completion_length} "
            f"generated tokens; {when}\n"
            f"# run folder: {run_dir} ("
            + {"finished": "finished", "interrupted": "resumable", "fresh": "new"}[state(run_dir)]
            + ")"
        )
        return 0
    from .run import train

    out = train(cfg, run_dir=run_dir, resume=args.resume, progress=not args.quiet)
    from .rundir import EVAL_FILE, is_finished

    eval_path = out / EVAL_FILE
    if is_finished(out):
        print(f"run finished: {out}")
        if eval_path.is_file():
            print(eval_path.read_text().strip())
    else:
        print(f"run stopped before max_steps: {out} (continue with --resume)")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .config import RunConfig, apply_overrides, load_config, parse_config

    config_path = args.config
    if config_path is None and args.adapter is not None:
        # An adapter inside a run folder: evaluate with that run's settings (task options, seed, lengths).
        from .rundir import CONFIG_FILE, resolve_adapter

        run_dir = resolve_adapter(args.adapter)[1]
        if run_dir is not None:
            config_path = run_dir / CONFIG_FILE
            print(f"using the run's settings from {config_path}", file=sys.stderr)
    cfg = load_config(config_path) if config_path is not None else RunConfig()
    raw = cfg.to_yaml_dict()
    if args.task is not None and args.task != raw["task"]["name"]:
        raw["task"] = {"name": args.task}
    overrides = [f"task.{opt}" for opt in args.task_options]
    cfg = parse_config(apply_overrides(raw, overrides))

    from .evaluation import adapter_base_model, evaluate, load_model_for_eval, write_eval_json
    from .run import build_task

    model_path = args.model
    if model_path is None and args.adapter is not None:
        model_path = adapter_base_model(args.adapter)
    if model_path is None:
        model_path = cfg.model_path(check=True)
    model, tokenizer = load_model_for_eval(model_path, args.adapter, dtype=args.dtype or cfg.model.dtype)
    task = build_task(cfg)
    eval_args = cfg.eval_arguments(
        n=args.n,
        k=args.k,
        samples_per_problem=args.samples_per_problem,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        max_prompt_tokens=args.max_prompt_tokens,
    )
    result = evaluate(model, tokenizer, task, progress=not args.quiet, **eval_args)
    print(json.dumps(result.to_json(), indent=2))
    if args.out is not None:
        write_eval_json(result, args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DEFAULT_BUDGET_S, run_demo

    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()] if args.seeds else None
    except ValueError:
        from .config import ConfigError

        raise ConfigError(f"--seeds: expected comma-separated integers, got {args.seeds!r}") from None
    run_demo(
        config=args.config,
        overrides=args.overrides,
        methods=methods,
        budget_s=args.budget if args.budget is not None else DEFAULT_BUDGET_S,
        out_dir=args.output_dir,
        seeds=seeds,
        progress=not args.quiet,
    )
    return 0


# ---------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `arca` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        # Library deprecation notices (transformers' v6 renames that TRL still calls) are not for `arca` users.
        warnings.filterwarnings("ignore", category=FutureWarning)
    from .config import ConfigError
    from .rundir import RunExistsError

    try:
        _set_threads(args)
        result: Any = args.func(args)
    except KeyboardInterrupt:
        print(f"arca {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ConfigError, FileNotFoundError, RunExistsError) as exc:
        print(f"arca {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
