"""Probe a reasoning-gym study task for SmolLM2 before the runs: the base model's exact greedy accuracy on BOTH splits.

A study task must be learnable from its training prompts and measured on held-out problems of the same
distribution. For each run config (`--config`, a packaged name or a path; default `smollm2-rg3/uniform`) this
builds the config's task and, with the config's model and generation budget, prints and records:

- the base model's greedy **accuracy** (`Task.correct`: a correct answer) and its graded **score** (reasoning-gym's
  partial credit, named as such) on the first `--n` held-out problems and on the first `--n` training prompts
  (the first `task.n_train` of them are the ones a run trains on), each with its binomial standard error, and the
  training minus held-out gap;
- how many of those held-out problems are questions the run trains on (`Task.held_out_seen` with the run's
  `n_train` prompts), and the held-out accuracy without them;
- the two splits' question forms compared (`compare_splits`: operators, brackets, terms, digits, the answer's
  sign for basic_arithmetic; each feature's total variation distance and chi-square p-value).

    python benchmarks/smollm2_rg_task_probe.py --config smollm2-rg3/uniform --n 1000 \\
        --out benchmarks/results/smollm2_rg3_task_probe.json

The first probe of the rg2 study (graded score, the first 64 of each split, `products` and `basic_arithmetic`
candidates) is benchmarks/results/smollm2_rg_task_probe.json, written by this script's earlier version.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from arca_rl._config import load_config
from arca_rl._run.evaluation import generate_completions, load_model_for_eval
from arca_rl.tasks import get_task


def _mean_and_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var / n)


def judge(model: Any, tokenizer: Any, task: Any, dataset: Any, max_new_tokens: int, batch_size: int) -> dict[str, Any]:
    """Greedy completions of `dataset`'s prompts, judged: per-problem correct and score, and their means."""
    texts = generate_completions(
        model, tokenizer, list(dataset["prompt"]), max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    grades = [task.grade(t[0], s) for t, s in zip(texts, dataset["solution"])]
    correct = [float(g.correct) for g in grades]
    accuracy, accuracy_se = _mean_and_se(correct)
    score, score_se = _mean_and_se([g.score for g in grades])
    return {"n": len(grades), "accuracy": accuracy, "accuracy_se": accuracy_se, "score": score, "score_se": score_se,
            "correct": [bool(c) for c in correct]}


def probe(name: str, n: int, batch_size: int, model_override: str | None) -> dict[str, Any]:
    cfg = load_config(name)
    task = get_task(cfg.task.name, **cfg.task.options)
    limit = task.held_out_limit()
    n_test = min(n, limit) if limit is not None else n
    held_out, training = task.test_dataset(n_test), task.train_dataset(n)
    run_prompts = task.train_dataset(cfg.task.n_train)["prompt"] if cfg.task.n_train else training["prompt"]
    seen = task.held_out_seen(run_prompts, n_test)
    max_new = cfg.eval.max_new_tokens or int(cfg.training.get("max_completion_length", 256))
    model_path = model_override or cfg.model_path(check=True)
    model, tokenizer = load_model_for_eval(str(model_path), dtype="float32")
    t0 = time.perf_counter()
    test_row = judge(model, tokenizer, task, held_out, max_new, batch_size)
    train_row = judge(model, tokenizer, task, training, max_new, batch_size)
    unseen = [c for i, c in enumerate(test_row["correct"]) if i not in set(seen)]
    gap = train_row["accuracy"] - test_row["accuracy"]
    forms = []
    if hasattr(task, "test_items"):  # reasoning_gym: what the questions of the two splits are
        from arca_rl.tasks.reasoning_gym import compare_splits

        for d in compare_splits(task.test_items()[:n_test], task.train_items(n), task.dataset):
            forms.append({"feature": d.feature, "total_variation": round(d.total_variation, 4),
                          "p_value": d.p_value, "held_out": d.held_out, "training": d.training})
    return {
        "config": name,
        "task": {"name": cfg.task.name, **cfg.task.options},
        "model": str(model_path),
        "max_new_tokens": max_new,
        "held_out": {k: v for k, v in test_row.items() if k != "correct"},
        "training": {k: v for k, v in train_row.items() if k != "correct"},
        "gap_training_minus_held_out": gap,
        "gap_se": math.hypot(test_row["accuracy_se"], train_row["accuracy_se"]),
        "held_out_trained_on": len(seen),
        "run_n_train": cfg.task.n_train,
        "held_out_accuracy_without_trained_on": sum(unseen) / len(unseen) if unseen else None,
        "question_forms": forms,
        "per_problem": {"held_out": test_row["correct"], "training": train_row["correct"]},
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", help="a run config (packaged name or path); repeatable")
    parser.add_argument("--n", type=int, default=200, help="problems per split (held-out: at most task.n_test)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", help="another model folder than the config's (e.g. a converted copy)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.config or ["smollm2-rg3/uniform"]:
        row = probe(name, args.n, args.batch_size, args.model)
        rows.append(row)
        test, train = row["held_out"], row["training"]
        print(
            f"{name}: greedy accuracy held-out {test['accuracy']:.3f} ± {test['accuracy_se']:.3f} (n={test['n']}),"
            f" training prompts {train['accuracy']:.3f} ± {train['accuracy_se']:.3f} (n={train['n']}),"
            f" gap {row['gap_training_minus_held_out']:+.3f} ± {row['gap_se']:.3f}; graded score held-out"
            f" {test['score']:.3f}, training {train['score']:.3f}; {row['held_out_trained_on']} held-out problems"
            f" are among the run's {row['run_n_train']} training prompts; {row['seconds']} s",
            flush=True,
        )
        for form in row["question_forms"]:
            print(f"  {form['feature']}: total variation {form['total_variation']:.3f}, p = {form['p_value']:.2g}")
    if args.out:
        args.out.write_text(json.dumps({"n": args.n, "probes": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
