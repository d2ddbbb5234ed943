"""`arca_rl.diagnose`: every signal on the same rollouts, checked against manual forwards on a tiny
random Qwen3 (2 layers, hidden 32, character tokenizer) with a non-trivial LoRA adapter."""

from __future__ import annotations

import json
import math

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from scipy.stats import spearmanr

import arca_rl
from arca_rl import credit, group_credit
from arca_rl._diagnose import DiagnoseResult, completion_tokens, diagnose
from arca_rl.diagnostics import spearman
from arca_rl.rundir import resolve_adapter
from tiny import VariedReward, char_tokenizer, tiny_model

PROMPTS = ["12+7=", "3+45+6=", "1=", "99+1+23+4="]  # different lengths: left padding is exercised


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


@pytest.fixture(scope="module")
def peft_model(tok):
    base = tiny_model(tok, seed=0)
    torch.manual_seed(1)
    cfg = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj", "down_proj"], init_lora_weights=False
    )
    model = get_peft_model(base, cfg)  # init_lora_weights=False: random A and B, so the adapter changes h
    model.eval()
    return model


@pytest.fixture(scope="module")
def result(peft_model, tok) -> DiagnoseResult:
    return diagnose(
        peft_model,
        tok,
        PROMPTS,
        k=3,
        max_new_tokens=10,
        temperature=0.7,
        seed=3,
        batch_size=5,
        progress=False,
    )


def _manual(model, tok, prompt: str, ids: list[int], temperature: float):
    """Unpadded forwards, adapter on and off: (arca salience, log pi at temperature) per completion token."""
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    x = torch.tensor([p + ids])
    P, T = len(p), len(ids)
    with torch.no_grad():
        on = model(input_ids=x, output_hidden_states=True)
        with model.disable_adapter():
            off = model(input_ids=x, output_hidden_states=True)
    # the position that scores y_t is P - 1 + t
    h_on = on.hidden_states[-1][0, P - 1 : P - 1 + T]
    h_off = off.hidden_states[-1][0, P - 1 : P - 1 + T]
    arca = (h_on - h_off).norm(dim=-1)
    logp = torch.log_softmax(on.logits[0, P - 1 : P - 1 + T].float() / temperature, -1)
    logp = logp.gather(-1, torch.tensor(ids).unsqueeze(-1)).squeeze(-1)
    return arca, logp


