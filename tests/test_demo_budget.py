"""`arca demo`'s time budget for vine (issue 28): vine samples K continuations of every prefix of every completion,
so its cost is projected from its own continuation count, not from uniform's time; a vine that does not fit is
skipped up front with one line saying how to include it, and the summary says it was skipped and why.

Training and evaluation are replaced by fakes on a fake clock (seconds are the fakes' own), so these tests take no
model time: the demo config's budget (40 steps of 4 prompts x 8 completions of at most 32 tokens, K = 8)."""

from __future__ import annotations

import json
import math
import types

import pytest

import arca_rl._demo as demo
from arca_rl._run.evaluation import EvalResult

EVAL_SECONDS = 10.0  # the base eval: 200 problems x (1 greedy + 4 samples) x 32 tokens = 32,000 token slots
STEP_SECONDS = 1.0  # one training step of a method that samples nothing more (uniform, arca)
MEAN_LENGTH = 16.0  # the completions' mean length, as uniform's metrics.jsonl logs it


@pytest.fixture
def fake_demo(monkeypatch):
    """The demo with a fake clock, a fake evaluation (EVAL_SECONDS) and a fake `train` (STEP_SECONDS per step,
    writing metrics.jsonl); returns the list of (method's credit, seed) trained."""
    now = [0.0]
    monkeypatch.setattr(demo, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    monkeypatch.setattr(demo, "load_model_for_eval", lambda *a, **k: (None, None))

    def evaluate(model, tokenizer, task, **kwargs):
        now[0] += EVAL_SECONDS
        return EvalResult(
            greedy_accuracy=0.5,
            pass_at_k=0.75,
            k=kwargs["k"],
            samples_per_problem=kwargs["samples_per_problem"],
            n=kwargs["n"],
        )

    trained: list[tuple[str, int]] = []

    def train(cfg, *, run_dir, **kwargs):
        trained.append((cfg.training["credit"], cfg.training["seed"]))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 1, "completions/mean_length": MEAN_LENGTH}) + "\n")
        now[0] += STEP_SECONDS * cfg.training["max_steps"]
        return run_dir

    figures = dict.fromkeys(
        (
            "greedy_before",
            "greedy_after",
            "pass_at_k_before",
            "pass_at_k",
            "gini",
            "effective_token_ratio",
            "decisive_token_share",
            "mean_train_reward",
            "train_seconds",
            "seconds_per_step",
        ),
        0.5,
    )
    monkeypatch.setattr(demo, "evaluate", evaluate)
    monkeypatch.setattr(demo, "train", train)
    monkeypatch.setattr(demo, "_method_figures", lambda run_dir, before: dict(figures))
    return trained


def vine_seconds(positions: int = 4) -> float:
    """The projection the demo should make for one seed of vine: uniform's 40 s of training plus its continuations,
    each token slot at the base eval's cost (10 s / 32,000 slots). Per step, K = 8 continuations of each prompt
    (V_0: 32 slots each) and of each sampled prefix of each of the 32 completions (T = 16; a budget of 32 - t slots,
    on average 32 - 8): adaptive (the default) log2(16) = 4 prefixes, all 15 (1 .. T - 1)."""
    slots_per_step = 8 * (4 * 32 + 32 * positions * (32 - 8))
    return 40 * STEP_SECONDS + 40 * slots_per_step * EVAL_SECONDS / 32_000


@pytest.mark.parametrize("methods", [["uniform", "arca", "vine"], ["uniform", "vine"]])
def test_vine_that_does_not_fit_the_budget_is_skipped_up_front_and_said(tmp_path, fake_demo, capsys, methods):
    summary = demo.run_demo(methods=methods, out_dir=tmp_path / "demo", seeds=[0], progress=False, oracle_samples=0,
                            budget_s=300)  # uniform's projection (40 s) fits; vine's (360 s) does not
    printed = capsys.readouterr().out
    assert ("vine", 0) not in fake_demo and "vine" not in summary["methods"]
    assert summary["skipped"] == ["vine"]
    want = vine_seconds()
    assert summary["skipped_why"]["vine"]["projected_seconds"] == pytest.approx(want, rel=1e-6)
    skip = [line for line in printed.splitlines() if line.startswith("skipping vine")]
    assert len(skip) == 1 and f"about {want:.0f} s" in skip[0] and "--budget" in skip[0], printed
    assert f"--budget {summary['skipped_why']['vine']['budget_needed']}" in skip[0]  # this demo, vine included
    assert summary["skipped_why"]["vine"]["budget_needed"] >= summary["seconds"] + want
    # the closing line: vine skipped, and the budget of a demo of vine alone (the base eval, then vine)
    again = [line for line in printed.splitlines() if line.startswith("(skipped for time: vine")]
    assert len(again) == 1 and f"--methods vine --budget {math.ceil((EVAL_SECONDS + want) * 1.1)}" in again[0], printed


