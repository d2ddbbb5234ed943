"""GRAIL, OAR-G, DelTA and answer_only (`arca_rl.model_credit`): the answer's tokens, the input-embedding gradient
pass and each paper's weights, each against an independent computation (plain Python loops, a `.backward()` on the
full logits), then the tasks' answer spans against their own answer extraction."""

from __future__ import annotations

import copy
import math
import random

import pytest
import torch

from arca_rl.model_credit import (
    AnswerTokens,
    answer_only_weights,
    answer_tokens,
    delta_weights,
    embedding_scores,
    grail_weights,
    oar_g_weights,
)
from arca_rl.tasks import addition as addition_task
from arca_rl.tasks import boxed_span, get_task
from arca_rl.tasks import reasoning_gym as rg_task
from tiny import char_tokenizer, tiny_lora, tiny_model

# ---------------------------------------------------------------------------------------------------------------
# answer tokens

VOCAB = ["<pad>", "So ", "12", " + ", "34", " = ", "46", ". ", "\\box", "ed{", "4", "6}", "\n", "done", "{", "}"]


def vocab_decode(ids: list[int]) -> str:
    return "".join(VOCAB[i] for i in ids if i != 0)


def by_hand(ids: list[int], span) -> tuple[set[int], set[int], set[int]]:
    """(content, markup, after) token indices from each token's own character range, summed up token by token."""
    start, end, c0, c1 = span
    content, markup, after = set(), set(), set()
    at = 0
    for k, i in enumerate(ids):
        lo, hi = at, at + len(VOCAB[i])
        at = hi
        if lo < c1 and hi > c0:
            content.add(k)
        elif lo < end and hi > start:
            markup.add(k)
        elif lo >= end:
            after.add(k)
    return content, markup, after


def test_answer_tokens_are_the_tokens_overlapping_the_span():
    rows = [
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],  # "So 12 + 34 = 46. \boxed{46}\ndone": the box splits 46
        [1, 2, 3, 4, 5, 6],  # no box
        [8, 9, 14, 10, 15, 11],  # "\boxed{{4}6}": nested braces
    ]
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for b, r in enumerate(rows):
        ids[b, : len(r)] = torch.tensor(r)
        mask[b, : len(r)] = True
    got = answer_tokens(vocab_decode, ids, mask, boxed_span)
    assert got.found.tolist() == [True, False, True]
    for b, r in enumerate(rows):
        span = boxed_span(vocab_decode(r))
        content, markup, after = by_hand(r, span) if span else (set(), set(), set())
        assert set(got.content[b].nonzero().flatten().tolist()) == content
        assert set(got.markup[b].nonzero().flatten().tolist()) == markup
        assert set(got.after[b].nonzero().flatten().tolist()) == after
    # row 0: "\\box" "ed{" (tokens 7, 8) are markup, "4" "6}" (9, 10) hold the answer 46, "\n" "done" come after
    assert got.content[0].nonzero().flatten().tolist() == [9, 10]
    assert got.markup[0].nonzero().flatten().tolist() == [7, 8]
    assert got.after[0].nonzero().flatten().tolist() == [11, 12]


def test_answer_tokens_bisection_matches_every_prefix_on_a_bpe_tokenizer():
    from transformers import AutoTokenizer

    from arca_rl.tasks import tiny_model_path

    tok = AutoTokenizer.from_pretrained(tiny_model_path())
    texts = [
        "We add 12 and 34: 12 + 34 = 46, so the answer is \\boxed{46}.",
        "Step 1: 7+8=15\nStep 2: 15+20=35 \\boxed{ 35 } and then some more words after it",
        "no answer here 1 2 3",
    ]
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False)
        out = answer_tokens(
            lambda x: tok.decode(x, skip_special_tokens=True), torch.tensor([ids]), torch.ones(1, len(ids)), boxed_span
        )
        decoded = tok.decode(ids, skip_special_tokens=True)
        span = boxed_span(decoded)
        offsets = [len(tok.decode(ids[:k], skip_special_tokens=True)) for k in range(len(ids) + 1)]  # every prefix
        if span is None:
            assert not out.found.any()
            continue
        start, end, c0, c1 = span
        want_content = [k for k in range(len(ids)) if offsets[k] < c1 and offsets[k + 1] > c0]
        want_span = [k for k in range(len(ids)) if offsets[k] < end and offsets[k + 1] > start]
        assert out.content[0].nonzero().flatten().tolist() == want_content
        assert sorted(out.span[0].nonzero().flatten().tolist()) == want_span
        assert out.after[0].nonzero().flatten().tolist() == [k for k in range(len(ids)) if offsets[k] >= end]
        assert "".join(tok.decode([ids[k]]) for k in want_content).strip().startswith(decoded[c0:c1][:1])


