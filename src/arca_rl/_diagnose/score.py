"""Step 2 of diagnose: every signal's salience and weights on the sampled completions.

Per batch of completions: one adapter-on forward (log pi, entropy, last hidden state) and, when a
scored signal needs it (`credit.needs_base`), one adapter-off forward (log pi_ref, base hidden
state), both aligned as the trainer aligns them (`_causal_lm.aligned_forward`). Then
`credit.salience` and `credit.token_weights` with the run's weight settings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import credit
from .._causal_lm import adapter_disabled, aligned_forward, device_of, eos_ids, logps_entropies, pad_id
from .sample import Sample

__all__ = ["Scores", "score", "scorable"]


@dataclass
class Scores:
    """Per completion (in the order of the samples): each scored signal's weights and raw salience."""

    weights: list[dict[str, list[float]]]
    salience: list[dict[str, list[float]]]
    failed: dict[str, str] = field(default_factory=dict)
    """Signals whose scoring raised (user-registered ones may), with the reason; absent from the lists."""


def scorable(signals: Sequence[str], has_adapter: bool) -> tuple[list[str], dict[str, str]]:
    """(the signals that can be scored, {signal: why not} for the others): without an adapter there is
    no adapter-off pass, so signals that need the base cannot be scored."""
    scored: list[str] = []
    absent: dict[str, str] = {}
    for s in signals:
        if credit.needs_base(s) and not has_adapter:
            missing = sorted(credit.signal_needs(s) & credit.BASE_INPUTS)
            absent[s] = (
                f"needs the adapter-off pass ({', '.join(missing)}), but the model has no PEFT adapter "
                "(pass an adapter, e.g. --adapter runs/<name>)"
            )
        else:
            scored.append(s)
    return scored, absent


def score(
    model: Any,
    tokenizer: Any,
    samples: Sequence[Sample],
    signals: Sequence[str],
    *,
    temperature: float,
    weight_kwargs: Mapping[str, Any],
    batch_size: int,
    say: Callable[[str], None],
    mix: float = 1.0,
) -> Scores:
    """Score `signals` (all scorable on `model`) on every sample.

    Log-probabilities and entropies are taken at the sampling temperature (1 for greedy), as TRL
    does. `weight_kwargs` go to `credit.token_weights` (eps, power, min_salience); the weights are then
    blended with uniform credit by `credit.mix_weights(w, mask, mix)` (a run's credit_mix lambda).
    """
    needs: set[str] = set()
    for s in signals:
        needs |= credit.signal_needs(s)
    want_hidden = bool({"hidden", "base_hidden"} & needs)
    need_base = any(credit.needs_base(s) for s in signals)
    scale_t = temperature if temperature > 0 else 1.0
    fill = pad_id(tokenizer, eos_ids(model, tokenizer))
    device = device_of(model)

    out = Scores(weights=[], salience=[])
    for start in range(0, len(samples), batch_size):
        batch = samples[start : start + batch_size]
        B = len(batch)
        P = max(len(s.prompt_ids) for s in batch)
        C = max(1, max(len(s.completion_ids) for s in batch))
        ids = torch.full((B, P + C), fill, dtype=torch.long)
        att = torch.zeros((B, P + C), dtype=torch.long)
        mask = torch.zeros((B, C), dtype=torch.bool)
        for b, smp in enumerate(batch):
            p_ids, c_ids = smp.prompt_ids, smp.completion_ids
            ids[b, P - len(p_ids) : P] = torch.tensor(p_ids, dtype=torch.long)
            att[b, P - len(p_ids) : P] = 1
            if c_ids:
                ids[b, P : P + len(c_ids)] = torch.tensor(c_ids, dtype=torch.long)
                att[b, P : P + len(c_ids)] = 1
                mask[b, : len(c_ids)] = True
        ids, att, mask = ids.to(device), att.to(device), mask.to(device)
        targets = ids[:, P:]

        logits, hidden = aligned_forward(model, ids, att, P, C, want_hidden)
        logps, ents = logps_entropies(logits, targets, mask, scale_t, "entropies" in needs)
        del logits
        ref_logps = base_hidden = None
        if need_base:
            with adapter_disabled(model):
                ref_logits, base_hidden = aligned_forward(model, ids, att, P, C, want_hidden)
            ref_logps, _ = logps_entropies(ref_logits, targets, mask, scale_t, False)
            del ref_logits
        inputs = {
            "logps": logps,
            "entropies": ents,
            "ref_logps": ref_logps,
            "hidden": hidden.float() if hidden is not None else None,
            "base_hidden": base_hidden.float() if base_hidden is not None else None,
        }
        salience_b: dict[str, torch.Tensor] = {}
        weights_b: dict[str, torch.Tensor] = {}
        for s in signals:
            if s in out.failed:
                continue
            try:
                alpha = credit.salience(s, mask=mask, **{key: inputs[key] for key in credit.signal_needs(s)})
                w = credit.mix_weights(credit.token_weights(alpha, mask, **weight_kwargs), mask, mix)
            except Exception as exc:  # a user-registered signal may fail; report it, keep the others
                out.failed[s] = f"scoring failed: {type(exc).__name__}: {exc}"
                continue
            salience_b[s], weights_b[s] = alpha.cpu(), w.cpu()
        for b, smp in enumerate(batch):
            n = len(smp.completion_ids)
            out.weights.append({name: [float(x) for x in w[b, :n]] for name, w in weights_b.items()})
            out.salience.append({name: [float(x) for x in a[b, :n]] for name, a in salience_b.items()})
        say(f"scored {min(start + batch_size, len(samples))}/{len(samples)} completions")
    for per_completion in (*out.weights, *out.salience):  # a signal that failed late is dropped everywhere
        for name in out.failed:
            per_completion.pop(name, None)
    return out
