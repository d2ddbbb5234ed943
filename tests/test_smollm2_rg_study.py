"""benchmarks/smollm2_rg_study.py: the run line of each (method, seed) and what is kept beside a run's summary."""

from __future__ import annotations

from arca_rl.cli import build_parser
from bench import load_benchmark


def test_the_run_line_sets_the_task_seed_with_the_training_seed_when_asked_and_parses(tmp_path):
    study = load_benchmark("smollm2_rg_study")
    cmd = study.command("tempo", 7, tmp_path / "r", 1, "smollm2-rg3", task_seed=True, sets=["eval.every_steps=10"])
    sets = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"]
    assert sets == ["training.seed=7", "task.seed=7", "eval.every_steps=10"]
    assert cmd[:4] == ["arca", "train", "-c", "smollm2-rg3/tempo"]
    args = build_parser().parse_args(cmd[1:])  # the real CLI reads it
    assert str(args.output_dir) == str(tmp_path / "r")
    plain = study.command("uniform", 3, tmp_path / "u", 1, "smollm2-rg2")
    assert [plain[i + 1] for i, a in enumerate(plain) if a == "--set"] == ["training.seed=3"]  # rg2 as it ran


def test_a_finished_run_keeps_its_config_and_per_problem_records(tmp_path):
    study = load_benchmark("smollm2_rg_study")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: x\n")
    (run / "eval_problems.jsonl").write_text('{"id":"0","correct":true,"score":1.0}\n')
    (run / "metrics.jsonl").write_text("{}\n")
    kept = study.keep_records(run, tmp_path / "results" / "uniform-s0")
    assert sorted(p.name for p in kept) == ["config.yaml", "eval_problems.jsonl", "metrics.jsonl"]  # what it had
    assert (tmp_path / "results" / "uniform-s0" / "eval_problems.jsonl").read_text().startswith('{"id":"0"')
