"""`arca report`: Tables 2 and 3 from synthetic run folders, checked against hand-computed means and
Student-t intervals; partial and broken runs are reported and skipped."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from arca_rl._report import write_report
from arca_rl._report.html import completions_from_token_log
from arca_rl._report.tables import discover_runs, load_run
from arca_rl.cli import main
from arca_rl.diagnostics import mean_ci
from arca_rl.errors import ConfigError

# t_{0.975, dof}, from tables (not from scipy, which the code under test uses)
T975 = {1: 12.706204736174707, 2: 4.302652729911275, 3: 3.182446305284263}


def make_run(
    root: Path,
    name: str,
    *,
    credit: str,
    rank: int,
    seed: int,
    rewards: list[float],
    ginis: list[float] | None = None,
    effs: list[float] | None = None,
    greedy: float | None = None,
    pass_k: float | None = None,
    tokens: bool = False,
    finished: bool = True,
    curve: list[tuple[int, float]] | None = None,
) -> Path:
    run = root / name
    run.mkdir(parents=True)
    cfg = {
        "name": name,
        "lora": {"r": rank, "alpha": 2 * rank},
        "task": {"name": "arithmetic"},
        "training": {"credit": credit, "seed": seed},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with open(run / "metrics.jsonl", "w") as fh:
        for i, r in enumerate(rewards):
            row = {"step": i + 1, "reward": r, "loss": 0.1, "completions/mean_length": 12.0}
            if ginis is not None:
                row["credit/gini"] = ginis[i]
            if effs is not None:
                row["credit/effective_token_ratio"] = effs[i]
            fh.write(json.dumps(row) + "\n")
        fh.write(json.dumps({"step": len(rewards), "train_runtime": 12.5}) + "\n")  # TRL's final summary line
    if greedy is not None:
        ev = {"greedy_accuracy": greedy, "pass_at_k": pass_k, "k": 4, "samples_per_problem": 4, "n": 200}
        (run / "eval.json").write_text(json.dumps(ev))
    if curve is not None:
        rows = [{"step": st, "greedy_accuracy": acc, "n": 20, "seconds": 1.5} for st, acc in curve]
        (run / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if finished:
        (run / "finished.json").write_text(json.dumps({"global_step": len(rewards), "eval_seconds": 3.25}))
    if tokens:
        with open(run / "credit_tokens.jsonl", "w") as fh:
            for step in (1, len(rewards)):
                for j in range(2):
                    toks = ["\\boxed{", "1", "2", "}", " <&\"x'>", "\n"]
                    w = [0.5, 0.1, 0.1, 0.1, 0.1, 0.1] if j == 0 else [1 / 6] * 6
                    rec = {
                        "step": step,
                        "signal": credit,
                        "tokens": toks,
                        "weights": w,
                        "salience": [2.0, 0.4, 0.4, 0.4, 0.4, 0.4],
                        "advantage": 0.5 - j,
                    }
                    fh.write(json.dumps(rec) + "\n")
    return run


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    # arca r16: three seeds
    make_run(
        root,
        "arca-r16-s1",
        credit="arca",
        rank=16,
        seed=1,
        rewards=[0.2, 0.4],
        ginis=[0.3, 0.5],
        effs=[0.5, 0.4],
        greedy=0.50,
        pass_k=0.60,
        tokens=True,
    )
    make_run(
        root,
        "arca-r16-s2",
        credit="arca",
        rank=16,
        seed=2,
        rewards=[0.3, 0.5],
        ginis=[0.4, 0.4],
        effs=[0.45, 0.45],
        greedy=0.60,
        pass_k=0.70,
    )
    make_run(
        root,
        "arca-r16-s3",
        credit="arca",
        rank=16,
        seed=3,
        rewards=[0.1, 0.3],
        ginis=[0.5, 0.6],
        effs=[0.3, 0.3],
        greedy=0.70,
        pass_k=0.65,
    )
    # uniform r64: two seeds
    make_run(
        root,
        "uniform-r64-s1",
        credit="uniform",
        rank=64,
        seed=1,
        rewards=[0.4, 0.4],
        ginis=[0.0, 0.0],
        effs=[1.0, 1.0],
        greedy=0.62,
        pass_k=0.70,
    )
    make_run(
        root,
        "uniform-r64-s2",
        credit="uniform",
        rank=64,
        seed=2,
        rewards=[0.2, 0.6],
        ginis=[0.0, 0.0],
        effs=[1.0, 1.0],
        greedy=0.58,
        pass_k=0.66,
    )
    # surprisal r64: one seed -> no interval
    make_run(
        root,
        "surprisal-r64-s1",
        credit="surprisal",
        rank=64,
        seed=1,
        rewards=[0.3, 0.35],
        ginis=[0.9, 0.95],
        effs=[0.06, 0.05],
        greedy=0.52,
        pass_k=0.65,
    )
    # partial: no eval.json -> Table 3 only
    make_run(
        root,
        "arca-r4-s1",
        credit="arca",
        rank=4,
        seed=1,
        rewards=[0.1, 0.2],
        ginis=[0.3, 0.4],
        effs=[0.5, 0.5],
    )
    # broken: no config.yaml; and one with a config but nothing logged
    (root / "crashed").mkdir()
    (root / "crashed" / "metrics.jsonl").write_text('{"step": 1, "reward": 0.1}\n')
    (root / "empty").mkdir()
    (root / "empty" / "config.yaml").write_text("name: empty\ntraining: {credit: arca}\nlora: {r: 8}\n")
    return root


def ci(xs: list[float], dof_table: dict[int, float] = T975) -> float:
    n = len(xs)
    m = sum(xs) / n
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return dof_table[n - 1] * s / math.sqrt(n)


def read_csv(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(path, newline="") as fh:
        return {(r["method"], r["rank"]): r for r in csv.DictReader(fh)}


def test_mean_ci_by_hand():
    m, h, n = mean_ci([0.5, 0.6, 0.7])
    assert (m, n) == (pytest.approx(0.6), 3)
    assert h == pytest.approx(T975[2] * 0.1 / math.sqrt(3))
    assert mean_ci([0.3]) == (0.3, None, 1)
    assert mean_ci([]) == (None, None, 0)
    m, h, n = mean_ci([1.0, 2.0])
    assert h == pytest.approx(T975[1] * math.sqrt(0.5) / math.sqrt(2))


def test_tables_match_hand_computation(runs: Path, tmp_path: Path):
    out = tmp_path / "report"
    messages: list[str] = []
    res = write_report([runs], out, log=messages.append)

    t2 = read_csv(out / "table2.csv")
    # paper order; arca-r4 has no eval.json
    assert list(t2) == [("uniform", "64"), ("surprisal", "64"), ("arca", "16")]
    a = t2[("arca", "16")]
    assert a["n"] == "3" and a["k"] == "4"
    assert float(a["greedy_acc"]) == pytest.approx(0.6)
    assert float(a["greedy_acc_ci95"]) == pytest.approx(ci([0.5, 0.6, 0.7]))
    assert float(a["pass_at_k"]) == pytest.approx(0.65)
    assert float(a["pass_at_k_ci95"]) == pytest.approx(ci([0.6, 0.7, 0.65]))
    avg_rewards = [0.3, 0.4, 0.2]  # per-seed means over logging steps
    assert float(a["avg_train_reward"]) == pytest.approx(0.3)
    assert float(a["avg_train_reward_ci95"]) == pytest.approx(ci(avg_rewards))
    u = t2[("uniform", "64")]
    assert float(u["greedy_acc"]) == pytest.approx(0.60)
    assert float(u["greedy_acc_ci95"]) == pytest.approx(
        T975[1] * math.sqrt(((0.02) ** 2 * 2) / 1) / math.sqrt(2)
    )
    assert float(u["avg_train_reward"]) == pytest.approx(0.4)
    assert float(u["avg_train_reward_ci95"]) == pytest.approx(0.0, abs=1e-12)
    s = t2[("surprisal", "64")]
    assert s["n"] == "1" and float(s["greedy_acc"]) == pytest.approx(0.52)
    # one seed: no interval
    assert s["greedy_acc_ci95"] == "" and s["pass_at_k_ci95"] == "" and s["avg_train_reward_ci95"] == ""

    t3 = read_csv(out / "table3.csv")
    assert list(t3) == [("uniform", "64"), ("surprisal", "64"), ("arca", "4"), ("arca", "16")]
    a3 = t3[("arca", "16")]
    ginis = [0.4, 0.4, 0.55]  # per-seed means over logging steps
    effs = [0.45, 0.45, 0.3]
    assert float(a3["mean_gini"]) == pytest.approx(0.45)
    assert float(a3["mean_gini_ci95"]) == pytest.approx(ci(ginis))
    assert float(a3["mean_effective_token_ratio"]) == pytest.approx(0.4)
    assert float(a3["mean_effective_token_ratio_ci95"]) == pytest.approx(ci(effs))
    assert t3[("arca", "4")]["n"] == "1" and t3[("arca", "4")]["mean_gini_ci95"] == ""
    assert float(t3[("surprisal", "64")]["mean_gini"]) == pytest.approx(0.925)
    assert float(t3[("uniform", "64")]["mean_effective_token_ratio"]) == pytest.approx(1.0)

    # the returned rows are the CSV rows
    assert [r["method"] for r in res.table2] == ["uniform", "surprisal", "arca"]
    md = (out / "report.md").read_text()
    assert f"0.600 ± {ci([0.5, 0.6, 0.7]):.3f}" in md
    assert "| surprisal | 64 | 1 | 0.520 |" in md
    # partial and broken runs: messages, no crash
    text = "\n".join(messages)
    assert "arca-r4-s1: no eval.json" in text
    assert "empty: unfinished" in text
    assert "crashed: looks like a run but has no config.yaml" in text
    assert len(res.runs) == 7
    assert (out / "curves.png").stat().st_size > 10_000
    page = (out / "heatmaps.html").read_text()
    assert "arca-r16-s1" in page and "&lt;&amp;&quot;x&#x27;&gt;" in page and " <&\"x'>" not in page


def test_tables_with_scipy_t(runs: Path, tmp_path: Path):
    """Same interval as scipy's own t.interval (independent formulation)."""
    from scipy import stats

    res = write_report(sorted(runs.iterdir()), tmp_path / "r", log=None)
    row = next(r for r in res.table2 if r["method"] == "arca")
    lo, hi = stats.t.interval(0.95, 2, loc=0.6, scale=stats.sem([0.5, 0.6, 0.7]))
    assert row["greedy_acc_ci95"] == pytest.approx((hi - lo) / 2)


