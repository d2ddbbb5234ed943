"""`arca train` as a Python function: config -> trained adapter, metrics, evaluation and plots.

    from arca_rl import load_config, train
    run_dir = train(load_config("configs/demo.yaml"))          # runs/demo-uniform/ (credit: uniform)

The run folder's layout and states belong to `arca_rl.rundir`.

`resume=True` continues from the newest checkpoint (HF Trainer restores weights, optimizer,
scheduler, RNG state and the data order), and metrics.jsonl drops the lines logged after it. A
run stopped early (a callback setting `should_training_stop`, Ctrl-C) is left unfinished.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from .. import rundir
from .._config import ConfigError, RunConfig, require_max_steps
from ..tasks import get_task
from ..trainer.arca_trainer import ARCAGRPOTrainer, ARCARLOOTrainer
from .evaluation import evaluate
from .resume import RecordCallback, ResumePlan, check_resume, describe

if TYPE_CHECKING:  # pragma: no cover
    from peft import LoraConfig
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from ..tasks import Task
    from ..trainer_config import ARCAGRPOConfig, ARCARLOOConfig

__all__ = ["MetricsJsonlCallback", "build_task", "plot_metrics", "train"]

logger = logging.getLogger(__name__)

# metric name in metrics.jsonl -> plot file stem, y label
PLOTS = {
    "reward": ("reward", "mean reward"),
    "credit/gini": ("gini", "weight Gini G(w)"),
    "credit/effective_token_ratio": ("effective_token_ratio", "effective-token ratio EffN/T"),
}


# ---------------------------------------------------------------------------------------------------
# callbacks


class _BarOnlyProgressCallback(ProgressCallback):
    """HF's training progress bar without the log dict it prints at every logging step."""

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs: Any = None, **kwargs: Any
    ) -> None:
        return None


class _StepsFromConfig(TrainerCallback):
    """logging_steps, save_steps and eval_steps as the config says, also on --resume: HF Trainer would keep
    the values of the checkpoint's trainer_state.json, so a change `--resume` allows and records would
    not take effect."""

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        state.compute_steps(args, state.max_steps)


class _StopOnNonFinite(TrainerCallback):
    """Stops training at the first step whose loss or gradient norm is not finite, or that leaves a trainable weight
    non-finite, before that step is saved: the last checkpoint is the last good one (an overflowing credit
    magnitude would otherwise train on NaN weights, or fail later in sampling with a traceback)."""

    def __init__(self) -> None:
        self.problem: str | None = None

    def _stop(self, control: TrainerControl, problem: str) -> None:
        self.problem = self.problem or problem
        control.should_training_stop = True
        control.should_save = False

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: Any = None, **kwargs: Any
    ) -> None:
        import torch

        params = [p for p in model.parameters() if p.requires_grad and p.numel()] if model is not None else []
        if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            self._stop(control, f"a trainable weight is not finite after step {state.global_step}")

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs: Any = None, **kwargs: Any
    ) -> None:
        for key in ("loss", "grad_norm"):
            value = (logs or {}).get(key)
            if isinstance(value, int | float) and not math.isfinite(value):
                self._stop(control, f"{key} is {value} at step {state.global_step}")


