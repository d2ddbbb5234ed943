"""Credit that asks the model which tokens its answer depends on (GRAIL, OAR-G: the gradient of the answer with respect
to the completion's input embeddings), or which hidden states separate right completions from wrong ones (DelTA: a
linear discriminator on the last hidden state), and `answer_only`, GRAIL's forced answer weight without the gradient.

Each gives an unnormalised token weight omega_it >= 0 (the papers' multiplier of A_i); here it is the salience of a
`"weights"` group method, so `credit.token_weights` makes it w_it = omega_it / sum_k omega_ik and the trainer
A_it = A_i * w_it * T_i: a completion's total advantage is kept and only its spread over the tokens changes (GRAIL's
code multiplies A_i by omega unnormalised, DelTA's normalises omega over the whole batch; docs/group-credit.md names
these and every other choice). The definitions follow the papers' public code, read, never copied:

- GRAIL (arXiv 2606.04889; declare-lab/grail, `src/train/grail_trainer.py`, `GrailTrainerV2.compute_grail_weights`)
  and OAR-G (arXiv 2601.07408; the same file, `compute_oar_g_weights`): `embedding_scores`, then `grail_weights` /
  `oar_g_weights`.
- DelTA (arXiv 2605.21467; RUCBM/DelTA, `verl-DelTA/verl/workers/actor/dp_actor.py`, `compute_log_prob_h`):
  `delta_weights`.

"Answer tokens" are the tokens of the answer the task grades (`arca_rl.tasks.Task.answer_span`, character offsets
mapped to tokens by `answer_tokens`), not a pattern of this module's own.

Pure functions of tensors, token ids and any causal LM (no TRL); the trainer's per-batch pass is
`trainer/model_credit.py`, `arca diagnose` calls the same functions (`_diagnose/model_credit.py`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "AnswerTokens",
    "answer_only_weights",
    "answer_tokens",
    "delta_weights",
    "embedding_scores",
    "grail_weights",
    "oar_g_weights",
]

#: a text -> (start, end, content_start, content_end) of its answer, or None (`arca_rl.tasks.Task.answer_span`)
SpanFn = Callable[[str], Sequence[int] | None]

_LOG_FLOOR = 1e-8  # GRAIL: log(score + 1e-8), and the 1e-8 inside its standard deviation


# -----------------------------------------------------------------------------
# answer tokens


@dataclass
class AnswerTokens:
    """Which completion tokens belong to the answer, each [B, T] bool (False off the mask): `content` the answer
    itself, `markup` the rest of its span (``\\boxed{`` and ``}``, ``<answer>`` tags), `after` the real tokens after
    the span; `found` [B] bool, the completion has an answer."""

    content: Tensor
    markup: Tensor
    after: Tensor
    found: Tensor

    @property
    def span(self) -> Tensor:
        """The answer's whole span, markup included [B, T] bool."""
        return self.content | self.markup


