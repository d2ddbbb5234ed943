"""benchmarks/bf16_salience_floor.py: the LoRA scaling knob and the residual it measures, on the shipped tiny model."""

from __future__ import annotations

import pytest
import torch

from bench import load_benchmark


def _tiny_peft(dtype: torch.dtype):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from arca_rl.tasks import tiny_model_path

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path(), dtype=dtype)
    # init_lora_weights=False: B is random, not zero, so the adapter changes the hidden state
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    return get_peft_model(model, cfg)


def test_scale_zero_is_the_base_and_small_scales_are_linear_in_float32():
    mod = load_benchmark("bf16_salience_floor")
    model = _tiny_peft(torch.float32)
    base = mod.lora_scalings(model)
    assert base and all(v == pytest.approx(8 / 4) for v in base.values())
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    attn = torch.ones_like(ids)

    mod.set_lora_scale(model, 0.0, base)
    a0, h_norm = mod.residuals(model, ids, attn, n_prompt=4)
    assert a0.shape == (2, 8) and torch.equal(a0, torch.zeros(2, 8))
    # ||h_base|| by hand, from the backbone's last hidden state with the adapter off
    with torch.no_grad(), model.disable_adapter():
        hb = model.get_base_model().model(input_ids=ids, attention_mask=attn).last_hidden_state[:, 4:]
    torch.testing.assert_close(h_norm, hb.norm(dim=-1))

    # in float32 the residual of a small adapter grows linearly with its scale: doubling s doubles alpha
    mod.set_lora_scale(model, 1e-4, base)
    a1, _ = mod.residuals(model, ids, attn, n_prompt=4)
    mod.set_lora_scale(model, 2e-4, base)
    a2, _ = mod.residuals(model, ids, attn, n_prompt=4)
    assert (a1 > 0).all()
    torch.testing.assert_close(a2 / a1, torch.full_like(a1, 2.0), rtol=2e-2, atol=0)

    mod.set_lora_scale(model, 1.0, base)  # back to the adapter as trained
    assert all(m.scaling["default"] == base[n] for n, m in model.named_modules() if n in base)


def test_bf16_rounds_a_tiny_adapter_away_entirely():
    """The floor's lower end: an update far below bf16's resolution leaves the hidden state bit for bit."""
    mod = load_benchmark("bf16_salience_floor")
    model = _tiny_peft(torch.bfloat16)
    base = mod.lora_scalings(model)
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    attn = torch.ones_like(ids)
    mod.set_lora_scale(model, 1e-8, base)
    a, _ = mod.residuals(model, ids, attn, n_prompt=4)
    assert a.dtype == torch.float32 and torch.equal(a, torch.zeros_like(a))
    mod.set_lora_scale(model, 1.0, base)
    a, _ = mod.residuals(model, ids, attn, n_prompt=4)
    assert (a > 0).any() and torch.isfinite(a).all()
