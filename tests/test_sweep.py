"""`arca sweep`: the plan (names, overrides, alpha, skip / resume decisions) and its execution, with a
fake train function (no model is trained here)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from arca_rl._config import ConfigError
from arca_rl._sweep import dry_run_lines, plan_sweep, run_sweep
from arca_rl.cli._common import parse_list


def write_base(tmp_path: Path, lora: dict | None = None, name: str = "base") -> Path:
    cfg = {
        "name": name,
        "lora": lora or {"r": 8},
        "task": {"name": "arithmetic"},
        "training": {"max_steps": 2, "credit": "arca"},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class FakeTrain:
    """Records calls; writes what `arca train` would (config, metrics, eval, finished.json)."""

    def __init__(self, fail: set[str] = frozenset()):
        self.calls: list[tuple[str, Path, bool, dict]] = []
        self.fail = fail

    def __call__(self, cfg, *, run_dir: Path, resume: bool) -> Path:
        self.calls.append((cfg.name, Path(run_dir), resume, cfg.to_yaml_dict()))
        if cfg.name in self.fail:
            raise RuntimeError("CUDA out of memory (fake)")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(cfg.to_yaml())
        seed = cfg.training["seed"]
        rows = [
            {
                "step": s,
                "reward": 0.1 * s + 0.01 * seed,
                "credit/gini": 0.3,
                "credit/effective_token_ratio": 0.5,
            }
            for s in (1, 2)
        ]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        ev = {
            "greedy_accuracy": 0.5 + 0.01 * seed,
            "pass_at_k": 0.6,
            "k": 4,
            "samples_per_problem": 4,
            "n": 10,
        }
        (run_dir / "eval.json").write_text(json.dumps(ev))
        (run_dir / "finished.json").write_text("{}")
        return run_dir


def test_plan_names_overrides_and_alpha(tmp_path: Path):
    base = write_base(tmp_path)
    plan = plan_sweep(
        base,
        credits=["uniform", "arca"],
        ranks=[4, 16],
        seeds=[1, 2],
        overrides=["training.learning_rate=1e-4"],
        runs_dir=tmp_path / "runs",
    )
    names = [r.name for r in plan.runs]
    assert names == [
        "base-uniform-r4-s1", "base-uniform-r4-s2", "base-uniform-r16-s1", "base-uniform-r16-s2",
        "base-arca-r4-s1", "base-arca-r4-s2", "base-arca-r16-s1", "base-arca-r16-s2",
    ]  # fmt: skip
    r = plan.runs[2]
    assert r.overrides == [
        "training.learning_rate=1e-4",
        "name=base-uniform-r16-s1",
        "training.credit=uniform",
        "lora.r=16",
        "lora.alpha=32",
        "training.seed=1",
    ]
    assert r.run_dir == tmp_path / "runs" / "base-uniform-r16-s1"
    assert all(x.action == "train" for x in plan.runs)
    assert "2 * rank" in plan.alpha_note
    assert plan.report_dir == tmp_path / "runs" / "base-sweep-report"


def test_alpha_follows_the_base_ratio_or_a_user_set(tmp_path: Path):
    same = plan_sweep(
        write_base(tmp_path, {"r": 8, "alpha": 16}, "a"),
        credits=["arca"],
        ranks=[4],
        seeds=[1],
        runs_dir=tmp_path,
    )
    assert "lora.alpha=8" in same.runs[0].overrides  # explicit alpha = 2r keeps 2r
    ratio1 = plan_sweep(
        write_base(tmp_path, {"r": 8, "alpha": 8}, "b"),
        credits=["arca"],
        ranks=[64],
        seeds=[1],
        runs_dir=tmp_path,
    )
    assert "lora.alpha=64" in ratio1.runs[0].overrides and "1 * rank" in ratio1.alpha_note
    fixed = plan_sweep(
        write_base(tmp_path, name="c"),
        credits=["arca"],
        ranks=[4, 64],
        seeds=[1],
        overrides=["lora.alpha=32"],
        runs_dir=tmp_path,
    )
    for r in fixed.runs:
        assert [o for o in r.overrides if o.startswith("lora.alpha")] == ["lora.alpha=32"]
    assert "--set lora.alpha" in fixed.alpha_note


def test_skip_finished_resume_interrupted(tmp_path: Path):
    base = write_base(tmp_path)
    runs = tmp_path / "runs"
    done = runs / "base-arca-r4-s1"
    done.mkdir(parents=True)
    (done / "finished.json").write_text("{}")
    cut = runs / "base-arca-r4-s2"
    (cut / "checkpoint-3").mkdir(parents=True)
    (cut / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": 3}')
    (cut / "metrics.jsonl").write_text('{"step": 1, "reward": 0.1}\n')
    early = runs / "base-arca-r4-s3"
    early.mkdir()
    (early / "metrics.jsonl").write_text(
        '{"step": 1, "reward": 0.1}\n'
    )  # crashed before its first checkpoint
    plan = plan_sweep(base, credits=["arca"], ranks=[4], seeds=[1, 2, 3, 4], runs_dir=runs)
    assert [r.action for r in plan.runs] == ["skip", "resume", "resume", "train"]
    assert "checkpoint-3" in plan.runs[1].reason

    fake = FakeTrain()
    log: list[str] = []
    outcomes = run_sweep(plan, train_fn=fake, log=log.append)
    assert outcomes == {
        "base-arca-r4-s1": "skipped",
        "base-arca-r4-s2": "resumed",
        "base-arca-r4-s3": "resumed",
        "base-arca-r4-s4": "trained",
    }
    assert [(c[0], c[2]) for c in fake.calls] == [
        ("base-arca-r4-s2", True),
        ("base-arca-r4-s3", True),
        ("base-arca-r4-s4", False),
    ]
    name, run_dir, _, cfg = fake.calls[2]
    assert run_dir == runs / name
    assert cfg["training"]["credit"] == "arca" and cfg["training"]["seed"] == 4
    assert cfg["lora"]["r"] == 4 and cfg["lora"]["alpha"] == 8

    # a second sweep over the same grid trains nothing
    again = plan_sweep(base, credits=["arca"], ranks=[4], seeds=[2, 3, 4], runs_dir=runs)
    assert [r.action for r in again.runs] == ["skip", "skip", "skip"]


def test_failures_continue_and_report_at_the_end(tmp_path: Path):
    base = write_base(tmp_path)
    runs = tmp_path / "runs"
    plan = plan_sweep(base, credits=["uniform", "arca"], ranks=[4], seeds=[1, 2], runs_dir=runs)
    fake = FakeTrain(fail={"base-uniform-r4-s2"})
    log: list[str] = []
    outcomes = run_sweep(plan, train_fn=fake, log=log.append)
    assert len(fake.calls) == 4
    assert outcomes["base-uniform-r4-s2"].startswith("failed: RuntimeError")
    assert sum(o == "trained" for o in outcomes.values()) == 3
    assert any("1 run(s) failed" in m for m in log)
    t2 = (plan.report_dir / "table2.csv").read_text().splitlines()
    assert t2[1].startswith("uniform,4,1,") and t2[2].startswith("arca,4,2,")
    assert (plan.report_dir / "report.md").is_file()


def test_dry_run_lines_and_cli(tmp_path: Path, capsys, monkeypatch):
    base = write_base(tmp_path)
    runs = tmp_path / "runs"
    (runs / "base-arca-r4-s1").mkdir(parents=True)
    (runs / "base-arca-r4-s1" / "finished.json").write_text("{}")
    plan = plan_sweep(base, credits=["arca"], ranks=[4, 16], seeds=[1], runs_dir=runs)
    lines = dry_run_lines(plan)
    assert lines[1].startswith("# skip base-arca-r4-s1")
    argv = shlex.split(lines[2])
    assert argv[:6] == ["accelerate", "launch", "-m", "arca_rl.cli", "train", "--config"]
    assert "--set" in argv and "training.credit=arca" in argv and "lora.alpha=32" in argv
    assert argv[-2:] == ["--output-dir", str(runs / "base-arca-r16-s1")]

    # the dry-run train command line is accepted by `arca train` itself
    from arca_rl.cli import build_parser, main

    args = build_parser().parse_args(argv[4:])
    assert args.command == "train" and args.overrides[-1] == "training.seed=1"

    called = []
    monkeypatch.setattr("arca_rl._sweep.run_sweep", lambda *a, **k: called.append(1) or {})
    rc = main(
        [
            "sweep",
            "--config",
            str(base),
            "--credit",
            "arca,uniform",
            "--rank",
            "4,16",
            "--seed",
            "1",
            "--runs-dir",
            str(runs),
            "--dry-run",
        ]
    )
    assert rc == 0 and not called
    out = capsys.readouterr().out.splitlines()
    assert (
        sum(line.startswith("accelerate launch -m arca_rl.cli train") for line in out) == 3
    )  # 4 runs, 1 finished


def test_bad_grid_values(tmp_path: Path):
    base = write_base(tmp_path)
    with pytest.raises(ConfigError, match="credit"):
        plan_sweep(base, credits=["nonsense"], ranks=[4], seeds=[1], runs_dir=tmp_path)
    with pytest.raises(ConfigError, match="training.seed"):
        plan_sweep(
            base, credits=["arca"], ranks=[4], seeds=[1], overrides=["training.seed=3"], runs_dir=tmp_path
        )
    with pytest.raises(ValueError, match="not a valid int"):
        parse_list("4,x", int)
    assert parse_list("4, 16,4,", int) == [4, 16]
    from arca_rl.cli import main

    assert (
        main(
            [
                "sweep",
                "--config",
                str(base),
                "--credit",
                "arca",
                "--rank",
                "4,sixteen",
                "--seed",
                "1",
                "--dry-run",
            ]
        )
        == 2
    )


def test_a_member_another_process_trains_makes_the_sweep_exit_non_zero(tmp_path: Path, monkeypatch, capsys):
    """Issue 28 §5: skipped because its folder is in use, the member is not done; `arca sweep` says so, exits 1."""
    from arca_rl import _sweep, rundir
    from arca_rl.cli import main

    base = write_base(tmp_path)
    runs = tmp_path / "runs"
    fake = FakeTrain()
    monkeypatch.setattr(_sweep, "run_sweep", lambda plan, **kw: run_sweep(plan, train_fn=fake, **kw))
    with rundir.lock(runs / "base-arca-r4-s1"):  # another "process" trains seed 1
        rc = main(["sweep", "--config", str(base), "--credit", "arca", "--rank", "4", "--seed", "1,2",
                   "--runs-dir", str(runs), "--no-report"])
    assert rc == 1
    assert [c[0] for c in fake.calls] == ["base-arca-r4-s2"]
    assert "in use by another process: base-arca-r4-s1" in capsys.readouterr().out