def test_arca_salience_matches_manual_forwards(result, peft_model, tok):
    assert len(result.completions) == len(PROMPTS) * 3
    assert result.has_adapter
    # no reward here: only the group methods are absent, each saying why (vine: it is the oracle itself)
    assert set(result.absent) == set(group_credit.registered_group_methods())
    assert all("needs the completions' rewards" in why for m, why in result.absent.items() if m != "vine")
    assert "the Monte Carlo oracle itself" in result.absent["vine"]
    for rec in result.completions:
        arca, logp = _manual(peft_model, tok, rec.prompt, rec.token_ids, 0.7)
        assert rec.length == len(rec.salience["arca"]) == len(rec.weights["arca"]) >= 1
        torch.testing.assert_close(torch.tensor(rec.salience["arca"]), arca, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(torch.tensor(rec.salience["surprisal"]), -logp, rtol=1e-4, atol=1e-5)
        assert max(rec.salience["arca"]) > 0  # the adapter is not a no-op
        for w in rec.weights.values():
            assert math.isclose(sum(w), 1.0, rel_tol=1e-5)


def test_divergence_and_entropy_reduction_use_the_same_alignment(result, peft_model, tok):
    rec = max(result.completions, key=lambda r: r.length)
    p = tok(rec.prompt, add_special_tokens=False)["input_ids"]
    x = torch.tensor([p + rec.token_ids])
    P, T = len(p), rec.length
    with torch.no_grad():
        z_on = peft_model(input_ids=x).logits[0, P - 1 : P - 1 + T] / 0.7
        with peft_model.disable_adapter():
            z_off = peft_model(input_ids=x).logits[0, P - 1 : P - 1 + T] / 0.7
    y = torch.tensor(rec.token_ids).unsqueeze(-1)
    lp_on = torch.log_softmax(z_on, -1).gather(-1, y).squeeze(-1)
    lp_off = torch.log_softmax(z_off, -1).gather(-1, y).squeeze(-1)
    torch.testing.assert_close(
        torch.tensor(rec.salience["divergence"]), (lp_on - lp_off).abs(), rtol=1e-4, atol=1e-5
    )
    H = credit.token_entropy(z_on.unsqueeze(0))[0]
    expect = torch.cat([(H[:-1] - H[1:]).clamp_min(0), torch.zeros(1)])
    torch.testing.assert_close(torch.tensor(rec.salience["entropy_reduction"]), expect, rtol=1e-4, atol=1e-5)


def test_mask_stops_at_first_eos(result, tok):
    eos = tok.eos_token_id
    for rec in result.completions:
        assert eos not in rec.token_ids[:-1]
        assert rec.finished == (rec.token_ids[-1] == eos)
        assert rec.finished or rec.length == 10
    assert completion_tokens([5, 6, 1, 7, 1, 0], [1]) == ([5, 6, 1], True)
    assert completion_tokens([5, 6, 7], [1, 2]) == ([5, 6, 7], False)
    assert completion_tokens([2], [1, 2]) == ([2], True)


def test_summaries_table_and_spearman(result):
    assert list(result.signals) == credit.registered_signals()
    for s in result.signals.values():
        assert s.n_rows == sum(1 for r in result.completions if r.length >= 2)
        for v in (s.gini, s.effective_token_ratio, s.top10_mass, s.first_token_mass):
            assert v is not None and math.isfinite(v)
        assert s.regime in {"uniform", "middle", "sparse"}
    uni = result.signals["uniform"]
    assert uni.gini == pytest.approx(0.0, abs=1e-6) and uni.effective_token_ratio == pytest.approx(1.0)
    assert uni.spearman_vs_arca is None and uni.spearman_n == 0  # constant rows have no rank correlation
    assert result.signals["arca"].spearman_vs_arca == pytest.approx(1.0)
    # the mean per-completion correlation, recomputed with scipy
    vals = []
    for rec in result.completions:
        a, b = rec.salience["surprisal"], rec.salience["arca"]
        if len(a) >= 2 and len(set(a)) > 1 and len(set(b)) > 1:
            vals.append(spearmanr(a, b).statistic)
    assert result.signals["surprisal"].spearman_vs_arca == pytest.approx(sum(vals) / len(vals), abs=1e-9)
    table = result.table()
    for name in result.signals:
        assert name in table


def test_spearman_ties_and_constant_rows():
    a = [1.0, 2.0, 2.0, 3.0, 0.5]
    b = [0.1, 0.4, 0.3, 0.3, 0.0]
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None
    assert spearman([1.0], [2.0]) is None
    assert spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)


def test_json_has_every_signal_and_no_nan(result, tmp_path):
    d = json.loads(result.to_json())
    for name in credit.registered_signals():
        for obj in (d["signals"][name], d[name]):
            assert {"gini", "effective_token_ratio", "top10_mass", "regime", "spearman_vs_arca"} <= set(obj)
    assert d["signals"]["uniform"]["spearman_vs_arca"] is None
    assert len(d["completions"]) == len(result.completions)
    assert "NaN" not in result.to_json()
    files = result.write(tmp_path / "out")
    for name in ("report.html", "diagnose.json", "histograms.png", "hist_arca.png"):
        assert files[name].is_file() and files[name].stat().st_size > 0, name
    page = files["report.html"].read_text()
    assert "http://" not in page and "https://" not in page  # self-contained
    for name in credit.registered_signals():
        assert f'data-signal="{name}"' in page