# ---------------------------------------------------------------------------------------------------------------
# the weights, against plain-Python versions of the papers' code


def answers(content: list[list[int]], markup: list[list[int]], after: list[list[int]], found: list[bool]):
    t = lambda x: torch.tensor(x, dtype=torch.bool)  # noqa: E731
    return AnswerTokens(content=t(content), markup=t(markup), after=t(after), found=t(found))


def test_grail_weights_by_hand():
    scores = torch.tensor(
        [[0.5, 2.0, 8.0, 1e-3, 3.0, 0.0], [1.0, 2.0, 3.0, 4.0, 0.0, 0.0], [1.0, 5.0, 2.0, 0.0, 0.0, 0.0]]
    )
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    ans = answers(
        content=[[0, 0, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]],
        markup=[[0, 0, 1, 0, 1, 0], [0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]],
        after=[[0, 0, 0, 0, 0, 1], [0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0]],
        found=[True, True, False],
    )
    advantages = torch.tensor([-1.0, 0.7, -0.3])  # row 1 is right: wrong_only keeps it at 1 but its answer
    got = grail_weights(scores, mask, ans, advantages, std=0.5, low=0.5, high=5.0, answer_weight=5.0, wrong_only=True)
    for b in range(3):
        n = int(mask[b].sum())
        logs = [math.log(float(scores[b, t]) + 1e-8) for t in range(n)]
        mean = sum(logs) / n
        sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / n + 1e-8)
        for t in range(6):
            if t >= n:
                want = 0.0
            elif ans.content[b, t]:
                want = 5.0
            elif ans.markup[b, t] or ans.after[b, t] or not ans.found[b] or advantages[b] > 0:
                want = 1.0
            else:
                want = min(5.0, max(0.5, 1 + 0.5 * (logs[t] - mean) / sd))
            assert got[b, t].item() == pytest.approx(want, rel=1e-5), (b, t)
    # without the forced weight the answer's token keeps its z-weight; every rollout reweighted without wrong_only
    free = grail_weights(scores, mask, ans, advantages, answer_weight=None, wrong_only=False)
    logs = [math.log(float(x) + 1e-8) for x in scores[0]]
    mean = sum(logs) / 6
    z = (logs[3] - mean) / math.sqrt(sum((x - mean) ** 2 for x in logs) / 6 + 1e-8)
    assert free[0, 3].item() == pytest.approx(min(5.0, max(0.5, 1 + 0.5 * z)), rel=1e-5)
    assert free[0, 5].item() == 1.0  # after the answer: 1, whatever its score (0 here, which would clip low)
    assert free[1, 0].item() != pytest.approx(1.0)


def test_answer_only_is_the_forced_weight_alone():
    mask = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)
    ans = answers([[0, 1, 0, 0]], [[1, 0, 1, 0]], [[0, 0, 0, 0]], [True])
    assert answer_only_weights(mask, ans, answer_weight=3.0).tolist() == [[1.0, 3.0, 1.0, 0.0]]


