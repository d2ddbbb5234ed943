"""Probe reasoning-gym task candidates for the SmolLM2 study: base greedy accuracy on BOTH splits.

A study task must be learnable from its training split and measured on a held-out split drawn the same way.
For each candidate this prints the base model's greedy accuracy on the first `--n` held-out problems and on the
first `--n` training problems (the prompts RL actually trains on), and how the two splits' `metadata` differ
(e.g. `num_digits`): reasoning-gym draws a difficulty per problem, and the splits' distinct-question filters can
make the two splits different mixtures of it.

    python benchmarks/smollm2_rg_task_probe.py --n 64 --out benchmarks/results/smollm2_rg_task_probe.json
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import torch

from arca_rl._run.evaluation import generate_completions, load_model_for_eval
from arca_rl.tasks import get_task

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CANDIDATES = {
    "products 2 terms 1-2 digits (the first study task)": (
        "products",
        {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2},
    ),
    "products 3 terms 1 digit": (
        "products",
        {"min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 1},
    ),
    "basic_arithmetic 2 terms 1 digit": (
        "basic_arithmetic",
        {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
    ),
    "basic_arithmetic 3 terms 1 digit": (
        "basic_arithmetic",
        {"min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 1},
    ),
}


def composition(dataset, task) -> dict[str, dict[str, int]]:
    """Counts of each scalar metadata value (num_terms, num_digits, ...) over a split."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for solution in dataset["solution"]:
        for key, value in json.loads(solution).get("metadata", {}).items():
            if isinstance(value, (int, str)) and key not in ("source_index", "source_dataset"):
                counts[key][str(value)] += 1
    return {k: dict(sorted(v.items())) for k, v in counts.items() if 1 < len(v) <= 10}


def greedy(model, tokenizer, task, dataset) -> float:
    texts = generate_completions(model, tokenizer, list(dataset["prompt"]), max_new_tokens=48, batch_size=32)
    return sum(task.score(t[0], s) for t, s in zip(texts, dataset["solution"])) / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, tokenizer = load_model_for_eval(
        str(Path.home() / ".cache/arca-rl/models/smollm2-135m-instruct"), dtype="float32"
    )
    rows = {}
    for label, (dataset, config) in CANDIDATES.items():
        task = get_task(
            "reasoning_gym",
            dataset=dataset,
            config=config,
            seed=0,
            n_test=200,
            n_train=500,
            system=SYSTEM,
            answer="last_number",
        )
        t0 = time.perf_counter()
        test, train = task.test_dataset(n=args.n), task.train_dataset().select(range(args.n))
        row = {
            "dataset": dataset,
            "config": config,
            "greedy_held_out": greedy(model, tokenizer, task, test),
            "greedy_train": greedy(model, tokenizer, task, train),
            "held_out_metadata": composition(task.test_dataset(), task),
            "train_metadata": composition(task.train_dataset(), task),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        rows[label] = row
        print(
            f"{label}: greedy held-out {row['greedy_held_out']:.3f}, train {row['greedy_train']:.3f}; "
            f"held-out {row['held_out_metadata']}, train {row['train_metadata']}",
            flush=True,
        )
    if args.out:
        args.out.write_text(json.dumps({"n": args.n, "candidates": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