def test_model_without_adapter_omits_arca_and_divergence(tok):
    model = tiny_model(tok, seed=0)
    res = diagnose(model, tok, PROMPTS[:2], k=2, max_new_tokens=6, progress=False)
    assert not res.has_adapter
    assert set(res.absent) == {"arca", "divergence", *group_credit.registered_group_methods()}  # no adapter, no reward
    for name in ("arca", "divergence"):
        assert "adapter" in res.absent[name]
    assert set(res.signals) == {"uniform", "surprisal", "entropy_reduction"}
    assert all(s.spearman_vs_arca is None for s in res.signals.values())
    d = json.loads(res.to_json())
    assert "arca" not in d["signals"] and d["absent"]["arca"]
    assert all("arca" not in rec.weights for rec in res.completions)


def test_fresh_adapter_gives_zero_arca_and_a_note(tok):
    model = get_peft_model(tiny_model(tok, seed=0), LoraConfig(r=2, target_modules=["q_proj"]))  # B = 0
    res = diagnose(
        model, tok, PROMPTS[:1], k=2, max_new_tokens=5, signals=["uniform", "arca"], progress=False
    )
    assert res.signals["arca"].salience_max == 0.0
    assert res.signals["arca"].gini == pytest.approx(0.0, abs=1e-6)  # zero salience -> uniform weights
    assert any("B = 0" in n for n in res.notes)


def test_package_attribute_is_the_function(peft_model, tok):
    assert arca_rl.diagnose is diagnose
    res = arca_rl.diagnose(peft_model, tok, ["1+1="], k=1, max_new_tokens=3, progress=False)
    assert isinstance(res, DiagnoseResult)


def test_bad_arguments(peft_model, tok):
    with pytest.raises(ValueError, match="unknown signals"):
        diagnose(peft_model, tok, ["1="], signals=["nope"], progress=False)
    with pytest.raises(ValueError, match="k must be"):
        diagnose(peft_model, tok, ["1="], k=0, progress=False)


def test_mix_blends_every_signal_with_uniform(result, peft_model, tok):
    """mix = lambda: every signal's weights become (1 - lambda) / T + lambda * w on the same rollouts; salience
    stays raw."""
    mixed = diagnose(
        peft_model, tok, PROMPTS, k=3, max_new_tokens=10, temperature=0.7, seed=3, batch_size=5, mix=0.3, progress=False
    )
    assert mixed.settings["mix"] == 0.3 and result.settings["mix"] == 1.0
    assert "credit mix in force: lambda = 0.3" in mixed.table()
    for plain, rec in zip(result.completions, mixed.completions, strict=True):
        assert rec.token_ids == plain.token_ids  # the same samples
        T = len(rec.token_ids)
        for name, w in plain.weights.items():
            assert rec.salience[name] == plain.salience[name]
            assert rec.weights[name] == pytest.approx([0.7 / T + 0.3 * x for x in w], abs=1e-6)
    assert mixed.signals["arca"].gini < result.signals["arca"].gini
    with pytest.raises(ValueError, match=r"mix \(credit_mix\) must be a number in \[0, 1\]"):
        diagnose(peft_model, tok, ["1="], mix=float("nan"), progress=False)


def _saved_run(tmp_path, tok, name: str, training: str):
    """A run folder as `arca train` leaves it: the tiny base model saved under tmp_path/tiny, a LoRA adapter
    with B != 0 (a real residual) in <run>/adapter, and a config.yaml with the given training section."""
    model_dir = tmp_path / "tiny"
    base = tiny_model(tok, seed=0)
    base.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    torch.manual_seed(2)
    peft = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["v_proj"], init_lora_weights=False))
    run = tmp_path / "runs" / name
    peft.save_pretrained(run / "adapter")
    (run / "config.yaml").write_text(
        f"name: {name}\nmodel: {{name_or_path: {model_dir}}}\ntask: {{name: arithmetic}}\ntraining: {{{training}}}\n"
    )
    return run


