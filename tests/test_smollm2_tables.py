"""benchmarks/smollm2_tables.py on a hand-made run folder, against values worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import load_benchmark

tables = load_benchmark("smollm2_tables")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path, Path]:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "config.yaml").write_text("training:\n  credit: uniform\n  credit_shadow: true\n  seed: 0\n")
    metric_rows = []
    for step, arca_gini in ((1, 0.0), (2, 0.5), (3, 0.7)):  # step 1 (zero adapter) is left out
        metric_rows.append(
            {
                "step": step,
                "reward": 0.25 * step,
                "credit/gini": 0.0,
                "credit/effective_token_ratio": 1.0,
                "credit/top10_mass": 0.25,
                "shadow/arca/gini": arca_gini,
                "shadow/arca/effective_token_ratio": 1.0 - arca_gini,
                "shadow/arca/top10_mass": 0.9,
            }
        )
    metric_rows.append({"step": 3, "train_runtime": 9.0})  # the end-of-training row has no credit metrics
    _write_jsonl(shadow / "metrics.jsonl", metric_rows)
    dumps = []
    for step, salience in ((0, [5.0, 0.0, 0.0, 0.0]), (1, [1.0, 1.0, 2.0, 0.0]), (2, [2.0, 2.0, 4.0, 0.0])):
        dumps.append({"step": step, "signal": "arca", "salience": salience})
        dumps.append({"step": step, "signal": "uniform", "salience": [1.0, 1.0, 1.0, 1.0]})
        dumps.append({"step": step, "signal": "arca", "salience": [3.0]})  # T < 2: not averaged
    _write_jsonl(shadow / "credit_tokens.jsonl", dumps)
    (shadow / "eval.json").write_text(json.dumps({"greedy_accuracy": 0.5, "pass_at_k": 0.75, "k": 4, "n": 40}))
    (shadow / "finished.json").write_text(json.dumps({"global_step": 3, "train_seconds": 90.0}))
    arca = tmp_path / "arca"
    arca.mkdir()
    (arca / "config.yaml").write_text("training:\n  credit: arca\n  seed: 0\n")
    (arca / "eval.json").write_text(json.dumps({"greedy_accuracy": 0.6, "pass_at_k": 0.8, "k": 4, "n": 40}))
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"greedy_accuracy": 0.3, "pass_at_k": 0.4, "k": 4, "n": 40}))
    return shadow, arca, base


def test_table3_from_metrics_skips_the_first_step(runs: tuple[Path, Path, Path]) -> None:
    shadow, _, _ = runs
    t3 = tables.table3_from_metrics(shadow)
    assert set(t3) == {"uniform", "arca"}
    assert t3["arca"]["gini"] == pytest.approx(0.6)
    assert t3["arca"]["effective_token_ratio"] == pytest.approx(0.4)
    assert t3["uniform"]["gini"] == 0.0 and t3["uniform"]["steps"] == 2


def test_table3_from_salience_by_hand(runs: tuple[Path, Path, Path]) -> None:
    shadow, _, _ = runs
    # salience (1, 1, 2, 0), T = 4 (scaling it does not matter).
    # p = 1: w = (1/4, 1/4, 1/2, 0): G = (-1/4 + 1/4 + 3/2) / 4 = 0.375, EffN/T = 1 / (4 * 3/8), top-1 = 1/2.
    p1 = tables.table3_from_dumps(shadow, power=1.0)
    assert p1["arca"]["gini"] == pytest.approx(0.375, abs=1e-6)
    assert p1["arca"]["effective_token_ratio"] == pytest.approx(2 / 3, abs=1e-6)
    assert p1["arca"]["top10_mass"] == pytest.approx(0.5, abs=1e-6)
    # p = 2: w = (1, 1, 4, 0) / 6: G = (-1/6 + 1/6 + 12/6) / 4 = 0.5, EffN/T = 36 / (4 * 18), top-1 = 4/6.
    p2 = tables.table3_from_dumps(shadow, power=2.0)
    assert p2["arca"]["gini"] == pytest.approx(0.5, abs=1e-6)
    assert p2["arca"]["effective_token_ratio"] == pytest.approx(0.5, abs=1e-6)
    assert p2["arca"]["top10_mass"] == pytest.approx(4 / 6, abs=1e-6)
    assert p2["arca"]["steps"] == 2
    assert p1["uniform"]["gini"] == pytest.approx(0.0, abs=1e-6)
    assert p1["uniform"]["effective_token_ratio"] == pytest.approx(1.0, abs=1e-6)


def test_table2_and_cli(runs: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shadow, arca, base = runs
    rows = tables.table2([shadow, arca], base)
    assert [r["method"] for r in rows] == ["base", "uniform (+shadow)", "arca"]
    assert rows[1]["seconds_per_step"] == 30.0 and rows[1]["train_reward_mean"] == pytest.approx(0.5)
    assert rows[2]["greedy_accuracy"] == 0.6 and rows[2]["seconds_per_step"] is None
    out = tmp_path / "t.json"
    assert (
        tables.main(["--shadow", str(shadow), "--runs", str(shadow), str(arca), "--base", str(base), "--out", str(out)])
        == 0
    )
    saved = json.loads(out.read_text())
    assert saved["table3"]["p1_from_salience"]["arca"]["gini"] == pytest.approx(0.375, abs=1e-6)
    text = capsys.readouterr().out
    assert "| arca | 0.375 |" in text and "| base | 0 |" in text
    assert tables.main(["--shadow", str(tmp_path / "nope")]) == 1
