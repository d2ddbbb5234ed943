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