def answer_tokens(
    decode: Callable[[list[int]], str], completion_ids: Tensor, mask: Tensor, span_of: SpanFn
) -> AnswerTokens:
    """The answer's tokens in every completion of a batch.

    `decode(ids)` is the completion text as the reward read it (TRL decodes with ``skip_special_tokens=True``);
    `span_of(text)` where the answer sits in it (`arca_rl.tasks.Task.answer_span`), or None. Token k covers the
    characters `len(decode(ids[:k]))` .. `len(decode(ids[:k + 1]))` of the text; a token is in a span when the two
    overlap. Found by bisection, so a row costs O(log T) decodes, not one per token. `completion_ids` [B, T] and
    `mask` [B, T]: a row's real tokens are its first `mask[b].sum()` columns (TRL right-pads completions).
    """
    B, T = mask.shape
    real = mask.bool()
    content = torch.zeros(B, T, dtype=torch.bool)
    markup = torch.zeros(B, T, dtype=torch.bool)
    after = torch.zeros(B, T, dtype=torch.bool)
    found = torch.zeros(B, dtype=torch.bool)
    lengths = real.sum(-1).tolist()
    rows = completion_ids.detach().cpu().tolist()
    for b in range(B):
        ids = rows[b][: int(lengths[b])]
        if not ids:
            continue
        span = span_of(decode(ids))
        if span is None:
            continue
        start, end, c_start, c_end = (int(x) for x in span)
        cache: dict[int, int] = {0: 0}

        def offset(k: int, ids: list[int] = ids, cache: dict[int, int] = cache) -> int:  # len(decode(ids[:k]))
            if k not in cache:
                cache[k] = len(decode(ids[:k]))
            return cache[k]

        def first_end_after(char: int, n: int = len(ids)) -> int:  # the first token whose end is past `char`
            lo, hi = 0, n
            while lo < hi:
                mid = (lo + hi) // 2
                if offset(mid + 1) > char:
                    hi = mid
                else:
                    lo = mid + 1
            return lo

        def first_start_at(char: int, n: int = len(ids)) -> int:  # the first token starting at or after `char`
            lo, hi = 0, n
            while lo < hi:
                mid = (lo + hi) // 2
                if offset(mid) >= char:
                    hi = mid
                else:
                    lo = mid + 1
            return lo

        s0, s1 = first_end_after(start), first_start_at(end)
        if s0 >= s1:
            continue
        found[b] = True
        markup[b, s0:s1] = True
        if c_end > c_start:
            c0, c1 = first_end_after(c_start), first_start_at(c_end)
            content[b, c0:c1] = True
        after[b, s1 : len(ids)] = True
    device = mask.device
    content, markup, after = (x.to(device) & real for x in (content, markup & ~content, after))
    return AnswerTokens(content=content, markup=markup, after=after, found=found.to(device))


# -----------------------------------------------------------------------------
# the gradient pass: GRAIL and OAR-G


def _takes_logits_to_keep(model: Any) -> bool:
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(target.forward).parameters
    except (TypeError, ValueError):
        return False