def test_vine_that_fits_the_budget_trains(tmp_path, fake_demo, capsys):
    summary = demo.run_demo(methods=["uniform", "arca", "vine"], out_dir=tmp_path / "demo", seeds=[0], progress=False,
                            oracle_samples=0, budget_s=EVAL_SECONDS + 80 + vine_seconds() + 1)
    assert ("vine", 0) in fake_demo and "vine" in summary["methods"] and summary["skipped"] == []


def test_vine_on_every_prefix_is_projected_as_such():
    """credit_vine_positions=all samples all T - 1 prefixes: 15 here, not the adaptive schedule's 4; a mean length
    above L counts as L, and with none measured T = L (31 prefixes)."""
    vine = demo.demo_config(["training.credit=vine"])
    project = demo.vine_projection
    slot = EVAL_SECONDS / 32_000
    assert project(vine, slot_seconds=slot, train_seconds=40, mean_length=16)["projected_seconds"] == pytest.approx(
        vine_seconds(4)
    )
    every = vine.with_overrides(["training.credit_vine_positions=all"])
    got = project(every, slot_seconds=slot, train_seconds=40, mean_length=16)
    assert got["projected_seconds"] == pytest.approx(vine_seconds(15)) and got["rollouts_per_step"] == 8 * (4 + 32 * 15)
    full = 40 * STEP_SECONDS + 40 * 8 * (4 * 32 + 32 * 31 * (32 - 16)) * slot
    assert project(every, slot_seconds=slot, train_seconds=40, mean_length=None)["projected_seconds"] == pytest.approx(
        full
    )
    assert project(every, slot_seconds=slot, train_seconds=40, mean_length=99)["projected_seconds"] == pytest.approx(
        full
    )


def _plant_run(run_dir, overrides):
    """A finished run's files as `arca train` leaves them: config.yaml (the resolved config), metrics, finished."""
    from arca_rl.rundir.files import write_config

    write_config(run_dir, demo.demo_config(overrides))
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.0}) + "\n")
    (run_dir / "finished.json").write_text(json.dumps({"global_step": 1}) + "\n")


def test_a_demo_folder_holding_another_run_is_refused_naming_what_it_holds(tmp_path, fake_demo):
    # runs/demo/uniform/ holds a run someone trained there with ARCA under their own name: the demo's uniform run
    # would replace it. Refused before any work, describing the run from its own config.yaml, files untouched.
    held = tmp_path / "demo" / "uniform"
    _plant_run(held, ["training.credit=arca", "name=my-arca", "training.seed=3"])
    before = {p.name: p.read_bytes() for p in held.iterdir()}
    with pytest.raises(demo.rundir.RunExistsError) as err:
        demo.run_demo(
            methods=["uniform", "arca"], out_dir=tmp_path / "demo", seeds=[0], progress=False, oracle_samples=0
        )
    message = str(err.value)
    assert "my-arca" in message and "credit arca" in message and "seed 3" in message and "--output-dir" in message
    assert fake_demo == []
    assert {p.name: p.read_bytes() for p in held.iterdir()} == before


def test_a_demo_folder_holding_the_demos_own_earlier_run_is_trained_again(tmp_path, fake_demo):
    _plant_run(tmp_path / "demo" / "uniform", ["training.credit=uniform", "name=demo-uniform", "training.seed=0"])
    _plant_run(tmp_path / "demo" / "arca-s1", ["training.credit=arca", "name=demo-arca-s1", "training.seed=1"])
    demo.run_demo(
        methods=["uniform", "arca"], out_dir=tmp_path / "demo", seeds=[0, 1], progress=False, oracle_samples=0
    )
    assert sorted(fake_demo) == [("arca", 0), ("arca", 1), ("uniform", 0), ("uniform", 1)]