def test_missing_paths_and_no_runs(tmp_path: Path):
    with pytest.raises(ConfigError, match="nope: does not exist"):
        write_report([tmp_path / "nope", tmp_path], tmp_path / "out", log=None)
    make_run(tmp_path, "half", credit="arca", rank=4, seed=1, rewards=[0.1], finished=False)
    with pytest.raises(ConfigError, match="no finished run to report on .*half: unfinished"):
        write_report([tmp_path], tmp_path / "out", log=None)
    assert not (tmp_path / "out").exists()


def test_torn_metrics_line_and_bad_eval(tmp_path: Path):
    run = make_run(
        tmp_path,
        "r",
        credit="arca",
        rank=8,
        seed=1,
        rewards=[0.5, 0.7],
        ginis=[0.2, 0.4],
        effs=[0.5, 0.5],
        greedy=0.5,
        pass_k=0.5,
    )
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 3, "rew')  # half-written line of a killed run
    (run / "eval.json").write_text("{not json")
    data = load_run(run)
    assert data.avg_train_reward == pytest.approx(0.6) and data.eval is None
    assert any("unreadable line" in w for w in data.warnings) and any("eval.json" in w for w in data.warnings)


def test_discover_nested_and_token_log_merge(runs: Path):
    found, msgs = discover_runs([runs.parent])
    assert {p.name for p in found} >= {"arca-r16-s1", "uniform-r64-s2", "empty"}
    recs = [json.loads(x) for x in (runs / "arca-r16-s1" / "credit_tokens.jsonl").read_text().splitlines()]
    # a shadow signal on the same completion merges into the same card as a second row
    recs.append({**recs[0], "signal": "surprisal", "weights": [0.2] * 5 + [0.0]})
    comps = completions_from_token_log(recs)
    assert len(comps) == 4
    assert set(comps[0].weights) == {"arca", "surprisal"}
    assert comps[0].meta["advantage"] == pytest.approx(0.5)


def test_cli_report(runs: Path, tmp_path: Path, capsys):
    from arca_rl.cli import main

    out = tmp_path / "cli-report"
    assert main(["report", str(runs / "arca-r16-s1"), str(runs / "arca-r16-s2"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| arca | 16 | 2 |" in printed
    assert (out / "table2.csv").is_file() and (out / "table3.csv").is_file()
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_report_and_diagnose_on_a_real_tiny_run(tiny_run_config: dict, tmp_path: Path, capsys):
    """End to end on what `arca train` really writes (2 steps of the tiny random model, ~10 s)."""
    from arca_rl._config import parse_config
    from arca_rl._run.training import train
    from arca_rl.cli import main

    tiny_run_config["training"].update(credit_log_tokens_every=1, credit_shadow=True)
    run = train(parse_config(tiny_run_config), run_dir=tmp_path / "runs" / "tiny", progress=False)
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "runs"), "--out", str(out)]) == 0
    t2 = read_csv(out / "table2.csv")[("arca", "4")]
    ev = json.loads((run / "eval.json").read_text())
    assert float(t2["greedy_acc"]) == pytest.approx(ev["greedy_accuracy"]) and t2["greedy_acc_ci95"] == ""
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    ginis = [m["credit/gini"] for m in metrics if "credit/gini" in m]
    assert float(read_csv(out / "table3.csv")[("arca", "4")]["mean_gini"]) == pytest.approx(
        sum(ginis) / len(ginis)
    )
    page = (out / "heatmaps.html").read_text()
    for sig in ("uniform", "surprisal", "entropy_reduction", "divergence", "arca"):
        assert f'data-signal="{sig}"' in page  # active + shadow signals, one row each
    assert (out / "curves.png").is_file()

    diag = tmp_path / "diag"
    assert (
        main(["diagnose", "--adapter", str(run), "--n", "2", "--k", "2", "--out", str(diag), "--quiet"]) == 0
    )
    d = json.loads((diag / "diagnose.json").read_text())
    assert d["settings"]["task"] == "arithmetic" and "arca" in d["signals"] and list(d["absent"]) == ["vine"]
    capsys.readouterr()


