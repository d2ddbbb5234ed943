"""The held-out learning curve (`eval.every_steps`, `eval.curve_n`): the callback's points against `evaluate` on the
same problems, what it keeps on --resume, the config fields, and one 2-step `arca train` that writes curve.jsonl."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from arca_rl._config import parse_config
from arca_rl.errors import ConfigError
from test_eval import ParityTask


def _callback(run_dir: Path, task, tokenizer=None, *, every: int = 2, n: int = 6):
    from arca_rl._run.curve_callback import HeldOutCurveCallback

    return HeldOutCurveCallback(run_dir, task, tokenizer, every_steps=every, n=n,
                                eval_arguments={"batch_size": 4, "max_new_tokens": 6, "max_prompt_tokens": None})


@pytest.mark.slow
def test_a_curve_point_is_evaluates_greedy_accuracy_and_draws_no_random_numbers(tiny_model_dir, tmp_path):
    import torch

    from arca_rl._run.evaluation import evaluate, load_model_for_eval

    model, tokenizer = load_model_for_eval(str(tiny_model_dir))
    model.train()
    task = ParityTask()
    cb = _callback(tmp_path, task, tokenizer, n=5)
    torch.manual_seed(7)
    rng = torch.get_rng_state()
    row = cb.measure(model, 3)
    assert torch.equal(torch.get_rng_state(), rng) and model.training  # training goes on as if nothing happened
    expected = evaluate(model, tokenizer, task, n=5, k=1, samples_per_problem=1, max_new_tokens=6, progress=False)
    assert row["step"] == 3 and row["n"] == 5 and row["seconds"] >= 0
    assert row["greedy_accuracy"] == pytest.approx(expected.greedy_accuracy)
    assert 0 < expected.greedy_accuracy < 1  # a figure that could have come out otherwise
    assert json.loads((tmp_path / "curve.jsonl").read_text()) == row


@pytest.mark.slow
def test_a_curve_point_counts_correct_answers_and_leaves_out_the_skipped(tiny_model_dir, tmp_path):
    """Issue 39: the curve's accuracy is exact (a near miss's partial credit counts 0), and it leaves out the
    held-out problems the run trained on, as the final evaluation does."""
    from arca_rl._run.curve_callback import HeldOutCurveCallback
    from arca_rl._run.evaluation import generate_completions, load_model_for_eval
    from test_eval import GradedTask

    model, tokenizer = load_model_for_eval(str(tiny_model_dir))
    task = GradedTask()
    cb = HeldOutCurveCallback(tmp_path, task, tokenizer, every_steps=1, n=6, skip=[0, 5],
                              eval_arguments={"batch_size": 4, "max_new_tokens": 6, "max_prompt_tokens": None})
    row = cb.measure(model, 1)
    prompts, solutions = cb.problems()
    data = task.test_dataset()
    assert prompts == [data["prompt"][i] for i in (1, 2, 3, 4)] and row["n"] == 4
    texts = [t[0] for t in generate_completions(model, tokenizer, prompts, max_new_tokens=6, batch_size=4)]
    correct = [len(t) % 2 == int(s) for t, s in zip(texts, solutions)]  # by hand: no partial credit
    assert row["greedy_accuracy"] == pytest.approx(sum(correct) / 4)


def test_the_curve_is_measured_at_step_0_every_n_steps_and_the_last(tmp_path):
    cb = _callback(tmp_path, ParityTask(), every=3)
    done: list[int] = []
    cb.measure = lambda model, step: done.append(step)  # type: ignore[method-assign]
    for step in range(0, 8):
        state = SimpleNamespace(global_step=step, max_steps=7, is_world_process_zero=True)
        (cb.on_train_begin if step == 0 else cb.on_step_end)(None, state, None, model=None)
    assert done == [0, 3, 6, 7]
    other_rank = SimpleNamespace(global_step=3, max_steps=7, is_world_process_zero=False)
    cb.on_step_end(None, other_rank, None, model=None)
    assert done == [0, 3, 6, 7]  # only the main process measures


@pytest.mark.parametrize(("resumed_at", "kept", "measured"), [(0, [], [0]), (4, [0, 2, 4], []), (3, [0, 2], [])])
def test_resume_keeps_the_points_up_to_the_checkpoint(tmp_path, resumed_at, kept, measured):
    path = tmp_path / "curve.jsonl"
    path.write_text(
        "".join(json.dumps({"step": s, "greedy_accuracy": 0.1, "n": 6, "seconds": 1.0}) + "\n" for s in (0, 2, 4, 6))
    )
    cb = _callback(tmp_path, ParityTask(), every=2)
    done: list[int] = []
    cb.measure = lambda model, step: done.append(step)  # type: ignore[method-assign]
    cb.on_train_begin(None, SimpleNamespace(global_step=resumed_at, max_steps=8, is_world_process_zero=True), None,
                      model=None)
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == kept and done == measured


def test_config_fields(tiny_run_config):
    cfg = parse_config(tiny_run_config)
    assert cfg.eval.every_steps is None and cfg.eval.curve_n == 100  # off by default
    tiny_run_config["eval"].update(every_steps=5, curve_n=20)
    cfg = parse_config(tiny_run_config)
    assert (cfg.eval.every_steps, cfg.eval.curve_n) == (5, 20)
    for bad, key in (({"every_steps": -1}, "eval.every_steps"), ({"curve_n": 0}, "eval.curve_n")):
        raw = {**tiny_run_config, "eval": {**tiny_run_config["eval"], **bad}}
        with pytest.raises(ConfigError, match=key):
            parse_config(raw)


@pytest.mark.slow
def test_train_writes_the_curve_and_report_draws_it(tiny_run_config, tmp_path, capsys):
    """One 2-step `arca train` of the tiny model with eval.every_steps = 1 (~10 s)."""
    from arca_rl._run.training import train
    from arca_rl.cli import main
    from arca_rl.rundir import read_metrics

    tiny_run_config["eval"].update(every_steps=1, curve_n=4)  # eval.n is 4 too: the last point is eval.json's
    run = train(parse_config(tiny_run_config), run_dir=tmp_path / "runs" / "tiny", progress=False)
    rows = [json.loads(x) for x in (run / "curve.jsonl").read_text().splitlines()]
    # seconds is rounded to the millisecond: 0 is a fair value on a fast device
    assert [r["step"] for r in rows] == [0, 1, 2] and all(r["n"] == 4 and r["seconds"] >= 0 for r in rows)
    assert rows[-1]["greedy_accuracy"] == pytest.approx(json.loads((run / "eval.json").read_text())["greedy_accuracy"])
    # one record per held-out problem of the final evaluation; its accuracy is theirs
    records = [json.loads(x) for x in (run / "eval_problems.jsonl").read_text().splitlines()]
    evaluation = json.loads((run / "eval.json").read_text())
    assert len(records) == evaluation["n"] == 4 and [r["id"] for r in records] == ["0", "1", "2", "3"]
    assert evaluation["greedy_accuracy"] == pytest.approx(sum(r["correct"] for r in records) / 4)
    assert [m["step"] for m in read_metrics(run) if "reward" in m] == [1, 2]  # the training reward of every step
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "runs"), "--out", str(out)]) == 0
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    row = next(x for x in (out / "report.md").read_text().splitlines() if x.startswith("| tiny | arca | 4 | 3 |"))
    secs = json.loads((run / "finished.json").read_text())["eval_seconds"]
    assert f"| yes | {secs:.1f} | 3 | 0.000 |" in row, row  # eval wall time, 3 curve points, area 0 (random model)
    capsys.readouterr()
