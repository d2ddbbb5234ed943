"""benchmarks/smollm2_step_profile.py: its exclusive phase timers, and a run on the embedded tiny model that writes
the JSON the study reads (no assertion on how fast anything is)."""

from __future__ import annotations

import json
import re

import pytest

from bench import load_benchmark


class FakeClock:
    """perf_counter and process_time that move only when told (cpu at half the wall rate)."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def process_time(self) -> float:
        return self.now / 2


def test_a_phase_excludes_the_phases_inside_it(monkeypatch):
    mod = load_benchmark("smollm2_step_profile")
    clock = FakeClock()
    monkeypatch.setattr(mod, "time", clock)
    phases = mod.Phases()
    with phases.phase("step_other"):
        clock.now += 1.0
        with phases.phase("generation"):
            clock.now += 4.0
        with phases.phase("rollout_other"):
            clock.now += 0.5
            with phases.phase("generation"):  # a phase met twice adds up
                clock.now += 2.0
        clock.now += 0.25
    totals = phases.take()
    assert totals["generation"] == [6.0, 3.0]
    assert totals["rollout_other"] == [0.5, 0.25]
    assert totals["step_other"] == [1.25, 0.625]
    assert sum(t[0] for t in totals.values()) == 7.75  # the exclusive parts sum to the outer phase
    assert phases.take() == {}  # take() starts afresh


def test_medians_skip_the_first_step_and_sum_the_forwards():
    mod = load_benchmark("smollm2_step_profile")

    def step(n, scale):
        row = {"step": n, **{k: {"wall_s": scale, "cpu_s": scale} for k in mod.PHASES}}
        row["total"] = {"wall_s": scale * len(mod.PHASES), "cpu_s": scale * len(mod.PHASES)}
        return row

    med = mod._medians([step(1, 100.0), step(2, 1.0), step(3, 3.0)])
    assert med["steps_in_median"] == [2, 3]
    assert med["generation"]["cpu_s"] == 2.0  # median of 1 and 3; step 1's 100 left out
    assert med["forwards_cpu_s"] == 6.0  # forward_nograd + forward_base + forward_train
    assert med["backward_optimizer_cpu_s"] == 4.0
    assert med["generation_share_cpu"] == pytest.approx(2.0 / (2.0 * len(mod.PHASES)), abs=1e-3)


@pytest.mark.slow
def test_tiny_run_writes_the_expected_keys(tmp_path):
    mod = load_benchmark("smollm2_step_profile")
    out = tmp_path / "profile.json"
    assert mod.main(["--model", "tiny", "--steps", "2", "--dtypes", "float32", "--head-fix", "on,off",
                     "--eval-n", "2", "--eval-batch-sizes", "1,2", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["card"] == "CPU, 1 thread"
    for key in ("date", "torch", "transformers", "trl", "command", "load_average_start", "load_average_end"):
        assert data[key]
    assert [(r["dtype"], r["head_fix"]) for r in data["training"]] == [("float32", True), ("float32", False)]
    for run in data["training"]:
        assert [s["step"] for s in run["steps"]] == [1, 2]
        assert run["median"]["steps_in_median"] == [2]
        assert len(run["rewards"]) == 2
        for s in run["steps"]:
            assert set(mod.PHASES) <= set(s)
            # the exclusive phases add up to the step, and a GRPO step generates, runs forward and backward
            assert s["total"]["cpu_s"] == pytest.approx(sum(s[k]["cpu_s"] for k in mod.PHASES), abs=0.01)
            assert s["generation"]["cpu_s"] > 0 and s["forward_train"]["cpu_s"] > 0 and s["backward"]["cpu_s"] > 0
            assert s["forward_base"]["cpu_s"] == 0  # uniform reads no base model
    assert [(r["head_fix"], r["batch_size"], r.get("merged", False)) for r in data["eval"]] == [
        (True, 1, False), (True, 2, False), (True, 2, True), (False, 1, False), (False, 2, False)]
    for row in data["eval"]:
        assert row["n"] == 2 and row["cpu_s_per_100"] == pytest.approx(100 * row["cpu_s"] / 2, rel=0.05, abs=0.05)
        assert "completions" not in row  # the texts are compared, not stored
    # how many greedy completions the fix, the batch size or merging leave as they were: counted in the fixed rows
    # (the fix's logits are checked in tests/test_head_input.py; a count here would compare roundings across CPUs)
    keys = ("same_completions_as_unfixed", "same_completions_as_batch_1", "same_completions_as_unmerged")
    counted = [tuple(r.get(k) for k in keys) for r in data["eval"]]
    present = [tuple(x is not None for x in c) for c in counted]
    assert present == [(True, False, False), (True, True, False), (False, False, True)] + [(False,) * 3] * 2
    assert all(re.fullmatch(r"[0-2]/2", x) for c in counted for x in c if x is not None)
    summary = data["summary"]
    steps = summary["cpu_s_per_step"]["smollm2-rg2/uniform"]["float32"]
    assert steps["fix"]["step"] == data["training"][0]["median"]["total"]["cpu_s"]
    assert steps["no_fix"]["generation"] == data["training"][1]["median"]["generation"]["cpu_s"]
    assert summary["eval_cpu_s"]["float32"]["fix"]["2"]["per_100"] == data["eval"][1]["cpu_s_per_100"]
    assert summary["eval_cpu_s"]["float32"]["merged"]["2"]["per_100"] == data["eval"][2]["cpu_s_per_100"]
