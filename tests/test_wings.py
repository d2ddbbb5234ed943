"""The package's wings (trainer/, _run/, rundir/): the public names keep their import paths, and a run folder saved
before the move still resumes and evaluates. The fixture tests/fixtures/run_before_wings was written by the code of
commit 24c593a: `arca train -c demo` (arca credit, LoRA r=2, 1 prompt x 4 completions) with max_steps=2 and a
checkpoint at every step, then interrupted after step 1 (checkpoint-2, the adapter, eval.json and finished.json
removed: what a kill during step 2 leaves)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "run_before_wings"

# every name README.md and docs/ import from the package, by the module they name
PUBLIC = {
    "arca_rl": ["ARCAGRPOTrainer", "ARCARLOOTrainer", "ARCAGRPOConfig", "ARCARLOOConfig", "train", "evaluate",
                "diagnose", "write_report", "load_config", "RunConfig", "RunExistsError", "ConfigError",
                "plan_sweep", "run_sweep", "token_weights", "salience", "gini", "effective_token_ratio"],
    "arca_rl.trainer": ["ARCAGRPOTrainer", "ARCARLOOTrainer"],
    "arca_rl.trainer_config": ["ARCAGRPOConfig", "ARCARLOOConfig"],
    "arca_rl.rundir": ["RunExistsError", "CONFIG_FILE", "read_adapter_config", "resolve_adapter"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_import_from_where_the_docs_say(module):
    mod = importlib.import_module(module)
    missing = [name for name in PUBLIC[module] if not hasattr(mod, name)]
    assert missing == []


def test_every_from_import_in_readme_and_docs_resolves():
    """Each `from arca_rl... import a, b` line of README.md and docs/*.md names what is there."""
    import re

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = 0
    for page in pages:
        for module, names in re.findall(r"from (arca_rl[\w.]*) import ([\w, ]+)", page.read_text(encoding="utf-8")):
            mod = importlib.import_module(module)
            for name in (n.strip() for n in names.split(",")):
                found += 1
                if not hasattr(mod, name):  # a submodule, imported by name
                    importlib.import_module(f"{module}.{name}")
    assert found >= 3  # the pages do show imports (the walk is not vacuous)


def test_the_trainer_classes_are_one_object_under_every_path():
    import arca_rl
    from arca_rl.trainer import ARCAGRPOTrainer

    assert arca_rl.ARCAGRPOTrainer is ARCAGRPOTrainer
    assert arca_rl.train is importlib.import_module("arca_rl._run.training").train


@pytest.mark.slow
def test_a_run_saved_before_the_move_resumes_and_evaluates(tmp_path):
    run = tmp_path / "before-wings"
    shutil.copytree(FIXTURE, run)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    arca = [sys.executable, "-m", "arca_rl.cli"]
    resumed = subprocess.run(
        [*arca, "train", "-c", str(run / "config.yaml"), "--output-dir", str(run), "--resume", "--quiet"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    finished = json.loads((run / "finished.json").read_text())
    assert finished["global_step"] == 2
    assert finished["resumed_from"] and "checkpoint-1" in str(finished["resumed_from"])  # continued, not from 0
    evaluated = subprocess.run(
        [*arca, "eval", "--adapter", str(run), "--n", "4", "--out", str(tmp_path / "again.json")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["n"] == 4 and 0.0 <= again["greedy_accuracy"] <= 1.0