def oar_g_by_hand(scores: list[float], tau: float, floor: float, boost: float, eps: float = 1e-12) -> list[float]:
    bar = [math.log1p(s) for s in scores]
    lo, hi = min(bar), max(bar)
    h = [(x - lo) / (hi - lo + eps) for x in bar]
    ordered = sorted(h)
    gate = ordered[min(int(math.floor(len(h) * tau)), len(h) - 1)]
    omega = [max(x / (gate + eps), floor) if x < gate else 1 + boost * (x - gate) / (1 - gate + eps) for x in h]
    total = sum(omega)
    return [w * len(h) / (total + 1e-8) for w in omega]


def test_oar_g_weights_by_hand():
    rng = random.Random(0)
    rows = [[rng.random() ** 3 * 10 for _ in range(n)] for n in (7, 10, 3, 1)]
    width = max(map(len, rows))
    scores = torch.zeros(len(rows), width)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for b, r in enumerate(rows):
        scores[b, : len(r)] = torch.tensor(r)
        mask[b, : len(r)] = True
    found = torch.tensor([True, True, True, False])
    got = oar_g_weights(scores, mask, found, tau=0.4, floor=0.1, boost=2.0)
    for b, r in enumerate(rows):
        want = oar_g_by_hand(r, 0.4, 0.1, 2.0) if found[b] else [1.0] * len(r)
        assert got[b, : len(r)].tolist() == pytest.approx(want, rel=1e-5, abs=1e-6), b
        assert got[b, len(r) :].abs().sum() == 0
        if found[b]:
            assert sum(got[b, : len(r)].tolist()) == pytest.approx(len(r), rel=1e-5)  # rescaled to sum to T


def delta_by_hand(v_rows, adv, low, high, steps, gate_c=None):
    """DelTA's released algorithm on lists: v_rows[b][t] a D-list (already (1 - p) h), adv[b] the advantage."""
    D = len(v_rows[0][0])

    def mean(weighted):
        tot = sum(w for w, _ in weighted)
        return [sum(w * v[d] for w, v in weighted) / max(tot, 1e-8) for d in range(D)]

    def dist(v, mu):
        return sum((v[d] - mu[d]) ** 2 for d in range(D))

    toks = [(b, t) for b, row in enumerate(v_rows) for t in range(len(row))]
    mu_p = mean([(max(adv[b], 0.0), v_rows[b][t]) for b, t in toks])
    mu_n = mean([(max(-adv[b], 0.0), v_rows[b][t]) for b, t in toks])

    def margins(mu_p, mu_n):
        return {(b, t): (dist(v_rows[b][t], mu_n) - dist(v_rows[b][t], mu_p)) * (1 if adv[b] > 0 else -1)
                for b, t in toks if adv[b] != 0}

    def spread(m, side):
        xs = [m[k] for k in m if (adv[k[0]] > 0) == side]
        mu = sum(xs) / len(xs)
        return math.sqrt(max(sum(x * x for x in xs) / len(xs) - mu * mu, 1e-8))

    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    m = margins(mu_p, mu_n)
    g = {True: spread(m, True), False: spread(m, False)}
    for _ in range(steps):
        mu_p = mean([(sig(m[(b, t)] / g[True]) * adv[b], v_rows[b][t]) for b, t in toks if adv[b] > 0])
        mu_n = mean([(sig(m[(b, t)] / g[False]) * -adv[b], v_rows[b][t]) for b, t in toks if adv[b] < 0])
        g = {True: spread(m, True), False: spread(m, False)}
        m = margins(mu_p, mu_n)
    out = []
    for b, row in enumerate(v_rows):
        r = []
        for t in range(len(row)):
            if adv[b] == 0:
                r.append(low)
                continue
            x = m[(b, t)] / g[adv[b] > 0]
            gate = sig(x) if gate_c is None else min(1.0, max(0.0, (x + gate_c) / (2 * gate_c)))
            r.append(low + (high - low) * gate)
        out.append(r)
    return out


