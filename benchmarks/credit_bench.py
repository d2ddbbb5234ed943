"""Cost of the credit pipeline on this CPU: salience + token_weights + summarize, per signal.

    python benchmarks/credit_bench.py [--batch 64] [--tokens 4096] [--hidden 256] [--threads N]

Target: < 100 ms per signal at B=64, T=4096, D=256 with float32 inputs, so that the credit
weights and their diagnostics cost nothing next to a forward pass. Each row is timed `--repeats`
times after two warm-up runs and shows the median and min wall time and the median process CPU
time (all threads), in ms; the median wall time is the figure held to the target. On a machine
shared with other jobs the CPU column shows the work done, where wall time also counts waiting
for a core. One torch thread by default (as in tests/conftest.py): on a busy 2-core machine, extra
OpenMP threads spin-wait and the same work takes 5-30x longer; `--threads 0` uses torch's default.

For information only (no target): the arca residual norm at D=2048 with bf16 inputs (a real
model's hidden size and dtype) and `token_entropy` on a modest vocabulary.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from arca_rl.credit import residual_norm, salience, token_entropy, token_weights
from arca_rl.diagnostics import summarize

TARGET_MS = 100.0
SIGNALS = ("uniform", "surprisal", "entropy_reduction", "divergence", "arca")


def timed_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> tuple[float, float, float]:
    """(median wall, min wall, median CPU) milliseconds of fn() over `repeats` timed runs."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def row(label: str, times: tuple[float, float, float], rest: str) -> str:
    med, best, cpu = times
    return f"{label:<20}{med:>8.1f}{best:>8.1f}{cpu:>8.1f}  {rest}"


def make_inputs(B: int, T: int, D: int, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Synthetic float32 inputs: right-padded rows of random length in [T/4, T]."""
    lengths = torch.randint(T // 4, T + 1, (B,), generator=gen)
    mask = (torch.arange(T) < lengths[:, None]).long()
    logps = -torch.empty(B, T).exponential_(1.0, generator=gen)
    hidden = torch.randn(B, T, D, generator=gen)
    inputs = {
        "logps": logps,
        "ref_logps": logps + 0.05 * torch.randn(B, T, generator=gen),
        "entropies": 3 * torch.rand(B, T, generator=gen),
        "hidden": hidden,
        "base_hidden": hidden + 0.1 * torch.randn(B, T, D, generator=gen),
    }
    return mask, inputs


def bench_signals(B: int, T: int, D: int, repeats: int, gen: torch.Generator) -> None:
    mask, inputs = make_inputs(B, T, D, gen)
    print(f"salience + token_weights(power=2) + summarize, B={B} T={T} D={D} float32")
    print(
        f"{'signal':<20}{'median':>8}{'min':>8}{'cpu':>8}  {'<100ms':<6}  {'gini':>6}  {'EffN/T':>6}  regime"
    )
    for name in SIGNALS:
        out: dict = {}

        def step(name: str = name, out: dict = out) -> None:
            alpha = salience(name, mask=mask, **inputs)
            w = token_weights(alpha, mask, power=2.0)
            out.update(summarize(w, mask))

        times = timed_ms(step, repeats)
        ok = "ok" if times[0] < TARGET_MS else "MISS"
        figures = f"{out['gini']:>6.3f}  {out['effective_token_ratio']:>6.3f}  {out['regime']}"
        print(row(name, times, f"{ok:<6}  {figures}"))


def bench_residual_norm(B: int, T: int, D: int, repeats: int, gen: torch.Generator) -> str:
    h = torch.randn(B, T, D, generator=gen).bfloat16()
    hb = (h.float() + 0.1 * torch.randn(B, T, D, generator=gen)).bfloat16()
    gib = 2 * h.numel() * h.element_size() / 2**30
    times = timed_ms(lambda: residual_norm(h, hb), repeats)
    return row("residual_norm", times, f"B={B} T={T} D={D} bf16 ({gib:.2f} GiB of inputs)")


def bench_entropy(B: int, T: int, V: int, repeats: int, gen: torch.Generator) -> str:
    logits = torch.randn(B, T, V, generator=gen).bfloat16()
    mask = torch.ones(B, T)
    times = timed_ms(lambda: token_entropy(logits, mask), repeats)
    return row("token_entropy", times, f"B={B} T={T} V={V} bf16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (0: torch's default); see the docstring"
    )
    ap.add_argument("--big-batch", type=int, default=16, help="B of the bf16 residual-norm row")
    ap.add_argument("--big-hidden", type=int, default=2048, help="D of the bf16 residual-norm row")
    ap.add_argument("--vocab", type=int, default=32768, help="V of the token_entropy rows")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load {load}")
    print(f"ms: median and min wall time, median CPU time, over {args.repeats} runs after 2 warm-ups\n")

    bench_signals(args.batch, args.tokens, args.hidden, args.repeats, gen)
    print("\nfor information (no target)")
    print(f"{'':<20}{'median':>8}{'min':>8}{'cpu':>8}")
    print(bench_residual_norm(args.big_batch, args.tokens, args.big_hidden, args.repeats, gen))
    print(bench_entropy(4, 512, args.vocab, args.repeats, gen))


if __name__ == "__main__":
    main()
