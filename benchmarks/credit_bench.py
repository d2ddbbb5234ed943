"""Cost of credit on this CPU: salience + token_weights + summarize per signal; µs a token per group method.

    python benchmarks/credit_bench.py [--batch 64] [--tokens 4096] [--hidden 256] [--threads N]
                                      [--group-rows 512] [--group-size 16] [--group-tokens 2560]

Target: < 100 ms per signal at B=64, T=4096, D=256 with float32 inputs, so that the credit
weights and their diagnostics cost nothing next to a forward pass. Each row is timed `--repeats`
times after two warm-up runs and shows the median and min wall time and the median process CPU
time (all threads), in ms; the median wall time is the figure held to the target. On a machine
shared with other jobs the CPU column shows the work done, where wall time also counts waiting
for a core. One torch thread by default (as in tests/conftest.py): on a busy 2-core machine, extra
OpenMP threads spin-wait and the same work takes 5-30x longer; `--threads 0` uses torch's default.

Group methods (KTAE, TEMPO, GTPO, HICRA through `group_credit`): µs a real token at about 1M tokens (512 rows in
groups of 16, lengths in [T/2, T] with T = 2560, siblings sharing a random prefix so that TEMPO's prefix tree
branches), median and min wall time and median CPU time over `--group-repeats` runs. Target: TEMPO <= 0.2 µs a
token on one core (the CPU column: one thread's time, what the wall time is on an idle core), about 3 s a step at
verl's 16M tokens.

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
from arca_rl.group_credit import group_credit

TARGET_MS = 100.0
TEMPO_TARGET_US = 0.2  # µs a token, one core
GROUP_METHODS = ("ktae", "tempo", "gtpo", "hicra")
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


def make_group_inputs(B: int, G: int, T: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A batch of B rows in groups of G (group ids shuffled over the batch), right-padded to T, lengths in
    [T/2, T]; each row copies a random-length prefix of the row before it in its group, then branches. 0/1
    rewards, GRPO's advantages, entropies in [0, 3)."""
    groups = torch.randperm(B, generator=gen) // G
    ids = torch.randint(0, 32000, (B, T), generator=gen)
    for g in range(int(groups.max()) + 1):
        rows = (groups == g).nonzero().squeeze(-1).tolist()
        for prev, r in zip(rows, rows[1:]):
            k = int(torch.randint(0, T, (1,), generator=gen))
            ids[r, :k] = ids[prev, :k]
    lengths = torch.randint(T // 2, T + 1, (B,), generator=gen)
    mask = torch.arange(T) < lengths[:, None]
    rewards = (torch.rand(B, generator=gen) < 0.5).float()
    size = torch.bincount(groups).float()
    mean = (torch.bincount(groups, weights=rewards) / size)[groups]
    sq = (torch.bincount(groups, weights=(rewards - mean) ** 2) / (size - 1).clamp_min(1))[groups]
    return {
        "mask": mask, "groups": groups, "completion_ids": ids, "rewards": rewards,
        "advantages": ((rewards - mean) / (sq.sqrt() + 1e-4)).float(),
        "entropies": 3 * torch.rand(B, T, generator=gen),
    }


def bench_group_methods(B: int, G: int, T: int, repeats: int, gen: torch.Generator) -> None:
    inputs = make_group_inputs(B, G, T, gen)
    n = int(inputs["mask"].sum())
    print(f"group_credit, {B} rows in groups of {G}, T={T}: {n:,} real tokens (µs a token)")
    print(f"{'method':<20}{'median':>8}{'min':>8}{'cpu':>8}  target")
    for name in GROUP_METHODS:
        times = timed_ms(lambda name=name: group_credit(name, **inputs), repeats, warmup=1)
        us = tuple(t * 1e3 / n for t in times)  # ms -> µs, per real token
        verdict = ""
        if name == "tempo":
            verdict = f"<= {TEMPO_TARGET_US} on one core: {'ok' if us[2] <= TEMPO_TARGET_US else 'MISS'} (cpu)"
        print(f"{name:<20}{us[0]:>8.3f}{us[1]:>8.3f}{us[2]:>8.3f}  {verdict}")


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
    ap.add_argument("--group-rows", type=int, default=512, help="rows of the group-method rows")
    ap.add_argument("--group-size", type=int, default=16, help="completions a prompt in the group-method rows")
    ap.add_argument("--group-tokens", type=int, default=2560, help="T of the group-method rows")
    ap.add_argument("--group-repeats", type=int, default=3)
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
    print()
    bench_group_methods(args.group_rows, args.group_size, args.group_tokens, args.group_repeats, gen)
    print("\nfor information (no target)")
    print(f"{'':<20}{'median':>8}{'min':>8}{'cpu':>8}")
    print(bench_residual_norm(args.big_batch, args.tokens, args.big_hidden, args.repeats, gen))
    print(bench_entropy(4, 512, args.vocab, args.repeats, gen))


if __name__ == "__main__":
    main()
