"""`arca_rl.rundir.state`: fresh / running / interrupted / finished, as the other modules see a run folder."""

from __future__ import annotations

import subprocess
import sys

from arca_rl import rundir


def test_state_follows_the_folder_and_its_lock(tmp_path):
    run = tmp_path / "run"
    assert rundir.state(run) == "fresh"  # absent
    run.mkdir()
    assert rundir.state(run) == "fresh"  # empty
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import sys, time\nfrom arca_rl import rundir\nwith rundir.lock({str(run)!r}):\n"
         "    print('held', flush=True)\n    sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert rundir.state(run) == "running" and rundir.is_running(run)
    finally:
        holder.communicate("\n", timeout=60)
    assert not rundir.is_running(run) and rundir.state(run) == "fresh"  # the lock died with its holder
    (run / rundir.METRICS_FILE).write_text('{"step": 1}\n')
    assert rundir.state(run) == "interrupted"
    (run / rundir.FINISHED_FILE).write_text("{}\n")
    assert rundir.state(run) == "finished"


def test_token_records_round_trip_and_bad_lines(tmp_path):
    """What the trainer appends (`append_token_records`) is what the report and the demo read back."""
    import json
    import math

    rec = rundir.TokenRecord(step=3, signal="arca", active=True, sample=1, tokens=["a", "b"],
                             weights=[0.123456789, 0.876543211], salience=[1.23456789e-5, 2.0],
                             advantage=-0.5, entropy_mask=[1, 0])  # fmt: skip
    shadow = rundir.TokenRecord(step=3, signal="uniform", active=False, sample=1, tokens=["a", "b"],
                                weights=[0.5, 0.5], salience=[1.0, 1.0], advantage=-0.5)  # fmt: skip
    rundir.append_token_records(tmp_path, [rec, shadow])
    path = tmp_path / rundir.TOKENS_FILE
    with path.open("a") as fh:
        fh.write('{"step": 4, "signal": "arca", "weights": [0.5], "tokens": ["a", "b"]}\n')  # tokens != weights
        fh.write('{"step": 4, "signal": "arca", "weights": ["x"]}\n')  # not a number
        fh.write("not json\n")
        fh.write('{"step": 5, "sig')  # a torn last line
    lines = [json.loads(x) for x in path.read_text().splitlines()[:2]]
    # the format, recomputed by hand: weights to 6 decimals, salience to 6 significant digits
    assert lines[0] == {"step": 3, "signal": "arca", "active": True, "sample": 1, "tokens": ["a", "b"],
                        "weights": [0.123457, 0.876543], "salience": [1.23457e-5, 2.0], "advantage": -0.5,
                        "entropy_mask": [1, 0]}  # fmt: skip
    assert "entropy_mask" not in lines[1]
    records, bad = rundir.read_token_log(tmp_path)
    assert bad == 2 and [r.signal for r in records] == ["arca", "uniform"]
    assert records[0].weights == [0.123457, 0.876543] and records[0].entropy_mask == [1, 0]
    assert math.isclose(records[0].salience[0], 1.23457e-5) and records[1].active is False
    assert rundir.read_token_log(path) == (records, bad)  # the file itself reads the same
    assert rundir.read_token_log(tmp_path / "missing") == ([], 0)


def test_logs_reset_and_finished(tmp_path):
    """A resume from a checkpoint after N steps keeps the metrics rows logged at step <= N and the token
    dumps taken before step N; a start from step 0 removes both. finished.json is JSON-safe."""
    import json

    for step in range(5):
        rundir.append_metrics(tmp_path, step, {"reward": step / 2, "bad": float("nan")})
        rundir.append_token_records(tmp_path, [rundir.TokenRecord(step, "arca", True, 0, ["a"], [1.0])])
    rundir.reset_logs(tmp_path, resumed_at=2)
    assert [r["step"] for r in rundir.read_metrics(tmp_path)] == [0, 1, 2]
    assert rundir.read_metrics(tmp_path)[1] == {"step": 1, "reward": 0.5, "bad": None}
    assert [r.step for r in rundir.read_token_log(tmp_path)[0]] == [0, 1]
    rundir.reset_logs(tmp_path, resumed_at=None)
    assert not (tmp_path / rundir.METRICS_FILE).exists() and not (tmp_path / rundir.TOKENS_FILE).exists()
    rundir.write_finished(tmp_path, global_step=7, train_seconds=1.23456, eval_seconds=0.5, resumed_from=None,
                          final_weights="adapter", train_summary={"train_loss": float("inf")})  # fmt: skip
    finished = json.loads((tmp_path / rundir.FINISHED_FILE).read_text())
    assert rundir.read_finished(tmp_path) == finished and rundir.is_finished(tmp_path)
    assert finished["global_step"] == 7 and finished["train_seconds"] == 1.235
    assert finished["train_summary"] == {"train_loss": None} and "trl" in finished["versions"]


def test_only_rundir_names_the_run_folder_files():
    """The layout has one owner: no other module spells a run folder file's name (or the default runs/)
    as a string of its own; they use the rundir constants and functions."""
    import ast
    from pathlib import Path

    import arca_rl

    owned = {rundir.CONFIG_FILE, rundir.METRICS_FILE, rundir.TOKENS_FILE, rundir.EVAL_FILE,
             rundir.FINISHED_FILE, rundir.LOCK_FILE, str(rundir.RUNS_DIR)}  # fmt: skip
    root = Path(arca_rl.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.parent.name == "rundir":  # the run folder's own package
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in owned:
                # `runs` as an argparse destination is a word, not the folder
                if node.value == "runs" and path.name == "report.py":
                    continue
                found.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    assert not found, found
