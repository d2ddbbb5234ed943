"""benchmarks/smollm2_compare.py on hand-made inputs, against values worked out by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench import load_benchmark

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))
compare = load_benchmark("smollm2_compare")


def _run(folder: Path, credit: str, seed: int, greedy: float, pass_k: float, seconds: float) -> Path:
    folder.mkdir()
    (folder / "config.yaml").write_text(f"training:\n  credit: {credit}\n  seed: {seed}\n")
    (folder / "eval.json").write_text(json.dumps({"greedy_accuracy": greedy, "pass_at_k": pass_k, "k": 4, "n": 40}))
    (folder / "finished.json").write_text(json.dumps({"global_step": 20, "train_seconds": seconds}))
    return folder


def test_training_rows_and_summary(tmp_path: Path) -> None:
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps({"table2": [
        {"method": "base", "run": None, "greedy_accuracy": 0.3},
        {"method": "uniform (+shadow)", "run": "u0", "seed": 0, "greedy_accuracy": 0.75, "pass_at_k": 0.875,
         "seconds_per_step": 140.0},
        {"method": "tempo", "run": "t1", "seed": 1, "greedy_accuracy": 0.1, "pass_at_k": 0.2, "seconds_per_step": 1.0},
    ]}))  # fmt: skip
    runs = [
        _run(tmp_path / "u1", "uniform", 1, 0.5, 0.625, 800.0),
        _run(tmp_path / "t1", "tempo", 1, 0.6, 0.7, 600.0),  # replaces the stored row of the same run
    ]
    rows = compare.training_rows(runs, previous)
    assert [r["run"] for r in rows] == ["u0", "u1", "t1"]  # no base row; the stored t1 row is replaced
    summary = compare.method_summary(rows)
    assert summary["uniform"]["seeds"] == [0, 1]
    assert summary["uniform"]["greedy_accuracy"] == pytest.approx({"mean": 0.625, "min": 0.5, "max": 0.75})
    assert summary["uniform"]["pass_at_k"]["mean"] == pytest.approx((0.875 + 0.625) / 2)
    assert summary["uniform"]["seconds_per_step"] == pytest.approx((140.0 + 800.0 / 20) / 2)
    assert summary["tempo"]["greedy_accuracy"] == pytest.approx({"mean": 0.6, "min": 0.6, "max": 0.6})


def test_oracle_table(tmp_path: Path) -> None:
    diag = tmp_path / "oracle-run" / "diagnose.json"
    diag.parent.mkdir()
    diag.write_text(json.dumps({
        "settings": {"n_completions": 32, "oracle_samples": 16, "oracle_no_signal_rows": 3, "oracle_zero_rows": 1},
        "absent": {"arca": "no adapter"},
        "signals": {"tempo": {"gini": 0.1, "effective_token_ratio": 0.9,
                              "oracle_lift": {"mean": 1.2, "ci_low": 1.1, "ci_high": 1.3, "n": 31},
                              "oracle_signed": {"mean": 0.4, "ci_low": 0.3, "ci_high": 0.5, "n": 28}}},
    }))  # fmt: skip
    table = compare.oracle_table(diag)
    assert table["no_signal_rows"] == 3 and table["rows"] == 32 and table["absent"] == {"arca": "no adapter"}
    m = table["methods"]["tempo"]
    assert m["oracle_lift_ci"] == [1.1, 1.3] and m["oracle_signed"] == 0.4 and m["signed_rows"] == 28
    assert "| tempo | 1.20 | [1.10, 1.30] | 0.40 | [0.30, 0.50] | 28 |" in compare.markdown(
        {"training": {}, "oracle": {"oracle-run": table}}
    )


def test_an_earlier_compare_file_keeps_its_rows_and_oracle_tables(tmp_path: Path) -> None:
    """--previous takes a tables file and a compare file: the compare file's rows replace the tables file's rows
    of the same run, its oracle tables are kept, and a new run folder and diagnosis are added beside them."""
    tables = tmp_path / "tables.json"
    tables.write_text(json.dumps({"table2": [
        {"method": "surprisal", "run": "s0", "seed": 0, "greedy_accuracy": 0.9, "pass_at_k": 0.9,
         "seconds_per_step": 80.0},
        {"method": "uniform", "run": "u0", "seed": 0, "greedy_accuracy": 0.1, "pass_at_k": 0.1,
         "seconds_per_step": 1.0},
    ]}))  # fmt: skip
    earlier = tmp_path / "compare.json"
    earlier.write_text(json.dumps({
        "runs": [{"method": "uniform", "run": "u0", "seed": 0, "greedy_accuracy": 0.7, "pass_at_k": 0.8,
                  "seconds_per_step": 40.0}],
        "oracle": {"oracle-adapter": {"rows": 32, "no_signal_rows": 18, "methods": {}}},
    }))  # fmt: skip
    run = _run(tmp_path / "s1", "surprisal", 1, 0.5, 0.6, 1000.0)
    diag = tmp_path / "oracle-base" / "diagnose.json"
    diag.parent.mkdir()
    diag.write_text(json.dumps({"settings": {"n_completions": 32, "oracle_no_signal_rows": 20}, "signals": {}}))
    out = tmp_path / "out.json"
    assert compare.main(["--runs", str(run), "--previous", str(tables), str(earlier), "--diagnose", str(diag),
                         "--out", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert [r["run"] for r in result["runs"]] == ["s0", "u0", "s1"]
    assert result["training"]["uniform"]["greedy_accuracy"]["mean"] == pytest.approx(0.7)  # the compare file's row
    assert result["training"]["surprisal"]["greedy_accuracy"] == pytest.approx({"mean": 0.7, "min": 0.5, "max": 0.9})
    assert result["oracle"]["oracle-adapter"]["no_signal_rows"] == 18
    assert result["oracle"]["oracle-base"]["no_signal_rows"] == 20


def test_paired_signed_measure_against_uniform_by_hand() -> None:
    """cos(A, delta) worked out by hand for two completions; a third, whose deltas are all 0, is left out."""
    completions = [
        # uniform: cos([1, 1], [1, 0]) = 1/sqrt(2); method: cos([2, 0], [1, 0]) = 1
        {"token_advantages": {"uniform": [1.0, 1.0], "m": [2.0, 0.0]}, "oracle": {"delta": [1.0, 0.0]}},
        # uniform: cos([-1, -1], [0, -1]) = 1/sqrt(2); method: cos([1, 0], [0, -1]) = 0
        {"token_advantages": {"uniform": [-1.0, -1.0], "m": [1.0, 0.0]}, "oracle": {"delta": [0.0, -1.0]}},
        {"token_advantages": {"uniform": [1.0, 1.0], "m": [1.0, 0.0]}, "oracle": {"delta": [0.0, 0.0]}},
        {"token_advantages": {"uniform": [1.0]}, "oracle": {"delta": [1.0]}},  # the method has no advantages here
    ]
    d1, d2 = 1 - 2**-0.5, 0 - 2**-0.5
    mean = (d1 + d2) / 2
    half = 12.706204736 * (abs(d1 - d2) / 2**0.5) / 2**0.5  # t_{0.975, 1} * s / sqrt(n)
    got = compare.paired_signed(completions, "m")
    assert got["n"] == 2 and got["mean"] == pytest.approx(mean)
    assert got["ci"] == pytest.approx([mean - half, mean + half], rel=1e-6)
    assert compare.paired_signed(completions, "uniform") == {"mean": 0.0, "ci": [0.0, 0.0], "n": 3}
