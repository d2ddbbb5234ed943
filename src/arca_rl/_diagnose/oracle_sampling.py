"""The oracle on a transformers model, for `arca diagnose`: a KV-cache sampler and the glue that runs the
estimator of `arca_rl.oracle` on diagnose's rollouts.

`model_sampler` continues every prefix of one completion from a single forward pass of the completion (its
KV cache copied to each continuation); `sample_oracle` groups the rollouts by prompt, checks their rewards,
samples the continuations (`oracle.oracle_values`) and returns one `oracle.OracleRow` per rollout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from .._causal_lm import seeded
from ..oracle import OracleRow, Sampler, check_reward, check_samples, estimate_rollouts, oracle_values

__all__ = ["model_sampler", "sample_oracle", "strict_reward"]


def model_sampler(
    model: Any,
    *,
    temperature: float,
    top_p: float,
    eos_ids: Sequence[int],
) -> Sampler:
    """A `Sampler` for a transformers causal LM (PEFT adapters included), sharing the prefix.

    All rows of one call continue prefixes of the same sequence, so the sequence is run through the
    model once (one row) and its KV cache is copied to every row; row i then sees only the first
    `cuts[i]` cached positions (the others are masked out, and its new tokens are numbered from
    cuts[i] on), which is exactly the cache of its own prefix. Its first token comes from the logits
    at position cuts[i] - 1 of that one forward. Rows leave the batch when they emit an EOS or use
    up their budget.

    Sampling is `generate`'s: logits / temperature, then transformers' own top-p warper, then a
    multinomial draw (temperature 0 = greedy); no top-k, as in `arca diagnose`'s rollouts.
    """
    eos = torch.tensor(sorted(set(eos_ids)) or [-1], dtype=torch.long)
    try:
        device = next(model.parameters()).device
    except StopIteration:  # pragma: no cover
        device = torch.device("cpu")
    warpers: list[Any] = []
    if temperature > 0:
        warpers.append(TemperatureLogitsWarper(temperature))
        if top_p < 1.0:
            warpers.append(TopPLogitsWarper(top_p))

    def pick(logits: Any) -> Any:
        z = logits.float()
        if not warpers:
            return z.argmax(-1)
        for w in warpers:
            z = w(None, z)
        return torch.multinomial(torch.softmax(z, dim=-1), 1).squeeze(-1)

    def sample(seq: list[int], cuts: list[int], budgets: list[int]) -> list[list[int]]:
        n = len(cuts)
        if n == 0:
            return []
        L = len(seq)
        if min(cuts) < 1 or max(cuts) > L or len(budgets) != n:
            raise ValueError("model_sampler: each cut must be in 1 .. len(sequence), one budget per cut")
        outs: list[list[int]] = [[] for _ in range(n)]
        if max(budgets) < 1:
            return outs
        # positions past the longest prefix are never attended to: leave them out of the one forward
        x = torch.tensor([seq[: max(cuts)]], dtype=torch.long, device=device)
        W = x.shape[1]
        cut_t = torch.tensor(cuts, dtype=torch.long, device=device)
        with torch.no_grad():
            first = model(input_ids=x, use_cache=True)
            # transformers 5.x names the cache `cache` in newer releases, `past_key_values` before
            cache_kw = "cache" if getattr(first, "cache", None) is not None else "past_key_values"
            cache = getattr(first, cache_kw)
            tok = pick(first.logits[0].index_select(0, cut_t - 1))  # [n]: each row's first new token
            del first
            rows = torch.arange(n, device=device)
            cache.batch_repeat_interleave(n)
            # cached positions: row i keeps 0 .. cuts[i] - 1
            mask = (torch.arange(W, device=device)[None, :] < cut_t[:, None]).long()
            budget_t = torch.tensor(budgets, dtype=torch.long, device=device)
            eos_d = eos.to(device)
            step = 0
            while True:
                for r, t in zip(rows.tolist(), tok.tolist()):
                    outs[r].append(t)
                step += 1
                alive = ~torch.isin(tok, eos_d) & (budget_t[rows] > step)
                if not bool(alive.any()):
                    break
                if not bool(alive.all()):
                    keep = alive.nonzero().squeeze(-1)
                    rows, tok, mask = rows[keep], tok[keep], mask[keep]
                    cache.batch_select_indices(keep)
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                pos = (cut_t[rows] + step - 1)[:, None]  # the token being fed is new token number `step`
                out = model(
                    input_ids=tok[:, None],
                    attention_mask=mask,
                    position_ids=pos,
                    use_cache=True,
                    **{cache_kw: cache},
                )
                cache = getattr(out, cache_kw)
                tok = pick(out.logits[:, -1])
        return [o[:b] for o, b in zip(outs, budgets)]

    return sample


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
) -> list[OracleRow]:
    """The oracle rows of sampled rollouts, in their order.

    `rollouts`: (prompt index, prompt ids, completion ids, the completion's reward) per completion;
    `reward(prompt_index, completion_text)` scores the continuations (text decoded without special
    tokens, as the rollouts'). Prints the number of continuations it will sample first, then shows a
    progress bar (stderr). Sampling is seeded with `seed` (the global RNG state is restored after).
    """
    check_samples(samples)
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
            f"oracle: {samples} continuations per prefix of {len(rollouts)} completions = {total} rollouts "
            f"(K x (prompts + sum of (T - 1)))"
        )

    def score(g: int, comps: list[list[int]]) -> list[float]:
        i = prompt_keys[g]
        return [strict_reward(reward, i, tokenizer.decode(c, skip_special_tokens=True)) for c in comps]

    sampler = model_sampler(model, temperature=temperature, top_p=top_p, eos_ids=eos_ids)
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
                on_rollouts=bar.update,
            )
    finally:
        bar.close()
    rows: list[OracleRow | None] = [None] * len(rollouts)
    flat = [row for g in per_group for row in g]
    for r, row in zip(order, flat):
        rows[r] = row
    return [row for row in rows if row is not None]
