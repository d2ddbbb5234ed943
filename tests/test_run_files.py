"""Damaged run files (adapter weights, adapter config, non-UTF-8 logs) give one line and exit 2, or are
skipped with a note; nothing already written changes. Each test works on a copy of `finished_run`."""

from __future__ import annotations

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
