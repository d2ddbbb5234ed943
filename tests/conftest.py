"""Shared pytest fixtures. Keep each fixture small, documented and cheap (2 shared CPU cores)."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per test process: the test models are far too small to gain from more, and on a
    shared 2-core machine extra OpenMP threads spin-wait and make matmuls 10-100x slower.
    Set ARCA_TEST_THREADS to change it."""
    import os

    import torch

    torch.set_num_threads(int(os.environ.get("ARCA_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny RANDOM Qwen3 model (2 layers, hidden 32) and its character tokenizer, saved to a temp
    folder once per session (built locally, no network): usable as `model.name_or_path`."""
    from tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-qwen3") / "model")


def tiny_config(model_dir: Path) -> dict:
    """An `arca train` config mapping for `model_dir`: 2 optimizer steps of 1 prompt x 4 completions of at
    most 6 tokens on the arithmetic task, checkpoint every step, a 4-problem eval. A fresh dict per call."""
    return {
        "name": "tiny",
        "model": {"name_or_path": str(model_dir)},
        "lora": {"r": 4, "target_modules": ["q_proj", "v_proj"], "dropout": 0.05},
        "task": {"name": "arithmetic", "n_train": 16, "n_test": 8},
        "training": {
            "credit": "arca",
            "max_steps": 2,
            "per_device_train_batch_size": 4,
            "num_generations": 4,
            "max_completion_length": 6,
            "learning_rate": 1.0e-3,
            "logging_steps": 1,
            "save_steps": 1,
            "bf16": False,
            "gradient_checkpointing": False,
            "report_to": "none",
            "dataloader_pin_memory": False,
            "seed": 3,
        },
        "eval": {"n": 4, "k": 2, "samples_per_problem": 3, "batch_size": 4, "max_new_tokens": 6},
    }


@pytest.fixture
def tiny_run_config(tiny_model_dir: Path) -> dict:
    """`tiny_config(tiny_model_dir)`: a fresh dict per test."""
    return tiny_config(tiny_model_dir)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path]:
    """(config path, run folder) of one uninterrupted `arca train` of `tiny_config` (2 steps, a checkpoint per
    step, eval, token dump), trained once per session. Read-only: tests damage or cut short a copy of it."""
    import yaml

    from arca_rl.cli import main

    root = tmp_path_factory.mktemp("finished")
    raw = tiny_config(tiny_model_dir)
    raw["training"]["credit_log_tokens_every"] = 1
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    run_dir = root / "run"
    assert main(["train", "--config", str(config_path), "--output-dir", str(run_dir), "--quiet"]) == 0
    assert (run_dir / "finished.json").is_file() and (run_dir / "checkpoint-2").is_dir()
    return config_path, run_dir
