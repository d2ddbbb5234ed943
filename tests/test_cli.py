"""`arca train` / `arca eval` end to end on a tiny random Qwen3 model: every artifact of a run folder."""

from __future__ import annotations

import json

import pytest
import yaml

from arca_rl._config import load_config
from arca_rl.cli import build_parser, main
from arca_rl.rundir import is_finished, read_metrics

EVAL_KEYS = {"greedy_accuracy", "greedy_score", "pass_at_k", "k", "samples_per_problem", "n"}


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "eval", "demo"):
        assert command in out
    sub = build_parser()._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse internals, test only
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--dry-run" in capsys.readouterr().out
    assert {"train", "eval", "demo"} <= set(sub)


def check_eval_json(path, *, n, k, samples):
    data = json.loads(path.read_text())
    assert set(data) == EVAL_KEYS
    assert (data["n"], data["k"], data["samples_per_problem"]) == (n, k, samples)
    assert 0.0 <= data["greedy_accuracy"] <= 1.0 and 0.0 <= data["pass_at_k"] <= 1.0
    # the embedded task has no partial credit: the graded score is the accuracy
    assert data["greedy_score"] == data["greedy_accuracy"]
    return data


@pytest.mark.slow
def test_train_writes_every_artifact_then_refuses_to_overwrite(tmp_path, tiny_run_config, capsys):
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_run_config))
    run_dir = tmp_path / "runs" / "tiny"
    argv = ["train", "--config", str(config_path), "--output-dir", str(run_dir), "--quiet",
            "--set", "training.credit_log_tokens_every=1"]
    assert main(argv) == 0
    assert "run finished" in capsys.readouterr().out

    # config.yaml: the resolved config, which loads back to the same thing (with the override applied)
    resolved = load_config(run_dir / "config.yaml")
    assert resolved.training["credit_log_tokens_every"] == 1
    assert resolved.to_yaml_dict() == load_config(config_path, ["training.credit_log_tokens_every=1"]).to_yaml_dict()
    # metrics.jsonl: one flushed line per logging step, TRL's dict plus step, credit diagnostics included
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("reward", "loss", "learning_rate", "credit/gini", "credit/effective_token_ratio"):
        assert all(key in r for r in rows), key
    # checkpoints, final adapter, token dump, eval.json, plots, the finished marker
    assert (run_dir / "checkpoint-2" / "trainer_state.json").is_file()
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert (run_dir / "credit_tokens.jsonl").is_file()
    check_eval_json(run_dir / "eval.json", n=4, k=2, samples=3)
    for stem in ("reward", "gini", "effective_token_ratio"):
        png = run_dir / "plots" / f"{stem}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem
    assert is_finished(run_dir)

    # A finished run is never overwritten; --resume on it is a no-op.
    assert main(argv) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    mtime = (run_dir / "eval.json").stat().st_mtime
    assert main([*argv, "--resume"]) == 0
    assert "run finished" in capsys.readouterr().out
    assert (run_dir / "eval.json").stat().st_mtime == mtime

    # arca eval on the run folder (adapter + the run's config): reproduces the run's eval.json
    out = tmp_path / "eval_again.json"
    assert main(["eval", "--adapter", str(run_dir), "--out", str(out), "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == check_eval_json(out, n=4, k=2, samples=3) == json.loads((run_dir / "eval.json").read_text())
    # and with explicit settings, on the adapter folder itself
    assert main(["eval", "--adapter", str(run_dir / "adapter"), "--task", "arithmetic", "--task-option", "n_test=8",
                 "--n", "3", "--k", "2", "--samples-per-problem", "2", "--max-new-tokens", "4", "--quiet"]) == 0
    check_eval_json_text(capsys.readouterr().out, n=3, k=2, samples=2)


def check_eval_json_text(text, *, n, k, samples):
    data = json.loads(text)
    assert set(data) == EVAL_KEYS and (data["n"], data["k"], data["samples_per_problem"]) == (n, k, samples)


def test_train_refuses_bad_config_before_loading_anything(tmp_path, capsys):
    config_path = tmp_path / "bad.yaml"
    config_path.write_text("model:\n  name_or_path: /nonexistent/model\ntraining:\n  lerning_rate: 1.0e-4\n")
    assert main(["train", "--config", str(config_path), "--output-dir", str(tmp_path / "run")]) == 2
    assert "training.lerning_rate: unknown key; did you mean learning_rate?" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_decisive_token_share_reads_the_active_signal(tmp_path):
    from arca_rl._demo import decisive_token_share

    path = tmp_path / "credit_tokens.jsonl"
    rows = [
        {"step": 0, "signal": "arca", "active": True, "weights": [0.5, 0.25, 0.25]},
        {"step": 0, "signal": "uniform", "active": False, "weights": [0.9, 0.1]},  # shadow row: ignored
        {"step": 1, "signal": "arca", "active": True, "weights": [0.1, 0.9]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert decisive_token_share(path) == pytest.approx(0.3)
    assert decisive_token_share(tmp_path / "missing.jsonl") is None
    # top_entropy_quantile: a first token that TRL's entropy mask drops gets nothing of the gradient
    rows = [
        {"step": 0, "signal": "uniform", "active": True, "weights": [0.5, 0.5], "entropy_mask": [0, 1]},
        {"step": 0, "signal": "uniform", "active": True, "weights": [0.25, 0.75], "entropy_mask": [1, 0]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert decisive_token_share(path) == pytest.approx(0.125)


def test_demo_rejects_a_bad_variant_before_any_work(tmp_path, capsys):
    out = tmp_path / "demo"
    for methods, match in [
        ("uniform,arca+mx0.5", "--methods: 'arca+mx0.5': cannot read 'mx0.5'"),
        ("uniform,arca+mix2", r"--methods: 'arca+mix2': +mix must be in [0, 1] (credit_mix)"),
        ("nope", "--methods: 'nope': unknown signal 'nope'"),
    ]:
        assert main(["demo", "--output-dir", str(out), "--methods", methods, "--quiet"]) == 2
        assert match in capsys.readouterr().err
    assert not (out / "base_eval.json").exists()


@pytest.mark.slow
def test_demo_writes_summary_and_respects_the_budget(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--output-dir", str(out), "--methods", "uniform,arca,surprisal", "--seeds", "0",
            "--budget", "0", "--quiet", "--set", f"model.name_or_path={tiny_model_dir}",
            "--set", "training.max_steps=1", "--set", "training.per_device_train_batch_size=4",
            "--set", "training.num_generations=4", "--set", "training.max_completion_length=4",
            "--set", "eval.n=4", "--set", "eval.batch_size=4", "--set", "eval.max_new_tokens=4", "--oracle", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "skipping surprisal" in printed and "decisive share" in printed and "oracle lift" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {"uniform", "arca"}  # the first two always run; surprisal did not fit
    assert summary["skipped"] == ["surprisal"] and summary["seconds"] > 0
    for figures in summary["methods"].values():
        assert {"greedy_before", "greedy_after", "pass_at_k", "gini", "effective_token_ratio",
                "decisive_token_share"} <= set(figures)
    assert summary["methods"]["uniform"]["gini"] == pytest.approx(0.0, abs=1e-6)
    # 4 prompts x 4 completions: each prompt's completions are a group (group methods and A_i need one)
    assert summary["oracle"] == {"samples": 2, "rollouts": 16, "prompts": 4, "k": 4, "seed": 0}
    for method in ("uniform", "arca"):  # each method's own credit on its seed-0 adapter's rollouts
        assert "oracle_lift" in summary["methods"][method] and "oracle_signed" in summary["methods"][method]
        d = json.loads((out / method / "oracle" / "diagnose.json").read_text())
        assert list(d["signals"]) == [method] and d["settings"]["oracle_samples"] == 2
        assert d["settings"]["n_completions"] == 16 and d["settings"]["max_new_tokens"] == 4
        assert d["settings"]["n_prompts"] == 4 and d["settings"]["k"] == 4
        assert summary["methods"][method]["oracle_lift"] == d[method]["oracle_lift"]["mean"]
        assert summary["methods"][method]["oracle_signed"] == d[method]["oracle_signed"]["mean"]
    assert summary["methods"]["uniform"]["oracle_lift"] in (1.0, None)  # None: every delta 0
    assert is_finished(out / "uniform") and is_finished(out / "arca")
    check_eval_json(out / "base_eval.json", n=4, k=4, samples=4)


@pytest.mark.slow
def test_demo_trains_variants(tmp_path, tiny_model_dir, capsys):
    """`arca demo --methods` with +mix / +warmup / +topent: each run's config carries the fields, the table names
    the variant, and the top-entropy run records TRL's entropy mask next to its credit."""
    import yaml

    out = tmp_path / "demo"
    argv = ["demo", "--output-dir", str(out), "--methods", "uniform+topent0.5,arca+mix0.5+warmup1", "--seeds", "0",
            "--budget", "1000", "--quiet", "--set", f"model.name_or_path={tiny_model_dir}",
            "--set", "training.max_steps=2", "--set", "training.per_device_train_batch_size=4",
            "--set", "training.num_generations=4", "--set", "training.max_completion_length=4",
            "--set", "eval.n=4", "--set", "eval.batch_size=4", "--set", "eval.max_new_tokens=4"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "uniform+topent0.5" in printed and "arca+mix0.5+warmup1" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["methods"]) == ["uniform+topent0.5", "arca+mix0.5+warmup1"]
    topent = yaml.safe_load((out / "uniform+topent0.5" / "config.yaml").read_text())
    assert topent["training"]["credit"] == "uniform" and topent["training"]["top_entropy_quantile"] == 0.5
    assert topent["name"] == "demo-uniform_topent0.5"
    mixed = yaml.safe_load((out / "arca+mix0.5+warmup1" / "config.yaml").read_text())["training"]
    assert (mixed["credit"], mixed["credit_mix"], mixed["credit_warmup_steps"]) == ("arca", 0.5, 1)
    metrics = [json.loads(x) for x in (out / "arca+mix0.5+warmup1" / "metrics.jsonl").read_text().splitlines()]
    assert [m["credit/mix"] for m in metrics if "credit/mix" in m] == [0.0, 0.5]  # warm-up: 0, then the mix
    dumps = [json.loads(x) for x in (out / "uniform+topent0.5" / "credit_tokens.jsonl").read_text().splitlines()]
    assert dumps and all(len(d["entropy_mask"]) == len(d["weights"]) for d in dumps)
    assert 0 < sum(map(sum, (d["entropy_mask"] for d in dumps))) < sum(len(d["weights"]) for d in dumps)


# ---------------------------------------------------------------------------------------------------------------------
# a config by name: one rule in every command, and the file read is said (issue 38 §3, §4)


def test_arca_help_shows_only_configs_a_pip_user_has(tmp_path, monkeypatch, capsys):
    import shlex

    from arca_rl._config import config_path, packaged_configs
    from arca_rl.cli import _EPILOG

    monkeypatch.chdir(tmp_path)  # no configs/ folder here, as for a pip-installed user
    for command in ([], ["sweep"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = capsys.readouterr().out
        assert "configs/" not in text, text
    named = [words[i + 1] for words in map(shlex.split, _EPILOG.splitlines()[1:])
             for i, w in enumerate(words) if w in ("-c", "--config")]  # fmt: skip
    assert named and all(name in packaged_configs() and config_path(name).is_file() for name in named)


def test_train_help_names_every_trainer(capsys):
    from arca_rl._config.sections import TRAINERS

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "trainer (grpo, the default, rloo or sdpo)" in text and set(TRAINERS) == {"grpo", "rloo", "sdpo"}


@pytest.mark.parametrize("name", ["demo", "smollm2-rg2/uniform"])
def test_sweep_finds_a_packaged_config_by_name(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--config", name, "--credit", "uniform,arca", "--rank", "4", "--seed", "1", "--dry-run"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    packaged = f"arca_rl/configs/{name}.yaml"
    assert f"--config {name}: reading the packaged config" in err and packaged in err
    assert out.count("arca_rl.cli train --config") == 2 and packaged in out  # each run reads the same file


def test_a_local_folder_does_not_hide_a_packaged_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # e.g. the output of `arca demo --output-dir demo`
    assert main(["train", "-c", "demo", "--dry-run", "--output-dir", str(tmp_path / "run")]) == 0
    out, err = capsys.readouterr()
    assert "--config demo: reading the packaged config" in err and "arca_rl/configs/demo.yaml: valid" in out


@pytest.mark.parametrize("command", ["train", "eval", "sweep"])
def test_a_local_yaml_file_is_read_by_its_name_in_every_command_and_said(command, tmp_path, monkeypatch, capsys):
    """`-c demo` with a demo.yaml here reads it (a file of yours wins over the packaged config), and says so."""
    monkeypatch.chdir(tmp_path)
    # a config the packaged demo is not: another name and a bad learning rate, so reading it is visible
    (tmp_path / "demo.yaml").write_text("name: mine\ntraining: {learning_rate: -1.0}\n")
    argv = {
        "train": ["train", "-c", "demo", "--dry-run"],
        "eval": ["eval", "--config", "demo", "--n", "1"],
        "sweep": ["sweep", "--config", "demo", "--credit", "arca", "--rank", "4", "--seed", "1", "--dry-run"],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--config demo: reading your file demo.yaml" in err, err
    assert "learning_rate" in err.strip().splitlines()[-1], err  # the refusal is about the local file's value
