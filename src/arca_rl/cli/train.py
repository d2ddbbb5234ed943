"""`arca train`: one run from a YAML config (`arca_rl.train`), or `--dry-run` to only validate it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .. import rundir
from .._checks import arg, check_output_folder
from .._config import load_config, packaged_configs, require_max_steps
from ._common import add_quiet, add_set, add_threads, config_file

__all__ = ["make_parser", "run"]


def make_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train one run from a YAML config (GRPO, RLOO or SDPO + token credit), then evaluate it",
        description=(
            "Train one run from a YAML config into runs/<name>/ (config.yaml, metrics.jsonl, "
            "checkpoints, adapter/, eval.json, plots/). Sections: name, trainer (grpo, the default, rloo or sdpo), "
            "model, lora, task, training (any ARCAGRPOConfig field; ARCARLOOConfig with trainer: rloo; TRL's "
            "SDPOConfig with trainer: sdpo, uniform credit only), eval. -c takes a YAML file or a packaged config's "
            "name (listed below); a file of yours wins, and a config found by name is said on stderr."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        "-c",
        required=True,
        type=Path,
        help="YAML config file, or the name of a config that ships in the package: "
        + ", ".join(packaged_configs()).replace("%", "%%"),
    )
    add_set(
        p,
        "override a config value by dotted path, value parsed as YAML "
        "(e.g. training.learning_rate=1e-5, lora.r=64, training.credit=uniform); repeatable",
    )
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the run folder")
    p.add_argument(
        "--dry-run", action="store_true", help="validate and print the resolved config; load no model or data"
    )
    p.add_argument(
        "--output-dir",
        "-o",
        type=arg(check_output_folder, "--output-dir"),
        default=None,
        help="run folder (default: runs/<name>)",
    )
    p.add_argument(
        "--allow-other-files",
        action="store_true",
        help="train into a non-empty folder that is not a run folder (refused otherwise); files there with "
        "the names a run writes (config.yaml, README.md, metrics.jsonl, ...) are overwritten",
    )
    add_quiet(p)
    add_threads(p, default=None)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    # Every check but building the TRL and PEFT configs, which happens once, for the run folder: below with
    # --dry-run (as on any machine: a GPU config validates on a laptop), else in `train` (for this machine).
    args.config = config_file(args.config)  # a name: which file, said on stderr
    cfg = load_config(args.config, args.overrides, build=False)
    run_dir = args.output_dir or check_output_folder(rundir.default_run_dir(cfg.name), "--output-dir")
    built = cfg.build(run_dir, for_validation=True) if args.dry_run else None
    if not args.allow_other_files:
        rundir.check_ours(run_dir)  # with or without --dry-run
    if built is not None:  # --dry-run
        steps = require_max_steps(cfg)
        model = cfg.model_path(check=True)
        training = built.args
        print(f"# {args.config}: valid. Resolved config (arca train would write {run_dir}/config.yaml):")
        print(cfg.to_yaml(), end="")
        per_step = training.per_device_train_batch_size * training.gradient_accumulation_steps * training.world_size
        state = {
            "finished": "finished",
            "running": "in use by another run",
            "interrupted": "resumable",
            "fresh": "new",
        }[rundir.state(run_dir)]
        left, steps_line = steps, f"# optimizer steps: {steps} (training.max_steps)"
        if args.resume:  # every check the real --resume makes, so a dry run passes only what it would
            from .._run.resume import check_resume, describe

            plan = check_resume(run_dir, cfg, world_size=int(os.environ.get("WORLD_SIZE", "1")))
            state += "; --resume " + describe(plan, steps)
            # the estimate is of what --resume trains: nothing for a finished run, the steps after the checkpoint
            left = 0 if plan.finished else max(steps - plan.done, 0) if plan.checkpoint is not None else steps
            if left < steps:
                steps_line += f", {left} to train after step {plan.done}" if left else ", 0 to train"
        # The only time estimate possible without loading the model: from the step times of this run
        # folder, when it has trained before.
        times = sorted(
            r["step_time"] for r in rundir.read_metrics(run_dir) if isinstance(r.get("step_time"), int | float)
        )
        if times:
            median = times[len(times) // 2]
            when = f"~{median * left:.0f} s of training at the {median:.2f} s median step time logged in {run_dir}"
        else:
            when = "no time estimate before a step has run (metrics.jsonl records step_time)"
        vine = ""
        if training.credit == "vine":  # its continuations dwarf the completions: part of the bound
            from .._setup_checks import vine_token_bound

            bound = vine_token_bound(training.credit_vine_samples, left * per_step, training.max_completion_length)
            vine = f", plus at most {bound} tokens of vine continuations (credit_vine_samples x T x T per completion)"
        if left:
            steps_line += (f"; at most {left} x {per_step} completions x {training.max_completion_length} tokens = "
                           f"{left * per_step * training.max_completion_length} generated tokens{vine}; {when}")
        print(
            f"# model: {model}\n"
            f"# per optimizer step: {per_step} completions = {per_step // training.num_generations} prompts "
            f"x {training.num_generations}; steps_per_generation={training.steps_per_generation}; "
            f"credit={training.credit}\n"
            f"{steps_line}\n"
            f"# run folder: {run_dir} ({state})"
        )
        return 0
    # imported here: it loads the trainer (TRL's), which --dry-run and `arca --help` do not need
    from .._run.training import train

    out = train(
        cfg, run_dir=run_dir, resume=args.resume, progress=not args.quiet, allow_other_files=args.allow_other_files
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # a distributed launch: the main process saves, evaluates and reports
    if rundir.is_finished(out):
        print(f"run finished: {out}")
        if (out / rundir.EVAL_FILE).is_file():
            print((out / rundir.EVAL_FILE).read_text().strip())
    else:
        print(f"run stopped before max_steps: {out} (continue with --resume)")
    return 0
