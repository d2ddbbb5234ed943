"""Group credit methods (KTAE, TEMPO, GTPO, HICRA) and the signed oracle measure, each against a hand
computation on a small group."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from scipy.stats import hypergeom

import arca_rl
from arca_rl import group_credit as credit
from arca_rl.group_credit import (
    group_credit,
    ktae_key_values,
    mix_advantages,
    register_group_method,
    strategic_gram_mask,
    tempo_td,
    top_entropy_mask,
)
from arca_rl.oracle import score_signed, signed_cosine

GROUP_METHODS = ["ktae", "tempo", "gtpo", "hicra"]


def batch(rows: list[list[int]], width: int | None = None, left: bool = False):
    """completion_ids and mask [B, T] from ragged rows, padded (right by default) with id 0."""
    T = width or max(len(r) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.bool)
    for b, r in enumerate(rows):
        cols = slice(T - len(r), T) if left else slice(0, len(r))
        ids[b, cols] = torch.tensor(r, dtype=torch.long)
        mask[b, cols] = True
    return ids, mask


def per_token(rows: list[list[float]], mask: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(mask.shape)
    for b, r in enumerate(rows):
        out[b, mask[b]] = torch.tensor(r, dtype=torch.float32)
    return out


def real(x: torch.Tensor, mask: torch.Tensor) -> list[list[float]]:
    return [x[b, mask[b]].tolist() for b in range(mask.shape[0])]


def flat(rows: list[list[float]]) -> list[float]:
    return [float(x) for row in rows for x in row]


def approx_rows(rows: list[list[float]], **kw):
    return pytest.approx(flat(rows), **kw)


# -----------------------------------------------------------------------------
# KTAE


def test_ktae_key_values_by_hand():
    # correct: {5, 7}, {5, 8}; incorrect: {6, 7}, {6, 8}
    # token 5: a=2 b=0 c=0 d=2: p = C(2,2) C(2,0) / C(4,2) = 1/6, F = 5/6; IG = 1 bit; dir = 1 -> k = 11/12
    # token 7: a=b=c=d=1: p = 4/6, F = 1/3; IG = 0; dir = 0 -> k = 0
    ids, mask = batch([[5, 7], [5, 8], [6, 7], [6, 8]])
    A = torch.tensor([1.0, 1.0, -1.0, -1.0])
    out = group_credit(
        "ktae", mask=mask, groups=torch.zeros(4, dtype=torch.long), completion_ids=ids,
        rewards=torch.tensor([1.0, 1.0, 0.0, 0.0]), advantages=A,
    )
    k = 11 / 12
    expected = [[1 + k, 1.0], [1 + k, 1.0], [-1 - k, -1.0], [-1 - k, -1.0]]
    assert flat(real(out, mask)) == approx_rows(expected, abs=1e-6)


def test_ktae_asymmetric_table_against_scipy():
    # 3 correct, 1 incorrect; token 9 in two correct completions and the incorrect one
    contains = torch.tensor([[True], [True], [False], [True]])
    correct = torch.tensor([True, True, True, False])
    a, b, c = 2, 1, 1  # d = 0
    p = hypergeom.pmf(a, 4, a + b, a + c)  # independent: scipy's hypergeometric point probability
    H = lambda q: 0.0 if q in (0.0, 1.0) else -(q * math.log2(q) + (1 - q) * math.log2(1 - q))  # noqa: E731
    ig = H(3 / 4) - (3 / 4) * H(2 / 3) - (1 / 4) * H(1.0)
    direction = a / 3 - b / 1
    assert ktae_key_values(contains, correct).item() == pytest.approx(direction * ((1 - p) + ig) / 2, abs=1e-12)


def test_ktae_scale_and_mean_threshold():
    ids, mask = batch([[5], [6]])
    kw = dict(mask=mask, groups=torch.zeros(2, dtype=torch.long), completion_ids=ids,
              rewards=torch.tensor([0.7, 0.2]), advantages=torch.tensor([0.5, -0.5]))
    # one correct (above the mean) and one incorrect: token 5 has p = 1/2, IG = 1, dir = 1 -> k = 0.75
    assert flat(real(group_credit("ktae", **kw, ktae_scale=2.0), mask)) == approx_rows([[0.5 + 1.5], [-0.5 - 1.5]])


# -----------------------------------------------------------------------------
# TEMPO


def test_tempo_by_hand():
    # values 3, -1, 1, -3 (mean 0). Tree: [1] (all, V 0) -> [1,2] (r0 r1, V 1) -> [1,2,3] V 3, [1,2,4] V -1
    #                                              -> [1,5] (r2 r3, V -1) -> [1,5,6] (r2 r3, V -1)
    ids, mask = batch([[1, 2, 3], [1, 2, 4], [1, 5, 6], [1, 5, 6]])
    A = torch.tensor([3.0, -1.0, 1.0, -3.0])
    groups = torch.zeros(4, dtype=torch.long)
    td = tempo_td(ids, mask, groups, A)
    assert flat(real(td, mask)) == approx_rows([[0, 1, 2], [0, 1, -2], [0, -1, 0], [0, -1, 0]])
    out = group_credit("tempo", mask=mask, groups=groups, completion_ids=ids, advantages=A, tempo_td_weight=0.5)
    assert flat(real(out, mask)) == approx_rows([[3, 3.5, 4], [-1, -0.5, -2], [1, 0.5, 1], [-3, -3.5, -3]])


def test_tempo_td_gated_and_telescopes():
    # non-branching tokens get td 0; each row's td sums to V(its leaf) - group mean (here rows are distinct)
    g = torch.Generator().manual_seed(0)
    rows = [[1, 2, 3, 4], [1, 2, 3, 5, 6], [1, 7], [1, 2, 8]]
    ids, mask = batch(rows, width=6)
    A = torch.randn(4, generator=g)
    td = tempo_td(ids, mask, torch.zeros(4, dtype=torch.long), A)
    for b in range(4):
        assert td[b, mask[b]].sum().item() == pytest.approx((A[b] - A.mean()).item(), abs=1e-6)
    assert td[:, 0].abs().max() == 0  # every row starts with token 1: the root has one child
    assert td[1, 4] == 0  # [1,2,3,5] -> [1,2,3,5,6]: one child, same completions below


def _tempo_td_tree_walk(completion_ids, mask, groups, values):
    """The prefix tree walked row by row in Python: tempo_td's implementation before it was vectorised, kept
    as the reference it must equal bit for bit."""
    td = torch.zeros(mask.shape, dtype=torch.float64)
    vals = values.detach().double().cpu()
    ids = completion_ids.cpu()
    m_all = mask.cpu()
    _, inverse = torch.unique(groups.cpu(), return_inverse=True)
    for g in range(int(inverse.max()) + 1):
        rows = (inverse == g).nonzero().squeeze(-1)
        node_of: dict[tuple[int, int], int] = {}
        total: list[float] = [0.0]
        count: list[int] = [0]
        paths: list[list[int]] = []
        for r in rows.tolist():
            node, path = 0, [0]
            total[0] += float(vals[r])
            count[0] += 1
            for tok in ids[r][m_all[r]].tolist():
                key = (node, tok)
                if key not in node_of:
                    node_of[key] = len(total)
                    total.append(0.0)
                    count.append(0)
                node = node_of[key]
                total[node] += float(vals[r])
                count[node] += 1
                path.append(node)
            paths.append(path)
        V = [t / c for t, c in zip(total, count)]
        for r, path in zip(rows.tolist(), paths):
            diffs = [V[path[i + 1]] - V[path[i]] for i in range(len(path) - 1)]
            td[r, m_all[r]] = torch.tensor(diffs, dtype=torch.float64)
    return td


def _branching_batch(gen: torch.Generator, B: int, T: int, vocab: int, n_groups: int):
    """Rows that share prefixes (each copies a random prefix of an earlier row of its group, then branches),
    random lengths (some 0), holes in the mask, groups shuffled over the batch, values with ties."""
    groups = torch.randint(0, n_groups, (B,), generator=gen) * 7 - 3  # arbitrary group ids, negative ones too
    ids = torch.randint(0, vocab, (B, T), generator=gen)
    for b in range(1, B):
        same = (groups[:b] == groups[b]).nonzero().squeeze(-1)
        if same.numel():
            src = int(same[torch.randint(0, same.numel(), (1,), generator=gen)])
            k = int(torch.randint(0, T + 1, (1,), generator=gen))
            ids[b, :k] = ids[src, :k]
    lengths = torch.randint(0, T + 1, (B,), generator=gen)
    mask = torch.arange(T) < lengths.unsqueeze(1)
    holes = torch.rand(B, T, generator=gen) < 0.05  # a mask that is not a prefix: the real tokens still chain
    mask = mask & ~holes if bool(torch.rand(1, generator=gen) < 0.5) else mask
    values = torch.randn(B, generator=gen)
    values[torch.rand(B, generator=gen) < 0.3] = 0.5  # exact ties
    return ids, mask, groups, values


@pytest.mark.parametrize("seed", range(12))
def test_tempo_td_equals_the_tree_walk_bit_for_bit(seed):
    gen = torch.Generator().manual_seed(seed)
    B, T = int(torch.randint(1, 40, (1,), generator=gen)), int(torch.randint(1, 30, (1,), generator=gen))
    vocab = int(torch.randint(2, 6, (1,), generator=gen))  # a small vocabulary: many shared prefixes
    n_groups = int(torch.randint(1, 5, (1,), generator=gen))
    ids, mask, groups, values = _branching_batch(gen, B, T, vocab, n_groups)
    got = tempo_td(ids, mask, groups, values)
    assert got.dtype == torch.float64
    assert torch.equal(got, _tempo_td_tree_walk(ids, mask, groups, values))
    A = values.float()
    out = group_credit("tempo", mask=mask, groups=groups, completion_ids=ids, advantages=A, tempo_td_weight=0.7)
    want = torch.where(mask, (A.double().unsqueeze(1) + 0.7 * _tempo_td_tree_walk(ids, mask, groups, A)).float(), 0.0)
    assert torch.equal(out, want)


def test_tempo_td_edge_ids_and_shapes():
    """Token ids at the ends of int64 (the padding key of the sort is int64's minimum), identical rows,
    completions that are prefixes of others, empty rows and an all-padding batch."""
    lo, hi = -(2**63), 2**63 - 1
    rows = [[lo, 3, hi], [lo, 3], [lo, 3, hi], [lo], [], [lo, 3, hi, lo], [hi, lo]]
    ids, mask = batch(rows, width=5)
    ids[~mask] = lo  # padding that looks like a real token
    values = torch.tensor([1.0, -2.0, 0.25, 3.0, 7.0, -1.5, 0.5])
    for groups in (torch.zeros(7, dtype=torch.long), torch.tensor([0, 1, 0, 1, 0, 1, 0])):
        assert torch.equal(tempo_td(ids, mask, groups, values), _tempo_td_tree_walk(ids, mask, groups, values))
    ids, mask = batch([[1, 2], [1, 2]], width=3)
    left_ids, left_mask = batch([[1, 2], [1, 2]], width=3, left=True)
    g2 = torch.zeros(2, dtype=torch.long)
    right, left = tempo_td(ids, mask, g2, values[:2]), tempo_td(left_ids, left_mask, g2, values[:2])
    assert torch.equal(right[mask], left[left_mask])
    none = torch.zeros(3, 4, dtype=torch.bool)
    assert torch.equal(tempo_td(torch.zeros(3, 4, dtype=torch.long), none, torch.zeros(3, dtype=torch.long),
                                torch.ones(3)), torch.zeros(3, 4, dtype=torch.float64))


# -----------------------------------------------------------------------------
# GTPO


def test_gtpo_by_hand():
    # correct r0 (H 1, 2), r1 (H 3); incorrect r2 (H 0.5, 2), r3 (H 2); a1 = a2 = 1
    # position 0, o+: 1 + 1/4 * 2 = 1.5 and 1 + 3/4 * 2 = 2.5; position 1, o+: 1 + 1 = 2
    # position 0, o-: 1/H = 2, 0.5 (sum 2.5): -(2/2.5) * 2 = -1.6 and -(0.5/2.5) * 2 = -0.4; position 1: -1
    _, mask = batch([[0, 0], [0], [0, 0], [0]])
    H = per_token([[1.0, 2.0], [3.0], [0.5, 2.0], [2.0]], mask)
    out = group_credit(
        "gtpo", mask=mask, groups=torch.zeros(4, dtype=torch.long), rewards=torch.tensor([1.0, 1.0, 0.0, 0.0]),
        entropies=H, gtpo_entropy_floor=0.0,
    )
    r = [[1.5, 2.0], [2.5], [-1.6, -1.0], [-0.4]]
    tokens = [x for row in r for x in row]
    mean, std = statistics.mean(tokens), statistics.stdev(tokens)
    expected = [[(x - mean) / (std + 1e-4) for x in row] for row in r]
    assert flat(real(out, mask)) == approx_rows(expected, abs=1e-5)
    # the confident mistake (low entropy) is penalised harder than the unsure one
    assert out[2, 0] < out[3, 0]


# -----------------------------------------------------------------------------
# HICRA


def test_hicra_top_entropy_by_hand():
    _, mask = batch([[0, 0], [0, 0]])
    H = per_token([[0.1, 0.9], [0.8, 0.2]], mask)
    A = torch.tensor([1.0, -1.0])
    out = group_credit(
        "hicra", mask=mask, groups=torch.zeros(2, dtype=torch.long), advantages=A, entropies=H,
        completion_ids=torch.zeros_like(mask, dtype=torch.long), hicra_alpha=0.2, hicra_entropy_frac=0.5,
    )
    # top half by entropy: (0, 1) and (1, 0); A (1 + 0.2) where A > 0, A (1 - 0.2) where A < 0
    assert flat(real(out, mask)) == approx_rows([[1.0, 1.2], [-0.8, -1.0]])


def test_hicra_strategic_grams():
    ids, mask = batch([[5, 6, 7, 6, 7], [6, 9, 7]], left=True)
    planning = strategic_gram_mask(ids, mask, [[6, 7]])
    assert real(planning.float(), mask) == [[0, 1, 1, 1, 1], [0, 0, 0]]
    out = group_credit(
        "hicra", mask=mask, groups=torch.tensor([0, 0]), advantages=torch.tensor([2.0, -2.0]),
        completion_ids=ids, entropies=torch.zeros(mask.shape), hicra_grams=[[6, 7]], hicra_alpha=0.5,
    )
    assert flat(real(out, mask)) == approx_rows([[2, 3, 3, 3, 3], [-2, -2, -2]])


def test_top_entropy_mask_per_group():
    _, mask = batch([[0, 0], [0, 0], [0, 0]])
    H = per_token([[5.0, 1.0], [2.0, 0.0], [0.3, 0.1]], mask)
    got = top_entropy_mask(H, mask, torch.tensor([0, 0, 1]), 0.25)  # group 0: 1 of 4 tokens; group 1: 1 of 2
    assert got.tolist() == [[True, False], [False, False], [True, False]]


# -----------------------------------------------------------------------------
# every group method: no contrast, layout invariance


def grpo_advantages(rewards: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(rewards)
    for g in groups.unique():
        sel = groups == g
        r = rewards[sel]
        out[sel] = (r - r.mean()) / (r.std() + 1e-4)
    return out


def inputs_for(rows, rewards, groups, seed=0, left=False):
    ids, mask = batch(rows, left=left)
    g = torch.Generator().manual_seed(seed)
    rewards, groups = torch.tensor(rewards), torch.tensor(groups)
    return dict(
        mask=mask, groups=groups, completion_ids=ids, rewards=rewards,
        advantages=grpo_advantages(rewards, groups), entropies=torch.rand(mask.shape, generator=g) * 3,
    )


@pytest.mark.parametrize("name", GROUP_METHODS)
def test_all_equal_rewards_give_zero(name):
    kw = inputs_for([[1, 2, 3], [1, 4], [5, 2, 3, 3]], [1.0, 1.0, 1.0], [7, 7, 7])
    out = group_credit(name, **kw)
    assert torch.isfinite(out).all()
    assert out.abs().max().item() == 0.0


@pytest.mark.parametrize("name", GROUP_METHODS)
def test_group_layout_does_not_matter(name):
    # two groups interleaved and permuted, left padding: each row gets what its group alone gives it
    rows = [[1, 2, 3], [1, 2, 4, 4], [1, 5], [9, 8, 7], [9, 8], [6, 8, 7]]
    rewards, groups = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0], [0, 0, 0, 1, 1, 1]
    full = inputs_for(rows, rewards, groups, left=True)
    out_full = group_credit(name, **full)
    perm = [4, 0, 3, 5, 2, 1]
    shuffled = {k: v[perm] for k, v in full.items()}
    out_perm = group_credit(name, **shuffled)
    assert torch.equal(out_perm, out_full[perm])
    for g in (0, 1):
        sel = full["groups"] == g
        alone = group_credit(name, **{k: v[sel] for k, v in full.items()})
        assert torch.allclose(alone, out_full[sel], atol=1e-6)


def test_group_credit_input_errors():
    kw = inputs_for([[1, 2], [3]], [1.0, 0.0], [0, 0])
    with pytest.raises(ValueError, match="needs rewards"):
        group_credit("ktae", **{**kw, "rewards": None})
    with pytest.raises(ValueError, match=r"groups must be \[B\]"):
        group_credit("ktae", **{**kw, "groups": torch.zeros(2, 2, dtype=torch.long)})
    with pytest.raises(ValueError, match="entropies holds NaN"):
        group_credit("gtpo", **{**kw, "entropies": torch.full((2, 2), math.nan)})
    with pytest.raises(ValueError, match="unknown group method"):
        group_credit("nope", **kw)


def test_register_group_method():
    def first_token_bonus(*, mask, groups, advantages, **_):
        return advantages.unsqueeze(1) + mask.cumsum(-1).eq(1).float()  # A_i + 1 on each row's first token

    register_group_method("test_first_bonus", first_token_bonus, needs=("advantages",))
    try:
        assert credit.is_group_method("test_first_bonus")
        assert credit.group_method_output("test_first_bonus") == "advantages"
        assert "test_first_bonus" in credit.registered_methods()
        assert "test_first_bonus" not in arca_rl.registered_signals()
        _, mask = batch([[0, 0], [0]], left=True)
        out = group_credit("test_first_bonus", mask=mask, groups=torch.zeros(2, dtype=torch.long),
                           advantages=torch.tensor([1.0, -1.0]))
        assert real(out, mask) == [[2.0, 1.0], [0.0]]
        with pytest.raises(ValueError, match="already registered"):
            register_group_method("test_first_bonus", first_token_bonus, needs=())
    finally:
        credit._GROUP_METHODS.pop("test_first_bonus")
    with pytest.raises(ValueError, match="already registered"):
        register_group_method("arca", first_token_bonus, needs=())
    with pytest.raises(ValueError, match="unknown inputs"):
        register_group_method("x", first_token_bonus, needs=("hidden",))
    with pytest.raises(ValueError, match="output must be one of"):
        register_group_method("x", first_token_bonus, needs=(), output="signed")


# -----------------------------------------------------------------------------
# mixing and shares


def test_mix_advantages_by_hand():
    _, mask = batch([[0, 0, 0], [0]])
    tok = per_token([[2.0, 0.0, -1.0], [4.0]], mask)
    A = torch.tensor([1.0, -2.0])
    got = mix_advantages(tok, A, mask, 0.25)
    assert flat(real(got, mask)) == approx_rows([[0.75 + 0.5, 0.75, 0.75 - 0.25], [-1.5 + 1.0]])
    assert got[1, 1:].abs().max() == 0  # padding stays 0
    assert torch.equal(mix_advantages(tok, A, mask, 1.0), tok)
    assert real(mix_advantages(tok, A, mask, 0.0), mask) == [[1.0, 1.0, 1.0], [-2.0]]


def test_advantage_shares():
    _, mask = batch([[0, 0, 0], [0, 0]])
    tok = per_token([[2.0, 0.0, -2.0], [0.0, 0.0]], mask)
    assert flat(real(credit.advantage_shares(tok, mask), mask)) == approx_rows([[0.5, 0.0, 0.5], [0.5, 0.5]])


# -----------------------------------------------------------------------------
# the signed oracle measure


def test_signed_cosine_by_hand():
    assert signed_cosine([1.0, 0.0], [3.0, 4.0]) == pytest.approx(3 / 5)
    assert signed_cosine([0.0, -2.0], [3.0, 4.0]) == pytest.approx(-4 / 5)
    assert signed_cosine([0.0, 0.0], [3.0, 4.0]) is None
    assert signed_cosine([1.0, 1.0], [0.0, 0.0]) is None


def test_uniform_signed_measure_is_sign_times_total_change():
    # uniform credit A_t = A_i: cos = sign(A_i) (R - V_0) / (sqrt(T) ||delta||), since sum_t delta_t = R - V_0
    values = [0.25, 0.5, 0.125, 1.0]  # V_0 .. V_T, R = V_T = 1
    delta = [b - a for a, b in zip(values[:-1], values[1:])]
    T = len(delta)
    norm = math.sqrt(sum(d * d for d in delta))
    for A in (0.8, -0.3):
        expected = math.copysign(1.0, A) * (values[-1] - values[0]) / (math.sqrt(T) * norm)
        assert signed_cosine([A] * T, delta) == pytest.approx(expected)


def test_score_signed_mean_and_interval():
    rows = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], None]
    deltas = [[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [1.0, 0.0]]
    got = score_signed(rows, deltas)
    xs = [1.0, 0.0, 1.0]
    half = 4.302652729911275 * statistics.stdev(xs) / math.sqrt(3)  # t(0.975, 2)
    assert got["n"] == 3 and got["zero_rows"] == 1
    assert got["mean"] == pytest.approx(2 / 3)
    assert got["ci_low"] == pytest.approx(2 / 3 - half) and got["ci_high"] == pytest.approx(2 / 3 + half)


def test_signal_and_group_method_names_are_one_namespace():
    """A signal cannot take a group method's name (nor the reverse): `--credit tempo` must mean one thing."""
    from arca_rl.credit import register_signal, registered_signals

    with pytest.raises(ValueError, match="'tempo' is already registered"):
        register_signal("tempo", lambda *, mask, **_: mask.float(), needs=())
    assert "tempo" not in registered_signals()
    with pytest.raises(ValueError, match="'surprisal' is already registered"):
        register_group_method("surprisal", lambda *, mask, **_: mask.float(), needs=())
    assert "surprisal" not in credit.registered_group_methods()


def test_hicra_grams_that_match_nothing_warn_and_a_phraseless_value_is_refused():
    """Issue 28 §4: grams matching no token of a batch leave it stock GRPO: a warning says so; '|' (no phrase at all)
    is refused at validation."""
    import warnings

    from arca_rl._config import ConfigError, parse_config

    mask = torch.ones(2, 3)
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    kwargs = dict(mask=mask, groups=torch.tensor([0, 0]), completion_ids=ids, advantages=torch.tensor([1.0, -1.0]),
                  entropies=torch.rand(2, 3))
    with pytest.warns(RuntimeWarning, match="no completion of this batch holds a credit_hicra_grams phrase"):
        group_credit("hicra", hicra_grams=[[9, 9]], **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        group_credit("hicra", hicra_grams=[[2, 3]], **kwargs)  # a match: no warning
    for value in ("|", " | "):
        with pytest.raises(ConfigError, match=r"^training\.credit_hicra_grams: .* holds no phrase"):
            parse_config({"training": {"credit": "hicra", "credit_hicra_grams": value}}).training_args(
                "unused", for_validation=True)