@pytest.mark.parametrize("steps,gate_c", [(1, None), (0, None), (2, 1.5)])
def test_delta_weights_by_hand(steps, gate_c):
    torch.manual_seed(0)
    lengths, D = [5, 3, 4, 6, 2], 3
    B, T = len(lengths), max(lengths)
    hidden = torch.randn(B, T, D)
    logps = -torch.rand(B, T) * 3
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b, n in enumerate(lengths):
        mask[b, :n] = True
    adv = torch.tensor([1.2, -0.4, -0.8, 0.0, 0.5])
    got = delta_weights(hidden, logps, mask, adv, low=0.8, high=1.2, gate=gate_c, steps=steps)
    v_rows = [
        [[(1 - math.exp(float(logps[b, t]))) * float(hidden[b, t, d]) for d in range(D)] for t in range(n)]
        for b, n in enumerate(lengths)
    ]
    want = delta_by_hand(v_rows, adv.tolist(), 0.8, 1.2, steps, gate_c)
    for b, n in enumerate(lengths):
        assert got[b, :n].tolist() == pytest.approx(want[b], rel=1e-4, abs=1e-5), b
        assert got[b, n:].abs().sum() == 0
    assert float(got[mask].min()) >= 0.8 - 1e-6 and float(got[mask].max()) <= 1.2 + 1e-6


def test_delta_without_both_sides_is_uniform():
    mask = torch.ones(2, 3, dtype=torch.bool)
    out = delta_weights(torch.randn(2, 3, 4), -torch.rand(2, 3), mask, torch.tensor([0.5, 0.0]))
    assert out.tolist() == [[1.0] * 3, [1.0] * 3]


# ---------------------------------------------------------------------------------------------------------------
# the gradient pass


def tiny_peft():
    from peft import get_peft_model

    tok = char_tokenizer()
    model = get_peft_model(tiny_model(tok, seed=1), tiny_lora(lora_dropout=0.0))
    return tok, model


def batch_of(tok, prompts: list[str], completions: list[str]):
    p_ids = [tok.encode(p, add_special_tokens=False) for p in prompts]
    c_ids = [tok.encode(c, add_special_tokens=False) for c in completions]
    P, C = max(map(len, p_ids)), max(map(len, c_ids))
    ids = torch.full((len(prompts), P + C), tok.pad_token_id)
    att = torch.zeros(len(prompts), P + C, dtype=torch.long)
    for b, (p, c) in enumerate(zip(p_ids, c_ids)):
        ids[b, P - len(p) : P] = torch.tensor(p)
        ids[b, P : P + len(c)] = torch.tensor(c)
        att[b, P - len(p) : P + len(c)] = 1
    return ids, att, P, C


def manual_scores(model, ids, att, P, C, answer, kind, temperature=1.0, noise=None):
    """The same attribution through `.backward()` on the full logits of a copy of the model."""
    model = copy.deepcopy(model)
    embeds = model.get_input_embeddings()(ids).detach()
    if kind == "grail":
        leaf = embeds.clone().requires_grad_(True)
        logits = model(inputs_embeds=leaf, attention_mask=att).logits[:, P - 1 : P + C - 1].float() / temperature
        logp = torch.log_softmax(logits, -1).gather(-1, ids[:, P:].unsqueeze(-1)).squeeze(-1)
        (-(logp * answer).sum()).backward()
        g = leaf.grad[:, P - 1 : P + C - 1]
        return (g * leaf.detach()[:, P - 1 : P + C - 1]).norm(dim=-1)
    with torch.no_grad():
        clean = model(inputs_embeds=embeds, attention_mask=att).logits[:, P - 1 : P + C - 1].float()
    n = answer.sum(-1, keepdim=True).float()
    p0 = torch.softmax((clean * answer.unsqueeze(-1)).sum(1) / n, -1)
    leaf = (embeds + noise).requires_grad_(True)
    noisy = model(inputs_embeds=leaf, attention_mask=att).logits[:, P - 1 : P + C - 1].float()
    log_p = torch.log_softmax((noisy * answer.unsqueeze(-1)).sum(1) / n, -1)
    (p0 * (torch.log(p0 + 1e-12) - log_p)).sum().backward()
    g = leaf.grad[:, P - 1 : P + C - 1]
    return (g * leaf.detach()[:, P - 1 : P + C - 1]).sum(-1).abs()


