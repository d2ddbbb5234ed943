"""Where a SmolLM2 GRPO step's time goes, per dtype, and what the held-out greedy evaluation costs per batch size
(issue 39, section 6: throughput decides how many seed pairs the study can run).

For each dtype (`--dtypes`) and each setting of the LM-head fix (`--head-fix`), it trains `--steps` steps of
`--config` (default `smollm2-rg2/uniform`, evaluation and learning curve off) through `arca_rl.train`, timing
each step's phases by wrapping the trainer's methods, then loads the trained adapter as the final evaluation does
(`load_model_for_eval`: base model in the dtype plus the unmerged LoRA) and generates greedy completions of the
first `--eval-n` held-out problems at each `--eval-batch-sizes` (`--eval-new-tokens` new tokens, as `eval` does);
in float32 with the fix, once more with the adapter merged into the weights (`--no-eval-merged`: not).

    python benchmarks/smollm2_step_profile.py                       # SmolLM2, float32 and bfloat16, fix on and off
    python benchmarks/smollm2_step_profile.py --config smollm2-rg2/uniform,smollm2-rg2/arca   # results/...json
    python benchmarks/smollm2_step_profile.py --model tiny --steps 1 --eval-n 4 --eval-batch-sizes 2,4 --out x.json

Phases of a step (exclusive: a phase's time excludes the phases inside it):
- generation: TRL's `model.generate` of the rollout (`_generate_single_turn`);
- forward_nograd: TRL's no-grad log-prob passes of the rollout (none for GRPO at beta = 0, one iteration);
- forward_base: the adapter-off pass (`_base_pass`), only for signals that read the base (arca);
- forward_train: the training forward with its fused LM head and the credit's token weights;
- backward: `accelerator.backward`;  optimizer: `optimizer.step()` (between the optimizer-step callbacks);
- rollout_other: the rest of the rollout (prompt tokenization, rewards, advantages);  loss_other: TRL's loss
  around the training forward;  step_other: the rest of the step (gradient clipping, logging, the data loader).

`--head-fix off` measures the code before the fix: `arca_rl._causal_lm.contiguous_head_input` (which makes the LM
head's input contiguous, see its docstring) is replaced by a no-op for that run. CPU seconds are the primary
figures: on a machine shared with other jobs, wall seconds grow with the load (both are written, with the load
average). The first step carries one-time costs (kernel set-up), so the medians are over the later steps. The
second command above wrote benchmarks/results/smollm2_step_profile.json in 41 min (one core, load average 5-13).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "smollm2_step_profile.json"
PHASES = ("generation", "forward_nograd", "forward_base", "forward_train", "backward", "optimizer",
          "rollout_other", "loss_other", "step_other")
# an unfixed bf16 prompt pass copies the head's weight once per row; above this it is skipped (memory, not time)
MAX_HEAD_COPY_GB = 4.0


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


class Phases:
    """Exclusive timers: a phase's (wall, cpu) seconds exclude the phases opened inside it."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        self._stack: list[list[Any]] = []  # [name, start wall, start cpu, child wall, child cpu]

    def open(self, name: str) -> None:
        self._stack.append([name, *_clock(), 0.0, 0.0])

    def close(self) -> None:
        name, w0, c0, cw, cc = self._stack.pop()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        self.totals[name][0] += w - cw
        self.totals[name][1] += c - cc
        if self._stack:
            self._stack[-1][3] += w
            self._stack[-1][4] += c

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.open(name)
        try:
            yield
        finally:
            self.close()

    def take(self) -> dict[str, list[float]]:
        out, self.totals = dict(self.totals), defaultdict(lambda: [0.0, 0.0])
        return out


