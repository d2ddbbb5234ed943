"""The validity study's pieces (issue 34 §4): the embedded task's warm-start variants, and the statistics of
benchmarks/oracle_validity.py (paired gains, the rank correlation with its variant-and-seed bootstrap, R^2),
checked against scipy and hand computations."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import linregress, spearmanr

from arca_rl.tasks import arithmetic, get_task
from bench import load_benchmark

validity = load_benchmark("oracle_validity")
TERMS = [(80, 33, 95), (10, 99, 45), (57, 57, 12)]


@pytest.mark.parametrize("variant", list(arithmetic.VARIANTS))
def test_every_variant_is_rewarded_as_built_and_its_decisive_chars_are_where_it_says(variant):
    task = get_task("arithmetic")
    for terms in TERMS:
        sol = arithmetic.solution_text(terms)
        for steps, boxed, _share in arithmetic.VARIANTS[variant]:
            text = arithmetic.variant_completion(variant, terms, steps, boxed)
            assert task.correct(text, sol) == boxed, (variant, steps, text)  # "So 208." is no answer
            assert arithmetic.variant_strategy(variant, text) == ("direct" if steps == 0 else "steps")
            chars = arithmetic.decisive_chars(variant, terms, text)
            if variant == "digits":
                assert "".join(text[c] for c in chars) == str(sum(terms))
                continue
            opens = [text[c:] for c in chars]
            if variant != "late":  # the first token chooses the direct answer or the first addition
                assert chars[0] == 0 and opens[0].startswith("\\boxed{" if steps == 0 else f"{terms[0]}+")
            if variant == "two" and steps >= 1:  # after one addition: the box, or the second addition
                assert opens[1].startswith("\\boxed{" if steps == 1 else f"{terms[0] + terms[1]}+")
            if variant in ("late", "ends") and steps == 2:  # after both additions: boxed or not
                assert opens[-1].startswith("\\boxed{" if boxed else "So ")
            assert len(chars) == 1 + (variant in ("two", "ends") and steps >= 1)
    assert arithmetic.variant_completion("first", TERMS[0], 2) == arithmetic.steps_completion(TERMS[0])
    assert arithmetic.variant_completion("tail", TERMS[0], 0).endswith(arithmetic.TAIL)


def test_variant_warm_start_data_follow_their_mixtures():
    # the shipped warm start is unchanged, draw for draw
    assert arithmetic.sft_dataset(50, seed=3)["completion"] == arithmetic.sft_dataset(50, seed=3, variant="first")[
        "completion"
    ]
    for variant, mix in arithmetic.VARIANTS.items():
        data = arithmetic.sft_dataset(3000, seed=1, variant=variant)
        kinds = Counter((c.count("="), "\\boxed{" in c) for c in data["completion"])
        for steps, boxed, share in mix:
            assert kinds[(steps, boxed)] / 3000 == pytest.approx(share, abs=0.03), (variant, steps, boxed)
        assert set(kinds) == {(steps, boxed) for steps, boxed, _ in mix}
    with pytest.raises(ValueError, match="unknown variant"):
        arithmetic.sft_dataset(4, variant="nope")


def test_paired_gain_pairs_on_the_seed():
    got = validity.paired_gain({0: 0.7, 1: 0.5, 2: 0.9}, {0: 0.6, 1: 0.6, 2: 0.6, 3: 0.1})
    assert got["seeds"] == [0, 1, 2] and got["per_seed"] == pytest.approx([0.1, -0.1, 0.3])
    assert got["mean"] == pytest.approx(0.1)


def test_mid_step_is_where_uniform_is_halfway():
    # means over the two seeds: 0.2, 0.45, 0.7, 0.9, 0.9 -> halfway between 0.2 and 0.9 is 0.55: step 5 (0.45) is
    # 0.1 away, step 10 (0.7) 0.15
    a = [(0, 0.2), (5, 0.4), (10, 0.7), (15, 0.9), (20, 0.9)]
    b = [(0, 0.2), (5, 0.5), (10, 0.7), (15, 0.9), (20, 0.9)]
    assert validity.mid_step([a, b]) == 5
    assert validity.mid_step([[(0, 0.2), (5, 0.25), (10, 0.6), (20, 0.9)]]) == 10
    assert validity.mid_step([[(5, 0.2)]]) is None


def _points(placement, gains):
    return [
        {"variant": f"v{i % 3}", "method": f"m{i}", "placement": {"signed": x, "lift": x},
         "gain": {"final": {"mean": float(np.mean(g)), "per_seed": list(g)}, "area": {"mean": None, "per_seed": []}}}
        for i, (x, g) in enumerate(zip(placement, gains))
    ]  # fmt: skip


def test_correlation_its_bootstrap_and_r2():
    rng = np.random.default_rng(0)
    x = list(rng.normal(size=12))
    noisy = [[2 * xi + e for e in rng.normal(scale=0.3, size=3)] for xi in x]
    got = validity.correlate(_points(x, noisy), "signed", "final", resamples=500)
    y = [float(np.mean(g)) for g in noisy]
    assert got["spearman"] == pytest.approx(spearmanr(x, y).statistic) and got["n_points"] == 12
    assert got["r2"] == pytest.approx(linregress(x, y).rvalue ** 2)
    assert 0.5 < got["ci_low"] <= got["spearman"] <= got["ci_high"] <= 1.0
    # no relation: the interval covers 0
    null = [[e for e in rng.normal(size=3)] for _ in x]
    got = validity.correlate(_points(x, null), "signed", "final", resamples=500)
    assert got["ci_low"] < 0 < got["ci_high"]
    # a point without a gain is left out; a measure nobody has gives no correlation
    assert validity.correlate(_points(x, noisy), "signed", "area")["spearman"] is None


@pytest.mark.slow
def test_build_tiny_model_warm_starts_a_variant(tmp_path):
    out = tmp_path / "late"
    cmd = [sys.executable, str(Path(validity.ROOT) / "scripts" / "build_tiny_model.py"), "--variant", "late",
           "--init", str(arithmetic.TINY_MODEL_PATH), "--steps", "2", "--batch-size", "4", "--eval-n", "4",
           "--eval-samples", "1", "--out", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    info = json.loads((out / "build_info.json").read_text())
    assert info["variant"] == "late" and info["init"] == str(arithmetic.TINY_MODEL_PATH) and info["steps"] == 2
    from transformers import AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(out)) == len(AutoTokenizer.from_pretrained(arithmetic.TINY_MODEL_PATH))
