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

from .. import credit, group_credit
from .._causal_lm import adapter_disabled, aligned_forward, device_of, eos_ids, logps_entropies, pad_id
from .sample import Sample

__all__ = ["GroupScores", "Scores", "grpo_advantages", "score", "score_groups", "scorable"]


@dataclass
class Scores:
    """Per completion (in the order of the samples): each scored signal's weights and raw salience."""

    weights: list[dict[str, list[float]]]
    salience: list[dict[str, list[float]]]
    failed: dict[str, str] = field(default_factory=dict)
    """Signals whose scoring raised (user-registered ones may), with the reason; absent from the lists."""
    entropies: list[list[float]] = field(default_factory=list)
    """Per completion, the policy's entropy of each token (with `keep_entropies`): what group methods read."""


def scorable(signals: Sequence[str], has_adapter: bool) -> tuple[list[str], dict[str, str]]:
    """(the signals that can be scored, {signal: why not} for the others): without an adapter there is
    no adapter-off pass, so signals that need the base cannot be scored; a method that samples the policy (vine)
    is the oracle itself, never scored."""
    scored: list[str] = []
    absent: dict[str, str] = {}
    for s in signals:
        if group_credit.is_sampled_method(s):
            absent[s] = (
                "vine is the Monte Carlo oracle itself (its token advantages are the oracle's delta_t); "
                "score the other methods against it with --oracle K"
            )
        elif group_credit.method_needs_base(s) and not has_adapter:
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
    keep_entropies: bool = False,
) -> Scores:
    """Score `signals` (all scorable on `model`) on every sample.

    Log-probabilities and entropies are taken at the sampling temperature (1 for greedy), as TRL
    does. `weight_kwargs` go to `credit.token_weights` (eps, power, min_salience); the weights are then
    blended with uniform credit by `credit.mix_weights(w, mask, mix)` (a run's credit_mix lambda).
    """
    needs: set[str] = {"entropies"} if keep_entropies else set()
    for s in signals:
        needs |= credit.signal_needs(s)
    want_hidden = bool({"hidden", "base_hidden"} & needs)
    need_base = any(group_credit.method_needs_base(s) for s in signals)
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
            if keep_entropies and ents is not None:
                out.entropies.append([float(x) for x in ents[b, :n].cpu()])
            out.weights.append({name: [float(x) for x in w[b, :n]] for name, w in weights_b.items()})
            out.salience.append({name: [float(x) for x in a[b, :n]] for name, a in salience_b.items()})
        say(f"scored {min(start + batch_size, len(samples))}/{len(samples)} completions")
    for per_completion in (*out.weights, *out.salience):  # a signal that failed late is dropped everywhere
        for name in out.failed:
            per_completion.pop(name, None)
    return out


@dataclass
class GroupScores:
    """Per completion: each group method's weights (its credit shares), raw output and token advantages."""

    weights: list[dict[str, list[float]]]
    salience: list[dict[str, list[float]]]
    token_advantages: list[dict[str, list[float]]]
    failed: dict[str, str] = field(default_factory=dict)


def grpo_advantages(rewards: Sequence[float], groups: Sequence[int]) -> list[float]:
    """GRPO's sequence advantage of each completion, as TRL computes it: (R_i - mean R) / (std R + 1e-4) over its
    prompt's completions (std with K - 1 in the denominator; a prompt with one completion gets 0)."""
    r = torch.tensor(rewards, dtype=torch.float64)
    g = torch.tensor(groups, dtype=torch.long)
    out = torch.zeros_like(r)
    for key in g.unique():
        sel = g == key
        x = r[sel]
        if x.numel() > 1:
            out[sel] = (x - x.mean()) / (x.std() + 1e-4)
    return [float(v) for v in out]


def score_groups(
    samples: Sequence[Sample],
    methods: Sequence[str],
    *,
    rewards: Sequence[float],
    entropies: Sequence[Sequence[float]] | None,
    mix: float,
    method_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    precomputed: Mapping[str, torch.Tensor] | None = None,
) -> GroupScores:
    """Every group method on the samples, the k completions of a prompt being its group (`group_credit.group_credit`).

    A_i is GRPO's advantage of the rewards. A signed method's token advantages are mixed with A_i as the trainer
    mixes them, `(1 - mix) A_i + mix A_it`, and its weights are the credit shares |A_it| / sum |A_ik|
    (`group_credit.advantage_shares`); a weights method's output goes through `token_weights` and the mix like a
    signal's (its token advantages A_i * w_it * T_i). `precomputed`: the raw [N, C] output of a method that reads the
    model (self_teacher, `_diagnose.teacher`), used as it is.
    """
    N = len(samples)
    C = max([1, *(len(s.completion_ids) for s in samples)])
    ids = torch.zeros(N, C, dtype=torch.long)
    mask = torch.zeros(N, C, dtype=torch.bool)
    ent = torch.zeros(N, C, dtype=torch.float32)
    for b, s in enumerate(samples):
        n = len(s.completion_ids)
        if n:
            ids[b, :n] = torch.tensor(s.completion_ids, dtype=torch.long)
            mask[b, :n] = True
            if entropies is not None:
                ent[b, :n] = torch.tensor(entropies[b][:n], dtype=torch.float32)
    groups = torch.tensor([s.prompt_index for s in samples], dtype=torch.long)
    adv = torch.tensor(grpo_advantages(rewards, groups.tolist()), dtype=torch.float32)
    out = GroupScores(
        weights=[{} for _ in samples], salience=[{} for _ in samples], token_advantages=[{} for _ in samples]
    )
    for name in methods:
        try:
            raw = (precomputed or {}).get(name)
            raw = raw[:, :C].float() if raw is not None else group_credit.group_credit(
                name, mask=mask, groups=groups, completion_ids=ids, rewards=torch.tensor(rewards, dtype=torch.float32),
                advantages=adv, entropies=ent if entropies is not None else None,
                **dict((method_kwargs or {}).get(name, {})),
            )  # fmt: skip
            if group_credit.group_method_output(name) == "advantages":
                tok = group_credit.mix_advantages(raw, adv, mask, mix)  # (1 - mix) A_i + mix A_it
                w = group_credit.advantage_shares(tok, mask)
            else:
                w = credit.mix_weights(credit.token_weights(raw, mask), mask, mix)
                tok = adv.unsqueeze(1) * w * mask.sum(1, keepdim=True)  # A_i * w_it * T_i
        except Exception as exc:  # a user-registered method may fail; report it, keep the others
            out.failed[name] = f"scoring failed: {type(exc).__name__}: {exc}"
            continue
        for b, s in enumerate(samples):
            n = len(s.completion_ids)
            out.weights[b][name] = [float(x) for x in w[b, :n]]
            out.salience[b][name] = [float(x) for x in raw[b, :n]]
            out.token_advantages[b][name] = [float(x) for x in tok[b, :n]]
    return out
