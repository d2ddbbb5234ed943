"""The self-teacher in `arca diagnose` (`credit: self_teacher`, `arca_rl.self_teacher`): the k completions of a prompt
are its group; a completion whose group holds a verified sibling is read by the model after its own prompt and after
the teacher context, and the per-token KL(pi_S || pi_T) is its salience (0 without a teacher), as the trainer
computes it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .._causal_lm import device_of, eos_ids, pad_id
from ..self_teacher import choose_teachers, teacher_kl, teacher_prompt_ids
from .sample import Sample

__all__ = ["self_teacher_salience"]


def self_teacher_salience(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Any],
    samples: Sequence[Sample],
    rewards: Sequence[float],
    *,
    threshold: float | None,
    temperature: float,
    batch_size: int,
) -> torch.Tensor:
    """[N, C] float32 (C the longest completion): each sample's KL(pi_S || pi_T) per token, 0 for a sample with no
    teacher and on padding. `prompts` are the prompts as given (strings or chat messages), by `prompt_index`."""
    N = len(samples)
    C = max([1, *(len(s.completion_ids) for s in samples)])
    out = torch.zeros(N, C, dtype=torch.float32)
    teachers = choose_teachers(rewards, [s.prompt_index for s in samples], threshold)
    rows = [b for b in range(N) if teachers[b] >= 0 and samples[b].completion_ids]
    if not rows:
        return out
    max_len = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    t_prompts = []
    for b in list(rows):
        solution = tokenizer.decode(samples[teachers[b]].completion_ids, skip_special_tokens=True)
        fitted = teacher_prompt_ids(
            tokenizer, prompts[samples[b].prompt_index], solution, len(samples[b].completion_ids), max_len
        )
        if fitted is None:  # not one solution token fits within the model's positions: no teacher, as in training
            rows.remove(b)
            continue
        t_prompts.append(fitted[0])
    if not rows:
        return out
    fill = pad_id(tokenizer, eos_ids(model, tokenizer))

    def left_padded(prompt_rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        P = max(len(p) for p in prompt_rows)
        ids = torch.full((len(rows), P + C), fill, dtype=torch.long)
        att = torch.zeros((len(rows), P + C), dtype=torch.long)
        for r, (p, b) in enumerate(zip(prompt_rows, rows)):
            c = samples[b].completion_ids
            ids[r, P - len(p) : P] = torch.tensor(p, dtype=torch.long)
            ids[r, P : P + len(c)] = torch.tensor(c, dtype=torch.long)
            att[r, P - len(p) : P + len(c)] = 1
        return ids, att

    s_ids, s_att = left_padded([samples[b].prompt_ids for b in rows])
    t_ids, t_att = left_padded(t_prompts)
    mask = s_att[:, s_att.shape[1] - C :].bool()
    device = device_of(model)
    kl, _ = teacher_kl(
        model, s_ids.to(device), s_att.to(device), t_ids.to(device), t_att.to(device), C, mask.to(device),
        temperature=temperature if temperature > 0 else 1.0, rows=batch_size,
    )  # fmt: skip
    out[rows] = kl.float().cpu()
    return out
