"""`credit_shuffle: true`: a weights method trained with its weights permuted within each completion at every step
(same shape, random place), seeded so that a rerun (and a resumed run) draws the same permutations."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from arca_rl import credit
from test_trainer import build


def test_shuffle_weights_permutes_each_row_among_its_real_tokens():
    w = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.0], [0.5, 0.5, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    keys = [credit.shuffle_key(0, 3, b, [7, 8]) for b in range(3)]
    out = credit.shuffle_weights(w, mask, keys)
    for b in range(3):
        assert sorted(out[b][mask[b]].tolist()) == sorted(w[b][mask[b]].tolist())  # same weights
        assert torch.equal(out[b][~mask[b]], w[b][~mask[b]])  # padding untouched
    assert torch.equal(out, credit.shuffle_weights(w, mask, keys))  # the keys decide
    # over many keys every place is equally likely: the largest weight lands on each of the 4 tokens ~1/4 of the time
    top = [credit.shuffle_weights(w[:1], mask[:1], [credit.shuffle_key(k)])[0].argmax() for k in range(4000)]
    seen = Counter(int(t) for t in top)
    assert set(seen) == {0, 1, 2, 3} and all(abs(n / 4000 - 0.25) < 0.03 for n in seen.values())
    assert credit.shuffle_key(1, 2, [3]) == credit.shuffle_key(1, 2, [3]) != credit.shuffle_key(1, 2, [4])


def dumped(tmp_path, **kw):
    trainer = build(tmp_path, credit="surprisal", credit_log_tokens_every=1, credit_log_tokens_count=8, **kw)
    trainer.train()
    path = tmp_path / "out" / "credit_tokens.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.slow
def test_credit_shuffle_trains_on_permuted_weights_reproducibly(tmp_path):
    rows = dumped(tmp_path / "a", credit_shuffle=True)
    assert rows and all(r["signal"] == "surprisal" for r in rows)
    moved = 0
    for r in rows:
        # the weights the gradient used are a permutation of the signal's own weights (from the raw salience)
        alpha = torch.tensor([r["salience"]])
        own = credit.token_weights(alpha, torch.ones_like(alpha, dtype=torch.bool))[0].tolist()
        assert sorted(r["weights"]) == pytest.approx(sorted(own), rel=1e-5, abs=1e-7)
        moved += r["weights"] != pytest.approx(own, rel=1e-5, abs=1e-7)
    assert moved >= len(rows) // 2  # permuted, not left in place
    again = dumped(tmp_path / "b", credit_shuffle=True)
    assert [r["weights"] for r in again] == [r["weights"] for r in rows]  # same seed, same permutations
    plain = dumped(tmp_path / "c")
    for r in plain:
        alpha = torch.tensor([r["salience"]])
        own = credit.token_weights(alpha, torch.ones_like(alpha, dtype=torch.bool))[0].tolist()
        assert r["weights"] == pytest.approx(own, rel=1e-5, abs=1e-7)
