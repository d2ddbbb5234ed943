"""Token salience signals and the credit weights built from them (the paper's definitions; see docs/trainer.md).

Everything here is a pure tensor function over the completion tokens of a batch: shapes are
`[B, T]` (B completions, T columns) or `[B, T, D]` for hidden states. `mask[b, t]` is 1 on the
real completion tokens of row b (first EOS included) and 0 on padding, on tokens after the first
EOS and on tool output; padding may sit on either side. T_b = mask[b].sum() is the row's length.

Alignment: `logps[:, t]`, `entropies[:, t]` and `hidden[:, t]` all belong to completion token
y_t, i.e. they come from the position whose logits score y_t (as TRL aligns its log-probs).

The pipeline is `salience(name, ...) -> alpha [B, T]`, then `token_weights(alpha, mask) -> w [B, T]`
with w >= 0 and sum_t w[b, t] = 1 on every row that has a real token. Both are detached float32.
`mix_weights(w, mask, lam)` optionally blends w with uniform credit (`credit_mix`), with lam from
`mix_schedule` (`credit_warmup_steps`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

__all__ = [
    "BASE_INPUTS",
    "INPUTS",
    "mix_schedule",
    "mix_weights",
    "register_signal",
    "registered_signals",
    "residual_norm",
    "needs_base",
    "salience",
    "shuffle_key",
    "shuffle_weights",
    "signal_needs",
    "token_entropy",
    "token_weights",
]

# The per-token tensors a signal may read (besides `mask`, which every signal gets).
INPUTS = ("logps", "entropies", "ref_logps", "hidden", "base_hidden")
_HIDDEN_INPUTS = ("hidden", "base_hidden")  # [B, T, D]; the other inputs are [B, T]
# The inputs only a second pass provides: the adapter switched off (or TRL's reference model).
BASE_INPUTS = frozenset({"ref_logps", "base_hidden"})

SignalFn = Callable[..., Tensor]
_CPU_BLOCK_ELEMENTS = 2**18  # float32 work block of residual_norm / token_entropy on CPU: 1 MiB, fits in L2


@dataclass(frozen=True)
class _Signal:
    fn: SignalFn
    needs: frozenset[str]


_SIGNALS: dict[str, _Signal] = {}  # name -> signal, in registration order (built-ins first)
_METHOD_NAMES: set[str] = set()  # every registered credit method's name: signals and group methods
_Entry = TypeVar("_Entry")


# -----------------------------------------------------------------------------
# registry


def register_signal(name: str, fn: SignalFn, *, needs: Iterable[str]) -> None:
    """Add a salience signal under `name`.

    `fn` is called as `fn(mask=..., logps=..., entropies=..., ref_logps=..., hidden=...,
    base_hidden=...)` with a bool `mask` [B, T] and every input (None where not given) and must
    return a non-negative `[B, T]` tensor. It runs under `torch.no_grad()`; `salience` casts its
    result to float32 and zeroes the padding, so `fn` need not. `needs` names the inputs `fn` reads
    (a subset of `INPUTS`); `salience` refuses to call it when one of them is None, and a trainer
    uses it to know whether the adapter-off pass (`ref_logps`, `base_hidden`) is required.
    """
    _SIGNALS[name] = _Signal(fn, _check_registration("signal", name, fn, needs, INPUTS, "mask is always passed"))


def _check_registration(kind: str, name: Any, fn: Any, needs: Any, valid: Iterable[str], always: str) -> frozenset[str]:
    """A new credit method's `needs` as a frozenset, after checking its name (unique across signals and
    `group_credit`'s methods: `_METHOD_NAMES`), `fn` and `needs` (a subset of `valid`); the name is then taken.
    One check for `register_signal` and `group_credit.register_group_method`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{kind} name must be a non-empty string, got {name!r}")
    if name in _METHOD_NAMES:
        raise ValueError(f"credit method {name!r} is already registered")
    if not callable(fn):
        raise ValueError(f"{kind} {name!r}: fn must be callable, got {type(fn).__name__}")
    if isinstance(needs, str):  # needs="hidden" would otherwise be read as the letters h, i, d, ...
        raise ValueError(f"{kind} {name!r}: needs must be an iterable of input names, e.g. ({needs!r},)")
    needs = frozenset(needs)
    unknown = sorted(needs - set(valid))
    if unknown:
        raise ValueError(
            f"{kind} {name!r}: unknown inputs {unknown} in needs; valid inputs are {list(valid)} ({always})"
        )
    _METHOD_NAMES.add(name)
    return needs


def registered_signals() -> list[str]:
    """Names of all registered signals, in registration order (the five built-ins first)."""
    return list(_SIGNALS)


