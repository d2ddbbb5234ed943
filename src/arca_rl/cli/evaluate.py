"""`arca eval`: greedy accuracy and unbiased pass@k of a model (+ adapter) on a task (`arca_rl.evaluate`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import rundir
from .._checks import arg, check_count, check_number, check_output_file, check_seed
from .._config import ConfigError, RunConfig, load_config, parse_config
from .._run.evaluation import adapter_base_model, evaluate, load_model_for_eval, write_eval_json
from ..tasks import TASKS
from ._common import add_quiet, add_task_options, add_threads, config_file, task_options

__all__ = ["make_parser", "run"]


def make_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
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
    p.add_argument(
        "--model",
        "-m",
        default=None,
        help="model name or path (default: the adapter's base model, else the embedded tiny model)",
    )
    p.add_argument("--adapter", "-a", default=None, help="PEFT adapter folder, or a run folder from `arca train`")
    p.add_argument("--task", "-t", default=None, help=f"task name: {', '.join(TASKS)} (default: arithmetic)")
    add_task_options(p)
    p.add_argument("--config", "-c", type=Path, default=None, help="take model, task and eval settings from a config")
    p.add_argument("--n", type=arg(check_count, "--n"), default=None, help="number of held-out problems (default 200)")
    p.add_argument("--k", type=arg(check_count, "--k"), default=None, help="k of pass@k (default 4)")
    p.add_argument(
        "--samples-per-problem",
        type=arg(check_count, "--samples-per-problem"),
        default=None,
        help="samples per problem for pass@k (default 4)",
    )
    p.add_argument(
        "--batch-size",
        type=arg(check_count, "--batch-size"),
        default=None,
        help="prompts per generate call (default 64)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=arg(check_count, "--max-new-tokens"),
        default=None,
        help="completion budget (default 256)",
    )
    p.add_argument(
        "--temperature",
        type=arg(check_number, "--temperature", low=0, low_open=True),
        default=None,
        help="sampling temperature for pass@k (default 1.0)",
    )
    p.add_argument(
        "--top-p",
        type=arg(check_number, "--top-p", low=0, low_open=True, high=1),
        default=None,
        help="nucleus sampling for pass@k (default 1.0)",
    )
    p.add_argument("--seed", type=arg(check_seed, "--seed"), default=None, help="sampling seed (default 42)")
    p.add_argument(
        "--max-prompt-tokens",
        type=arg(check_count, "--max-prompt-tokens"),
        default=None,
        help="left-truncate prompts to this many tokens",
    )
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16", "auto"], help="weight dtype")
    p.add_argument(
        "--out", type=arg(check_output_file, "--out"), default=None, help="also write the eval.json object to this file"
    )
    add_quiet(p, "no progress bar")
    add_threads(p, default=None)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from .._run.training import build_task, held_out_skip  # here: _run loads TRL, which `arca --help` does not need

    config_path = config_file(args.config) if args.config is not None else None  # a name: which file, said
    if config_path is None and args.adapter is not None:
        # An adapter inside a run folder: evaluate with that run's settings (task options, seed, lengths).
        run_dir = rundir.resolve_adapter(args.adapter)[1]
        if run_dir is not None:
            config_path = run_dir / rundir.CONFIG_FILE
            print(f"using the run's settings from {config_path}", file=sys.stderr)
    cfg = load_config(config_path) if config_path is not None else RunConfig()
    raw = cfg.to_yaml_dict()
    if args.task is not None and args.task != raw["task"]["name"]:
        raw["task"] = {"name": args.task}
    raw["task"].update(task_options(args.task_options))
    cfg = parse_config(raw)

    model_path = args.model
    if model_path is None and args.adapter is not None:
        model_path = adapter_base_model(args.adapter)
    if model_path is None:
        model_path = cfg.model_path(check=True)
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
    if eval_args["samples_per_problem"] < eval_args["k"]:  # the flags and the config together
        raise ConfigError(
            f"--samples-per-problem: must be >= --k ({eval_args['k']}) for pass@k, got "
            f"{eval_args['samples_per_problem']}"
        )
    task = build_task(cfg)
    model, tokenizer = load_model_for_eval(model_path, args.adapter, dtype=args.dtype or cfg.model.dtype)
    task.use_tokenizer(tokenizer)  # chat prompts in the model's chat template, as `arca train` renders them
    # as `arca train` evaluates: the held-out questions that are also in the config's training split are left out
    try:
        trained = list(task.train_dataset(n=cfg.task.n_train)["prompt"])
    except (ValueError, OSError, KeyError):  # a task without a training split here: nothing to leave out
        trained = []
    skip = held_out_skip(task, trained, eval_args.get("n"))
    result = evaluate(model, tokenizer, task, progress=not args.quiet, skip=skip, **eval_args)
    print(json.dumps(result.to_json(), indent=2))
    if args.out is not None:
        write_eval_json(result, args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
