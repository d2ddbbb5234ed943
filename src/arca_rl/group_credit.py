"""Token advantages that read the whole group of a prompt: KTAE, TEMPO, GTPO, HICRA (pure tensor functions).

A group method reads, besides a completion's own tokens, every completion of the same prompt: their token ids,
rewards and sequence advantages A_i (`GROUP_INPUTS`), rows tied together by a `groups` [B] tensor of group ids.
It returns either signed token advantages A_it [B, T] (the four built-ins) or a salience >= 0 that
`credit.token_weights` turns into weights like a signal's. `mix_advantages(A_it, A_i, mask, lam)` blends token
advantages with A_i: `(1 - lam) A_i + lam A_it`; `advantage_shares` gives the |A_it| shares the weight
diagnostics read. Each method is implemented from its paper's definition; where a paper leaves a detail open
the choice is ours and is named in a comment (docs/group-credit.md lists them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import credit

__all__ = [
    "GROUP_INPUTS",
    "GROUP_OUTPUTS",
    "MODEL_METHODS",
    "advantage_shares",
    "group_credit",
    "group_method_needs",
    "group_method_output",
    "is_gradient_method",
    "is_group_method",
    "is_sampled_method",
    "is_trainer_method",
    "ktae_key_values",
    "method_needs_base",
    "mix_advantages",
    "register_group_method",
    "registered_group_methods",
    "registered_methods",
    "strategic_gram_mask",
    "tempo_td",
    "top_entropy_mask",
]

GroupFn = Callable[..., Tensor]


@dataclass(frozen=True)
class _GroupMethod:
    fn: GroupFn
    needs: frozenset[str]
    output: str  # "advantages" (signed A_it) or "weights" (a salience >= 0, through token_weights)


_INT64_MIN = -(2**63)
_GROUP_METHODS: dict[str, _GroupMethod] = {}  # name -> group method, in registration order


# -----------------------------------------------------------------------------
# group credit: token advantages that read the whole group of a prompt
#
# Shapes as above, plus `groups` [B] (long): rows with the same id are the completions of one prompt
# (any order, any number of groups per batch). `rewards` and `advantages` are [B] (R_i and the
# sequence advantage A_i, e.g. GRPO's (R_i - mean R) / (std R + eps)); `completion_ids` [B, T]
# (long); `entropies` [B, T] are the sampling policy's predictive entropies. Every method returns
# a float32 [B, T] tensor that is 0 on padding; a group whose rewards are all equal gets A_it = 0.

# The group inputs a group method may read (besides `mask` and `groups`, which every method gets).
GROUP_INPUTS = ("completion_ids", "rewards", "advantages", "entropies")
GROUP_OUTPUTS = ("advantages", "weights")


def register_group_method(name: str, fn: GroupFn, *, needs: Iterable[str], output: str = "advantages") -> None:
    """Add a credit method that reads the whole group of each prompt, under `name`.

    `fn` is called as `fn(mask=..., groups=..., completion_ids=..., rewards=..., advantages=...,
    entropies=..., **params)` (None for inputs not given; `params` are the method's hyper-parameters,
    keyword arguments of `group_credit`) under `torch.no_grad()`, with a bool `mask` [B, T] and `groups`
    [B], and returns a [B, T] tensor. `output` declares what it is: `"advantages"`, signed token
    advantages A_it that replace the broadcast A_i; or `"weights"`, a salience >= 0 that
    `token_weights` turns into weights (A_it = A_i * w_it * T_i), as a signal's. `needs` names the
    inputs `fn` reads (a subset of `GROUP_INPUTS`). A name is unique across signals and group methods.
    """
    if output not in GROUP_OUTPUTS:  # checked first: a refused registration takes no name
        raise ValueError(f"group method {name!r}: output must be one of {GROUP_OUTPUTS}, got {output!r}")
    checked = credit._check_registration(
        "group method", name, fn, needs, GROUP_INPUTS, "mask and groups are always passed"
    )
    _GROUP_METHODS[name] = _GroupMethod(fn, checked, output)


def registered_group_methods() -> list[str]:
    """Names of all registered group methods, in registration order (ktae, tempo, gtpo, hicra first)."""
    return list(_GROUP_METHODS)


def registered_methods() -> list[str]:
    """Every credit method: the signals, then the group methods."""
    return [*credit.registered_signals(), *_GROUP_METHODS]


def is_group_method(name: str) -> bool:
    """Is `name` a registered group method (rather than a per-completion signal)?"""
    return name in _GROUP_METHODS


def is_sampled_method(name: str) -> bool:
    """Does method `name` sample the policy (`vine`)? The trainer computes it (`trainer.vine`), not `group_credit`."""
    return name in _SAMPLED_METHODS


def is_gradient_method(name: str) -> bool:
    """Does method `name` take a gradient outside TRL's loss (`grail`, `oar_g`: the answer's gradient with respect to
    the input embeddings, `arca_rl.model_credit.embedding_scores`)?"""
    return name in _GRADIENT_METHODS


def is_trainer_method(name: str) -> bool:
    """Does method `name` read the model itself (`vine`, `self_teacher`, `MODEL_METHODS`)? The trainer computes it, not
    `group_credit`, and it is never a shadow (each costs forwards of the policy)."""
    return name in _TRAINER_METHODS


def method_needs_base(name: str) -> bool:
    """Does credit method `name` need the adapter-off pass (`credit.needs_base`)? Never for a group method: it
    reads the group, not the base."""
    return False if name in _GROUP_METHODS else credit.needs_base(name)


def group_method_needs(name: str) -> frozenset[str]:
    """The inputs (a subset of `GROUP_INPUTS`) that group method `name` reads."""
    return credit._lookup(_GROUP_METHODS, name, "group method").needs


def group_method_output(name: str) -> str:
    """`"advantages"` (signed token advantages) or `"weights"` (a salience for `token_weights`)."""
    return credit._lookup(_GROUP_METHODS, name, "group method").output


def group_credit(
    name: str,
    *,
    mask: Tensor,
    groups: Tensor,
    completion_ids: Tensor | None = None,
    rewards: Tensor | None = None,
    advantages: Tensor | None = None,
    entropies: Tensor | None = None,
    **params: Any,
) -> Tensor:
    """Group method `name` on a batch: [B, T] float32, detached, 0 on padding.

    Signed token advantages A_it for an `"advantages"` method, a salience >= 0 for a `"weights"` one
    (`group_method_output`). Only the inputs the method needs must be given; a missing one or a wrong
    shape is a ValueError naming it. `params` are passed to the method (its hyper-parameters).
    """
    method = credit._lookup(_GROUP_METHODS, name, "group method")
    inputs = {"completion_ids": completion_ids, "rewards": rewards, "advantages": advantages, "entropies": entropies}
    credit._check_given("group method", name, method.needs, inputs)
    if mask.dim() != 2:
        raise ValueError(f"group method {name!r}: mask must be [B, T], got shape {tuple(mask.shape)}")
    B = mask.shape[0]
    for k, x in [("groups", groups), *inputs.items()]:
        if x is None:
            continue
        per_row = k in ("groups", "rewards", "advantages")
        want, ok = ("[B]", x.dim() == 1 and x.shape[0] == B) if per_row else ("[B, T]", x.shape == mask.shape)
        if not ok:
            raise ValueError(
                f"group method {name!r}: {k} must be {want} with [B, T] = {tuple(mask.shape)} (mask), "
                f"got shape {tuple(x.shape)}"
            )
    for k in ("rewards", "advantages", "entropies"):
        x = inputs[k]
        if (
            k in method.needs
            and x is not None
            and not bool(torch.isfinite(x.float()[mask != 0] if x.dim() == 2 else x.float()).all())
        ):
            raise ValueError(f"group method {name!r}: {k} holds NaN or inf")
    real = mask != 0
    with torch.no_grad():
        out = method.fn(mask=real, groups=groups, **inputs, **params)
    if not isinstance(out, Tensor) or tuple(out.shape) != tuple(mask.shape):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"group method {name!r} returned {got}, expected a tensor of shape {tuple(mask.shape)}")
    return torch.where(real, out.detach().to(torch.float32), 0.0)


def mix_advantages(token_advantages: Tensor, advantages: Tensor, mask: Tensor, lam: float) -> Tensor:
    """Blend signed token advantages [B, T] with the broadcast sequence advantage A_i [B]:

        A_mix_it = (1 - lam) * A_i + lam * A_it      on real tokens, 0 on padding

    lam = 1 returns `token_advantages` itself; lam = 0 the broadcast A_i (stock GRPO). float32, detached.
    """
    if token_advantages.shape != mask.shape or token_advantages.dim() != 2:
        raise ValueError(
            f"mix_advantages: token_advantages and mask must both be [B, T], got {tuple(token_advantages.shape)} "
            f"and {tuple(mask.shape)}"
        )
    if advantages.dim() != 1 or advantages.shape[0] != mask.shape[0]:
        raise ValueError(f"mix_advantages: advantages must be [B] = [{mask.shape[0]}], got {tuple(advantages.shape)}")
    if isinstance(lam, bool) or not isinstance(lam, int | float) or not (0.0 <= lam <= 1.0):
        raise ValueError(f"mix_advantages: lam must be a number in [0, 1], got {lam!r}")
    real = mask != 0
    a_tok = torch.where(real, token_advantages.detach().to(torch.float32), 0.0)
    if lam == 1.0:
        return a_tok  # the method alone, untouched
    a_seq = torch.where(real, advantages.detach().to(torch.float32).unsqueeze(1), 0.0)  # A_i on every real token
    if lam == 0.0:
        return a_seq
    return torch.where(real, (1.0 - lam) * a_seq + lam * a_tok, 0.0)


def advantage_shares(token_advantages: Tensor, mask: Tensor) -> Tensor:
    """The share of a row's credit magnitude on each token, `|A_it| / sum_k |A_ik|` [B, T] (uniform 1/T_b
    when every A_it is 0). What the weight diagnostics (Gini, EffN/T, oracle lift, decisive-token share)
    read for signed token advantages; for A_it = A_i * w_it * T_i with A_i != 0 it is w itself."""
    return credit.token_weights(token_advantages.detach().abs().to(torch.float32), mask, eps=0.0)


# --- helpers shared by the built-in group methods ---


def _group_rows(groups: Tensor) -> list[Tensor]:
    """The row indices of each group, in order of first appearance."""
    _, inverse = torch.unique(groups, return_inverse=True)
    order = torch.argsort(inverse, stable=True)
    counts = torch.bincount(inverse).tolist()
    rows, start = [], 0
    for c in counts:
        rows.append(order[start : start + c])
        start += c
    rows.sort(key=lambda r: int(r.min()))
    return rows


def _split_outcome(r: Tensor) -> tuple[Tensor, Tensor]:
    """(correct, incorrect) bool masks over one group's rewards: above / below the group mean. For 0/1
    rewards with both outcomes present that is R = 1 / R = 0; a group whose rewards are all equal has
    neither (no contrast, so no credit). The papers use binary verifier rewards; this threshold is our
    choice for other rewards."""
    r = r.double()
    mean = r.mean()
    return r > mean, r < mean


def _positions(mask: Tensor) -> Tensor:
    """Index of each real token within its row (0, 1, ..., T_b - 1), -1 on padding: [B, T] long."""
    return torch.where(mask, mask.long().cumsum(-1) - 1, -1)


# --- KTAE (Sun et al., arXiv 2505.16826) ---


def ktae_key_values(contains: Tensor, correct: Tensor) -> Tensor:
    """Key-token value of each token id from a group's 2x2 tables: contains [G, U] bool (completion g
    contains token id u), correct [G] bool -> [U] float64 in [-1, 1].

    Per token id, a = correct completions containing it, b = incorrect ones containing it,
    c = n_T - a, d = n_F - b, N = G:
        p    = C(a+b, a) C(c+d, c) / C(N, a+c)     Fisher's point probability of the table
        F    = 1 - p                               association strength (our transform; the paper's
                                                   exact one was not available to us)
        IG   = H(correct) - H(correct | contains)  information gain, in bits
        dir  = a / n_T - b / n_F                   direction: > 0 when more common in correct ones
        k    = dir * (F + IG) / 2                  key-token value (equal weight on F and IG: our choice)
    Every value is 0 when the group has no correct or no incorrect completion.
    """
    contains = contains.bool()
    correct = correct.bool()
    n_t, n_f = int(correct.sum()), int((~correct).sum())
    U = contains.shape[1]
    if n_t == 0 or n_f == 0:
        return torch.zeros(U, dtype=torch.float64)
    a = contains[correct].sum(0).double()
    b = contains[~correct].sum(0).double()
    c, d = n_t - a, n_f - b
    N = float(n_t + n_f)

    # log C(n, k) = lgamma(n+1) - lgamma(k+1) - lgamma(n-k+1)
    def lchoose(n: Tensor | float, k: Tensor | float) -> Tensor:
        n, k = torch.as_tensor(n, dtype=torch.float64), torch.as_tensor(k, dtype=torch.float64)
        return torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)

    p = torch.exp(lchoose(a + b, a) + lchoose(c + d, c) - lchoose(N, a + c))  # hypergeometric point probability
    F = 1.0 - p

    def h2(x: Tensor) -> Tensor:  # binary entropy in bits, 0 log 0 = 0
        x = x.clamp(0.0, 1.0)
        xl = torch.where(x > 0, x * torch.log2(x.clamp_min(1e-300)), 0.0)
        yl = torch.where(x < 1, (1 - x) * torch.log2((1 - x).clamp_min(1e-300)), 0.0)
        return -(xl + yl)

    n_in, n_out = a + b, c + d
    h_y = h2(torch.tensor(n_t / N, dtype=torch.float64))  # H(correct)
    h_in = torch.where(n_in > 0, h2(a / n_in.clamp_min(1)), 0.0)  # H(correct | contains)
    h_out = torch.where(n_out > 0, h2(c / n_out.clamp_min(1)), 0.0)  # H(correct | does not contain)
    IG = (h_y - (n_in / N) * h_in - (n_out / N) * h_out).clamp_min(0.0)  # information gain
    direction = a / n_t - b / n_f  # share of correct ones containing it - share of incorrect ones
    return direction * (F + IG) / 2.0  # key-token value k in [-1, 1]


def _ktae(
    *, mask: Tensor, groups: Tensor, completion_ids: Tensor, rewards: Tensor, advantages: Tensor,
    ktae_scale: float = 1.0, **_: Any,
) -> Tensor:
    # A_it = A_i + scale * k(y_t): the rollout advantage plus the key-token value of the token's id
    out = advantages.detach().double().unsqueeze(1).expand(mask.shape).clone()
    for rows in _group_rows(groups):
        m = mask[rows]
        ids = completion_ids[rows]
        uniq, inv = torch.unique(ids[m], return_inverse=True)  # token ids present in the group
        contains = torch.zeros(len(rows), uniq.numel(), dtype=torch.bool)
        row_of = torch.arange(len(rows)).unsqueeze(1).expand(m.shape)[m]
        contains[row_of, inv.cpu()] = True  # completion g contains token id u
        correct, incorrect = _split_outcome(rewards[rows])
        keep = correct | incorrect  # rows at the mean (non-binary rewards) count in neither column
        k = torch.zeros(uniq.numel(), dtype=torch.float64)
        if bool(keep.any()):
            k = ktae_key_values(contains[keep.cpu()], correct[keep].cpu())
        bonus = torch.zeros(m.shape, dtype=torch.float64)
        bonus[m.cpu()] = ktae_scale * k[inv.cpu()]
        out[rows] = out[rows] + bonus.to(out.device)
    return out.float()


# --- TEMPO (Tran et al., arXiv 2509.18314) ---


def tempo_td(completion_ids: Tensor, mask: Tensor, groups: Tensor, values: Tensor) -> Tensor:
    """The prefix-tree temporal difference of every real token, [B, T] float64 (0 on padding).

    The completions of a group form a prefix tree (by token id); a prefix s is valued by the mean of
    `values` [B] over the completions that pass through it: V(s) = mean_{j: s prefix of y_j} values_j,
    V(empty prefix) = the group mean. Token t of completion i moves from prefix s_t = y_<t to s_t + y_t:
        td_it = V(y_<=t) - V(y_<t)
    which is 0 wherever the parent prefix has one child in the group (same completions below both), so
    only branching tokens carry a TD; summed over a row it telescopes to V(y_i) - mean_group(values).

    Vectorised (no loop per token): the rows are sorted by (group, real tokens), so that the completions
    through any prefix are one run of consecutive sorted rows; a prefix is named by the first row of its run,
    found from the common-prefix lengths of neighbouring rows. Each prefix's sum of values is accumulated in
    ascending row order within the group (one step per row rank, every group at once): the order a walk of the
    tree row by row adds them in, so each V is the same float64 number as the walk's.
    """
    device = mask.device
    m = mask.detach().cpu() != 0
    B, T = m.shape
    td = torch.zeros((B, T), dtype=torch.float64)
    lens = m.sum(1)
    L = int(lens.max()) if B else 0
    if L == 0:
        return td.to(device)
    ids = completion_ids.detach().cpu().long()
    vals = values.detach().double().cpu()
    _, grp = torch.unique(groups.detach().cpu(), return_inverse=True)  # group index per row, 0..n_groups-1
    n_groups = int(grp.max()) + 1
    cols = torch.arange(L)
    real = cols < lens.unsqueeze(1)  # [B, L]: the real tokens, left-aligned
    prefix = bool(torch.equal(m[:, :L], real)) and not bool(m[:, L:].any())  # right padding: nothing moves
    if prefix:
        packed = ids[:, :L].clone()
    else:
        packed = torch.zeros((B, L), dtype=torch.long)
        packed[real] = ids[m]
    # padding sorts below every real id (int64's minimum); where that is a real id, sort by rank instead
    if bool(((packed == _INT64_MIN) & real).any()):
        packed[real] = torch.unique(packed[real], return_inverse=True)[1] + 1
    packed.masked_fill_(~real, _INT64_MIN)

    # sort rows by (group, tokens) lexicographically: a completion that ends sorts before its extensions, so
    # the rows through any prefix are contiguous (numpy compares the rows as big-endian bytes: one memcmp each)
    keys = torch.cat([grp.unsqueeze(1), packed], 1).numpy().view(np.uint64) ^ np.uint64(1 << 63)
    keys = np.ascontiguousarray(keys.astype(">u8"))
    perm = torch.from_numpy(np.argsort(keys.view(np.dtype((np.void, keys.shape[1] * 8))).ravel()).astype(np.int64))
    s_tok, s_real, s_grp = packed[perm], real[perm], grp[perm]
    # common real prefix of each sorted row with the one before it (0 at a group's first row)
    same = (s_tok[1:] == s_tok[:-1]) & s_real[1:] & s_real[:-1] & (s_grp[1:] == s_grp[:-1]).unsqueeze(1)
    lcp = torch.where(same.all(1), L, (~same).to(torch.uint8).argmax(1))
    lcp = torch.cat([torch.zeros(1, dtype=torch.long), lcp])
    # the prefix y_<=t of sorted row u is named by the first row of its run: the last row v <= u whose common
    # prefix with its predecessor is shorter than t + 1. Node ids: v * L + t; the root of group g: B * L + g;
    # padding: one spare id past them all (written to and never read)
    spare = B * L + n_groups
    starts = torch.where(lcp.unsqueeze(1) <= cols, torch.arange(B).unsqueeze(1), 0).cummax(0).values
    node = torch.empty((B, L), dtype=torch.long)
    node[perm] = torch.where(s_real, starts * L + cols, spare)
    path = torch.cat([(B * L + grp).unsqueeze(1), node], 1)  # [B, L + 1]: each row's root, then its prefixes

    # sum of values per node, rows added in ascending order within each group: step k adds each group's k-th
    # row (a row passes a node once and groups share no node, so a step writes each real node at most once)
    by_group = torch.argsort(grp, stable=True)
    first = torch.zeros(n_groups, dtype=torch.long)
    first[1:] = torch.bincount(grp, minlength=n_groups).cumsum(0)[:-1]
    rank = torch.empty(B, dtype=torch.long)
    rank[by_group] = torch.arange(B) - first[grp[by_group]]
    total = torch.zeros(spare + 1, dtype=torch.float64)
    by_rank = torch.argsort(rank, stable=True)
    start = 0
    for c in torch.bincount(rank).tolist():
        rows = by_rank[start : start + c]
        start += c
        idx = path[rows]
        total[idx] = total[idx] + vals[rows].unsqueeze(1)
    count = torch.bincount(path.flatten(), minlength=spare + 1)
    V = total / count  # nan on unused ids, never read
    diffs = V[path[:, 1:]] - V[path[:, :-1]]  # V(child) - V(parent) along each row
    if prefix:
        td[:, :L] = diffs.masked_fill_(~real, 0.0)
    else:
        td[m] = diffs[real]
    return td.to(device)


def _tempo(
    *, mask: Tensor, groups: Tensor, completion_ids: Tensor, advantages: Tensor, tempo_td_weight: float = 1.0,
    **_: Any,
) -> Tensor:
    # V(s) = mean A_j over the completions below s (the "normalised reward"); A_it = A_i + beta * td_it
    td = tempo_td(completion_ids, mask, groups, advantages)
    return (advantages.detach().double().unsqueeze(1) + tempo_td_weight * td.to(advantages.device)).float()


# --- GTPO (Tan et al., arXiv 2508.04349) ---


def _gtpo(
    *, mask: Tensor, groups: Tensor, rewards: Tensor, entropies: Tensor,
    gtpo_alpha1: float = 1.0, gtpo_alpha2: float = 1.0, gtpo_entropy_floor: float = 1e-6, gtpo_eps: float = 1e-4,
    **_: Any,
) -> Tensor:
    # Token rewards, correct (o+) and incorrect (o-) completions apart, at each position t (t-th real token):
    #   o+: r_it = a1 R_i + a2 * H_it / sum_{k in o+ alive at t} H_kt * d_t              (high entropy: more reward)
    #   o-: r_it = a1 R_i - a2 * (1/H_it) / sum_{k in o- alive at t} (1/H_kt) * h_t      (confident mistake: more
    # penalty) d_t / h_t = how many of o+ / o- reach position t, so the entropy term averages a2 at every t.
    # Then A_it = (r_it - mean) / (std + eps) over every real token of the group (normalised per group;
    # one joint normalisation for o+ and o- is our reading). Rows at the group mean get r_it = a1 R_i.
    H = entropies.detach().double()
    pos = _positions(mask)
    out = torch.zeros(mask.shape, dtype=torch.float64, device=mask.device)
    for rows in _group_rows(groups):
        m, p, h = mask[rows], pos[rows], H[rows]
        R = rewards[rows].detach().double()
        correct, incorrect = _split_outcome(R)
        if not bool(correct.any() or incorrect.any()):
            continue  # all rewards equal: no contrast, A_it = 0
        r_tok = (gtpo_alpha1 * R).unsqueeze(1).expand(m.shape).clone()
        for cls, sign, score in ((correct, 1.0, h), (incorrect, -1.0, 1.0 / (h + gtpo_entropy_floor))):
            if not bool(cls.any()):
                continue
            sel = m & cls.unsqueeze(1)  # real tokens of this class's completions
            T_max = int(p[sel].max()) + 1
            col = torch.where(sel, p, T_max)  # position index, sentinel T_max elsewhere
            z = torch.where(sel, score, 0.0)
            tot = torch.zeros(T_max + 1, dtype=torch.float64, device=m.device).scatter_add_(
                0, col.flatten(), z.flatten()
            )
            alive = torch.zeros(T_max + 1, dtype=torch.float64, device=m.device).scatter_add_(
                0, col.flatten(), sel.double().flatten()
            )
            share = torch.where(tot[col] > 0, z / tot[col].clamp_min(1e-300), 1.0 / alive[col].clamp_min(1))
            r_tok = torch.where(sel, r_tok + sign * gtpo_alpha2 * share * alive[col], r_tok)
        x = r_tok[m]
        std = x.std() if x.numel() > 1 else torch.zeros((), dtype=torch.float64)
        a = (r_tok - x.mean()) / (std + gtpo_eps)  # normalised over the group's tokens
        out[rows] = torch.where(m, a, 0.0)
    return out.float()


# --- HICRA (Wang et al., arXiv 2509.03646) ---


def top_entropy_mask(entropies: Tensor, mask: Tensor, groups: Tensor, frac: float) -> Tensor:
    """Planning tokens by entropy: within each group, the real tokens whose entropy is among the top
    `frac` share (at least one token per group with real tokens; ties at the threshold all count). [B, T] bool."""
    if not (0.0 < frac <= 1.0):
        raise ValueError(f"top_entropy_mask: frac must be in (0, 1], got {frac}")
    out = torch.zeros(mask.shape, dtype=torch.bool, device=mask.device)
    for rows in _group_rows(groups):
        m = mask[rows]
        h = entropies[rows].float()
        vals = h[m]
        if vals.numel() == 0:
            continue
        k = max(1, math.ceil(frac * vals.numel() - 1e-9))  # how many tokens count as planning
        threshold = vals.topk(k).values.min()
        out[rows] = m & (h >= threshold)
    return out


def strategic_gram_mask(completion_ids: Tensor, mask: Tensor, grams: Iterable[Iterable[int]]) -> Tensor:
    """Planning tokens by the strategic-gram rule: every token of each occurrence of a gram (a token id
    sequence, e.g. the tokenization of "let's try") within a row's real tokens. [B, T] bool."""
    gram_lists = [g for g in (list(x) for x in grams) if g]
    out = torch.zeros(mask.shape, dtype=torch.bool, device=mask.device)
    for b in range(mask.shape[0]):
        cols = mask[b].nonzero().squeeze(-1).tolist()
        toks = completion_ids[b, cols].tolist() if cols else []
        for g in gram_lists:
            n = len(g)
            for i in range(len(toks) - n + 1):
                if toks[i : i + n] == g:
                    out[b, cols[i : i + n]] = True
    return out