def _check_given(what: str, name: str, needs: frozenset[str], inputs: Mapping[str, Tensor | None]) -> None:
    """A ValueError naming every input that method `name` needs and `inputs` holds as None."""
    missing = [k for k, x in inputs.items() if k in needs and x is None]
    if missing:
        passed = ", ".join(f"{k}=None" for k in missing)
        raise ValueError(f"{what} {name!r} needs {' and '.join(missing)}, but {passed} was passed")


def _lookup(registry: Mapping[str, _Entry], name: str, what: str) -> _Entry:
    """`registry[name]`, or a ValueError listing what is registered (`what`: "salience signal", "group method")."""
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}; registered: {list(registry)}") from None


def signal_needs(name: str) -> frozenset[str]:
    """The inputs (a subset of `INPUTS`) that signal `name` reads."""
    return _lookup(_SIGNALS, name, "salience signal").needs


def needs_base(name: str) -> bool:
    """Does signal `name` read an input (`BASE_INPUTS`) that only a base pass, adapter off, provides?"""
    return bool(_lookup(_SIGNALS, name, "salience signal").needs & BASE_INPUTS)


# -----------------------------------------------------------------------------
# salience


def salience(
    name: str,
    *,
    mask: Tensor,
    logps: Tensor | None = None,
    entropies: Tensor | None = None,
    ref_logps: Tensor | None = None,
    hidden: Tensor | None = None,
    base_hidden: Tensor | None = None,
) -> Tensor:
    """Raw salience alpha [B, T] float32 (detached, >= 0 for the built-ins, 0 on padding).

    mask [B, T]; logps, entropies, ref_logps [B, T]; hidden, base_hidden [B, T, D]. Only the
    inputs that signal `name` needs (see `signal_needs`) must be given; a missing one raises a
    ValueError naming the signal and the tensor.
    """
    sig = _lookup(_SIGNALS, name, "salience signal")
    inputs = {
        "logps": logps,
        "entropies": entropies,
        "ref_logps": ref_logps,
        "hidden": hidden,
        "base_hidden": base_hidden,
    }
    _check_given("salience signal", name, sig.needs, inputs)
    if mask.dim() != 2:
        raise ValueError(f"salience {name!r}: mask must be [B, T], got shape {tuple(mask.shape)}")
    for k, x in inputs.items():
        if x is None:
            continue
        ndim, want = (3, "[B, T, D]") if k in _HIDDEN_INPUTS else (2, "[B, T]")
        if x.dim() != ndim or tuple(x.shape[:2]) != tuple(mask.shape):
            raise ValueError(
                f"salience {name!r}: {k} must be {want} with [B, T] = {tuple(mask.shape)} (mask), "
                f"got shape {tuple(x.shape)}"
            )
    if hidden is not None and base_hidden is not None and hidden.shape != base_hidden.shape:
        raise ValueError(
            f"salience {name!r}: hidden {tuple(hidden.shape)} and base_hidden {tuple(base_hidden.shape)} differ in "
            "shape"
        )

    real = mask != 0
    with torch.no_grad():
        alpha = sig.fn(mask=real, **inputs)
    if not isinstance(alpha, Tensor) or tuple(alpha.shape) != tuple(mask.shape):
        got = tuple(alpha.shape) if isinstance(alpha, Tensor) else type(alpha).__name__
        raise ValueError(
            f"salience signal {name!r} returned {got}, expected a tensor of shape {tuple(mask.shape)}"
        )
    # where, not multiply: padding positions of the inputs may hold inf/NaN (0 * inf = NaN)
    return torch.where(real, alpha.detach().to(torch.float32), 0.0)


# --- the built-in signals (as defined in the paper) ---


def _uniform(*, mask: Tensor, **_: Tensor | None) -> Tensor:
    return torch.ones(mask.shape, dtype=torch.float32, device=mask.device)  # alpha_t = 1


def _surprisal(*, mask: Tensor, logps: Tensor, **_: Tensor | None) -> Tensor:
    # alpha_t = -log pi_theta(y_t); clamped at 0 only to drop rounding noise (log p <= 0 exactly)
    return (-logps.float()).clamp_min(0.0)