def test_runs_that_differ_beyond_the_seed_are_flagged(tmp_path):
    a = make_run(tmp_path, "a-s1", credit="arca", rank=16, seed=1, rewards=[0.2, 0.4], greedy=0.5, pass_k=0.7)
    b = make_run(tmp_path, "a-s2", credit="arca", rank=16, seed=2, rewards=[0.3, 0.5], greedy=0.6, pass_k=0.8)
    u1 = make_run(tmp_path, "u-s1", credit="uniform", rank=16, seed=1, rewards=[0.2], greedy=0.5, pass_k=0.7)
    u2 = make_run(tmp_path, "u-s2", credit="uniform", rank=16, seed=2, rewards=[0.2], greedy=0.5, pass_k=0.7)
    cfg = yaml.safe_load((b / "config.yaml").read_text())
    cfg["training"]["credit_power"] = 2.0  # a different configuration hiding among the seeds
    (b / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = write_report([a, b, u1, u2], out=tmp_path / "report")
    flagged = [m for m in res.messages if "averaged together" in m]
    assert len(flagged) == 1  # seeds and names alone (the uniform pair) are not flagged
    assert flagged[0].startswith("arca r16") and "training.credit_power" in flagged[0]
    assert "training.credit_power" in (tmp_path / "report" / "report.md").read_text()


def test_credit_variants_are_their_own_methods_and_show_the_mix_in_force(tmp_path):
    """credit_mix / credit_warmup_steps / top_entropy_quantile name the method (arca+mix0.5, ...), so such runs are
    not averaged with the plain signal; the runs list shows the lambda in force at the end of training."""

    def set_training(run: Path, **fields) -> None:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        cfg["training"].update(fields)
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))

    plain = make_run(tmp_path, "arca", credit="arca", rank=16, seed=0, rewards=[0.2, 0.4], greedy=0.5, pass_k=0.7)
    mixed = make_run(tmp_path, "mix", credit="arca", rank=16, seed=0, rewards=[0.2, 0.4], greedy=0.6, pass_k=0.7)
    set_training(mixed, credit_mix=0.5)
    warm = make_run(tmp_path, "warm", credit="arca", rank=16, seed=0, rewards=[0.1, 0.3], greedy=0.4, pass_k=0.6)
    set_training(warm, credit_warmup_steps=10, max_steps=4)  # stopped at 4 of 10 warm-up steps: lambda 0.4
    logged = make_run(tmp_path, "logged", credit="arca", rank=16, seed=1, rewards=[0.1, 0.3], greedy=0.4, pass_k=0.6)
    set_training(logged, credit_warmup_steps=10, max_steps=4)
    rows = [json.loads(x) for x in (logged / "metrics.jsonl").read_text().splitlines()]
    rows[0]["credit/mix"], rows[1]["credit/mix"] = 0.0, 0.1  # what the trainer logged wins over the config
    (logged / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    topent = make_run(tmp_path, "topent", credit="uniform", rank=16, seed=0, rewards=[0.2], greedy=0.5, pass_k=0.7)
    set_training(topent, top_entropy_quantile=0.2)
    res = write_report([plain, mixed, warm, logged, topent], out=tmp_path / "report")
    assert [r["method"] for r in res.table2] == ["uniform+topent0.2", "arca", "arca+mix0.5", "arca+warmup10"]
    assert next(r for r in res.table2 if r["method"] == "arca+warmup10")["n"] == 2
    assert not [m for m in res.messages if "averaged together" in m]
    assert {r.name: r.final_mix for r in res.runs} == pytest.approx(
        {"arca": 1.0, "mix": 0.5, "warm": 0.4, "logged": 0.1, "topent": 1.0}
    )
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| credit mix |" in md and "| mix | arca+mix0.5 | 16 | 0 | 0.5 |" in md
    assert "| warm | arca+warmup10 | 16 | 0 | 0.4 |" in md


def test_runs_that_differ_in_trainer_are_never_averaged(tmp_path):
    """A GRPO and an RLOO run of one credit are two methods: two rows, each labelled with its trainer."""
    g = make_run(tmp_path, "g", credit="arca", rank=16, seed=0, rewards=[0.2, 0.4], greedy=0.5, pass_k=0.7)
    r = make_run(tmp_path, "r", credit="arca", rank=16, seed=1, rewards=[0.1, 0.3], greedy=0.3, pass_k=0.6)
    u = make_run(tmp_path, "u", credit="uniform", rank=16, seed=0, rewards=[0.2], greedy=0.4, pass_k=0.6)
    cfg = yaml.safe_load((r / "config.yaml").read_text())
    cfg["trainer"] = "rloo"
    (r / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = write_report([g, r, u], out=tmp_path / "report")
    rows = {row["method"]: row for row in res.table2}
    assert set(rows) == {"arca (grpo)", "arca (rloo)", "uniform"}  # uniform's runs agree: its label is unchanged
    assert rows["arca (grpo)"]["n"] == 1 and rows["arca (rloo)"]["n"] == 1
    assert rows["arca (rloo)"]["greedy_acc"] == pytest.approx(0.3)  # its own figure, not the mean with GRPO's
    assert "| arca (rloo) |" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.parametrize("name", ["eval.json", "config.yaml"])
def test_report_reads_a_non_utf8_run_file_without_a_traceback(tmp_path, name, capsys):
    run = make_run(tmp_path, "a", credit="arca", rank=16, seed=0, rewards=[0.2], greedy=0.5, pass_k=0.7)
    (run / name).write_bytes(b"\xff\xfe{not utf-8")
    keep = make_run(tmp_path, "b", credit="uniform", rank=16, seed=0, rewards=[0.2], greedy=0.5, pass_k=0.7)
    assert main(["report", str(run), str(keep), "--out", str(tmp_path / "report")]) == 0
    said = "".join(capsys.readouterr())
    assert str(run) in said and name in said


# ---------------------------------------------------------------------------------------------------
# issue 28 §3: `arca report` reads only what it should


def _one_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_a_file_instead_of_a_folder_is_one_line(tmp_path: Path, capsys):
    a_file = tmp_path / "README.md"
    a_file.write_text("# not a run\n")
    before = _tree(tmp_path)
    assert main(["report", str(a_file)]) == 2
    out, err = capsys.readouterr()
    line = _one_line(err)
    assert str(a_file) in line and "file" in line, line
    assert "report written" not in out and _tree(tmp_path) == before


def test_a_glob_that_matched_nothing_creates_no_folder(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    before = _tree(tmp_path)
    assert main(["report", "runs/demo/*"]) == 2  # the shell passes an unmatched pattern as it is
    out, err = capsys.readouterr()
    line = _one_line(err)
    assert "runs/demo/*" in line and "matched nothing" in line, line
    assert not (tmp_path / "runs" / "demo" / "*").exists() and _tree(tmp_path) == before
    assert "report written" not in out


@pytest.mark.parametrize("what", ["missing", "empty"])
def test_a_missing_or_empty_folder_is_an_error_and_writes_nothing(what, tmp_path: Path, capsys):
    target = tmp_path / "runs"
    if what == "empty":
        target.mkdir()
    before = _tree(tmp_path)
    assert main(["report", str(target)]) == 2
    out, err = capsys.readouterr()
    line = _one_line(err)
    assert str(target) in line and ("does not exist" if what == "missing" else "no run folder") in line, line
    assert "report written" not in out and _tree(tmp_path) == before
    with pytest.raises(ConfigError):
        write_report([target], tmp_path / "out", log=None)
    assert not (tmp_path / "out").exists()


def test_a_run_still_training_or_unfinished_is_skipped_never_averaged(tmp_path: Path):
    from arca_rl import rundir

    a1 = make_run(tmp_path, "a1", credit="arca", rank=16, seed=1, rewards=[0.2], greedy=0.5, pass_k=0.6)
    a2 = make_run(tmp_path, "a2", credit="arca", rank=16, seed=2, rewards=[0.2], greedy=0.7, pass_k=0.8)
    live = make_run(tmp_path, "a3", credit="arca", rank=16, seed=3, rewards=[0.2], greedy=0.1, pass_k=0.1)
    half = make_run(
        tmp_path, "a4", credit="arca", rank=16, seed=4, rewards=[0.2], greedy=0.0, pass_k=0.0, finished=False
    )
    messages: list[str] = []
    with rundir.lock(live):  # a live process (this one) is training in a3
        res = write_report([tmp_path], tmp_path / "report", log=messages.append)
    row = next(r for r in res.table2 if r["method"] == "arca")
    assert row["n"] == 2 and row["greedy_acc"] == pytest.approx(0.6)
    assert {r.path for r in res.runs} == {a1, a2}
    said = "\n".join(messages)
    assert f"{live}: still training" in said and f"{half}: unfinished" in said


def test_two_runs_of_one_method_and_seed_are_one_seed(tmp_path: Path):
    make_run(tmp_path, "a-s1", credit="arca", rank=16, seed=1, rewards=[0.2], greedy=0.5, pass_k=0.6)
    make_run(tmp_path, "a-s1-again", credit="arca", rank=16, seed=1, rewards=[0.2], greedy=0.5, pass_k=0.6)
    res = write_report([tmp_path], tmp_path / "report", log=None)
    row = next(r for r in res.table2 if r["method"] == "arca")
    assert row["n"] == 1 and row["greedy_acc_ci95"] is None
    assert any("a-s1-again" in m and "same method, rank and seed" in m for m in res.messages), res.messages
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| arca | 16 | 1 | 0.500 |" in md and "± 0.000" not in md


def test_unreadable_eval_values_are_named(tmp_path: Path):
    run = make_run(tmp_path, "a", credit="arca", rank=16, seed=1, rewards=[0.2], greedy=0.5, pass_k=0.6)
    (run / "eval.json").write_text('{"greedy_accuracy": "high", "pass_at_k": NaN, "k": 4, "n": 200}')
    res = write_report([run], tmp_path / "report", log=None)
    said = "\n".join(res.messages)
    assert "eval.json" in said and "greedy_accuracy" in said and "'high'" in said, said
    assert "pass_at_k" in said and "nan" in said.lower(), said


def test_a_token_row_with_mismatched_lengths_is_named(tmp_path: Path):
    run = make_run(
        tmp_path, "a", credit="arca", rank=16, seed=1, rewards=[0.2, 0.3], greedy=0.5, pass_k=0.6, tokens=True
    )
    bad = {"step": 1, "signal": "arca", "tokens": ["a", "b", "c"], "weights": [0.5, 0.5], "salience": [1.0]}
    with open(run / "credit_tokens.jsonl", "a") as fh:
        fh.write(json.dumps(bad) + "\n")
    res = write_report([run], tmp_path / "report", log=None)
    said = "\n".join(res.messages)
    assert "credit_tokens.jsonl line 5" in said and "3 tokens" in said and "2 weights" in said, said


# ---------------------------------------------------------------------------------------------------
# issue 25 §2: paired comparisons with a baseline, learning curves


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    """uniform and surprisal on seeds 1-3 (surprisal also on seed 4, which uniform lacks); arca on seed 1 only."""
    root = tmp_path / "study"
    uni = {1: (0.50, 0.70), 2: (0.60, 0.70), 3: (0.40, 0.70)}
    sur = {1: (0.55, 0.60), 2: (0.60, 0.80), 3: (0.50, 0.65), 4: (0.90, 0.90)}
    uni_curve = {
        1: [(0, 0.2), (2, 0.4), (4, 0.4)],
        2: [(0, 0.2), (2, 0.2), (4, 0.6)],
        3: [(0, 0.2), (2, 0.3), (4, 0.4)],
    }
    sur_curve = {
        1: [(0, 0.2), (2, 0.5), (4, 0.5)],
        2: [(0, 0.2), (2, 0.2), (4, 0.6)],
        3: [(0, 0.2), (2, 0.4), (4, 0.4)],
        4: [(0, 0.2), (4, 1.0)],
    }
    for seed, (g, p) in uni.items():
        make_run(root, f"uniform-s{seed}", credit="uniform", rank=16, seed=seed, rewards=[0.1 * seed, 0.2, 0.3],
                 greedy=g, pass_k=p, curve=uni_curve[seed])
    for seed, (g, p) in sur.items():
        make_run(root, f"surprisal-s{seed}", credit="surprisal", rank=16, seed=seed, rewards=[0.2, 0.3, 0.4],
                 greedy=g, pass_k=p, curve=sur_curve[seed])
    make_run(root, "arca-s1", credit="arca", rank=16, seed=1, rewards=[0.2, 0.2, 0.2], greedy=0.45, pass_k=0.75)
    return root


def _by_hand(diffs: list[float]) -> tuple[float, float, float]:
    n = len(diffs)
    m = sum(diffs) / n
    half = T975[n - 1] * math.sqrt(sum((d - m) ** 2 for d in diffs) / (n - 1)) / math.sqrt(n)
    return m, m - half, m + half


def test_curve_area_by_hand():
    from arca_rl._run.curve import curve_auc

    # trapezoids: 2 * (0.2 + 0.4) / 2 + 2 * (0.4 + 0.4) / 2 = 1.4 over a span of 4 steps
    assert curve_auc([(0, 0.2), (2, 0.4), (4, 0.4)]) == pytest.approx(0.35)
    assert curve_auc([(4, 1.0), (0, 0.2)]) == pytest.approx(0.6)  # order does not matter
    assert curve_auc([(0, 0.5)]) is None and curve_auc([]) is None


def test_paired_differences_match_hand_computation(study: Path, tmp_path: Path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(study), "--out", str(out), "--baseline", "uniform"]) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "paired.json").read_text())
    assert data["baseline"] == "uniform"
    entries = {(e["method"], e["measure"]): e for e in data["entries"]}
    assert set(entries) == {
        ("surprisal", "greedy_accuracy"), ("surprisal", "pass_at_k"), ("surprisal", "curve_auc"),
        ("arca", "greedy_accuracy"), ("arca", "pass_at_k"),  # arca has no curve
    }
    g = entries[("surprisal", "greedy_accuracy")]
    mean, lo, hi = _by_hand([0.55 - 0.50, 0.60 - 0.60, 0.50 - 0.40])  # seed 4 has no uniform partner
    assert (g["n_seeds"], g["seeds"], g["wins"], g["ties"], g["losses"]) == (3, [1, 2, 3], 2, 1, 0)
    assert (g["mean"], g["ci_low"], g["ci_high"]) == pytest.approx((mean, lo, hi))
    p = entries[("surprisal", "pass_at_k")]
    mean, lo, hi = _by_hand([0.60 - 0.70, 0.80 - 0.70, 0.65 - 0.70])
    assert (p["mean"], p["ci_low"], p["ci_high"]) == pytest.approx((mean, lo, hi))
    assert (p["wins"], p["ties"], p["losses"]) == (1, 0, 2)
    a = entries[("surprisal", "curve_auc")]
    # areas over 4 steps: uniform 0.35, 0.3, 0.3; surprisal 0.425, 0.3, 0.35
    mean, lo, hi = _by_hand([0.425 - 0.35, 0.3 - 0.3, 0.35 - 0.3])
    assert (a["mean"], a["ci_low"], a["ci_high"]) == pytest.approx((mean, lo, hi))
    assert (a["wins"], a["ties"], a["losses"]) == (2, 1, 0)
    one = entries[("arca", "greedy_accuracy")]
    assert one["n_seeds"] == 1 and one["ci_low"] is None and one["ci_high"] is None
    assert one["mean"] == pytest.approx(-0.05) and (one["wins"], one["ties"], one["losses"]) == (0, 0, 1)
    assert "one seed" in one["note"]
    # report.md and the printed table carry it
    md = (out / "report.md").read_text()
    assert "## Paired differences from uniform" in md
    g_mean, g_lo, g_hi = _by_hand([0.05, 0.0, 0.10])
    row = f"| surprisal | 16 | greedy_accuracy | 3 | {g_mean:+.3f} [{g_lo:+.3f}, {g_hi:+.3f}] | 2 / 1 / 0 |"
    assert row in md and row in printed
    assert "| arca | 16 | greedy_accuracy | 1 | -0.050 (one seed: no interval, no test) | 0 / 0 / 1 | — | — |" in md
    assert "one seed in common with uniform" in printed


