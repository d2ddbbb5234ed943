"""The oracle on diagnose's rollouts: `sample_oracle` groups the rollouts by prompt, checks their rewards, samples the
continuations (`arca_rl.oracle.oracle_values` with `arca_rl.oracle.sampler.model_sampler`, the KV-cache sampler)
and returns one `OracleRow` per rollout."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from .._causal_lm import seeded
from ..oracle import OracleRow, check_positions, check_reward, check_samples, estimate_rollouts, oracle_values
from ..oracle.sampler import model_sampler

__all__ = ["model_sampler", "sample_oracle", "strict_reward"]


def strict_reward(fn: Callable[[int, str], Any], prompt_index: int, text: str) -> float:
    """`fn(prompt_index, text)` as a finite float; anything else (an exception, None, NaN) is a
    ValueError saying which rollout it was, so a broken reward stops the oracle before it samples."""
    try:
        value = fn(prompt_index, text)
    except Exception as exc:
        raise ValueError(
            f"reward function raised {type(exc).__name__}: {exc} on a rollout of prompt {prompt_index} "
            f"({text[:60]!r}); the oracle needs a reward for every completion"
        ) from exc
    return check_reward(value, f"a rollout of prompt {prompt_index} ({text[:60]!r})")


def sample_oracle(
    model: Any,
    tokenizer: Any,
    rollouts: Sequence[tuple[int, list[int], list[int], float]],
    reward: Callable[[int, str], Any],
    *,
    samples: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    eos_ids: Sequence[int],
    seed: int = 0,
    batch_rows: int = 1024,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
    positions: str = "adaptive",
    seeds: Sequence[list[int]] | None = None,
) -> tuple[list[OracleRow], int, int]:
    """The oracle rows of sampled rollouts, in their order, the continuations sampled and the worst case (what
    `positions="all"` samples).

    `rollouts`: (prompt index, prompt ids, completion ids, the completion's reward) per completion;
    `reward(prompt_index, completion_text)` scores the continuations (text decoded without special
    tokens, as the rollouts'). `positions`: "adaptive" or "all" (`arca_rl.oracle.oracle_values`); `seeds`: per
    rollout, prefixes the adaptive oracle samples first (e.g. `arca_rl.oracle.step_boundaries`). Prints the
    worst-case number of continuations first, then shows a progress bar (stderr) and prints the number sampled.
    Sampling is seeded with `seed` (the global RNG state is restored after).
    """
    check_samples(samples)
    check_positions(positions)
    if seeds is not None and len(seeds) != len(rollouts):
        raise ValueError(f"seeds: one list of positions per rollout, got {len(seeds)} for {len(rollouts)} rollouts")
    order: list[int] = []  # rollout indices grouped by prompt, first appearance order
    groups: dict[int, list[int]] = {}
    for r, (i, *_rest) in enumerate(rollouts):
        groups.setdefault(i, []).append(r)
    prompt_keys = list(groups)
    group_args = []
    for i in prompt_keys:
        rs = groups[i]
        order.extend(rs)
        group_args.append((list(rollouts[rs[0]][1]), [(list(rollouts[r][2]), rollouts[r][3]) for r in rs]))
    total = estimate_rollouts([[len(c) for c, _ in comps] for _p, comps in group_args], samples)
    if say is not None:
        say(
            f"oracle ({positions} positions): at most {total} rollouts = {samples} continuations per prefix of "
            f"{len(rollouts)} completions (K x (prompts + sum of (T - 1)))"
        )

    def score(g: int, comps: list[list[int]]) -> list[float]:
        i = prompt_keys[g]
        return [strict_reward(reward, i, tokenizer.decode(c, skip_special_tokens=True)) for c in comps]

    sampler = model_sampler(model, temperature=temperature, top_p=top_p, eos_ids=eos_ids)
    sampled = 0

    def count(n: int) -> None:
        nonlocal sampled
        sampled += n
        bar.update(n)

    bar = tqdm(total=total, desc="oracle", unit="rollout", disable=not progress, smoothing=0.1)
    try:
        with seeded(model, seed):
            per_group = oracle_values(
                group_args,
                sampler,
                score,
                samples=samples,
                max_new_tokens=max_new_tokens,
                batch_rows=batch_rows,
                on_rollouts=count,
                positions=positions,
                seeds=None if seeds is None else [[list(seeds[r]) for r in groups[i]] for i in prompt_keys],
            )
    finally:
        bar.close()
    if say is not None:
        say(f"oracle: sampled {sampled} rollouts ({sampled / max(total, 1):.1%} of the {total} of every prefix)")
    rows: list[OracleRow | None] = [None] * len(rollouts)
    flat = [row for g in per_group for row in g]
    for r, row in zip(order, flat):
        rows[r] = row
    return [row for row in rows if row is not None], sampled, total
