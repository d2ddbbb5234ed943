"""A tiny random Qwen3-architecture model and a character tokenizer, built locally (no network) for tests."""

from __future__ import annotations

import string
from pathlib import Path

import torch
from peft import LoraConfig
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

SPECIAL = ["<pad>", "<eos>", "<unk>"]


def char_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character of digits, letters and a few symbols; `<eos>` ends completions."""
    chars = list(string.digits + string.ascii_letters + " +-*/=.,?:{}\\()")
    vocab = {tok: i for i, tok in enumerate(SPECIAL + chars)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    tok.padding_side = "left"
    return tok


def tiny_model(
    tokenizer: PreTrainedTokenizerFast, *, seed: int = 0, layers: int = 2, hidden: int = 32
) -> Qwen3ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = Qwen3ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def save_tiny(path: Path, **kwargs) -> Path:
    tok = char_tokenizer()
    tiny_model(tok, **kwargs).save_pretrained(path)
    tok.save_pretrained(path)
    return path


class VariedReward:
    """The arithmetic task with a reward a random model's completions vary in (their characters' codes mod 5),
    so the advantages and gradients are not zero and the comparison means something."""

    def __init__(self, task) -> None:
        self._task = task

    def __getattr__(self, name):
        return getattr(self._task, name)

    def reward(self, completions, **kwargs):
        return [float(sum(map(ord, c)) % 5) for c in completions]


def tiny_lora(**overrides) -> LoraConfig:
    """LoRA on three of the tiny model's projections. init_lora_weights=False: B != 0, so the adapter
    already changes the model (a non-trivial residual)."""
    base = dict(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False
    )
    base.update(overrides)
    return LoraConfig(**base)