@pytest.mark.parametrize("kind", ["grail", "oar_g"])
def test_embedding_scores_match_a_backward_and_write_no_parameter_gradient(kind):
    tok, model = tiny_peft()
    model.train()
    ids, att, P, C = batch_of(tok, ["12+34=", "5+6="], ["46 \\boxed{46}", "11 \\boxed{1}x"])
    answer = torch.zeros(2, C, dtype=torch.bool)
    answer[0, 3:12] = True
    answer[1, 2:10] = True
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    got = embedding_scores(model, ids, att, C, answer, kind=kind, temperature=0.7, rows=1)
    noise = None
    if kind == "oar_g":  # the noise the pass drew, redrawn from the same RNG state, row by row as it drew it
        torch.random.set_rng_state(before)
        emb = model.get_input_embeddings()(ids).detach()
        noise = torch.zeros_like(emb)
        for b in range(2):
            noise[b : b + 1, P - 1 : P + C - 1] = torch.randn_like(emb[b : b + 1, P - 1 : P + C - 1]) * 1e-3
    want = manual_scores(model, ids, att, P, C, answer, kind, temperature=0.7, noise=noise)
    torch.testing.assert_close(got, want.float(), rtol=1e-4, atol=1e-7)
    assert got.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())  # no parameter gradient written
    assert model.training and any(p.requires_grad for p in model.parameters())
    # a batch with no answer scores nothing and runs no pass
    assert embedding_scores(model, ids, att, C, torch.zeros_like(answer), kind=kind).abs().sum() == 0


# ---------------------------------------------------------------------------------------------------------------
# the tasks' answer spans are where their own extraction reads the answer


BOXED = ["a \\boxed{42} b", "\\boxed{ \\frac{1}{2} } end", "no box 7", "\\boxed{1} then \\boxed{2}", "\\boxed 5",
         "\\boxed{unclosed", "x \\fbox{3}"]


@pytest.mark.parametrize("text", BOXED)
def test_boxed_span_is_where_last_boxed_reads(text):
    from arca_rl.tasks import last_boxed

    span = boxed_span(text)
    assert (span is None) == (last_boxed(text) is None)
    if span is not None:
        assert text[span.content_start : span.content_end] == last_boxed(text)
        assert span.start <= span.content_start <= span.content_end <= span.end
        assert text[span.start : span.end].startswith(("\\boxed", "\\fbox"))


@pytest.mark.parametrize("text", ["So 3 + 4 = 7. \\boxed{7}", "the sum is 1,234", "\\boxed{3 + 4} so 7", "none"])
def test_addition_answer_span(text):
    span = addition_task.answer_span(text)
    got = addition_task.extract_answer(text)
    assert (span is None) == (got is None)
    if span is not None:
        assert addition_task.extract_answer(text[span.content_start : span.content_end]) == got


@pytest.mark.parametrize("text", ["#### no box, the answer is 1,234.", "\\boxed{18}", "nothing"])
@pytest.mark.parametrize("require_boxed", [False, True])
def test_gsm8k_answer_span(text, require_boxed):
    from arca_rl.tasks.gsm8k import parse_number

    task = get_task("gsm8k", require_boxed=require_boxed)
    span = task.answer_span(text)
    boxed = boxed_span(text)
    if boxed is None and (require_boxed or parse_number(text) is None):
        assert span is None
        return
    assert parse_number(text[span.content_start : span.content_end]) == (
        parse_number(text[boxed.content_start : boxed.content_end]) if boxed else parse_number(text)
    )