def test_cli_on_a_mixed_run_applies_its_final_lambda(tmp_path, tok, capsys):
    from arca_rl.cli import main

    run = _saved_run(
        tmp_path,
        tok,
        "warm",
        "credit: arca, credit_mix: 0.5, credit_warmup_steps: 4, max_steps: 2, max_completion_length: 6",
    )
    # the trainer logged lambda 0 then 0.125 (0.5 * 1/4): the run ended at 0.125, not at credit_mix
    (run / "metrics.jsonl").write_text('{"step": 1, "credit/mix": 0.0}\n{"step": 2, "credit/mix": 0.125}\n')
    args = ["diagnose", "--adapter", str(run), "--n", "2", "--k", "2", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "d1")]) == 0
    assert "credit mix in force: lambda = 0.125" in capsys.readouterr().out
    d = json.loads((tmp_path / "d1" / "diagnose.json").read_text())
    assert d["settings"]["mix"] == 0.125
    for rec in d["completions"]:
        T = len(rec["token_ids"])
        assert min(rec["weights"]["arca"]) >= 0.875 / T - 1e-6  # every token keeps (1 - lambda) / T
    (run / "metrics.jsonl").unlink()  # nothing logged: computed from the config, 0.5 * min(1, 2 / 4)
    assert main([*args, "--out", str(tmp_path / "d2")]) == 0
    assert json.loads((tmp_path / "d2" / "diagnose.json").read_text())["settings"]["mix"] == 0.25
    assert main([*args, "--out", str(tmp_path / "d3"), "--mix", "1"]) == 0  # an explicit --mix wins
    assert json.loads((tmp_path / "d3" / "diagnose.json").read_text())["settings"]["mix"] == 1.0
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "d4"), "--mix", "1.5"]) == 2
    assert "--mix: must be a finite number in [0, 1]" in capsys.readouterr().err


def test_cli_on_run_folder_and_plain_model(tmp_path, tok, capsys):
    from arca_rl.cli import main

    run = _saved_run(tmp_path, tok, "demo-arca", "credit: arca, credit_power: 2.0, max_completion_length: 6")
    model_dir = tmp_path / "tiny"
    assert resolve_adapter(run)[0] == run / "adapter"
    assert isinstance(PeftModel.from_pretrained(tiny_model(tok), str(run / "adapter")), PeftModel)

    out = tmp_path / "diag"
    rc = main(["diagnose", "--adapter", str(run), "--n", "2", "--k", "2", "--out", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "arca" in printed and "entropy_reduction" in printed
    d = json.loads((out / "diagnose.json").read_text())
    assert d["settings"]["power"] == 2.0 and d["settings"]["max_new_tokens"] == 6  # from the run's config
    assert d["arca"]["gini"] is not None and list(d["absent"]) == ["vine"]  # vine: the oracle itself
    assert (out / "report.html").is_file()

    out2 = tmp_path / "diag2"
    rc = main(["diagnose", "--model", str(model_dir), "--task", "arithmetic", "--n", "1", "--k", "2",
               "--max-new-tokens", "4", "--out", str(out2), "--quiet"])  # fmt: skip
    assert rc == 0
    d2 = json.loads((out2 / "diagnose.json").read_text())
    assert set(d2["absent"]) == {"arca", "divergence", "vine"} and "surprisal" in d2["signals"]

    rc = main(["diagnose", "--adapter", str(tmp_path / "nothing"), "--task", "arithmetic"])
    assert rc == 2  # FileNotFoundError -> a clean CLI error
    assert main(["diagnose", "--model", str(model_dir)]) == 2  # no task
    assert main(["diagnose", "--model", str(model_dir), "--task", "nope"]) == 2
    assert "unknown task" in capsys.readouterr().err


@pytest.mark.slow
def test_diagnose_on_a_run_weights_as_the_run_did(tmp_path, tiny_run_config, monkeypatch):
    """Every credit field of the run's ARCAGRPOConfig shapes diagnose's weights, not only credit_power: with
    credit_min_salience far above any residual, the trainer gave uniform credit, so diagnose must too."""
    import yaml

    from arca_rl._run import training as run_module
    from arca_rl.cli import main

    real_build_task = run_module.build_task  # rewards that vary, so the adapter moves off B = 0
    monkeypatch.setattr(run_module, "build_task", lambda cfg: VariedReward(real_build_task(cfg)))
    tiny_run_config["eval"]["enabled"] = False
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_run_config))
    run = tmp_path / "runs" / "tiny"
    argv = ["train", "--config", str(config_path), "--output-dir", str(run), "--quiet",
            "--set", "training.credit_min_salience=1.0e9"]  # fmt: skip
    assert main(argv) == 0
    out = tmp_path / "diag"
    assert main(["diagnose", "--adapter", str(run), "--n", "4", "--k", "4", "--out", str(out), "--quiet"]) == 0
    d = json.loads((out / "diagnose.json").read_text())
    assert d["settings"]["task"] == "arithmetic" and d["settings"]["min_salience"] == 1.0e9
    assert 0 < d["arca"]["salience_max"] < 1.0e9  # a real, varying residual, all of it below the floor
    assert d["arca"]["gini"] == 0.0
    assert d["arca"]["effective_token_ratio"] == pytest.approx(1.0)


