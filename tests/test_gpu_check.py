"""benchmarks/gpu_check.py, the one-call device check, runs end to end on CPU at its tiny shape (seconds)."""

from __future__ import annotations

import json
import math

import pytest

from bench import load_benchmark


def test_gpu_check_tiny_runs_every_method_and_the_oracle(tmp_path):
    mod = load_benchmark("gpu_check")
    argv = ["--shape", "tiny", "--repeats", "1", "--oracle-k", "4", "--budget-s", "100000"]
    out = mod.main([*argv, "--out", str(tmp_path / "sub" / "g.json")])  # a missing folder is made
    assert json.loads((tmp_path / "sub" / "g.json").read_text()) == out
    # a budget far above what the check takes trims nothing
    assert out["repeats"] == 1 and out["repeats_asked"] == 1 and out["budget_s"] == 100000
    assert out["oracle"]["stopped_by_budget"] is False
    import torch
    import transformers
    import trl

    assert out["versions"]["torch"] == torch.__version__ and out["versions"]["trl"] == trl.__version__
    assert out["versions"]["transformers"] == transformers.__version__
    assert set(out["step_s"]) == {"uniform", "arca", "surprisal", "tempo"} and all(
        s > 0 for s in out["step_s"].values()
    )
    assert out["step_vs_uniform"]["uniform"] == 1.0
    for m, r in out["step_vs_uniform"].items():
        # step_s is rounded to 4 decimals and the ratio (of the unrounded medians) to 3: r lies in the interval that
        # rounding allows, whatever a step costs on this machine (a 2 % tolerance failed for steps of a few ms)
        a, b, half = out["step_s"][m], out["step_s"]["uniform"], 0.5e-4
        low = (a - half) / (b + half)
        high = (a + half) / (b - half) if b > half else math.inf
        assert low - 0.5e-3 <= r <= high + 0.5e-3, (m, r, a, b)
    o = out["oracle"]
    n, T, K = out["completions"], out["completion_tokens"], 4
    assert o["continuations_all_positions"] == K * (1 + n * (T - 1))  # V_0 + every prefix of 1 .. T-1 tokens
    assert K <= o["continuations"] <= o["continuations_all_positions"] and o["continuations"] % K == 0
    assert o["continuations_per_s"] > 0


def test_the_full_shape_refuses_without_a_gpu(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    mod = load_benchmark("gpu_check")
    with pytest.raises(SystemExit):
        mod.main([])
    assert "needs a CUDA device; use --shape tiny" in capsys.readouterr().err


def test_a_spent_budget_keeps_one_timed_round_and_stops_the_oracle_after_one_batch(tmp_path):
    """--budget-s trims the timed rounds to the one every figure needs and stops the oracle at its first batch
    once the time is spent: what is reported is still a median of real steps and a real sampling rate."""
    mod = load_benchmark("gpu_check")
    out = mod.main(["--shape", "tiny", "--repeats", "4", "--oracle-k", "4", "--budget-s", "0.001"])
    assert out["repeats"] == 1 and out["repeats_asked"] == 4
    assert all(s > 0 for s in out["step_s"].values())
    o = out["oracle"]
    assert o["stopped_by_budget"] is True
    # one sampler batch (at most 256 rows) of whole groups of K continuations, fewer than every position needs
    assert 0 < o["continuations"] <= 256 and o["continuations"] % 4 == 0
    assert o["continuations"] < o["continuations_all_positions"]
    assert o["continuations_per_s"] > 0


@pytest.mark.parametrize("budget", ["0", "-5"])
def test_a_budget_must_be_positive(budget, capsys):
    mod = load_benchmark("gpu_check")
    with pytest.raises(SystemExit):
        mod.main(["--shape", "tiny", "--budget-s", budget])
    assert "--budget-s must be > 0" in capsys.readouterr().err
