"""benchmarks/smollm2_rg_confirm.py on hand-made run summaries, against values worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import load_benchmark


def _summary(folder: Path, method: str, seed: int, greedy: float, curve: list[tuple[int, float]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    body = {
        "method": method,
        "seed": seed,
        "eval": {"greedy_accuracy": greedy},
        "curve": [{"step": s, "greedy_accuracy": a} for s, a in curve],
    }
    (folder / f"{method}-s{seed}.json").write_text(json.dumps(body))


def _t3_sf(t: float) -> float:
    """P(T_3 >= t), Student's t with 3 degrees of freedom in closed form."""
    x = t / math.sqrt(3)
    return 0.5 - (x / (1 + x * x) + math.atan(x)) / math.pi


def test_new_seeds_alone_and_pooled(tmp_path, capsys):
    first, confirm = tmp_path / "first", tmp_path / "confirm"
    # first study: seeds 0, 1; tempo - uniform greedy = +0.1, -0.1
    for seed, (u, t) in enumerate([(0.3, 0.4), (0.5, 0.4)]):
        _summary(first, "uniform", seed, u, [(0, 0.2), (10, 0.2), (20, u)])
        _summary(first, "tempo", seed, t, [(0, 0.2), (10, 0.2), (20, t)])
    # new seeds 6-9: differences +0.1, +0.2, +0.3, +0.2; seed 10 has uniform only (unfinished pair: left out)
    for seed, d in zip(range(6, 10), (0.1, 0.2, 0.3, 0.2)):
        _summary(confirm, "uniform", seed, 0.3, [(0, 0.2), (10, 0.3), (20, 0.3)])
        _summary(confirm, "tempo", seed, 0.3 + d, [(0, 0.2), (10, 0.3 + d), (20, 0.3 + d)])
    _summary(confirm, "uniform", 10, 0.9, [(0, 0.2), (20, 0.9)])
    out = load_benchmark("smollm2_rg_confirm").main(
        ["--first", str(first), "--confirm", str(confirm), "--out", str(tmp_path / "c.json")]
    )
    assert json.loads((tmp_path / "c.json").read_text()) == out
    assert out["new_seeds"] == [6, 7, 8, 9]
    g = out["measures"]["greedy_accuracy"]["new_seeds"]
    # mean 0.2; sd = sqrt((0.01 + 0 + 0.01 + 0) / 3); t = 0.2 / (sd / 2); half-width = t_{0.975, 3} * sd / 2
    sd = math.sqrt(0.02 / 3)
    assert g["mean"] == pytest.approx(0.2)
    assert g["ci_high"] - g["mean"] == pytest.approx(3.182446305 * sd / 2, rel=1e-6)
    assert g["p_one_sided"] == pytest.approx(_t3_sf(0.2 / (sd / 2)), rel=1e-6)
    assert (g["wins"], g["ties"], g["losses"]) == (4, 0, 0)
    assert out["tested"] and out["replicates"]
    # pooled: the six differences 0.1, -0.1, 0.1, 0.2, 0.3, 0.2
    pooled = out["measures"]["greedy_accuracy"]["pooled"]
    assert pooled["n_seeds"] == 6 and pooled["mean"] == pytest.approx(0.8 / 6)
    assert (pooled["wins"], pooled["losses"]) == (5, 1)
    # curve area = trapezoid / span: uniform (0.2 + 0.3) / 2 * 10 + 0.3 * 10 = 5.5 -> 0.275; tempo adds d * 0.75
    area = out["measures"]["curve_area"]["new_seeds"]
    assert area["mean"] == pytest.approx(0.2 * 0.75)
    assert "replicates" in capsys.readouterr().out


def test_too_few_seeds_is_no_test_and_a_loss_is_not_a_replication(tmp_path):
    first, confirm = tmp_path / "first", tmp_path / "confirm"
    _summary(first, "uniform", 0, 0.3, [(0, 0.2), (20, 0.3)])
    _summary(first, "tempo", 0, 0.4, [(0, 0.2), (20, 0.4)])
    for seed, d in zip(range(6, 9), (0.1, 0.2, 0.3)):
        _summary(confirm, "uniform", seed, 0.3, [(0, 0.2), (20, 0.3)])
        _summary(confirm, "tempo", seed, 0.3 + d, [(0, 0.2), (20, 0.3 + d)])
    mod = load_benchmark("smollm2_rg_confirm")
    out = mod.main(["--first", str(first), "--confirm", str(confirm)])
    assert out["new_seeds"] == [6, 7, 8] and not out["tested"] and not out["replicates"]
    for seed in (9, 10):  # two losses: four seeds with a mean below 0 do not replicate
        _summary(confirm, "uniform", seed, 0.5, [(0, 0.2), (20, 0.5)])
        _summary(confirm, "tempo", seed, 0.0, [(0, 0.2), (20, 0.0)])
    out = mod.main(["--first", str(first), "--confirm", str(confirm)])
    g = out["measures"]["greedy_accuracy"]["new_seeds"]
    assert out["tested"] and g["mean"] < 0 and g["p_one_sided"] > 0.5 and not out["replicates"]