def _wrap(phases: Phases, fn: Any, name: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch

        label = name() if callable(name) else name
        with phases.phase(label if isinstance(label, str) else ("forward_train" if torch.is_grad_enabled()
                                                                  else "forward_nograd")):
            return fn(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def timed_trainer(phases: Phases, trainer_class: type) -> Iterator[None]:
    """Wrap the trainer's phase methods (and accelerate's backward) with `phases`; restore them afterwards."""
    from accelerate import Accelerator

    patches = [
        (trainer_class, "_generate_and_score_completions", "rollout_other"),
        (trainer_class, "_generate_single_turn", "generation"),
        (trainer_class, "_base_pass", "forward_base"),
        (trainer_class, "_get_per_token_logps_and_entropies", None),  # by grad mode: forward_train / _nograd
        (trainer_class, "_compute_loss", "loss_other"),
        (Accelerator, "backward", "backward"),
    ]
    saved = []
    for owner, attr, label in patches:
        if not hasattr(owner, attr):
            continue
        saved.append((owner, attr, owner.__dict__.get(attr)))
        setattr(owner, attr, _wrap(phases, getattr(owner, attr), label))
    try:
        yield
    finally:
        for owner, attr, original in reversed(saved):
            if original is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)


def step_callback(phases: Phases, steps: list[dict[str, Any]]) -> Any:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            phases.take()  # nothing before the step counts
            phases.open("step_other")

        def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            phases.open("optimizer")

        def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            phases.close()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            phases.close()
            split = phases.take()
            row: dict[str, Any] = {"step": state.global_step}
            for key in PHASES:
                wall, cpu = split.get(key, (0.0, 0.0))
                row[key] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
            row["total"] = {k: round(sum(split[p][i] for p in split), 3) for i, k in enumerate(("wall_s", "cpu_s"))}
            steps.append(row)

    return StepTimer()


@contextlib.contextmanager
def head_fix(enabled: bool) -> Iterator[None]:
    """`--head-fix off`: the LM head keeps the strided input (the code before the fix)."""
    from arca_rl import _causal_lm

    original = _causal_lm.contiguous_head_input
    if not enabled:
        _causal_lm.contiguous_head_input = lambda model: model  # type: ignore[assignment]
    try:
        yield
    finally:
        _causal_lm.contiguous_head_input = original  # type: ignore[assignment]


def _medians(steps: list[dict[str, Any]]) -> dict[str, Any]:
    later = steps[1:] or steps  # the first step carries one-time costs
    out: dict[str, Any] = {}
    for key in (*PHASES, "total"):
        out[key] = {u: round(statistics.median(s[key][u] for s in later), 3) for u in ("wall_s", "cpu_s")}
    cpu = out["total"]["cpu_s"]
    out["forwards_cpu_s"] = round(sum(out[k]["cpu_s"] for k in ("forward_nograd", "forward_base", "forward_train")), 3)
    out["backward_optimizer_cpu_s"] = round(out["backward"]["cpu_s"] + out["optimizer"]["cpu_s"], 3)
    out["generation_share_cpu"] = round(out["generation"]["cpu_s"] / cpu, 3) if cpu else None
    out["steps_in_median"] = [s["step"] for s in later]
    return out


def overrides(opts: argparse.Namespace, dtype: str, *, steps: int) -> list[str]:
    sets = [f"training.max_steps={steps}", "eval.enabled=false", "eval.every_steps=null", f"model.dtype={dtype}",
            "training.logging_steps=1", *opts.set]
    if opts.model == "tiny":
        sets.append("model.name_or_path=null")
    elif opts.model:
        sets.append(f"model.name_or_path={opts.model}")
    return sets


def profile_training(opts: argparse.Namespace, config: str, dtype: str, fix: bool, run_dir: Path) -> dict[str, Any]:
    import arca_rl
    from arca_rl.trainer import ARCAGRPOTrainer, ARCARLOOTrainer

    cfg = arca_rl.load_config(config, overrides(opts, dtype, steps=opts.steps))
    trainer_class = ARCARLOOTrainer if cfg.trainer == "rloo" else ARCAGRPOTrainer
    phases, steps = Phases(), []
    t0 = _clock()
    with head_fix(fix), timed_trainer(phases, trainer_class):
        arca_rl.train(cfg, run_dir=run_dir, callbacks=[step_callback(phases, steps)], progress=False,
                      print_logs=False)
    t1 = _clock()
    rewards = []
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "reward" in row:
            rewards.append(row["reward"])
    return {"config": config, "dtype": dtype, "head_fix": fix, "steps": steps, "median": _medians(steps),
            "rewards": rewards, "run_wall_s": round(t1[0] - t0[0], 1), "run_cpu_s": round(t1[1] - t0[1], 1)}


def profile_eval(
    opts: argparse.Namespace, config: str, dtype: str, fix: bool, run_dir: Path
) -> list[dict[str, Any]]:
    """Greedy completions of the first `--eval-n` held-out problems at each batch size; with the fix, in float32,
    also with the adapter merged into the base weights (at the largest batch size: what merging would save)."""
    import arca_rl
    from arca_rl._run.evaluation import generate_completions, load_model_for_eval
    from arca_rl.tasks import get_task

    cfg = arca_rl.load_config(config, overrides(opts, dtype, steps=opts.steps))
    task = get_task(cfg.task.name, **cfg.task.options)
    data = task.test_dataset(n=opts.eval_n)
    prompts, solutions = list(data["prompt"]), list(data["solution"])
    rows: list[dict[str, Any]] = []
    with head_fix(fix):
        model, tokenizer = load_model_for_eval(cfg.model_path(), run_dir, dtype=dtype)
        head = model.get_output_embeddings()
        copy_gb_per_row = head.weight.numel() * head.weight.element_size() / 1e9
        plan = [(bs, False) for bs in opts.eval_batch_sizes]
        if fix and dtype == "float32" and opts.eval_merged:
            plan.append((max(opts.eval_batch_sizes), True))
        for bs, merged in plan:
            row: dict[str, Any] = {"dtype": dtype, "head_fix": fix, "batch_size": bs, "n": len(prompts)}
            if merged:
                row["merged"] = True
                model = model.merge_and_unload()  # the last row: the adapter is folded into the weights for good
            if not fix and dtype != "float32" and bs * copy_gb_per_row > MAX_HEAD_COPY_GB:
                row["skipped"] = (f"without the fix the prompt pass would copy the LM head {bs} times "
                                  f"({bs * copy_gb_per_row:.1f} GB)")
                rows.append(row)
                continue
            t0 = _clock()
            texts = generate_completions(model, tokenizer, prompts, max_new_tokens=opts.eval_new_tokens,
                                         batch_size=bs)
            wall, cpu = time.perf_counter() - t0[0], time.process_time() - t0[1]
            scores = [float(task.score(t[0], s)) for t, s in zip(texts, solutions, strict=True)]
            row.update(wall_s=round(wall, 2), cpu_s=round(cpu, 2), cpu_s_per_100=round(100 * cpu / len(prompts), 2),
                       wall_s_per_100=round(100 * wall / len(prompts), 2), score=round(sum(scores) / len(scores), 4),
                       completions=[t[0] for t in texts])
            rows.append(row)
    return rows


def _same_completions(rows: list[dict[str, Any]]) -> None:
    """Do the greedy completions depend on the fix (same dtype and batch size), on the batch size (same dtype, fix
    on, against the first batch size), or on merging the adapter? Written as "same/n" into the fixed rows."""
    by_key = {(r["dtype"], r["batch_size"], r["head_fix"], r.get("merged", False)): r
              for r in rows if "completions" in r}

    def same(a: dict[str, Any], b: dict[str, Any]) -> str:
        return f"{sum(x == y for x, y in zip(a['completions'], b['completions'], strict=True))}/{len(a['completions'])}"

    first: dict[str, dict[str, Any]] = {}
    for (dtype, bs, fix, merged), row in by_key.items():
        if not fix:
            continue
        if merged:
            if (dtype, bs, True, False) in by_key:
                row["same_completions_as_unmerged"] = same(row, by_key[(dtype, bs, True, False)])
            continue
        if (dtype, bs, False, False) in by_key:
            row["same_completions_as_unfixed"] = same(row, by_key[(dtype, bs, False, False)])
        if dtype in first:
            row[f"same_completions_as_batch_{first[dtype]['batch_size']}"] = same(row, first[dtype])
        else:
            first[dtype] = row


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The figures the study plans with: CPU s/step (median over the later steps) per config, dtype and fix, and
    greedy-eval CPU s per 100 problems (and per 1,000) per dtype and batch size, with the fix."""
    steps: dict[str, Any] = {}
    for run in result["training"]:
        med = run["median"]
        steps.setdefault(run["config"], {}).setdefault(run["dtype"], {})["fix" if run["head_fix"] else "no_fix"] = {
            "step": med["total"]["cpu_s"], "generation": med["generation"]["cpu_s"],
            "forwards": med["forwards_cpu_s"], "backward_optimizer": med["backward_optimizer_cpu_s"],
        }
    evals: dict[str, Any] = {}
    for row in result["eval"]:
        if "cpu_s_per_100" in row:
            key = "merged" if row.get("merged") else "fix" if row["head_fix"] else "no_fix"
            evals.setdefault(row["dtype"], {}).setdefault(key, {})[str(row["batch_size"])] = {
                "per_100": row["cpu_s_per_100"], "per_1000": round(10 * row["cpu_s_per_100"], 1),
                "score": row["score"]}
    return {"cpu_s_per_step": steps, "eval_cpu_s": evals}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="smollm2-rg2/uniform",
                   help="config(s), comma-separated; the evaluation uses the first one's adapter and task")
    p.add_argument("--model", default="smollm2-135m-instruct", help="a model name or folder; 'tiny': the embedded one")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--head-fix", default="on,off", help="on, off or on,off (see the module docstring)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--eval-n", type=int, default=200, help="held-out problems per batch size (0: no evaluation)")
    p.add_argument("--eval-batch-sizes", default="50,100,200")
    p.add_argument("--eval-new-tokens", type=int, default=48)
    p.add_argument("--eval-merged", action=argparse.BooleanOptionalAction, default=True,
                   help="also time float32 greedy evaluation with the adapter merged (default: on)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config override")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    opts = p.parse_args(argv)
    opts.eval_batch_sizes = [int(x) for x in opts.eval_batch_sizes.split(",") if x]
    fixes = [{"on": True, "off": False}[x.strip()] for x in opts.head_fix.split(",") if x.strip()]
    configs = [c.strip() for c in opts.config.split(",") if c.strip()]
    dtypes = [d.strip() for d in opts.dtypes.split(",") if d.strip()]

    import torch
    import transformers
    import trl

    torch.set_num_threads(opts.threads)
    result: dict[str, Any] = {
        "card": f"CPU, {opts.threads} thread{'s' if opts.threads > 1 else ''}",
        "cpu": cpu_name(),
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
        "command": "python benchmarks/smollm2_step_profile.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": opts.config, "model": opts.model, "steps": opts.steps, "eval_new_tokens": opts.eval_new_tokens,
        "load_average_start": list(os.getloadavg()), "training": [], "eval": [],
    }
    with tempfile.TemporaryDirectory(prefix="step_profile_") as tmp:
        for config, dtype, fix in [(c, d, f) for c in configs for d in dtypes for f in fixes]:
            run_dir = Path(tmp) / f"{config.replace('/', '-')}-{dtype}-{'fix' if fix else 'nofix'}"
            row = profile_training(opts, config, dtype, fix, run_dir)
            med = row["median"]
            print(f"{config} {dtype} head_fix={fix}: {med['total']['cpu_s']} cpu s/step (generation "
                  f"{med['generation']['cpu_s']}, forwards {med['forwards_cpu_s']}, backward+optimizer "
                  f"{med['backward_optimizer_cpu_s']}), wall {med['total']['wall_s']}", flush=True)
            result["training"].append(row)
            if opts.eval_n > 0 and config == configs[0]:
                for ev in profile_eval(opts, config, dtype, fix, run_dir):
                    print(f"  eval bs={ev['batch_size']}: " + (ev.get("skipped") or
                          f"{ev['cpu_s_per_100']} cpu s / 100 problems (wall {ev['wall_s_per_100']})"), flush=True)
                    result["eval"].append(ev)
    _same_completions(result["eval"])
    for ev in result["eval"]:
        ev.pop("completions", None)
    result["summary"] = summarize(result)
    result["load_average_end"] = list(os.getloadavg())
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
