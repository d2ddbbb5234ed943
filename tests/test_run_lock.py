"""Two runs never share a run folder: the second refuses while the first is alive, and a killed
holder's lock dies with it (an OS lock, not a marker file)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from arca_rl.cli import main

pytestmark = pytest.mark.slow

# A child that runs `arca train` whose reward never returns: it holds the run folder until killed. On its first
# reward it writes the file named by $HANG_MARK (outside the run folder): from then on it writes nothing more.
CHILD = textwrap.dedent(
    """
    import os, sys, threading
    from arca_rl.tasks._common import Task

    def reward_that_hangs(self, completions, solution, **kwargs):
        with open(os.environ["HANG_MARK"], "w") as f:
            f.write("hanging")
        threading.Event().wait()  # never set

    Task.reward = reward_that_hangs
    from arca_rl.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def snapshot(folder):
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_concurrent_start_refuses_and_a_killed_holder_frees_the_folder(tmp_path, tiny_run_config, capsys):
    tiny_run_config["training"]["max_steps"] = 1
    tiny_run_config["eval"]["enabled"] = False
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_run_config))
    child_py = tmp_path / "hang.py"
    child_py.write_text(CHILD)
    run_dir = tmp_path / "runs" / "x"
    argv = ["train", "--config", str(config_path), "--output-dir", str(run_dir), "--quiet", "--threads", "1"]

    mark = tmp_path / "hanging"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HANG_MARK": str(mark)}
    child = subprocess.Popen([sys.executable, str(child_py), *argv], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # The first run holds the folder, and has stopped writing into it, once its reward hangs. The deadline only
        # keeps a broken run from hanging the suite: it is far beyond how long the tiny run takes on a loaded machine.
        deadline = time.monotonic() + 600
        while not mark.is_file():
            assert child.poll() is None, child.stderr.read().decode(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the first run never reached its reward"
            time.sleep(0.2)
        assert (run_dir / "config.yaml").is_file()
        before = snapshot(run_dir)

        # A second run on the same folder with different settings: refused, one line, folder + PID, exit 2.
        assert main([*argv, "--set", "training.credit=uniform"]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1, err
        assert str(run_dir) in err[0] and str(child.pid) in err[0], err[0]
        # ... and so is a --resume of it while the first is alive.
        assert main([*argv, "--resume"]) == 2
        assert str(child.pid) in capsys.readouterr().err
        assert snapshot(run_dir) == before  # the refusal read and wrote nothing there
        assert child.poll() is None
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)

    # SIGKILL leaves no stale lock: the run resumes (here: starts over, it had no checkpoint) and finishes.
    assert main([*argv, "--resume"]) == 0
    assert (run_dir / "finished.json").is_file()
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["training"]["credit"] == "arca"
