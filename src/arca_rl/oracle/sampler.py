"""The oracle's sampler for a transformers causal LM (PEFT adapters included): every row continues a prefix of one
of a few sequences, each sequence run through the model once and its KV cache shared by its rows. Used by
`arca diagnose --oracle` and `credit: vine` (`arca_rl.oracle.oracle_values`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from .positions import Sampler

__all__ = ["model_sampler"]


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

    Its `many` attribute (a `BatchSampler`) does the same over several sequences in one call: they are run
    through the model together (right-padded, one row each) and each row gets its own sequence's cache.

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

    def many(sequences: list[list[int]], seq_rows: list[int], cuts: list[int], budgets: list[int]) -> list[list[int]]:
        n = len(cuts)
        if n == 0:
            return []
        if len(budgets) != n or len(seq_rows) != n or not sequences:
            raise ValueError("model_sampler: one sequence index, cut and budget per row")
        if min(seq_rows) < 0 or max(seq_rows) >= len(sequences):
            raise ValueError(f"model_sampler: sequence indices must be in 0 .. {len(sequences) - 1}")
        if any(c < 1 or c > len(sequences[s]) for s, c in zip(seq_rows, cuts)):
            raise ValueError("model_sampler: each cut must be in 1 .. len(sequence), one budget per cut")
        outs: list[list[int]] = [[] for _ in range(n)]
        if max(budgets) < 1:
            return outs
        # positions past a sequence's longest prefix are never attended to: leave them out of its forward.
        # Right-padded: a causal model never lets a real position see the padding after it.
        width = [0] * len(sequences)
        for s, c in zip(seq_rows, cuts):
            width[s] = max(width[s], c)
        W = max(width)
        x = torch.tensor([list(seq[: width[s]]) + [0] * (W - width[s]) for s, seq in enumerate(sequences)],
                         dtype=torch.long, device=device)  # fmt: skip
        cut_t = torch.tensor(cuts, dtype=torch.long, device=device)
        seq_t = torch.tensor(seq_rows, dtype=torch.long, device=device)
        with torch.no_grad():
            first = model(input_ids=x, use_cache=True)
            # transformers 5.x names the cache `cache` in newer releases, `past_key_values` before
            cache_kw = "cache" if getattr(first, "cache", None) is not None else "past_key_values"
            cache = getattr(first, cache_kw)
            tok = pick(first.logits[seq_t, cut_t - 1])  # [n]: each row's first new token
            del first
            rows = torch.arange(n, device=device)
            if len(sequences) == 1:
                cache.batch_repeat_interleave(n)
            else:
                cache.batch_select_indices(seq_t)  # row i gets its sequence's cache
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

    def sample(seq: list[int], cuts: list[int], budgets: list[int]) -> list[list[int]]:
        return many([seq], [0] * len(cuts), cuts, budgets)

    sample.many = many  # type: ignore[attr-defined]  # the `BatchSampler` over several sequences
    return sample