def test_paired_interval_is_scipys_t(study: Path, tmp_path: Path):
    from scipy import stats

    res = write_report([study], tmp_path / "r", log=None)  # uniform present: the default baseline
    assert res.baseline == "uniform"
    e = next(e for e in res.paired if (e.method, e.measure) == ("surprisal", "greedy_accuracy"))
    d = [0.05, 0.0, 0.10]
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=sum(d) / 3, scale=stats.sem(d))
    assert (e.ci_low, e.ci_high) == pytest.approx((lo, hi))


def test_another_baseline_and_none(study: Path, tmp_path: Path):
    res = write_report([study], tmp_path / "r", baseline="surprisal", log=None)
    e = next(e for e in res.paired if (e.method, e.measure) == ("uniform", "greedy_accuracy"))
    assert e.mean == pytest.approx(-0.05) and (e.wins, e.ties, e.losses) == (0, 1, 2)
    only_arca = write_report([study / "arca-s1"], tmp_path / "r2", log=None)
    assert only_arca.baseline is None and not (tmp_path / "r2" / "paired.json").exists()


def test_a_named_baseline_that_is_absent_is_one_line(study: Path, tmp_path: Path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(study), "--out", str(out), "--baseline", "tempo"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "--baseline" in line and "'tempo'" in line and "surprisal" in line, line
    assert not out.exists()


def test_learning_curves_png_in_report_and_page(study: Path, tmp_path: Path):
    from arca_rl._report.plots import band_over_seeds

    out = tmp_path / "report"
    res = write_report([study], out, log=None)
    png = out / "learning_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert res.files["learning_curves.png"] == png
    md = (out / "report.md").read_text()
    assert "![held-out greedy accuracy and training reward against step](learning_curves.png)" in md
    assert "band: lowest to highest seed" in md
    page = (out / "heatmaps.html").read_text()
    assert "Learning curves" in page and "data:image/png;base64," in page
    # the band: mean and range of the seeds present at each step
    steps, mean, low, high = band_over_seeds(
        [([0, 2, 4], [0.2, 0.4, 0.4]), ([0, 2, 4], [0.2, 0.2, 0.6]), ([0, 4], [0.2, 1.0])]
    )
    assert steps == [0, 2, 4]
    assert mean == pytest.approx([0.2, 0.3, 2.0 / 3]) and low == pytest.approx([0.2, 0.2, 0.4])
    assert high == pytest.approx([0.2, 0.4, 1.0])
    # the runs table: eval wall time (finished.json) and curve area
    assert "| surprisal-s1 | surprisal | 16 | 1 | 1 | 4 | yes | 3.2 | 3 | 0.425 |" in md
    assert "on 200 held-out problems: 3.2 s of wall time per run over 8 run(s)" in md  # 4 lines: 3 steps + summary


def test_unreadable_curve_lines_are_named(tmp_path: Path):
    run = make_run(tmp_path, "u", credit="uniform", rank=16, seed=1, rewards=[0.2], greedy=0.5, pass_k=0.6,
                   curve=[(0, 0.1), (2, 0.3)])
    with open(run / "curve.jsonl", "a") as fh:
        fh.write('{"step": 4, "greedy_accuracy": "high"}\n{"step": 6, "gre')
    res = write_report([run], tmp_path / "r", log=None)
    said = "\n".join(res.messages)
    assert "curve.jsonl line 3" in said and "'high'" in said and "curve.jsonl line 4" in said, said
    assert res.runs[0].curve == [(0, 0.1), (2, 0.3)]


# ---------------------------------------------------------------------------------------------------
# issue 39 §4: statistics that can say "equal": TOST at a margin, Holm, the minimum detectable effect

T95 = {3: 2.353363434801823}  # t_{0.95, dof}, from tables: the 90% (1 - 2 alpha) interval of TOST at alpha 0.05


def _t3_sf(t: float) -> float:
    """P(T_3 >= t), Student's t with 3 degrees of freedom in closed form (no scipy)."""
    x = t / math.sqrt(3)
    return 0.5 - (x / (1 + x * x) + math.atan(x)) / math.pi


def _holm_by_hand(ps: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment: the i-th smallest of m p-values -> max over j <= i of min(1, (m - j + 1) p_(j))."""
    order = sorted(ps, key=ps.get)
    out, running = {}, 0.0
    for i, key in enumerate(order):
        running = max(running, min(1.0, (len(ps) - i) * ps[key]))
        out[key] = running
    return out


BASE4 = {1: 0.40, 2: 0.50, 3: 0.45, 4: 0.55}
DIFFS4 = {
    "surprisal": [0.01, 0.00, -0.01, 0.02],  # small and steady: equivalent within ±0.05
    "arca": [0.10, 0.12, 0.08, 0.11],  # better
    "entropy_reduction": [-0.10, -0.12, -0.09, -0.11],  # worse
    "tempo": [0.10, -0.10, 0.05, -0.02],  # too noisy to say: undecided
}


@pytest.fixture()
def four(tmp_path: Path) -> Path:
    """uniform and four methods on seeds 1-4 (3 degrees of freedom); pass@k equal everywhere (zero spread)."""
    root = tmp_path / "four"
    for seed, base in BASE4.items():
        make_run(root, f"uniform-s{seed}", credit="uniform", rank=16, seed=seed, rewards=[0.2], greedy=base, pass_k=0.7)
        for method, diffs in DIFFS4.items():
            make_run(root, f"{method}-s{seed}", credit=method, rank=16, seed=seed, rewards=[0.2],
                     greedy=base + diffs[seed - 1], pass_k=0.7)
    return root


def _hand_tests(method: str, margin: float) -> dict[str, float]:
    d = [BASE4[s] + DIFFS4[method][s - 1] - BASE4[s] for s in BASE4]  # as the runs store them
    n, m = len(d), sum(d) / len(d)
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
    se = sd / math.sqrt(n)
    return {
        "mean": m,
        "sd": sd,
        "se": se,
        "p": 2 * _t3_sf(abs(m / se)),
        # H0: mean <= -M (p = P(T >= (m + M) / se)) and H0: mean >= M (p = P(T <= (m - M) / se))
        "p_tost": max(_t3_sf((m + margin) / se), _t3_sf((margin - m) / se)),
    }


def test_tost_holm_and_mde_match_hand_computation(four: Path, tmp_path: Path, capsys):
    from scipy import stats

    out = tmp_path / "report"
    assert main(["report", str(four), "--out", str(out), "--baseline", "uniform", "--margin", "0.05"]) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "paired.json").read_text())
    assert data["margin"] == 0.05 and data["alpha"] == 0.05
    entries = {(e["method"], e["measure"]): e for e in data["entries"]}
    hand = {m: _hand_tests(m, 0.05) for m in DIFFS4}
    p_holm = _holm_by_hand({m: h["p"] for m, h in hand.items()})
    tost_holm = _holm_by_hand({m: h["p_tost"] for m, h in hand.items()})
    verdicts = {}
    for method, h in hand.items():
        e = entries[(method, "greedy_accuracy")]
        assert (e["mean"], e["sd"]) == pytest.approx((h["mean"], h["sd"]))
        assert (e["p"], e["p_holm"]) == pytest.approx((h["p"], p_holm[method]))
        assert (e["p_tost"], e["p_tost_holm"]) == pytest.approx((h["p_tost"], tost_holm[method]))
        # the (1 - 2 alpha) interval TOST reads off
        assert (e["tost_ci_low"], e["tost_ci_high"]) == pytest.approx(
            (h["mean"] - T95[3] * h["se"], h["mean"] + T95[3] * h["se"])
        )
        # the minimum detectable effect: a two-sided paired t test at 0.05 over 4 seeds has power 0.8 there
        nc = e["mde"] / h["se"]
        power = stats.nct.sf(T975[3], 3, nc) + stats.nct.cdf(-T975[3], 3, nc)
        assert power == pytest.approx(0.8, abs=1e-6)
        verdicts[method] = e["verdict"]
    assert verdicts == {
        "surprisal": "equivalent within ±0.05",
        "arca": "better",
        "entropy_reduction": "worse",
        "tempo": "undecided",
    }
    # the rule, read off the hand figures: equivalent when the Holm-corrected TOST p < 0.05, else better / worse
    # when the Holm-corrected p < 0.05; surprisal's 90% interval lies inside ±0.05, arca's 95% interval above 0
    assert tost_holm["surprisal"] < 0.05 and p_holm["arca"] < 0.05 < p_holm["tempo"]
    assert hand["surprisal"]["mean"] + T95[3] * hand["surprisal"]["se"] < 0.05
    # pass@k: every difference 0, no spread: no t statistic, undecided, no MDE
    z = entries[("arca", "pass_at_k")]
    assert z["p"] is None and z["p_holm"] is None and z["mde"] is None and z["verdict"] == "undecided"
    assert "zero spread" in z["note"]
    md = (out / "report.md").read_text()
    e = entries[("arca", "greedy_accuracy")]
    row = (
        f"| arca | 16 | greedy_accuracy | 4 | {e['mean']:+.3f} [{e['ci_low']:+.3f}, {e['ci_high']:+.3f}] | 4 / 0 / 0 | "
        f"{p_holm['arca']:.3f} | {e['mde']:.3f} | better |"
    )
    assert row in md and row in printed, md
    assert "verdict (±0.05)" in md and "p (Holm)" in md and "Holm" in md and "minimum detectable effect" in md


def test_holm_and_mde_by_hand_cases():
    from arca_rl._report.paired import holm, minimum_detectable_effect

    # p-values 0.01, 0.04, 0.03, 0.005: sorted 0.005, 0.01, 0.03, 0.04 -> 4 x 0.005, 3 x 0.01, 2 x 0.03, then
    # max(0.06, 1 x 0.04): 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []
    # issue 39: paired sds 0.034-0.096 over 6 seeds detect 0.05-0.14 at 80% power (two-sided 0.05)
    assert minimum_detectable_effect(0.034, 6) == pytest.approx(0.05, abs=0.005)
    assert minimum_detectable_effect(0.096, 6) == pytest.approx(0.14, abs=0.005)
    # the t approximation (t_{0.975, n-1} + t_{0.8, n-1}) sd / sqrt(n) (t quantiles from tables) is within a few %
    approx = (2.093024054408263 + 0.8609506244859838) * 0.05 / math.sqrt(20)  # 19 dof
    assert minimum_detectable_effect(0.05, 20) == pytest.approx(approx, rel=0.03)
    assert minimum_detectable_effect(0.05, 1) is None and minimum_detectable_effect(0.0, 5) is None


def test_without_a_margin_no_verdict_but_holm_and_mde(four: Path, tmp_path: Path):
    res = write_report([four], tmp_path / "r", log=None)
    data = json.loads((tmp_path / "r" / "paired.json").read_text())
    assert data["margin"] is None
    for e in data["entries"]:
        assert e["verdict"] is None and e["p_tost"] is None and e["tost_ci_low"] is None
    e = next(e for e in res.paired if (e.method, e.measure) == ("arca", "greedy_accuracy"))
    assert e.p_holm is not None and e.mde is not None
    md = (tmp_path / "r" / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method | rank | measure |"))
    assert "p (Holm)" in header and "MDE" in header and "verdict" not in header


@pytest.mark.parametrize("margin", ["0", "-0.1", "nan", "x"])
def test_a_margin_that_is_not_positive_is_one_line(four: Path, tmp_path: Path, capsys, margin):
    out = tmp_path / "report"
    assert main(["report", str(four), "--out", str(out), "--margin", margin]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "--margin" in line, line
    assert not out.exists()


def test_a_margin_without_a_baseline_is_one_line(study: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="--margin"):
        write_report([study / "arca-s1"], tmp_path / "r", margin=0.03, log=None)
    assert not (tmp_path / "r").exists()


def test_one_seed_is_undecided_with_a_margin(study: Path, tmp_path: Path):
    res = write_report([study], tmp_path / "r", margin=0.03, log=None)
    one = next(e for e in res.paired if (e.method, e.measure) == ("arca", "greedy_accuracy"))
    assert one.n_seeds == 1 and one.p is None and one.mde is None and one.verdict == "undecided"


# ---------------------------------------------------------------------------------------------------
# issue 39 §3: per-problem records (eval_problems.jsonl) and the paired bootstrap over seeds and problems


def _write_problems(run: Path, correct: list[bool], ids: list[str] | None = None) -> None:
    ids = ids if ids is not None else [f"q{i}" for i in range(len(correct))]
    lines = [json.dumps({"id": i, "correct": c, "score": 1.0 if c else 0.5}) for i, c in zip(ids, correct)]
    (run / "eval_problems.jsonl").write_text("\n".join(lines) + "\n")


def _pair_with_problems(root: Path, seed: int, base: list[bool], mine: list[bool], method: str = "tempo") -> None:
    for credit, correct in (("uniform", base), (method, mine)):
        run = make_run(root, f"{credit}-s{seed}", credit=credit, rank=16, seed=seed, rewards=[0.2],
                       greedy=sum(correct) / len(correct), pass_k=0.7)
        _write_problems(run, correct)


def test_read_eval_problems(tmp_path: Path):
    from arca_rl._report.per_problem import read_eval_problems

    run = tmp_path / "run"
    run.mkdir()
    assert read_eval_problems(run) is None  # no file: nothing to read
    (run / "eval_problems.jsonl").write_text(
        '{"id": "a", "correct": true, "score": 1.0}\n\n{"id": "b", "correct": false, "score": null}\n'
    )
    recs = read_eval_problems(run)
    assert [(r.id, r.correct, r.score) for r in recs] == [("a", True, 1.0), ("b", False, None)]
    for bad, said in [
        ('{"id": "a", "correct": 1, "score": 1.0}', "'correct'"),
        ('{"id": 3, "correct": true, "score": 1.0}', "'id'"),
        ('{"id": "a", "correct": true, "score": "high"}', "'score'"),
        ('{"id": "a", "correct": tr', "line 2"),
        ('{"id": "x", "correct": true, "score": 1.0}', "twice"),
    ]:
        (run / "eval_problems.jsonl").write_text('{"id": "x", "correct": false, "score": 0.0}\n' + bad + "\n")
        with pytest.raises(ValueError, match="eval_problems.jsonl") as err:
            read_eval_problems(run)
        assert said in str(err.value) and "line 2" in str(err.value), str(err.value)


def test_bootstrap_over_problems_matches_the_binomial(tmp_path: Path):
    """One seed, 200 problems, tempo right on 10 that uniform missed and the same elsewhere: the per-problem
    differences are 1 on 10 problems and 0 on 190, so a resample's mean is X / 200, X ~ Binomial(200, 0.05)."""
    from scipy import stats

    base = [i % 3 == 0 for i in range(200)]
    mine = [b or (i % 3 == 1 and i < 30) for i, b in enumerate(base)]
    assert sum(mine) - sum(base) == 10
    _pair_with_problems(tmp_path / "runs", 1, base, mine)
    res = write_report([tmp_path / "runs"], tmp_path / "r", log=None)
    e = next(e for e in res.paired if (e.method, e.measure) == ("tempo", "greedy_accuracy"))
    lo, hi = stats.binom.ppf([0.025, 0.975], 200, 0.05) / 200
    assert e.boot_ci_low == pytest.approx(lo, abs=0.0101) and e.boot_ci_high == pytest.approx(hi, abs=0.0101)
    # paired by problem id: two accuracies near 0.35 resampled apart would give about ±0.09
    assert e.boot_ci_high - e.boot_ci_low < 0.1
    data = json.loads((tmp_path / "r" / "paired.json").read_text())
    entry = next(x for x in data["entries"] if x["measure"] == "greedy_accuracy")
    assert (entry["boot_ci_low"], entry["boot_ci_high"]) == pytest.approx((e.boot_ci_low, e.boot_ci_high))
    assert data["bootstrap"]["resamples"] == 2000
    md = (tmp_path / "r" / "report.md").read_text()
    assert "bootstrap 95% CI" in md and f"[{e.boot_ci_low:+.3f}, {e.boot_ci_high:+.3f}]" in md
    # pass@k has no per-problem records: no bootstrap there
    p = next(e for e in res.paired if (e.method, e.measure) == ("tempo", "pass_at_k"))
    assert p.boot_ci_low is None and p.boot_ci_high is None


def test_bootstrap_resamples_seeds(tmp_path: Path):
    """Seeds 1 and 2: tempo and uniform agree on every problem; seed 3: tempo right and uniform wrong on every one.
    Problem resampling alone would give [1/3, 1/3]; over seeds the mean of three draws from {0, 0, 1} is 0 with
    probability 8/27 and 1 with probability 1/27 (> 2.5%), so the 95% interval is [0, 1]."""
    for seed in (1, 2):
        same = [i % 2 == 0 for i in range(40)]
        _pair_with_problems(tmp_path / "runs", seed, same, same)
    _pair_with_problems(tmp_path / "runs", 3, [False] * 40, [True] * 40)
    res = write_report([tmp_path / "runs"], tmp_path / "r", log=None)
    e = next(e for e in res.paired if (e.method, e.measure) == ("tempo", "greedy_accuracy"))
    assert e.mean == pytest.approx(1 / 3)
    assert (e.boot_ci_low, e.boot_ci_high) == pytest.approx((0.0, 1.0))


def test_bootstrap_spread_is_the_two_stage_variance(tmp_path: Path):
    """Four seeds of 400 problems: the two-stage resample's mean has variance (Var_s(m_s) + mean_s(v_s / N)) / n,
    m_s a seed's mean difference and v_s the variance of its per-problem differences; the percentile interval is
    close to ± 1.96 of its square root."""
    wins_losses = {1: (40, 40), 2: (60, 30), 3: (50, 10), 4: (80, 20)}
    means, within = [], []
    for seed, (wins, losses) in wins_losses.items():
        base = [False] * wins + [True] * losses + [i % 2 == 0 for i in range(400 - wins - losses)]
        mine = [True] * wins + [False] * losses + base[wins + losses:]
        _pair_with_problems(tmp_path / "runs", seed, base, mine)
        d = [float(a) - float(b) for a, b in zip(mine, base)]
        m = sum(d) / 400
        means.append(m)
        within.append(sum((x - m) ** 2 for x in d) / 400 / 400)
    n, grand = 4, sum(means) / 4
    var = (sum((m - grand) ** 2 for m in means) / n + sum(within) / n) / n
    res = write_report([tmp_path / "runs"], tmp_path / "r", log=None)
    e = next(e for e in res.paired if (e.method, e.measure) == ("tempo", "greedy_accuracy"))
    assert (e.boot_ci_low + e.boot_ci_high) / 2 == pytest.approx(grand, abs=0.01)
    assert (e.boot_ci_high - e.boot_ci_low) / 2 == pytest.approx(1.96 * math.sqrt(var), rel=0.15)


def test_no_bootstrap_when_records_are_missing_or_differ(tmp_path: Path):
    same = [i % 2 == 0 for i in range(20)]
    for seed in (1, 2):
        _pair_with_problems(tmp_path / "a", seed, same, same)
    (tmp_path / "a" / "tempo-s2" / "eval_problems.jsonl").unlink()
    res = write_report([tmp_path / "a"], tmp_path / "ra", log=None)
    e = next(e for e in res.paired if (e.method, e.measure) == ("tempo", "greedy_accuracy"))
    assert e.boot_ci_low is None
    said = [m for m in res.messages if "eval_problems.jsonl" in m]
    assert len(said) == 1 and "tempo-s2" in said[0] and "no bootstrap" in said[0], said
    # seed 2's two runs hold different problems
    for seed in (1, 2):
        _pair_with_problems(tmp_path / "b", seed, same, same)
    _write_problems(tmp_path / "b" / "tempo-s2", same, ids=[f"z{i}" for i in range(20)])
    res = write_report([tmp_path / "b"], tmp_path / "rb", log=None)
    e = next(e for e in res.paired if (e.method, e.measure) == ("tempo", "greedy_accuracy"))
    assert e.boot_ci_low is None
    said = [m for m in res.messages if "different problem" in m]
    assert len(said) == 1 and "tempo-s2" in said[0] and "uniform-s2" in said[0], said
    # no run with records: nothing is said about them
    res = write_report([tmp_path / "b" / "uniform-s1", tmp_path / "b" / "tempo-s1"], tmp_path / "rc", log=None)
    assert res.paired[0].boot_ci_low is not None
    plain = make_run(tmp_path / "c", "uniform-s1", credit="uniform", rank=16, seed=1, rewards=[0.2], greedy=0.5)
    other = make_run(tmp_path / "c", "tempo-s1", credit="tempo", rank=16, seed=1, rewards=[0.2], greedy=0.6)
    res = write_report([plain, other], tmp_path / "rd", log=None)
    assert not [m for m in res.messages if "eval_problems" in m]


# ---------------------------------------------------------------------------------------------------
# issue 38 §2: pair only runs that differ in the method, its credit settings, the trainer and the seed


def _edit(run: Path, **sections) -> None:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))


