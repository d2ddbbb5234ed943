"""One-call device check: the whole GRPO step per credit method, and the adaptive oracle's continuations per second.

In one process, on a Qwen3-1.7B-shaped model built from its config with random weights (no hub): bf16 on the GPU,
LoRA r = 64 on every linear layer, 8 completions forced to 256 tokens. The trainers of uniform, arca, surprisal
and tempo (ARCAGRPOTrainer, beta = 0, a reward alternating 0 / 1 over the group so advantages are not 0) take
turns step by step, so all see the same machine state; each figure is the median of --repeats steps after one
warm-up round. Then the adaptive oracle (`arca_rl.oracle`, K = --oracle-k) on 8 completions of the same length,
sampled by the uniform trainer's policy: continuations sampled, against every prefix's count, and per second.

--budget-s bounds the whole run (a lent device's time is short): after the warm-up and the first timed round,
a further round starts only if the last one would end inside STEP_SHARE of the budget, and the oracle stops after
the sampler batch that crosses the budget (`oracle.stopped_by_budget`), its rate still counted over what it
sampled. The JSON says how many rounds were timed (`repeats`, of `repeats_asked`) and which package versions ran.

    python benchmarks/gpu_check.py --out gpu_check.json        # the device check (cuda, bf16, qwen3-1.7b)
    python benchmarks/gpu_check.py --shape tiny                # CPU, a small shape, seconds (run by the tests)
    bash benchmarks/gpu_check.sh OUT_DIR 300                   # on a lent GPU: the wheels in .whl/, then this
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_cost import SHAPES, build_tokenizer  # noqa: E402

TINY = dict(layers=2, hidden=64, heads=2, kv_heads=1, head_dim=32, intermediate=128, vocab=256)
PRESETS = {
    # shape, device, dtype, LoRA r, completions, tokens per completion, prompt tokens
    "qwen3-1.7b": dict(
        shape=SHAPES["qwen3-1.7b"], device="cuda", dtype="bfloat16", lora_r=64, n=8, length=256, prompt=32
    ),
    "tiny": dict(shape=TINY, device="cpu", dtype="float32", lora_r=4, n=8, length=12, prompt=4),
}
METHODS = ("uniform", "arca", "surprisal", "tempo")
STEP_SHARE = 0.6  # of --budget-s, for building the trainers and the timed rounds; the oracle has the rest
VERSIONS = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "arca-rl")


class _OutOfTime(Exception):
    """Raised from the oracle's progress callback once the budget is spent."""