def test_cli_config_scores_every_method_with_its_credit_settings(tmp_path, tok, capsys, monkeypatch):
    """Issue 34 §3: `arca diagnose -c CONFIG` scores with the config's power, mix (the lambda it ends with) and
    group settings, and the table says which settings and where from; --set overrides them; a packaged name works."""
    from arca_rl.cli import main

    run = _saved_run(
        tmp_path, tok, "cfg",
        "credit: arca, credit_shadow: true, credit_power: 2.0, credit_mix: 0.5, credit_tempo_td_weight: 2.5, "
        "max_completion_length: 6",
    )  # fmt: skip
    cfg = run / "config.yaml"
    out = tmp_path / "d"
    seen: dict[str, dict] = {}  # each group method's keyword arguments, as diagnose calls it
    real = group_credit.group_credit

    def spy(name, **kwargs):
        seen[name] = kwargs
        return real(name, **kwargs)

    monkeypatch.setattr(group_credit, "group_credit", spy)
    assert main(["diagnose", "-c", str(cfg), "--n", "2", "--k", "2", "--quiet", "--out", str(out)]) == 0
    assert seen["tempo"]["tempo_td_weight"] == 2.5 and seen["ktae"]["ktae_scale"] == 1.0
    printed = capsys.readouterr().out
    assert "credit settings: eps = 1e-08, power = 2, min_salience = 0, mix lambda = 0.5; " in printed
    assert "tempo_td_weight = 2.5" in printed and f"(from the config {cfg})" in printed
    d = json.loads((out / "diagnose.json").read_text())
    assert d["settings"]["power"] == 2.0 and d["settings"]["mix"] == 0.5 and d["settings"]["max_new_tokens"] == 6
    assert d["has_adapter"] is False and d["settings"]["task"] == "arithmetic"  # the config's model and task
    recs = d["completions"]
    # surprisal's weights by hand: (s + eps)^2 normalised, then mixed half-and-half with uniform
    for rec in recs:
        s = torch.tensor(rec["salience"]["surprisal"], dtype=torch.float64) + 1e-8
        w = s**2 / (s**2).sum()
        want = 0.5 / len(w) + 0.5 * w
        assert rec["weights"]["surprisal"] == pytest.approx(want.tolist(), rel=1e-4, abs=1e-7)
    # --set overrides the config; over a run folder the config's credit settings win
    out2 = tmp_path / "d2"
    assert main(["diagnose", "-c", str(cfg), "--set", "training.credit_power=3", "--n", "1", "--k", "2", "--quiet",
                 "--out", str(out2)]) == 0  # fmt: skip
    assert json.loads((out2 / "diagnose.json").read_text())["settings"]["power"] == 3.0
    capsys.readouterr()
    assert main(["diagnose", "--set", "training.credit_power=3", "--task", "arithmetic"]) == 2
    assert "--set: only with --config" in capsys.readouterr().err
    assert main(["diagnose", "-c", "no-such-config", "--task", "arithmetic"]) == 2
    out3 = tmp_path / "d3"  # a packaged config by name: its model (the shipped tiny one), task and settings
    assert main(["diagnose", "-c", "demo", "--n", "1", "--k", "2", "--quiet", "--out", str(out3)]) == 0
    d3 = json.loads((out3 / "diagnose.json").read_text())
    assert d3["settings"]["credit_settings_from"].startswith("the config ") and d3["settings"]["max_new_tokens"] == 32