class MetricsJsonlCallback(TrainerCallback):
    """Append each training log dict (plus "step") to the run's metrics.jsonl (`rundir.append_metrics`).

    The end-of-training summary (train_runtime, train_loss, ...) is kept in `summary` instead, so
    every line is one logging step.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.summary: dict[str, Any] = {}

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not logs or not state.is_world_process_zero:
            return
        if "train_runtime" in logs:
            self.summary = dict(logs)
            return
        rundir.append_metrics(self.run_dir, state.global_step, logs)


# ---------------------------------------------------------------------------------------------------
# training


def held_out_skip(task: Any, trained_prompts: Sequence[str], n: int | None) -> list[int]:
    """Indices of the first `n` held-out problems whose question is in the run's training split
    (`Task.held_out_seen`): the evaluation leaves them out. It depends on the task and its seed only, not on the
    run's sampling, so runs of one task seed leave out the same problems and stay paired problem by problem.
    Tasks with disjoint splits give none."""
    seen = getattr(task, "held_out_seen", None)
    if seen is None or not trained_prompts:
        return []
    return [int(i) for i in seen(trained_prompts, n)]


def build_task(cfg: RunConfig) -> Task:
    """`get_task(cfg.task.name, **cfg.task.options)`, with task errors turned into ConfigError."""
    try:
        return get_task(cfg.task.name, **cfg.task.options)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"task: {exc}") from exc


def train(
    cfg: RunConfig,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
    progress: bool = True,
    print_logs: bool = True,
    replace: bool = False,
    allow_other_files: bool = False,
) -> Path:
    """Train `cfg` into `run_dir` (default runs/<cfg.name>/), evaluate, plot; return the run folder.

    Holds `rundir.lock(run_dir)` while it runs (RunLockedError when another process holds it).
    Refuses (RunExistsError) when the folder already holds a run, unless `resume`. With `resume`,
    the config is first compared with the run's config.yaml (`rundir.check_resume_config`: changed
    fixed settings raise ConfigError, nothing written); a finished run is returned as is, one whose
    last checkpoint is at max_steps only gets its missing outputs (weights, eval, plots,
    finished.json), and an unfinished one continues from its last checkpoint (or starts over when it
    has none). Extra `callbacks` go to the HF Trainer; if one stops
    training before `max_steps`, the run is left unfinished (resumable) and no adapter, eval or
    plots are written. `progress=False` silences the progress bars; `print_logs=False` keeps the
    training bar but not the log dict HF prints at each logging step (metrics.jsonl has them).

    `replace=True` starts over in a folder that holds a run (the demo's runs): its contents are removed
    once the lock is held, never before. A non-empty folder that no `arca` command made (the user's
    files: a README.md, the input config) is refused (RunExistsError, `rundir.check_ours`) unless
    `allow_other_files=True`.

    The TRL and PEFT configs are built here, once (`RunConfig.build`); `arca train` reads the config with
    `load_config(path, build=False)`, so they are not also built on their own to be checked.
    """
    run_dir = Path(run_dir) if run_dir is not None else rundir.default_run_dir(cfg.name)
    require_max_steps(cfg)
    # Everything that can fail on the config fails here, before the folder is touched or the model loads.
    # The TRL and PEFT configs, built once and complete for this run folder and this machine (bf16 without a
    # bf16 device is refused here); the trainer and the checkpoint loader take them as they are.
    built = cfg.build(run_dir, disable_tqdm=True if not progress else None)
    args, peft_config = built.args, built.peft_config
    task = build_task(cfg)
    model_path = cfg.model_path(check=True)
    is_main = args.process_index == 0
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: exists and is not a folder; pick another --output-dir (or name)")
    if not allow_other_files:
        rundir.check_ours(run_dir)
    # The main process holds the folder until it returns (other ranks of a distributed run only read
    # it); taken before anything in it is read, so a second run is refused before it sees any state.
    with rundir.lock(run_dir) if is_main else nullcontext():
        return _train_locked(
            cfg, run_dir, args=args, peft_config=peft_config, task=task, model_path=model_path, resume=resume,
            callbacks=callbacks, progress=progress, print_logs=print_logs, replace=replace and is_main,
        )


def _train_locked(
    cfg: RunConfig,
    run_dir: Path,
    *,
    args: ARCAGRPOConfig | ARCARLOOConfig,
    peft_config: LoraConfig | None,
    task: Task,
    model_path: str,
    resume: bool,
    callbacks: Sequence[TrainerCallback],
    progress: bool,
    print_logs: bool,
    replace: bool = False,
) -> Path:
    if replace and not resume:
        rundir.clear(run_dir)  # under the lock: nobody else is writing here
    rundir.check_can_start(run_dir, resume)
    # Every check of --resume, before anything is written (`arca train --resume --dry-run` runs the same ones):
    # a changed fixed setting, a hand-edited config.yaml, another process count, a damaged checkpoint refuse.
    plan = check_resume(run_dir, cfg, world_size=args.world_size) if resume else ResumePlan()
    if plan.finished:  # one message: what --resume does here, and that the changes asked for are not applied
        (logger.warning if plan.changes else logger.info)("%s: --resume %s", run_dir, describe(plan, args.max_steps))
        return run_dir
    for change in plan.changes:
        logger.warning("resuming %s with a changed setting: %s", run_dir, change)
    ckpt, done = plan.checkpoint, plan.done
    if resume and ckpt is None:
        logger.warning("%s has no checkpoint to resume from; starting from step 0", run_dir)
    # A checkpoint at max_steps: training is complete (the run stopped during its final save or
    # evaluation). Only the missing outputs are written, from that checkpoint's weights.
    complete = ckpt is not None and done >= args.max_steps

    is_main = args.process_index == 0
    if is_main:
        rundir.write_config(run_dir, cfg)
        rundir.reset_logs(run_dir, resumed_at=done if ckpt is not None else None)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left", truncation_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    task.use_tokenizer(tokenizer)  # chat prompts in the model's own chat template, for training and evaluation
    try:
        train_dataset = task.train_dataset(n=cfg.task.n_train)
    except ValueError as exc:  # the task's own data checks (missing columns, empty prompts): name the option
        raise ConfigError(f"task: {exc}") from exc
    trained_prompts = list(train_dataset["prompt"])  # before any truncation: the questions as the task wrote them
    if cfg.task.max_prompt_tokens is not None:
        train_dataset = task.truncate_prompts(train_dataset, tokenizer, cfg.task.max_prompt_tokens)

    if complete:
        assert ckpt is not None  # a finished run is resumed from its last checkpoint
        if not is_main:
            return run_dir
        model = _load_checkpoint_model(cfg, model_path, ckpt, args.model_init_kwargs)
        return _finish(cfg, run_dir, model, tokenizer, task, global_step=done, train_seconds=0.0,
                       resumed_from=ckpt.name, train_summary={}, progress=progress, trained_prompts=trained_prompts)

    metrics_cb = MetricsJsonlCallback(run_dir)
    finite = _StopOnNonFinite()
    callbacks = [_StepsFromConfig(), RecordCallback(cfg, args.world_size), finite, *callbacks]
    if cfg.eval.every_steps:  # the held-out learning curve (curve.jsonl)
        from .curve_callback import HeldOutCurveCallback

        callbacks.append(HeldOutCurveCallback(run_dir, task, tokenizer, every_steps=cfg.eval.every_steps,
                                              n=cfg.eval.curve_n, eval_arguments=cfg.eval_arguments(),
                                              skip=held_out_skip(task, trained_prompts, cfg.eval.curve_n)))
    from peft.utils.error import NoMatchingPeftModuleError

    trainer_class: Any = {"grpo": ARCAGRPOTrainer, "rloo": ARCARLOOTrainer}.get(cfg.trainer)
    if cfg.trainer == "sdpo":  # TRL's own SDPO (`trainer.sdpo`), imported only when asked for
        from ..trainer.sdpo import ARCASDPOTrainer as trainer_class
    try:
        trainer = trainer_class(
            model=model_path,
            reward_funcs=[task.reward],
            args=args,
            train_dataset=train_dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=[metrics_cb, *callbacks],
        )
    except NoMatchingPeftModuleError as exc:  # only known once the model has loaded
        raise ConfigError(
            f"lora.target_modules: {cfg.lora.target_modules} match no module of {model_path} ({exc}); "
            "use all-linear or names of its linear layers (e.g. q_proj, v_proj)"
        ) from None
    sharded = _check_sharded_saving(trainer, lora=cfg.lora.enabled)
    if sharded and cfg.eval.every_steps:
        raise ConfigError("eval.every_steps: the learning curve generates on the main process only, which sharded "
                          "weights (DeepSpeed, FSDP) cannot do; set eval.every_steps to null for this run")
    if not progress:
        trainer.remove_callback(PrinterCallback)  # disable_tqdm swaps the bar for a printer of every log dict
    elif not print_logs:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(_BarOnlyProgressCallback)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(ckpt) if ckpt is not None else None)
    train_seconds = time.perf_counter() - t0
    state = trainer.state
    stopped = state.max_steps > 0 and state.global_step < state.max_steps
    final_dir = rundir.final_weights_dir(run_dir, lora=cfg.lora.enabled)
    if sharded and not stopped:
        # DeepSpeed / FSDP: every rank holds a shard, so every rank joins the gather; the main process writes
        # the full weights (as checkpoints are written), then evaluates an unsharded copy loaded from them.
        trainer.save_model(str(final_dir))
    if finite.problem is not None:
        kept = rundir.last_checkpoint(run_dir)
        raise ConfigError(
            f"training stopped: {finite.problem} (an overflow: lower the credit's magnitudes, e.g. credit_ktae_scale "
            "or "
            f"credit_tempo_td_weight, or learning_rate); {run_dir} keeps "
            + (f"{kept.name}, the last good checkpoint" if kept is not None else "no checkpoint (none was good)")
        )
    if not is_main:
        return run_dir
    if stopped:
        logger.warning(
            "training stopped at step %d of %d; %s is resumable with --resume",
            state.global_step,
            state.max_steps,
            run_dir,
        )
        return run_dir

    if sharded:
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        # Training is over: a registered ZeRO-3 config would make transformers build the copy partitioned and
        # `generate` wait for the other ranks (collectives), so this process forgets it.
        unset_hf_deepspeed_config()
        model = _load_checkpoint_model(cfg, model_path, final_dir, args.model_init_kwargs)
    else:
        model = trainer.accelerator.unwrap_model(trainer.model)
    summary = _whole_run_summary(metrics_cb.summary, state.log_history, done, state.global_step)
    return _finish(cfg, run_dir, model, tokenizer, task, global_step=state.global_step, train_seconds=train_seconds,
                   resumed_from=ckpt.name if ckpt is not None else None, train_summary=summary,
                   progress=progress, trained_prompts=trained_prompts)


def _whole_run_summary(
    summary: dict[str, Any], history: list[dict[str, Any]], done: int, global_step: int
) -> dict[str, Any]:
    """TRL's end-of-training summary with `train_loss` over the whole run: after a resume from step `done`, HF
    averages only the steps it trained; the steps before come back from the checkpoint's log history (each logged
    `loss` is the mean since the previous logged step)."""
    if done <= 0 or not isinstance(summary.get("train_loss"), int | float) or global_step <= done:
        return summary
    before, last = 0.0, 0
    for row in history:
        step, loss = row.get("step"), row.get("loss")
        if isinstance(step, int) and isinstance(loss, int | float) and last < step <= done:
            before += float(loss) * (step - last)
            last = step
    return {
        **summary,
        "train_loss": (before + summary["train_loss"] * (global_step - done)) / (last + global_step - done),
    }


def _check_sharded_saving(trainer: Any, *, lora: bool) -> bool:
    """Is the trainer's model sharded over processes (DeepSpeed, FSDP)? Raises ConfigError, before training, when
    the accelerate / DeepSpeed config would save only shards, which no checkpoint or final weights can be read from."""
    if trainer.is_fsdp_enabled:
        state_dict_type = str(trainer.accelerator.state.fsdp_plugin.state_dict_type)
        if "FULL_STATE_DICT" not in state_dict_type:
            raise ConfigError(
                f"FSDP state dict type {state_dict_type.rsplit('.', 1)[-1]}: arca train saves checkpoints and the "
                "final "
                "weights as ordinary files; set fsdp_state_dict_type: FULL_STATE_DICT in the accelerate config"
            )
        return True
    if not trainer.is_deepspeed_enabled:
        return False
    zero = trainer.accelerator.state.deepspeed_plugin.deepspeed_config.get("zero_optimization", {})
    # with an adapter, the Trainer gathers the trainable weights itself; full weights need DeepSpeed to gather them
    if zero.get("stage") == 3 and not lora and not zero.get("stage3_gather_16bit_weights_on_model_save"):
        raise ConfigError(
            "DeepSpeed ZeRO-3 without LoRA saves only partitions; set stage3_gather_16bit_weights_on_model_save: true "
            "in the DeepSpeed config (zero3_save_16bit_model: true in accelerate's)"
        )
    return True


def _load_checkpoint_model(cfg: RunConfig, model_path: str, ckpt: Path, init_kwargs: dict[str, Any]) -> Any:
    """The trained model as saved in `ckpt`: the base model plus the checkpoint's adapter (LoRA), or
    the checkpoint's full weights."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = dict(init_kwargs)
    dtype = kwargs.get("dtype")
    if isinstance(dtype, str) and dtype != "auto":
        kwargs["dtype"] = getattr(torch, dtype)  # as TRL reads model_init_kwargs
    if not cfg.lora.enabled:
        return AutoModelForCausalLM.from_pretrained(str(ckpt), **kwargs)
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    # is_trainable: the adapter config saved with it says what training saved (inference_mode false)
    return PeftModel.from_pretrained(base, str(ckpt), is_trainable=True)