def _entropy_reduction(*, mask: Tensor, entropies: Tensor, **_: Tensor | None) -> Tensor:
    # alpha_t = max(0, H_t - H_next(t)), next(t) = the next *real* token of the row (skips padding
    # and tool-masked gaps); 0 at each row's last real token.
    H = entropies.float()
    T = H.shape[1]
    col = torch.arange(T, device=H.device).expand_as(H)
    real_col = torch.where(mask, col, T)  # column index on real tokens, sentinel T elsewhere
    at_or_after = real_col.flip(-1).cummin(-1).values.flip(-1)  # first real column >= t
    nxt = torch.cat([at_or_after[:, 1:], torch.full_like(at_or_after[:, :1], T)], dim=1)  # first real > t
    has_next = nxt < T
    H_next = H.gather(1, nxt.clamp(max=T - 1))
    drop = (H - H_next).clamp_min(0.0)
    return torch.where(mask & has_next, drop, 0.0)


def _divergence(*, mask: Tensor, logps: Tensor, ref_logps: Tensor, **_: Tensor | None) -> Tensor:
    return (logps.float() - ref_logps.float()).abs()  # alpha_t = |log pi_theta(y_t) - log pi_ref(y_t)|


def _arca(*, mask: Tensor, hidden: Tensor, base_hidden: Tensor, **_: Tensor | None) -> Tensor:
    return residual_norm(hidden, base_hidden)  # alpha_t = || h_adapted_t - h_base_t ||_2