def embedding_scores(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    width: int,
    answer: Tensor,
    *,
    kind: str,
    temperature: float = 1.0,
    noise_std: float = 1e-3,
    rows: int = 8,
    position_ids: Tensor | None = None,
    autocast: Callable[[], AbstractContextManager[Any]] | None = None,
) -> Tensor:
    """Each completion token's attribution score [B, width] float32 (detached, 0 off the completion), from the gradient
    of the answer with respect to the input embeddings. No parameter's `.grad` is written: the embeddings are a fresh
    leaf and only their gradient is asked for (`torch.autograd.grad`), so the graph to the parameters is never run.

    `input_ids` / `attention_mask` [B, P + width]: left-padded prompts, then the `width` completion columns; `answer`
    [B, width] bool, the answer's tokens with their markup (`AnswerTokens.span`: GRAIL's and OAR-G's code take the
    whole ``\\boxed{...}``). The model runs as it is (adapter, dropout and
    train / eval mode untouched), `rows` rows at a time. Column t reads the input position whose output scores y_t
    (the last prompt position for y_0), as both papers' code slices its gradients and TRL aligns its log-probs.

    - ``kind="grail"``: L = -sum_{t in answer} log pi(y_t) (logits / `temperature`); score_t = ||g_t * e_t||_2.
    - ``kind="oar_g"``: P_0 = softmax of the answer positions' mean logits, clean (no gradient); the completion's
      embeddings get Gaussian noise (std `noise_std`, from the global RNG) and L = KL(P_0 || P_eps), P_eps the same
      distribution from the noisy input; score_t = |sum_d g_td e_td|, e the noisy embedding.

    A row without an answer scores 0 (it has nothing to attribute).
    """
    if kind not in ("grail", "oar_g"):
        raise ValueError(f"embedding_scores: kind must be 'grail' or 'oar_g', got {kind!r}")
    B, S = input_ids.shape
    out = torch.zeros(B, width, dtype=torch.float32, device=input_ids.device)
    answer = answer.bool().to(input_ids.device)
    if B == 0 or width == 0 or not bool(answer.any()):
        return out
    embed = model.get_input_embeddings()
    cols = slice(S - width - 1, S - 1)  # the input positions whose outputs score y_0 .. y_{width - 1}
    targets = input_ids[:, S - width :]
    extra: dict[str, Any] = {"use_cache": False}
    if _takes_logits_to_keep(model):
        extra["logits_to_keep"] = width + 1
    ctx = autocast if autocast is not None else nullcontext
    for r0 in range(0, B, max(1, rows)):
        chunk = slice(r0, r0 + max(1, rows))
        ans = answer[chunk]
        has = ans.any(-1)
        if not bool(has.any()):
            continue
        ids, att = input_ids[chunk], attention_mask[chunk]
        pos = None if position_ids is None else position_ids[chunk]
        with torch.no_grad():
            embeds = embed(ids).detach()

        def logits_of(leaf: Tensor, ids: Tensor = ids, att: Tensor = att, pos: Tensor | None = pos) -> Tensor:
            kwargs = dict(extra, inputs_embeds=leaf, attention_mask=att)
            if pos is not None:
                kwargs["position_ids"] = pos
            with ctx():
                logits = model(**kwargs).logits
            return logits[:, logits.shape[1] - width - 1 : logits.shape[1] - 1].float()  # [b, width, V]

        n_ans = ans.sum(-1, keepdim=True).clamp_min(1).float()
        with torch.enable_grad():
            if kind == "grail":
                leaf = embeds.clone().requires_grad_(True)
                logps = torch.log_softmax(logits_of(leaf) / temperature, dim=-1)
                picked = logps.gather(-1, targets[chunk].unsqueeze(-1)).squeeze(-1)
                loss = -(picked * ans).sum()
                del logps
            else:
                with torch.no_grad():
                    clean = logits_of(embeds)
                    p0 = torch.softmax((clean * ans.unsqueeze(-1)).sum(1) / n_ans, dim=-1)  # [b, V]
                    del clean
                noise = torch.zeros_like(embeds)
                noise[:, cols] = torch.randn_like(embeds[:, cols]) * noise_std
                leaf = (embeds + noise).requires_grad_(True)
                noisy = logits_of(leaf)
                log_p = torch.log_softmax((noisy * ans.unsqueeze(-1)).sum(1) / n_ans, dim=-1)
                kl = (p0 * (torch.log(p0 + 1e-12) - log_p)).sum(-1)  # KL(P_0 || P_eps) per row
                loss = (kl * has.float()).sum()
                del noisy
            (grad,) = torch.autograd.grad(loss, leaf)
        g, e = grad[:, cols].float(), leaf.detach()[:, cols].float()
        score = (g * e).norm(dim=-1) if kind == "grail" else (g * e).sum(-1).abs()
        out[chunk] = torch.where(has.unsqueeze(-1), torch.nan_to_num(score, nan=0.0, posinf=0.0), 0.0)
        del grad, g, e, leaf, loss
    return out


# -----------------------------------------------------------------------------
# the papers' weights