def _hicra(
    *, mask: Tensor, groups: Tensor, advantages: Tensor, entropies: Tensor | None = None,
    completion_ids: Tensor | None = None, hicra_alpha: float = 0.2, hicra_entropy_frac: float = 0.2,
    hicra_grams: Iterable[Iterable[int]] | None = None, **_: Any,
) -> Tensor:
    # A_it = A_i + alpha * |A_i| on planning tokens (A_i (1 + alpha) when A_i > 0, A_i (1 - alpha) when
    # A_i < 0), A_i elsewhere. Planning tokens: the strategic-gram rule when grams are given, else the
    # top `hicra_entropy_frac` of the group's tokens by sampling entropy.
    if hicra_grams:
        if completion_ids is None:
            raise ValueError("hicra with grams needs completion_ids")
        planning = strategic_gram_mask(completion_ids, mask, hicra_grams)
        if not bool(planning.any()):  # every token gets A_i: this batch is stock GRPO; say so rather than silently
            import warnings

            warnings.warn(
                "hicra: no completion of this batch holds a credit_hicra_grams phrase, so no token is a planning "
                "token and the batch trains as stock GRPO; check the phrases against the completions", RuntimeWarning,
                stacklevel=2,
            )
    else:
        if entropies is None:
            raise ValueError("hicra needs entropies (top-entropy planning tokens) or hicra_grams")
        planning = top_entropy_mask(entropies, mask, groups, hicra_entropy_frac)
    A = advantages.detach().float().unsqueeze(1)
    return A + hicra_alpha * A.abs() * planning.float()