def test_runs_of_another_task_and_learning_rate_are_refused(tmp_path: Path, capsys):
    root = tmp_path / "runs"
    make_run(root, "uniform-s1", credit="uniform", rank=16, seed=1, rewards=[0.2], greedy=0.5, pass_k=0.7)
    tempo = make_run(root, "tempo-s1", credit="tempo", rank=16, seed=1, rewards=[0.2], greedy=0.125, pass_k=0.3)
    _edit(tempo, task={"name": "reasoning_gym", "dataset": "basic_arithmetic"}, training={"learning_rate": 1e-5})
    out = tmp_path / "report"
    assert main(["report", str(root), "--out", str(out), "--baseline", "uniform"]) == 2
    line = _one_line(capsys.readouterr().err)
    for key in ("task.name", "task.dataset", "training.learning_rate", "--pair-anyway", "tempo", "uniform"):
        assert key in line, line
    assert not out.exists()
    # with the flag: paired, and the keys printed above the table
    assert main(["report", str(root), "--out", str(out), "--baseline", "uniform", "--pair-anyway"]) == 0
    printed = capsys.readouterr().out
    md = (out / "report.md").read_text()
    for text in (printed, md):
        table = text.index("| method | rank | measure |")
        assert -1 < text.find("task.name") < table and -1 < text.find("training.learning_rate") < table, text
    data = json.loads((out / "paired.json").read_text())
    differ = data["config_differences"]["tempo r16"]
    assert any("task.name" in d and "reasoning_gym" in d and "arithmetic" in d for d in differ), differ
    assert any("training.learning_rate" in d for d in differ) and len(differ) == 3
    # with the default baseline (none named): that method is left out, and a message names the keys
    res = write_report([root], tmp_path / "r2", log=None)
    assert res.paired == []
    said = [m for m in res.messages if "tempo r16" in m and "task.name" in m]
    assert len(said) == 1 and "not paired" in said[0], res.messages


