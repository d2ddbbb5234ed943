"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def test_api_example_runs_and_prints_weights(capsys):
    block = python_blocks()[0]
    assert len([line for line in block.splitlines() if line.strip()]) <= 10
    namespace: dict = {}
    exec(compile(block, "README.md:api", "exec"), namespace)
    weights, mask = namespace["weights"], namespace["mask"]
    assert weights.sum(1).tolist() == pytest.approx([1.0, 1.0])
    assert (weights[mask == 0] == 0).all()
    assert "regime" in capsys.readouterr().out


@pytest.mark.slow
def test_trainer_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(python_blocks()[1], "README.md:trainer", "exec"), namespace)
    history = namespace["trainer"].state.log_history
    assert any("credit/gini" in h for h in history)


@pytest.mark.slow
def test_rloo_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    block = python_blocks()[2]
    assert "ARCARLOOTrainer" in block
    exec(compile(block, "README.md:rloo", "exec"), namespace)
    history = namespace["trainer"].state.log_history
    assert any("credit/gini" in h for h in history)