register_group_method("ktae", _ktae, needs=("completion_ids", "rewards", "advantages"))
register_group_method("tempo", _tempo, needs=("completion_ids", "advantages"))
register_group_method("gtpo", _gtpo, needs=("rewards", "entropies"))
register_group_method("hicra", _hicra, needs=("advantages", "entropies", "completion_ids"))


def _vine(
    *,
    mask: Tensor,
    groups: Tensor,
    vine_samples: int = 8,
    vine_batch_rows: int = 256,
    vine_positions: str = "adaptive",
    **_: Any,
) -> Tensor:
    # VinePPO's A_it = V_t - V_{t-1} (V: K continuations of each prefix): registered here, computed by the trainer
    raise ValueError("credit method 'vine' samples continuations from the policy; only the trainer computes it")


def _self_teacher(*, mask: Tensor, groups: Tensor, self_teacher_success: float | None = None, **_: Any) -> Tensor:
    # SC-GRPO's salience d_it = KL(pi_S || pi_T) (teacher: the policy shown a verified sibling), output "weights":
    # A_it = A_i * w_it * T_i with w_it = d_it / sum_k d_ik; registered here, computed by the trainer (self_teacher.py)
    raise ValueError("credit method 'self_teacher' runs the policy on teacher contexts; only the trainer computes it")