def _finish(
    cfg: RunConfig,
    run_dir: Path,
    model: Any,
    tokenizer: Any,
    task: Any,
    *,
    global_step: int,
    train_seconds: float,
    resumed_from: str | None,
    train_summary: dict[str, Any],
    progress: bool,
    trained_prompts: Sequence[str] = (),
) -> Path:
    """After the last optimizer step: final weights, evaluation (eval.json, eval_problems.jsonl), plots, then
    finished.json (last). The held-out problems whose question is in the run's training split are left out of the
    evaluation (`held_out_skip`) and counted in eval.json's `n_skipped`."""
    final_dir = rundir.final_weights_dir(run_dir, lora=cfg.lora.enabled)
    model.save_pretrained(str(final_dir))
    tokenizer.save_pretrained(str(final_dir))

    eval_seconds = 0.0
    if cfg.eval.enabled:
        t1 = time.perf_counter()
        eval_args = cfg.eval_arguments()
        skip = held_out_skip(task, trained_prompts, eval_args.get("n"))
        result = evaluate(model, tokenizer, task, progress=progress, skip=skip, **eval_args)
        eval_seconds = time.perf_counter() - t1
        rundir.write_eval(run_dir, result.to_json())
        rundir.write_eval_problems(run_dir, result.problem_records())
        logger.info("eval: %s", json.dumps(result.to_json()))

    plot_metrics(run_dir)
    rundir.write_finished(
        run_dir, global_step=global_step, train_seconds=train_seconds, eval_seconds=eval_seconds,
        resumed_from=resumed_from, final_weights=final_dir.name, train_summary=train_summary,
    )
    return run_dir