def test_a_seed_in_both_folders_or_a_missing_folder_is_refused(tmp_path, capsys):
    first, confirm = tmp_path / "first", tmp_path / "confirm"
    for folder in (first, confirm):
        _summary(folder, "uniform", 0, 0.3, [(0, 0.2), (20, 0.3)])
        _summary(folder, "tempo", 0, 0.4, [(0, 0.2), (20, 0.4)])
    mod = load_benchmark("smollm2_rg_confirm")
    with pytest.raises(SystemExit, match=r"seeds \[0\] are in both folders"):
        mod.main(["--first", str(first), "--confirm", str(confirm)])
    with pytest.raises(SystemExit):
        mod.main(["--first", str(first), "--confirm", str(tmp_path / "nope")])
    assert "no such folder of run summaries" in capsys.readouterr().err


def test_a_curve_of_one_point_is_left_out_and_named_not_a_crash(tmp_path, capsys):
    """issue 38 §4: a run whose curve has fewer than two points has no area (it used to become NaN and kill the
    script); its seed is left out of the curve-area row, which names it, and the greedy row keeps it."""
    first, confirm = tmp_path / "first", tmp_path / "confirm"
    _summary(first, "uniform", 0, 0.3, [(0, 0.2), (20, 0.3)])
    _summary(first, "tempo", 0, 0.4, [(0, 0.2), (20, 0.4)])
    for seed, d in zip(range(6, 10), (0.1, 0.2, 0.3, 0.2)):
        _summary(confirm, "uniform", seed, 0.3, [(0, 0.2), (20, 0.3)])
        curve = [(0, 0.2)] if seed == 7 else [(0, 0.2), (20, 0.3 + d)]  # seed 7's curve: one point
        _summary(confirm, "tempo", seed, 0.3 + d, curve)
    out = load_benchmark("smollm2_rg_confirm").main(["--first", str(first), "--confirm", str(confirm)])
    greedy = out["measures"]["greedy_accuracy"]["new_seeds"]
    assert greedy["n_seeds"] == 4 and greedy["mean"] == pytest.approx(0.2)
    area = out["measures"]["curve_area"]["new_seeds"]
    # areas over 20 steps: uniform (0.2 + 0.3) / 2 = 0.25, tempo (0.2 + 0.3 + d) / 2: differences d / 2
    assert area["n_seeds"] == 3 and area["mean"] == pytest.approx((0.1 + 0.3 + 0.2) / 2 / 3)
    assert area["left_out"] == ["seed 7: tempo-s7.json has no curve area (fewer than two curve points)"]
    assert out["measures"]["curve_area"]["pooled"]["n_seeds"] == 4
    assert "tempo-s7.json" in capsys.readouterr().out


def test_zero_spread_is_no_test_not_p_zero(tmp_path, capsys):
    """issue 38 §4: four equal differences have no spread, so the t statistic is undefined: no p-value (it was
    0.0, a certain replication out of four seeds), no replication, and the output says why."""
    first, confirm = tmp_path / "first", tmp_path / "confirm"
    _summary(first, "uniform", 0, 0.3, [(0, 0.2), (20, 0.3)])
    _summary(first, "tempo", 0, 0.4, [(0, 0.2), (20, 0.4)])
    # every difference 0.25, up to float rounding (0.35 - 0.1 is 0.24999999999999997): still no spread
    for seed, (u, t) in zip(range(6, 10), [(0.1, 0.35), (0.2, 0.45), (0.3, 0.55), (0.25, 0.5)]):
        _summary(confirm, "uniform", seed, u, [(0, 0.2), (20, u)])
        _summary(confirm, "tempo", seed, t, [(0, 0.2), (20, t)])
    out = load_benchmark("smollm2_rg_confirm").main(["--first", str(first), "--confirm", str(confirm)])
    g = out["measures"]["greedy_accuracy"]["new_seeds"]
    assert g["n_seeds"] == 4 and g["mean"] == pytest.approx(0.25)
    assert g["p_one_sided"] is None and "zero spread" in g["note"]
    assert out["tested"] and not out["replicates"]
    said = capsys.readouterr().out
    assert "zero spread" in said and "p = 0.000" not in said