def test_differences_in_credit_settings_trainer_and_names_are_paired(tmp_path: Path):
    root = tmp_path / "runs"
    uni = make_run(root, "uniform-s1", credit="uniform", rank=16, seed=1, rewards=[0.2], greedy=0.5, pass_k=0.7)
    tempo = make_run(root, "tempo-s1", credit="tempo", rank=16, seed=1, rewards=[0.2], greedy=0.6, pass_k=0.7)
    _edit(tempo, name="elsewhere", trainer="rloo",
          training={"credit_tempo_td_weight": 0.5, "output_dir": "/tmp/x", "run_name": "t", "credit_mix": 0.5})
    _edit(uni, training={"save_strategy": "steps", "save_steps": 10, "report_to": "none"})
    res = write_report([root], tmp_path / "r", baseline="uniform", log=None)
    assert {e.method for e in res.paired} == {"tempo+mix0.5"}
    assert not [m for m in res.messages if "differ" in m], res.messages
    assert json.loads((tmp_path / "r" / "paired.json").read_text())["config_differences"] == {}


def test_a_missing_curve_is_named_not_one_seed_in_common(tmp_path: Path):
    """issue 38 §4: two seeds in common, one baseline run without curve.jsonl: the curve-area row has one seed, and
    its note and message name the run whose curve is missing."""
    root = tmp_path / "runs"
    for seed in (1, 2):
        make_run(root, f"uniform-s{seed}", credit="uniform", rank=16, seed=seed, rewards=[0.2], greedy=0.5,
                 pass_k=0.7, curve=None if seed == 2 else [(0, 0.2), (4, 0.4)])
        make_run(root, f"tempo-s{seed}", credit="tempo", rank=16, seed=seed, rewards=[0.2], greedy=0.6,
                 pass_k=0.7, curve=[(0, 0.2), (4, 0.6)])
    res = write_report([root], tmp_path / "r", log=None)
    area = next(e for e in res.paired if (e.method, e.measure) == ("tempo", "curve_auc"))
    assert area.n_seeds == 1 and area.seeds == [1]
    assert "one seed in common" not in area.note and "uniform-s2" in area.note and "curve.jsonl" in area.note
    said = [m for m in res.messages if "uniform-s2" in m and "curve_auc" in m]
    assert len(said) == 1 and "no curve.jsonl" in said[0], res.messages
    assert not [m for m in res.messages if "one seed in common" in m]


