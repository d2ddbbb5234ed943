"""`arca train` builds the TRL config once and passes that object on (`--dry-run` too), and still refuses
what the machine cannot run before the run folder is touched or a model loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from arca_rl.cli import main
from arca_rl.trainer_config import ARCAGRPOConfig, ARCARLOOConfig
from runfiles import one_error_line


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, bool]]:
    """Every construction of a TRL config class from here on: (class name, output_dir, use_cpu), recorded
    when its `__post_init__` runs (the dataclass `__init__` calls it once per object)."""
    seen: list[tuple[str, str, bool]] = []
    for cls in (ARCAGRPOConfig, ARCARLOOConfig):
        original = cls.__post_init__

        def spy(self, _original=original) -> None:  # type: ignore[no-untyped-def]
            seen.append((type(self).__name__, str(self.output_dir), bool(self.use_cpu)))
            _original(self)

        monkeypatch.setattr(cls, "__post_init__", spy)
    return seen


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("trainer", ["grpo", "rloo"])
def test_dry_run_builds_the_trl_config_once(tmp_path, tiny_run_config, built, capsys, trainer):
    tiny_run_config["trainer"] = trainer
    if trainer == "rloo":
        tiny_run_config["training"]["beta"] = 0.0
    out = tmp_path / "out"
    assert (
        main(["train", "--config", str(_write(tmp_path, tiny_run_config)), "--output-dir", str(out), "--dry-run"]) == 0
    )
    assert "valid" in capsys.readouterr().out
    want = "ARCAGRPOConfig" if trainer == "grpo" else "ARCARLOOConfig"
    # one object, for the folder the run would write (machine-independent: device checks off where there is none)
    assert [(name, folder) for name, folder, _ in built] == [(want, str(out))]
    assert not out.exists()


def test_train_builds_the_trl_config_once_and_trains_with_it(tmp_path, tiny_run_config, built, monkeypatch):
    from arca_rl.trainer import arca_trainer as trainer_module

    taken: list[object] = []
    original_init = trainer_module.ARCAGRPOTrainer.__init__

    def init(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        taken.append(kwargs["args"])
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(trainer_module.ARCAGRPOTrainer, "__init__", init)
    tiny_run_config["training"].update(max_steps=1, save_steps=1)
    tiny_run_config["eval"]["enabled"] = False
    out = tmp_path / "run"
    assert main(["train", "--config", str(_write(tmp_path, tiny_run_config)), "--output-dir", str(out), "--quiet"]) == 0
    assert (out / "finished.json").is_file()
    # exactly one TRL config, built for this run folder, and it is the object the trainer was given
    assert [(name, folder) for name, folder, _ in built] == [("ARCAGRPOConfig", str(out))]
    assert len(taken) == 1 and isinstance(taken[0], ARCAGRPOConfig) and str(taken[0].output_dir) == str(out)


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.is_bf16_supported(), reason="needs a machine without bf16")
def test_bf16_without_a_bf16_device_is_refused_before_the_folder(tmp_path, tiny_run_config, built, capsys):
    """`training.bf16: true` on this machine: `arca train` refuses it in one line before the folder exists or a
    model loads; `--dry-run` validates the config as written for any machine (a GPU config on a laptop)."""
    tiny_run_config["training"]["bf16"] = True
    config = str(_write(tmp_path, tiny_run_config))
    out = tmp_path / "run"
    assert main(["train", "--config", config, "--output-dir", str(out), "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("arca train: error: training: ") and "bf16" in line, line
    assert not out.exists()
    assert len(built) == 1  # refused while building the one TRL config
    assert main(["train", "--config", config, "--output-dir", str(out), "--dry-run"]) == 0
    assert not out.exists()