@pytest.mark.parametrize("mode", ["tags", "last_line", "last_number"])
@pytest.mark.parametrize(
    "text",
    [
        "think <answer> 42 </answer> more",
        "line one\n  the end: −1,234  \n\n",
        "x +5 y",
        "<answer>a</answer><answer>b</answer>",
    ],
)
def test_reasoning_gym_answer_span(mode, text):
    span = rg_task.answer_span(text, mode)
    got = rg_task.extract_answer(text, mode)
    assert (span is None) == (got is None)
    if span is not None:
        piece = text[span.content_start : span.content_end]
        if mode == "last_number" and "<answer>" not in text:
            piece = piece.translate(rg_task._MINUS).replace(",", "")
        assert piece == got


# ---------------------------------------------------------------------------------------------------------------
# arca diagnose


def tail_answer(text: str):
    n = len(text)
    return (max(0, n - 3), n, max(0, n - 2), n) if n else None


def test_diagnose_scores_each_method_as_the_functions_compute_it():
    """`diagnose` rows for the four methods; answer_only's weights recomputed by hand from the completions, grail's
    from `embedding_scores` + `grail_weights` on the same batch (the adapter on, eval mode, as diagnose runs)."""
    from arca_rl import diagnose
    from arca_rl._diagnose.score import grpo_advantages

    tok, model = tiny_peft()
    model.eval()
    methods = ["uniform", "grail", "oar_g", "delta", "answer_only"]
    res = diagnose(
        model, tok, ["12+7=", "3+45+6=", "1="], k=4, max_new_tokens=6, temperature=1.0, seed=2, progress=False,
        signals=methods, rewards=lambda i, text: float(len(text) % 2), answer_span=tail_answer,
    )  # fmt: skip
    assert set(methods) <= set(res.signals) and not set(methods) & set(res.absent)
    assert all(name in res.table() for name in methods)
    for rec in res.completions:
        for name in methods:
            assert sum(rec.weights[name]) == pytest.approx(1.0, abs=1e-5)
        n = len(rec.token_ids)
        text_tokens = [tok.decode(rec.token_ids[:k], skip_special_tokens=True) for k in range(n + 1)]
        span = tail_answer(text_tokens[-1])
        if span is None:
            continue
        content = [k for k in range(n) if len(text_tokens[k]) < span[3] and len(text_tokens[k + 1]) > span[2]]
        omega = [5.0 if k in content else 1.0 for k in range(n)]
        assert rec.weights["answer_only"] == pytest.approx([w / sum(omega) for w in omega], rel=1e-5)
    # grail on the same batch rebuilt by hand (left-padded prompts, right-padded completions, generate's positions)
    recs = res.completions
    adv = torch.tensor(grpo_advantages([r.reward for r in recs], [r.prompt_index for r in recs]))
    p_ids = [tok.encode(r.prompt, add_special_tokens=False) for r in recs]
    P, C = max(map(len, p_ids)), max(len(r.token_ids) for r in recs)
    ids = torch.full((len(recs), P + C), tok.pad_token_id)
    att = torch.zeros(len(recs), P + C, dtype=torch.long)
    for b, (p, r) in enumerate(zip(p_ids, recs)):
        ids[b, P - len(p) : P] = torch.tensor(p)
        ids[b, P : P + len(r.token_ids)] = torch.tensor(r.token_ids)
        att[b, P - len(p) : P + len(r.token_ids)] = 1
    mask = att[:, P:].bool()
    ans = answer_tokens(lambda x: tok.decode(x, skip_special_tokens=True), ids[:, P:], mask, tail_answer)
    positions = (att.cumsum(-1) - 1).clamp_min(0)
    scores = embedding_scores(model, ids, att, C, ans.span, kind="grail", position_ids=positions)
    want = grail_weights(scores, mask, ans, adv)
    for b, r in enumerate(recs):
        assert r.salience["grail"] == pytest.approx(want[b, : len(r.token_ids)].tolist(), rel=1e-4, abs=1e-6)
    assert any(len(set(r.salience["grail"])) > 2 for r in recs)  # z-weights, not only the forced answer weight