def residual_norm(hidden: Tensor, base_hidden: Tensor, *, chunk_tokens: int = 8192) -> Tensor:
    """|| hidden - base_hidden ||_2 over D: [B, T, D] x2 -> [B, T] float32, detached.

    The difference is taken in float32, about `chunk_tokens` tokens at a time in one reused buffer,
    so bf16/fp16 inputs never get a full float32 [B, T, D] copy (extra memory ~ chunk_tokens * D * 4
    bytes; on CPU the block is capped at ~1 MiB to stay in cache). The inputs may have any strides.
    Norms whose sum of squares would overflow float32 (|h - h_base| ~ 1e19 and up) are recomputed
    with a per-token rescale.
    """
    if hidden.dim() != 3 or hidden.shape != base_hidden.shape:
        raise ValueError(
            f"residual_norm: hidden and base_hidden must both be [B, T, D], got {tuple(hidden.shape)} "
            f"and {tuple(base_hidden.shape)}"
        )
    if chunk_tokens < 1:
        raise ValueError(f"residual_norm: chunk_tokens must be >= 1, got {chunk_tokens}")
    B, T, D = hidden.shape
    out = torch.zeros(B, T, dtype=torch.float32, device=hidden.device)
    if B == 0 or T == 0:
        return out
    if hidden.device.type == "cpu":  # keep the float32 block in cache: 3x faster for bf16 at D = 2048
        chunk_tokens = min(chunk_tokens, max(1, _CPU_BLOCK_ELEMENTS // max(D, 1)))
    # blocks of whole rows when rows are short, slices of one row when they are long: plain views
    # for any memory layout (e.g. hidden[:, -T:] of the full sequence), no reshape copy
    rows, cols = max(1, chunk_tokens // T), min(T, chunk_tokens)
    buf = torch.empty(min(rows, B), cols, D, dtype=torch.float32, device=hidden.device)  # reused
    with torch.no_grad():
        for b0 in range(0, B, rows):
            for t0 in range(0, T, cols):
                h = hidden[b0 : b0 + rows, t0 : t0 + cols]
                hb = base_hidden[b0 : b0 + rows, t0 : t0 + cols]
                d = buf[: h.shape[0], : h.shape[1]]
                if h.dtype == torch.float32:
                    torch.sub(h, hb, out=d)  # d = h - h_base
                else:
                    d.copy_(h).sub_(hb)  # d = h - h_base, upcast before subtracting
                # sqrt(sum_d (h - h_base)^2), written in place (a row block, or a slice of one row)
                torch.linalg.vector_norm(d, dim=-1, out=out[b0 : b0 + rows, t0 : t0 + cols])
        over = torch.isinf(out)
        if over.any():  # the float32 sum of squares overflowed (|h - h_base| ~ 1e19 and up)
            b, t = over.nonzero(as_tuple=True)
            out[b, t] = _rescaled_norm(hidden[b, t].float() - base_hidden[b, t].float())
    return out


def _rescaled_norm(d: Tensor) -> Tensor:
    """||d||_2 over the last dim as s * ||d / s||, s = max |d|: no overflow for finite d. [n, D] -> [n]"""
    s = d.abs().amax(-1, keepdim=True)
    n = s * torch.linalg.vector_norm(d / s, dim=-1, keepdim=True)
    return torch.where(torch.isfinite(s), n, torch.inf).squeeze(-1)  # an infinite d keeps its inf norm


register_signal("uniform", _uniform, needs=())
register_signal("surprisal", _surprisal, needs=("logps",))
register_signal("entropy_reduction", _entropy_reduction, needs=("entropies",))
register_signal("divergence", _divergence, needs=("logps", "ref_logps"))
register_signal("arca", _arca, needs=("hidden", "base_hidden"))


# -----------------------------------------------------------------------------
# weights


def token_weights(
    salience: Tensor,
    mask: Tensor,
    *,
    eps: float = 1e-8,
    power: float = 1.0,
    min_salience: float = 0.0,
) -> Tensor:
    """Credit weights w [B, T] float32, detached, from salience alpha [B, T] and mask [B, T].

    w_t = (alpha_t + eps)^power / sum_k (alpha_k + eps)^power over the row's real tokens, 0 on
    padding. A row falls back to uniform 1/T_b when its largest salience is <= `min_salience`
    (default 0: only an all-zero row, which the formula already makes uniform), when the
    denominator vanishes (all alpha + eps = 0, i.e. eps = 0) or when it overflows (+inf salience).
    A row with no real token is all zeros. Negative or NaN salience on a real token is a
    ValueError (padding positions are ignored). Finite salience never overflows: each row is
    divided by its maximum before the power, so alpha = 1e30 with power = 2 is exact.
    """
    if salience.shape != mask.shape or salience.dim() != 2:
        raise ValueError(
            f"token_weights: salience and mask must both be [B, T], got {tuple(salience.shape)} and {tuple(mask.shape)}"
        )
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"token_weights: eps must be finite and >= 0, got {eps}")
    if not (math.isfinite(power) and power >= 0):
        raise ValueError(f"token_weights: power must be finite and >= 0, got {power}")

    alpha = salience.detach().to(torch.float32)
    real = mask != 0
    if alpha.shape[1] == 0:  # no columns at all
        return torch.zeros_like(alpha)
    n_nan = int((alpha.isnan() & real).sum())
    if n_nan:
        raise ValueError(f"token_weights: salience is NaN on {n_nan} real token(s)")
    neg = (alpha < 0) & real
    if neg.any():
        raise ValueError(
            f"token_weights: salience must be >= 0, got {int(neg.sum())} negative value(s) on real tokens "
            f"(min {alpha[neg].min().item():.4g})"
        )

    x = torch.where(real, alpha + eps, 0.0)  # alpha_t + eps on real tokens, 0 on padding
    top = x.amax(-1, keepdim=True)  # row max m >= 0
    ok = (top > 0) & torch.isfinite(top)
    r = torch.where(real, (x / torch.where(ok, top, 1.0)) ** power, 0.0)  # ((alpha + eps) / m)^p in [0, 1]
    w = r / r.sum(-1, keepdim=True).clamp_min(1.0)  # the max token gives 1, so the sum is in [1, T] when ok

    n_real = real.sum(-1, keepdim=True)
    uniform = real / n_real.clamp_min(1)  # 1/T_b on real tokens; all zeros when T_b = 0
    peak = torch.where(real, alpha, -torch.inf).amax(-1, keepdim=True)  # largest raw salience
    fallback = ~ok | (peak <= min_salience)
    return torch.where(fallback, uniform, w)


def mix_weights(weights: Tensor, mask: Tensor, lam: float) -> Tensor:
    """Blend credit weights [B, T] with uniform credit: `(1 - lam) / T_b + lam * w_t` on real tokens.

    `weights` are `token_weights` output (rows sum to 1 over the real tokens). Since both terms sum
    to 1 over a row, so does the blend, and every real token keeps at least (1 - lam) / T_b:

        w_mix_t = (1 - lam) * u_t + lam * w_t,    u_t = 1 / T_b  (the uniform credit of stock GRPO)

    lam = 1 returns `weights` itself (the signal alone, bit for bit); lam = 0 returns exactly the
    uniform 1/T_b that `token_weights` gives an all-zero row. Padding stays 0; a row with no real
    token stays all zeros. float32, detached.
    """
    if weights.shape != mask.shape or weights.dim() != 2:
        raise ValueError(
            f"mix_weights: weights and mask must both be [B, T], got {tuple(weights.shape)} and {tuple(mask.shape)}"
        )
    _check_lambda("mix_weights: lam", lam)
    w = weights.detach().to(torch.float32)
    if lam == 1.0:
        return w  # the signal alone, untouched
    real = mask != 0
    uniform = real / real.sum(-1, keepdim=True).clamp_min(1)  # 1/T_b on real tokens, as token_weights
    if lam == 0.0:
        return uniform.to(torch.float32)
    return torch.where(real, (1.0 - lam) * uniform + lam * w, 0.0)


def shuffle_key(*parts: int | Sequence[int]) -> int:
    """A 63-bit seed from integers and integer sequences (sha256 of their decimal text): the same parts give the same
    seed in every process and run, so a permutation seeded by it is reproduced on resume."""
    text = ";".join(str(p) if isinstance(p, int) else ",".join(str(int(x)) for x in p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def shuffle_weights(weights: Tensor, mask: Tensor, keys: Sequence[int]) -> Tensor:
    """Each row's weights permuted among its real tokens (`mask`): row b by a uniform random permutation drawn from a
    generator seeded with `keys[b]`. Same multiset of weights per row (same Gini, EffN/T), random place; padding
    untouched. The `credit_shuffle` control (`arca_rl.oracle.placement` scores its expectation)."""
    if weights.shape != mask.shape or weights.dim() != 2 or len(keys) != weights.size(0):
        raise ValueError("shuffle_weights: weights and mask [B, T] and one key per row")
    out = weights.clone()
    for b, key in enumerate(keys):
        idx = (mask[b] != 0).nonzero().squeeze(-1)
        if idx.numel() < 2:
            continue
        perm = torch.randperm(idx.numel(), generator=torch.Generator().manual_seed(int(key)))
        out[b, idx] = weights[b, idx[perm.to(idx.device)]]
    return out


def _check_lambda(what: str, lam: object) -> None:
    # the precondition of the two mix functions; the credit_mix setting's own range is `CreditFields`'
    if isinstance(lam, bool) or not isinstance(lam, int | float) or not (0.0 <= lam <= 1.0):
        raise ValueError(f"{what} must be a number in [0, 1], got {lam!r}")


def mix_schedule(step: int, mix: float, warmup_steps: int) -> float:
    """The mix lambda in force after `step` optimizer steps: `mix * min(1, step / warmup_steps)`.

    Credit is uniform (lambda = 0) at step 0, while a fresh adapter has no residual, grows linearly
    and reaches `mix` after `warmup_steps` steps; `warmup_steps = 0` means `mix` from the start.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"mix_schedule: step must be an integer >= 0, got {step!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"mix_schedule: warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    _check_lambda("mix_schedule: mix", mix)
    if warmup_steps == 0:
        return float(mix)
    return float(mix) * min(1.0, step / warmup_steps)


# -----------------------------------------------------------------------------
# predictive entropy from logits


def token_entropy(logits: Tensor, mask: Tensor | None = None, *, chunk: int = 1024) -> Tensor:
    """Predictive entropy H_t = -sum_v p_v log p_v, logits [B, T, V] -> [B, T] float32, detached.

    Works `chunk` tokens at a time in float32 (peak extra memory ~ 2 * chunk * V * 4 bytes, never a
    float32 copy of the whole [B, T, V]; on CPU the block is capped at ~1 MiB to stay in cache);
    with a mask [B, T], only real tokens are computed and the rest are 0. -inf logits (filtered
    vocabulary) contribute 0.
    """
    if logits.dim() != 3:
        raise ValueError(f"token_entropy: logits must be [B, T, V], got shape {tuple(logits.shape)}")
    if mask is not None and tuple(mask.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"token_entropy: mask must be {tuple(logits.shape[:2])}, got {tuple(mask.shape)}")
    if chunk < 1:
        raise ValueError(f"token_entropy: chunk must be >= 1, got {chunk}")
    B, T, V = logits.shape
    out = torch.zeros(B, T, dtype=torch.float32, device=logits.device)
    if logits.device.type == "cpu":  # cache-sized blocks: 2-4x faster on CPU than chunk = 1024
        chunk = min(chunk, max(1, _CPU_BLOCK_ELEMENTS // max(V, 1)))
    real = torch.ones(B, T, dtype=torch.bool, device=logits.device) if mask is None else mask != 0
    bi, ti = real.nonzero(as_tuple=True)  # real token coordinates, any layout of logits
    lowest = torch.finfo(torch.float32).min
    with torch.no_grad():
        for i in range(0, bi.numel(), chunk):
            b, t = bi[i : i + chunk], ti[i : i + chunk]
            z = logits[b, t].to(torch.float32)  # [n, V], a fresh buffer (indexing copies)
            z.sub_(z.amax(-1, keepdim=True))  # z = logit - max logit
            z.clamp_(min=lowest)  # -inf logits -> a finite floor whose exp is 0, so e * z = 0 there
            e = z.exp()  # unnormalized p
            s = e.sum(-1)
            # H = log s - sum_v e_v z_v / s   (= -sum_v p_v log p_v with p = e / s, log p = z - log s)
            out[b, t] = s.log() - e.mul_(z).sum(-1) / s
    return out
