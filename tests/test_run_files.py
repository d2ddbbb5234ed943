"""Damaged run files (adapter weights, adapter config, non-UTF-8 logs) give one line and exit 2, or are
skipped with a note; nothing already written changes. Each test works on a copy of `finished_run`."""

from __future__ import annotations

import json

import pytest

from arca_rl.cli import main
from runfiles import copy_run, one_error_line, snapshot, train_argv

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------------------------------
# item 5: damaged adapter files are one line, exit 2, nothing written changed


@pytest.mark.parametrize("content", [b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\""], ids=["empty", "truncated"])
def test_damaged_adapter_weights_are_one_line_everywhere(finished_run, tmp_path, content, capsys):
    config_path, run_dir = copy_run(finished_run, tmp_path)
    (run_dir / "adapter" / "adapter_model.safetensors").write_bytes(content)
    before = snapshot(run_dir)

    assert main(["eval", "--adapter", str(run_dir), "--quiet"]) == 2
    assert "adapter_model.safetensors" in one_error_line(capsys.readouterr().err)

    assert main(["diagnose", "--adapter", str(run_dir), "--n", "2", "--k", "2", "--quiet",
                 "--out", str(tmp_path / "diag")]) == 2
    assert "adapter_model.safetensors" in one_error_line(capsys.readouterr().err)
    assert snapshot(run_dir) == before


def test_damaged_checkpoint_weights_on_resume_are_one_line(finished_run, tmp_path, capsys):
    config_path, run_dir = copy_run(finished_run, tmp_path, drop=("finished.json", "eval.json", "adapter"))
    (run_dir / "checkpoint-2" / "adapter_model.safetensors").write_bytes(b"\x00\x01")
    before = snapshot(run_dir)
    assert main(train_argv(config_path, run_dir, "--resume")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "checkpoint-2" in line and "adapter_model.safetensors" in line, line
    assert snapshot(run_dir) == before


def test_invalid_adapter_config_is_one_line(finished_run, tmp_path, capsys):
    _, run_dir = copy_run(finished_run, tmp_path)
    (run_dir / "adapter" / "adapter_config.json").write_text("{not json")
    assert main(["eval", "--adapter", str(run_dir / "adapter"), "--task", "arithmetic", "--n", "2", "--quiet"]) == 2
    assert "adapter_config.json" in one_error_line(capsys.readouterr().err)
    assert main(["diagnose", "--adapter", str(run_dir), "--n", "2", "--k", "2", "--quiet",
                 "--out", str(tmp_path / "diag")]) == 2
    assert "adapter_config.json" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("name", ["metrics.jsonl", "credit_tokens.jsonl"])
def test_report_skips_non_utf8_lines_and_says_so(finished_run, tmp_path, name, capsys):
    _, run_dir = copy_run(finished_run, tmp_path)
    with (run_dir / name).open("ab") as fh:
        fh.write(b'{"step": 3, "reward": \xff\xfe}\n')
    assert main(["report", str(run_dir), "--out", str(tmp_path / "report")]) == 0
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert name in said and "skipped" in said, said
    assert (tmp_path / "report" / "report.md").is_file()


@pytest.mark.parametrize(
    "field, value, named",
    [("r", "x", "r must be"), ("peft_type", "NOT_A_METHOD", "peft_type"), ("lora_alpha", -1, "lora_alpha"),
     ("target_modules", 3, "target_modules")],
)
def test_adapter_config_with_wrong_values_is_one_line(finished_run, tmp_path, field, value, named, capsys):
    _, run_dir = copy_run(finished_run, tmp_path)
    path = run_dir / "adapter" / "adapter_config.json"
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    assert main(["eval", "--adapter", str(run_dir), "--n", "2", "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "adapter_config.json" in line and named in line, line


def test_an_adapter_on_another_base_model_names_both(finished_run, tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from tiny import save_tiny

    other = save_tiny(tmp_path / "wider", hidden=64)  # another architecture size than the run's base model
    _, run_dir = copy_run(finished_run, tmp_path)
    for argv in (["eval", "--adapter", str(run_dir), "--model", str(other), "--n", "2", "--quiet"],
                 ["diagnose", "--adapter", str(run_dir), "--model", str(other), "--n", "1", "--k", "1", "--quiet",
                  "--out", str(tmp_path / "d")]):
        assert main(argv) == 2
        line = one_error_line(capsys.readouterr().err)
        base = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]
        assert str(other) in line and base in line, line