def versions() -> dict[str, str]:
    """The installed version of each package the check runs on (as pip recorded it), and Python's."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in VERSIONS:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def build_trainer(p: dict[str, Any], method: str) -> Any:
    import tempfile

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from arca_rl import ARCAGRPOConfig, ARCAGRPOTrainer

    s = p["shape"]
    torch.manual_seed(0)  # the same random model and LoRA init for every method
    config = Qwen3Config(
        vocab_size=s["vocab"], hidden_size=s["hidden"], intermediate_size=s["intermediate"],
        num_hidden_layers=s["layers"], num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"],
        head_dim=s["head_dim"], max_position_embeddings=4096, tie_word_embeddings=True, pad_token_id=0,
        eos_token_id=1, bos_token_id=None,
    )  # fmt: skip
    with torch.device(p["device"]):
        model = Qwen3ForCausalLM(config).to(getattr(torch, p["dtype"]))
    prompt = " ".join(f"w{3 + (i * 7) % (s['vocab'] - 3)}" for i in range(p["prompt"]))
    args = ARCAGRPOConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=p["n"], num_generations=p["n"],
        gradient_accumulation_steps=1, max_completion_length=p["length"],
        generation_kwargs={"min_new_tokens": p["length"]}, max_steps=100, learning_rate=1e-5, loss_type="grpo",
        beta=0.0, credit=method, report_to=[], logging_steps=10_000, save_strategy="no",
        use_cpu=p["device"] == "cpu", bf16=p["dtype"] == "bfloat16", seed=0,
    )  # fmt: skip
    r = p["lora_r"]
    lora = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, init_lora_weights=False, target_modules="all-linear")

    def reward(completions: list[Any], **_: Any) -> list[float]:
        return [float(i % 2) for i in range(len(completions))]  # fixed-length completions, alternating rewards

    trainer = ARCAGRPOTrainer(
        model=model, reward_funcs=reward, args=args, train_dataset=Dataset.from_dict({"prompt": [prompt] * 64}),
        processing_class=build_tokenizer(s["vocab"]), peft_config=lora,
    )  # fmt: skip
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which this bypasses
    return trainer


def oracle_rate(trainer: Any, p: dict[str, Any], k: int, sync: Any, deadline: float | None = None) -> dict[str, Any]:
    """The adaptive oracle on n completions of `length` tokens sampled by the trainer's policy (no EOS); stopped
    after the sampler batch that ends past `deadline` (a `time.perf_counter()` value), if one is given."""
    import torch

    from arca_rl.oracle import estimate_rollouts, oracle_values
    from arca_rl.oracle.sampler import model_sampler

    model = trainer.accelerator.unwrap_model(trainer.model).eval()
    sampler = model_sampler(model, temperature=1.0, top_p=1.0, eos_ids=[])
    torch.manual_seed(1)
    prompt = list(range(3, 3 + p["prompt"]))
    completions = sampler(prompt, [len(prompt)] * p["n"], [p["length"]] * p["n"])

    def reward(_g: int, comps: list[list[int]]) -> list[float]:
        return [float(sum(c) % 2) for c in comps]  # a 0/1 reward that every token can move

    groups = [(prompt, [(c, reward(0, [c])[0]) for c in completions])]
    sampled = 0

    def count(n: int) -> None:
        nonlocal sampled
        sampled += n
        if deadline is not None and time.perf_counter() > deadline:
            raise _OutOfTime

    sync()
    t = time.perf_counter()
    stopped = False
    try:
        oracle_values(groups, sampler, reward, samples=k, max_new_tokens=p["length"], batch_rows=256, on_rollouts=count)
    except _OutOfTime:
        stopped = True
    finally:
        model.train()
    sync()
    seconds = time.perf_counter() - t
    return {
        "k": k,
        "continuations": sampled,
        "continuations_all_positions": estimate_rollouts([[len(c) for c in completions]], k),
        "seconds": round(seconds, 3),
        "continuations_per_s": round(sampled / seconds, 2),
        "stopped_by_budget": stopped,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(PRESETS), default="qwen3-1.7b")
    ap.add_argument("--repeats", type=int, default=3, help="timed steps per method (median), after one warm-up")
    ap.add_argument("--oracle-k", type=int, default=8, help="the oracle's continuations per prefix")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", help="write the JSON here too (it is always printed); missing folders are made")
    ap.add_argument(
        "--budget-s", type=float, default=None,
        help="seconds the whole check may take: fewer timed rounds (at least one) and an oracle stopped in time",
    )  # fmt: skip
    opts = ap.parse_args(argv)
    start = time.perf_counter()
    if opts.repeats < 1 or opts.oracle_k < 1:
        ap.error("--repeats and --oracle-k must be >= 1")
    if opts.budget_s is not None and not opts.budget_s > 0:
        ap.error(f"--budget-s must be > 0 (seconds the check may take), got {opts.budget_s}")
    steps_end = None if opts.budget_s is None else start + STEP_SHARE * opts.budget_s
    deadline = None if opts.budget_s is None else start + opts.budget_s
    import torch

    torch.set_num_threads(opts.threads)
    p = PRESETS[opts.shape]
    if p["device"] == "cuda" and not torch.cuda.is_available():
        ap.error(f"--shape {opts.shape} needs a CUDA device; use --shape tiny on CPU")
    sync = torch.cuda.synchronize if p["device"] == "cuda" else (lambda: None)
    trainers = {m: build_trainer(p, m) for m in METHODS}
    batch = next(iter(trainers["uniform"].get_train_dataloader()))
    steps: dict[str, list[float]] = {m: [] for m in METHODS}
    last_round = 0.0
    for i in range(opts.repeats + 1):  # interleaved: every method once per round; round 0 is the warm-up
        if i > 1 and steps_end is not None and time.perf_counter() + last_round > steps_end:
            break  # the next round would end past the steps' share of the budget
        round_start = time.perf_counter()
        for m, trainer in trainers.items():
            sync()
            t = time.perf_counter()
            trainer.training_step(trainer.model, batch, None)
            trainer.model.zero_grad(set_to_none=True)
            sync()
            if i > 0:
                steps[m].append(time.perf_counter() - t)
        last_round = time.perf_counter() - round_start
    base = statistics.median(steps["uniform"])
    out = {
        "shape": opts.shape,
        "device": torch.cuda.get_device_name() if p["device"] == "cuda" else "cpu",
        "dtype": p["dtype"],
        "lora_r": p["lora_r"],
        "completions": p["n"],
        "completion_tokens": p["length"],
        "repeats": len(steps["uniform"]),
        "repeats_asked": opts.repeats,
        "budget_s": opts.budget_s,
        "versions": versions(),
        "step_s": {m: round(statistics.median(steps[m]), 4) for m in METHODS},
        "step_vs_uniform": {m: round(statistics.median(steps[m]) / base, 3) for m in METHODS},
        "oracle": oracle_rate(trainers["uniform"], p, opts.oracle_k, sync, deadline),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if opts.out:
        Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.out).write_text(text + "\n")
    return out


if __name__ == "__main__":
    main()
