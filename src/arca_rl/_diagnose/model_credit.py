"""GRAIL, OAR-G, DelTA and answer_only in `arca diagnose` (`arca_rl.model_credit`): the sampled completions are one
batch, the k completions of a prompt its group (A_i is GRPO's advantage of their rewards), the answer is the task's
(`Task.answer_span`), and each method's unnormalised weights are computed as the trainer computes them; `score_groups`
then turns them into weights like any `"weights"` method's output."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .. import _credit_fields
from .._causal_lm import aligned_forward, device_of, eos_ids, logps_entropies, pad_id
from ..model_credit import (
    answer_only_weights,
    answer_tokens,
    delta_weights,
    embedding_scores,
    grail_weights,
    oar_g_weights,
)
from .sample import Sample

__all__ = ["model_method_salience"]


def _defaults(name: str) -> dict[str, Any]:
    """Method `name`'s settings at their defaults (no run config to take them from)."""
    given = _credit_fields.defaults()
    return {
        s.kwarg: given[field]
        for field, s in _credit_fields.settings().items()
        if s.use is _credit_fields.Use.GROUP and s.kwarg and s.kwarg.startswith(f"{name}_")
    }


def model_method_salience(
    model: Any,
    tokenizer: Any,
    samples: Sequence[Sample],
    methods: Sequence[str],
    advantages: Sequence[float],
    *,
    answer_span: Callable[[str], Any],
    temperature: float,
    batch_size: int,
    method_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, torch.Tensor]:
    """{method: [N, C] float32} (C the longest completion): each method's unnormalised token weights on the samples,
    0 on padding. Only the methods of `group_credit.MODEL_METHODS` among `methods` are computed."""
    N = len(samples)
    C = max([1, *(len(s.completion_ids) for s in samples)])
    P = max([1, *(len(s.prompt_ids) for s in samples)])
    fill = pad_id(tokenizer, eos_ids(model, tokenizer))
    ids = torch.full((N, P + C), fill, dtype=torch.long)
    att = torch.zeros((N, P + C), dtype=torch.long)
    mask = torch.zeros((N, C), dtype=torch.bool)
    for b, s in enumerate(samples):
        ids[b, P - len(s.prompt_ids) : P] = torch.tensor(s.prompt_ids, dtype=torch.long)
        att[b, P - len(s.prompt_ids) : P] = 1
        if s.completion_ids:
            ids[b, P : P + len(s.completion_ids)] = torch.tensor(s.completion_ids, dtype=torch.long)
            att[b, P : P + len(s.completion_ids)] = 1
            mask[b, : len(s.completion_ids)] = True
    device = device_of(model)
    ids, att, mask = ids.to(device), att.to(device), mask.to(device)
    adv = torch.tensor(list(advantages), dtype=torch.float32, device=device)
    scale_t = temperature if temperature > 0 else 1.0
    position_ids = (att.cumsum(-1) - 1).clamp_min(0)  # as `generate` numbers left-padded rows (aligned_forward)

    def decode(x: list[int]) -> str:
        return str(tokenizer.decode(x, skip_special_tokens=True))

    answer = answer_tokens(decode, ids[:, P:], mask, answer_span)
    out: dict[str, torch.Tensor] = {}
    for name in methods:
        kw = {**_defaults(name), **dict((method_kwargs or {}).get(name, {}))}
        if name == "answer_only":
            omega = answer_only_weights(mask, answer, answer_weight=kw["answer_only_weight"])
        elif name in ("grail", "oar_g"):
            scores = embedding_scores(
                model, ids, att, C, answer.span, kind=name, temperature=scale_t, noise_std=kw.get("oar_g_noise", 1e-3),
                rows=batch_size, position_ids=position_ids,
            )  # fmt: skip
            if name == "grail":
                forced = kw["grail_answer_weight"]
                omega = grail_weights(
                    scores, mask, answer, adv, std=kw["grail_std"], low=kw["grail_min"], high=kw["grail_max"],
                    answer_weight=forced if forced > 0 else None, wrong_only=kw["grail_wrong_only"],
                )  # fmt: skip
            else:
                omega = oar_g_weights(
                    scores, mask, answer.found, tau=kw["oar_g_tau"], floor=kw["oar_g_floor"], boost=kw["oar_g_boost"]
                )
        elif name == "delta":
            hidden_rows, logp_rows = [], []
            for r0 in range(0, N, max(1, batch_size)):
                chunk = slice(r0, r0 + max(1, batch_size))
                logits, hidden = aligned_forward(model, ids[chunk], att[chunk], P, C, True)
                logps, _ = logps_entropies(logits, ids[chunk, P:], mask[chunk], scale_t, False)
                del logits
                assert hidden is not None  # asked for
                hidden_rows.append(hidden.float())
                logp_rows.append(logps.float())
            omega = delta_weights(
                torch.cat(hidden_rows), torch.cat(logp_rows), mask, adv, low=kw["delta_low"], high=kw["delta_high"],
                gate=kw["delta_gate"], steps=kw["delta_steps"],
            )  # fmt: skip
        else:
            continue
        out[name] = omega.float().cpu()
    return out
