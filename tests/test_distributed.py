"""Two CPU processes under `accelerate launch`: credit diagnostics are finite and identical on every rank."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_two_process_training_logs_equal_finite_diagnostics(tmp_path):
    launcher = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    # accelerate 1.15 runs `--cpu --num_processes 2` as ONE process (multi-CPU expects mpirun), so launch through its
    # torchrun path; the script sets use_cpu=True, giving two gloo CPU ranks (checked below via the world size).
    cmd = [
        str(launcher),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(Path(__file__).with_name("dist_train.py")),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert all(r["world"] == 2 for r in ranks)
    assert len(ranks[0]["logged"]) == 2
    assert ranks[0]["logged"] == ranks[1]["logged"]
    keys = set(ranks[0]["logged"][0])
    assert {
        "credit/gini",
        "credit/effective_token_ratio",
        "credit/top10_mass",
        "credit/residual_norm_mean",
        "credit/residual_norm_max",
        "shadow/surprisal/gini",
        "shadow/divergence/effective_token_ratio",
    } <= keys
    for step in ranks[0]["logged"]:
        assert all(math.isfinite(v) for v in step.values()), step
