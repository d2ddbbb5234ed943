"""Step 1 of diagnose: sample k completions per prompt, kept as token ids (prompt and completion)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .. import _causal_lm
from .._causal_lm import completion_tokens, device_of, eos_ids, pad_id, seeded

__all__ = ["Sample", "sample"]


@dataclass
class Sample:
    """One sampled completion of prompt `prompt_index`."""

    prompt_index: int
    sample_index: int
    """Which of the prompt's k completions this is."""
    prompt_ids: list[int]
    """The prompt's tokens, without padding."""
    completion_ids: list[int]
    """The completion's tokens up to and including the first EOS."""
    finished: bool
    """The completion ended with an EOS (False: cut at max_new_tokens)."""


def sample(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    k: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    batch_size: int,
    say: Callable[[str], None],
) -> list[Sample]:
    """k completions of each rendered prompt (temperature 0: greedy), in prompt order.

    Generation is seeded with `seed` and the global RNG state is restored afterwards; the tokenizer
    pads on the left during generation and gets its own padding side back.
    """
    _causal_lm.contiguous_head_input(model)  # a frozen head copies its weight per row otherwise (bf16: seconds)
    eos = eos_ids(model, tokenizer)
    device = device_of(model)
    samples: list[Sample] = []
    per_call = max(1, batch_size // k)
    old_side = getattr(tokenizer, "padding_side", "right")
    tokenizer.padding_side = "left"
    try:
        with seeded(model, seed):
            for start in range(0, len(texts), per_call):
                chunk = list(texts[start : start + per_call])
                enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
                gen_kwargs: dict[str, Any] = {
                    "max_new_tokens": max_new_tokens,
                    "num_return_sequences": k,
                    "pad_token_id": pad_id(tokenizer, eos),
                    "eos_token_id": eos or None,
                }
                if temperature > 0:
                    gen_kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
                else:
                    gen_kwargs.update(do_sample=False)
                with torch.no_grad():
                    seqs = model.generate(**enc, **gen_kwargs)
                width = enc["input_ids"].shape[1]
                for row in range(seqs.shape[0]):
                    attention = enc["attention_mask"][row // k]
                    prompt_ids = enc["input_ids"][row // k][attention.bool()].tolist()
                    completion_ids, finished = completion_tokens(seqs[row, width:].tolist(), eos)
                    samples.append(Sample(start + row // k, row % k, prompt_ids, completion_ids, finished))
                say(f"sampled {min(start + per_call, len(texts))}/{len(texts)} prompts x {k}")
    finally:
        tokenizer.padding_side = old_side
    return samples