def test_equal_differences_up_to_rounding_are_no_spread(tmp_path: Path):
    """0.35 - 0.1, 0.45 - 0.2 and 0.55 - 0.3 are 0.25 up to float rounding: no spread, so no t test (a p of about
    0 from an sd of 1e-17 would claim what three seeds cannot show)."""
    for seed, (u, t) in enumerate([(0.1, 0.35), (0.2, 0.45), (0.3, 0.55)], 1):
        make_run(tmp_path, f"uniform-s{seed}", credit="uniform", rank=16, seed=seed, rewards=[0.2], greedy=u)
        make_run(tmp_path, f"tempo-s{seed}", credit="tempo", rank=16, seed=seed, rewards=[0.2], greedy=t)
    res = write_report([tmp_path], tmp_path / "r", margin=0.03, log=None)
    e = next(e for e in res.paired if e.measure == "greedy_accuracy")
    assert e.mean == pytest.approx(0.25) and e.p is None and e.mde is None and e.verdict == "undecided"
    assert "zero spread" in e.note


def test_a_measure_only_one_side_has_is_named(tmp_path: Path):
    """The baseline's only run has a curve and the method's does not: no curve-area row, and a message says whose
    curve is missing."""
    make_run(tmp_path, "uniform-s1", credit="uniform", rank=16, seed=1, rewards=[0.2], greedy=0.5,
             curve=[(0, 0.2), (4, 0.4)])
    make_run(tmp_path, "tempo-s1", credit="tempo", rank=16, seed=1, rewards=[0.2], greedy=0.6)
    res = write_report([tmp_path], tmp_path / "r", log=None)
    assert {e.measure for e in res.paired} == {"greedy_accuracy"}  # pass@k: neither run has it
    said = [m for m in res.messages if "curve_auc" in m]
    assert len(said) == 1 and "tempo-s1 (no curve.jsonl)" in said[0], res.messages


def test_a_setting_only_the_other_trainer_has_is_the_trainers_own(tmp_path: Path):
    """RLOO's `normalize_advantages` is not a GRPO setting: an RLOO run that sets it pairs with a GRPO baseline; a
    setting both trainers have (the learning rate) still refuses the pair."""
    uni = make_run(tmp_path / "a", "uniform-s1", credit="uniform", rank=16, seed=1, rewards=[0.2], greedy=0.5)
    rloo = make_run(tmp_path / "a", "arca-s1", credit="arca", rank=16, seed=1, rewards=[0.2], greedy=0.6)
    _edit(rloo, trainer="rloo", training={"normalize_advantages": True})
    res = write_report([uni, rloo], tmp_path / "r", baseline="uniform", log=None)
    assert [e.method for e in res.paired] == ["arca"]
    _edit(rloo, training={"learning_rate": 1e-5})
    with pytest.raises(ConfigError, match="training.learning_rate") as err:
        write_report([uni, rloo], tmp_path / "r2", baseline="uniform", log=None)
    assert "normalize_advantages" not in str(err.value)