def _masked_mean_std(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per row, the mean and the standard deviation (population, + 1e-8 inside the root as GRAIL's code) of `x` over
    `mask`: each [B, 1]."""
    m = mask.float()
    n = m.sum(-1, keepdim=True).clamp_min(1.0)
    mean = (x * m).sum(-1, keepdim=True) / n
    var = (((x - mean) ** 2) * m).sum(-1, keepdim=True) / n
    return mean, torch.sqrt(var + _LOG_FLOOR)


def grail_weights(
    scores: Tensor,
    mask: Tensor,
    answer: AnswerTokens,
    advantages: Tensor,
    *,
    std: float = 0.5,
    low: float = 0.5,
    high: float = 5.0,
    answer_weight: float | None = 5.0,
    wrong_only: bool = True,
) -> Tensor:
    """GRAIL's token weights omega [B, T] float32 (0 off `mask`), from `embedding_scores(kind="grail")`.

    Per row: z = the z-score of log(score + 1e-8) over the row's tokens; omega = clip(1 + std * z, low, high). A row
    without an answer gets 1 everywhere, and so does every row with A_i > 0 when `wrong_only` (GRAIL's default run
    reweights only the wrong rollouts: `grail_rollout_symmetry: wrong`). Then, on every row with an answer, the
    answer's own tokens get `answer_weight` (None: they keep their z-weight), its markup (``\\boxed{``, ``}``) and the
    tokens after it 1, as GRAIL's code sets them after the z-weights.
    """
    real = mask.bool()
    x = torch.log(scores.float() + _LOG_FLOOR)
    mean, sd = _masked_mean_std(x, real)
    omega = (1.0 + std * (x - mean) / sd).clamp(low, high)
    fallback = ~answer.found.to(real.device)
    if wrong_only:
        fallback = fallback | (advantages.to(real.device).float() > 0)
    omega = torch.where(fallback.unsqueeze(-1), torch.ones_like(omega), omega)
    if answer_weight is not None:
        omega = torch.where(answer.content, float(answer_weight), omega)
    omega = torch.where(answer.markup | answer.after, 1.0, omega)
    return torch.where(real, omega, 0.0)


def answer_only_weights(mask: Tensor, answer: AnswerTokens, *, answer_weight: float = 5.0) -> Tensor:
    """GRAIL's forced answer weight alone, the control: omega = `answer_weight` on the answer's own tokens, 1 on every
    other real token (no gradient, no z-weights). [B, T] float32, 0 off `mask`."""
    real = mask.bool()
    omega = torch.where(answer.content, float(answer_weight), 1.0)
    return torch.where(real, omega, 0.0)


def oar_g_weights(
    scores: Tensor,
    mask: Tensor,
    found: Tensor,
    *,
    tau: float = 0.4,
    floor: float = 0.1,
    boost: float = 2.0,
    eps: float = 1e-12,
) -> Tensor:
    """OAR-G's token weights omega [B, T] float32 (0 off `mask`), from `embedding_scores(kind="oar_g")`.

    Per row: I = log(1 + score), min-max scaled over the row's tokens to h in [0, 1]; the gate g is the value at
    rank floor(T * `tau`) of the row's sorted h (its `tau` quantile, as OAR-G's code takes it). Tokens below the gate
    get max(h / g, `floor`), the others 1 + `boost` * (h - g) / (1 - g); omega is then rescaled to sum to T over the
    row. A row without an answer (`found` False) gets 1 everywhere.
    """
    real = mask.bool()
    m = real.float()
    bar = torch.log1p(scores.double().clamp_min(0.0)) * m
    top = torch.where(real, bar, -torch.inf).amax(-1, keepdim=True)
    bottom = torch.where(real, bar, torch.inf).amin(-1, keepdim=True)
    h = (bar - bottom) / (top - bottom + eps)
    n = real.sum(-1, keepdim=True)
    ordered = torch.where(real, h, torch.inf).sort(-1).values
    rank = torch.floor(n.double() * tau).long().clamp(max=(n - 1).clamp_min(0)).clamp_min(0)
    gate = ordered.gather(-1, rank)
    below = (h / (gate + eps)).clamp_min(floor)
    above = 1.0 + boost * (h - gate) / (1.0 - gate + eps)
    omega = torch.where(h < gate, below, above) * m
    omega = omega * n / (omega.sum(-1, keepdim=True) + 1e-8)
    omega = torch.where(found.to(real.device).unsqueeze(-1), omega, torch.ones_like(omega))
    out = torch.where(real, omega, 0.0).float()
    return torch.nan_to_num(out, nan=1.0, posinf=1.0)


def delta_weights(
    hidden: Tensor,
    logps: Tensor,
    mask: Tensor,
    advantages: Tensor,
    *,
    low: float = 0.8,
    high: float = 1.2,
    gate: float | None = None,
    steps: int = 1,
    eps: float = 1e-8,
) -> Tensor:
    """DelTA's token weights omega [B, T] float32 in [`low`, `high`] (0 off `mask`) for one batch of completions.

    Each token's gradient direction v_t = (1 - p_t) h_t (h_t the last hidden state that scores y_t, p_t = pi(y_t)
    at the sampling temperature: `logps`). The positive side's centroid mu+ is the |A_i|-weighted mean of v over the
    tokens of completions with A_i > 0, mu- the same over A_i < 0. A token's margin is m = ||v - mu-||^2 -
    ||v - mu+||^2 on the positive side (the reverse on the negative side), i.e. 2 (w^T v + b) with the linear
    discriminator w = mu+ - mu-, b = -(||mu+||^2 - ||mu-||^2) / 2, scaled by its side's standard deviation gamma.
    `steps` rounds re-estimate each centroid with the tokens weighted by sigmoid(m / gamma) * |A_i| (the released
    run: one). A token's gate is sigmoid(m / gamma) (None, the released code) or, given `gate` = c > 0,
    clip((m / gamma + c) / 2c, 0, 1); omega = low + (high - low) * gate; rows with A_i = 0 get `low`.

    Our choices where the paper leaves w's construction open (docs/group-credit.md): the identity metric (the
    released code computes a diagonal variance and then replaces it with ones), gamma over the side's tokens of this
    batch, and a batch with no completion on one side (no contrast) gives every token weight 1.
    """
    real = mask.bool()
    B, T = real.shape
    A = advantages.to(real.device).float()
    pos, neg = A > 0, A < 0
    if not bool(pos.any()) or not bool(neg.any()) or B == 0 or T == 0:
        return torch.where(real, torch.ones(B, T, device=real.device), 0.0)
    v = (1.0 - logps.detach().float().exp()).unsqueeze(-1) * hidden.detach().float()  # [B, T, D]
    m = real.float()
    side_pos = pos.unsqueeze(-1) & real  # [B, T]
    side_neg = neg.unsqueeze(-1) & real

    def centroid(weight: Tensor) -> Tensor:  # weight [B, T] -> [D]
        return torch.einsum("bt,btd->d", weight, v) / weight.sum().clamp_min(eps)

    def margins(mu_p: Tensor, mu_n: Tensor) -> tuple[Tensor, Tensor]:
        d_pos = ((v - mu_p) ** 2).sum(-1)
        d_neg = ((v - mu_n) ** 2).sum(-1)
        return d_neg - d_pos, d_pos - d_neg  # margin on the positive side, on the negative side

    def spread(x: Tensor, side: Tensor) -> Tensor:
        k = side.float()
        n = k.sum().clamp_min(1.0)
        mean = (x * k).sum() / n
        return torch.sqrt(((x * x * k).sum() / n - mean * mean).clamp_min(eps))

    a_pos = A.clamp_min(0.0).unsqueeze(-1) * m
    a_neg = (-A).clamp_min(0.0).unsqueeze(-1) * m
    mu_p, mu_n = centroid(a_pos), centroid(a_neg)
    m_pos, m_neg = margins(mu_p, mu_n)
    g_pos, g_neg = spread(m_pos, side_pos), spread(m_neg, side_neg)
    for _ in range(int(steps)):
        w_pos = torch.sigmoid(m_pos / g_pos) * a_pos * side_pos
        w_neg = torch.sigmoid(m_neg / g_neg) * a_neg * side_neg
        mu_p, mu_n = centroid(w_pos), centroid(w_neg)
        g_pos, g_neg = spread(m_pos, side_pos), spread(m_neg, side_neg)  # from the margins before the update
        m_pos, m_neg = margins(mu_p, mu_n)

    def gated(x: Tensor) -> Tensor:
        if gate is None:
            return torch.sigmoid(x)
        return ((x + gate) / (2.0 * gate)).clamp(0.0, 1.0)

    omega = torch.full((B, T), float(low), device=real.device)
    omega = torch.where(side_pos, low + (high - low) * gated(m_pos / g_pos), omega)
    omega = torch.where(side_neg, low + (high - low) * gated(m_neg / g_neg), omega)
    omega = torch.nan_to_num(omega, nan=1.0, posinf=float(high), neginf=float(low))
    return torch.where(real, omega, 0.0)