# ---------------------------------------------------------------------------------------------------
# plots


def plot_metrics(run_dir: str | Path) -> list[Path]:
    """Write plots/<metric>.png for reward, credit Gini and credit EffN/T against step.

    Shadow signals (`shadow/<signal>/gini`, ...) are drawn as extra lines when present. Metrics the
    run did not log are skipped; returns the files written.
    """
    rows = rundir.read_metrics(run_dir)
    if not rows:
        return []
    import matplotlib

    if os.environ.get("MPLBACKEND") is None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(run_dir) / rundir.PLOTS_DIR
    written = []
    for key, (stem, label) in PLOTS.items():
        leaf = key.rsplit("/", 1)[-1]
        series: dict[str, tuple[list[float], list[float]]] = {}
        for row in rows:
            for name, value in row.items():
                main = name == key
                shadow = leaf != "reward" and name.startswith("shadow/") and name.endswith("/" + leaf)
                if (main or shadow) and isinstance(value, int | float) and not isinstance(value, bool):
                    xs, ys = series.setdefault(name, ([], []))
                    xs.append(row["step"])
                    ys.append(float(value))
        if key not in series:
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for name, (xs, ys) in series.items():
            if name == key:
                ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.6, label=name)
            else:
                ax.plot(xs, ys, linestyle="--", linewidth=1.0, label=name)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.set_title(f"{Path(run_dir).name}: {label}")
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{stem}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