def _reads_the_model(name: str) -> ValueError:
    return ValueError(
        f"credit method {name!r} reads the model (and the task's answers); only the trainer and arca diagnose compute "
        "it (arca_rl.model_credit)"
    )


def _grail(
    *, mask: Tensor, groups: Tensor, grail_answer_weight: float = 5.0, grail_wrong_only: bool = True,
    grail_std: float = 0.5, grail_min: float = 0.5, grail_max: float = 5.0, **_: Any,
) -> Tensor:
    # GRAIL's omega_t: clip(1 + std * z(log ||grad * embedding||)), the answer's tokens forced to answer_weight
    # (model_credit.grail_weights); registered here, computed by the trainer (trainer/model_credit.py)
    raise _reads_the_model("grail")


def _oar_g(
    *, mask: Tensor, groups: Tensor, oar_g_tau: float = 0.4, oar_g_floor: float = 0.1, oar_g_boost: float = 2.0,
    oar_g_noise: float = 1e-3, **_: Any,
) -> Tensor:
    # OAR-G's omega_t from |sum_d grad * noisy embedding| of KL(P_0 || P_eps) (model_credit.oar_g_weights)
    raise _reads_the_model("oar_g")


def _delta(
    *, mask: Tensor, groups: Tensor, delta_low: float = 0.8, delta_high: float = 1.2, delta_gate: float | None = None,
    delta_steps: int = 1, **_: Any,
) -> Tensor:
    # DelTA's omega_t in [low, high] from a linear discriminator on (1 - p_t) h_t (model_credit.delta_weights)
    raise _reads_the_model("delta")


def _answer_only(*, mask: Tensor, groups: Tensor, answer_only_weight: float = 5.0, **_: Any) -> Tensor:
    # GRAIL's forced answer weight alone: answer_only_weight on the answer's tokens, 1 elsewhere
    raise _reads_the_model("answer_only")


#: The methods of `arca_rl.model_credit`, output "weights": GRAIL and OAR-G (the answer's gradient with respect to the
#: input embeddings), DelTA (a discriminator on the last hidden state), answer_only (GRAIL's forced weight alone).
MODEL_METHODS = ("grail", "oar_g", "delta", "answer_only")
_GRADIENT_METHODS = frozenset({"grail", "oar_g"})
_SAMPLED_METHODS = frozenset({"vine"})
_TRAINER_METHODS = frozenset({"vine", "self_teacher", *MODEL_METHODS})
register_group_method("vine", _vine, needs=())
register_group_method("self_teacher", _self_teacher, needs=(), output="weights")
register_group_method("grail", _grail, needs=(), output="weights")
register_group_method("oar_g", _oar_g, needs=(), output="weights")
register_group_method("delta", _delta, needs=(), output="weights")
register_group_method("answer_only", _answer_only, needs=(), output="weights")
