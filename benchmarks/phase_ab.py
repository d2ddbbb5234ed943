"""Per-phase timing of a uniform and an arca trainer in one process, taking turns (diagnosis of step-time gaps).

    python benchmarks/phase_ab.py SHAPE DEVICE COMPLETION_LEN BETA     # e.g. qwen3-1.7b cuda 128 0.04

Prints, per step, the total and the time inside TRL's generation, its scoring forwards, the base pass, the
credit computation (`_token_weights`, `_apply_credit`), rewards and the loss (nested: `_compute_loss` includes
the training forward, which includes `_token_weights`). Result files from before the credit routing was shared with
RLOO name the credit computation `_assign_token_advantages`.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from step_cost import build_trainer  # noqa: E402


def make(signal: str, shape_name: str, device: str, length: int, beta: float, sync):
    opts = argparse.Namespace(
        shape=shape_name,
        device=device,
        dtype="bfloat16" if device == "cuda" else "float32",
        lora_r=64,
        completions=8,
        completion_len=length,
        prompt_len=32,
    )
    trainer = build_trainer(opts, signal, beta)
    trainer.phase = {}
    for name in [
        "_generate",
        "_get_per_token_logps_and_entropies",
        "_base_pass",
        "_token_weights",  # salience, weights and their diagnostics (float32, no grad)
        "_apply_credit",  # token advantages (GRPO) / weighted log-probs (RLOO)
        "_calculate_rewards",
        "_compute_loss",
    ]:
        fn = getattr(trainer, name)

        def wrapped(*a, _fn=fn, _name=name, **k):
            sync()
            t0 = time.perf_counter()
            out = _fn(*a, **k)
            sync()
            trainer.phase[_name] = trainer.phase.get(_name, 0) + time.perf_counter() - t0
            return out

        setattr(trainer, name, wrapped)
    return trainer


def main() -> None:
    shape_name, device, length, beta = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    trainers = {s: make(s, shape_name, device, length, beta, sync) for s in ["uniform", "arca"]}
    batch = next(iter(trainers["uniform"].get_train_dataloader()))
    rows: dict[str, list[dict]] = {s: [] for s in trainers}
    for rep in range(4):
        for s, trainer in trainers.items():
            trainer.phase = {}
            sync()
            t0 = time.perf_counter()
            trainer.training_step(trainer.model, batch, None)
            sync()
            row = {
                "total": round(time.perf_counter() - t0, 4),
                **{k: round(v, 4) for k, v in trainer.phase.items()},
            }
            trainer.model.zero_grad(set_to_none=True)
            print(s, row, flush=True)
            if rep:  # the first round is warm-up
                rows[s].append(row)
    for s, rs in rows.items():
        print("median", s, {k: round(statistics.median(r.get(k, 0.0) for r in rs), 4) for k in rs[0]})


if __name__ == "__main__":
    main()
