"""benchmarks/oracle_positions_compare.py: the adaptive-vs-exhaustive table, checked on made-up diagnose.json data
against figures worked out here."""

from __future__ import annotations

import math

import pytest

from bench import load_benchmark


def run(deltas, rollouts, signals):
    comps = [
        {"token_ids": [1, 2], "token_advantages": {"uniform": [1.0, 1.0], "peak": [2.0, 0.0]}, "oracle": {"delta": d}}
        for d in deltas
    ]
    return {"completions": comps, "signals": signals,
            "settings": {"oracle_rollouts": rollouts, "oracle_seconds": 1.0, "model": "m", "task": "t",
                         "seed": 0}}  # fmt: skip


def sig(signed, lift):
    return {"oracle_signed": {"mean": signed}, "oracle_lift": {"mean": lift}}


def test_paired_difference_order_and_share():
    mod = load_benchmark("oracle_positions_compare")
    ex = run([[1.0, 0.0], [0.0, 1.0]], 40, {"uniform": sig(0.7, 1.0), "peak": sig(0.5, 1.2)})
    ad = run([[0.5, 0.5], [0.5, 0.5]], 10, {"uniform": sig(1.0, 1.0), "peak": sig(0.7, 1.1)})
    r = mod.compare(ex, ad)
    assert r["rollout_share"] == 0.25 and r["spearman_signed_order"] == pytest.approx(1.0)
    # uniform A = (1, 1): cos with (1, 0) and (0, 1) is 1/sqrt(2), with (.5, .5) it is 1: both diffs 1 - 1/sqrt(2)
    d = r["methods"]["uniform"]["paired_signed_diff"]
    assert d["n"] == 2 and d["mean"] == pytest.approx(1 - 1 / math.sqrt(2))
    # peak A = (2, 0): cos 1 then 0 exhaustive, 1/sqrt(2) twice adaptive: diffs 1/sqrt(2) - 1 and 1/sqrt(2)
    assert r["methods"]["peak"]["paired_signed_diff"]["mean"] == pytest.approx((2 / math.sqrt(2) - 1) / 2)
    assert "| peak |" in mod.markdown(r)


def test_different_completions_are_refused():
    mod = load_benchmark("oracle_positions_compare")
    ex = run([[1.0, 0.0]], 4, {"uniform": sig(0.7, 1.0)})
    ad = run([[1.0, 0.0]], 4, {"uniform": sig(0.7, 1.0)})
    ad["completions"][0]["token_ids"] = [1, 3]
    with pytest.raises(ValueError, match="different completions"):
        mod.compare(ex, ad)
