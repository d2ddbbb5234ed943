"""The shipped tiny model and tokenizer load offline from the package and behave as documented."""

from __future__ import annotations

import json

import pytest
import torch

from arca_rl.tasks import TINY_MODEL_PATH, get_task, last_boxed, tiny_model_path
from arca_rl.tasks import arithmetic as arith

MAX_BYTES = 10 * 1024 * 1024


@pytest.fixture(scope="module", autouse=True)
def offline() -> None:
    """Nothing here may reach the hub."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_path())


@pytest.fixture(scope="module")
def model():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_path()).eval()


def test_assets_are_shipped_and_small() -> None:
    names = {p.name for p in TINY_MODEL_PATH.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "build_info.json"} <= names
    size = sum(p.stat().st_size for p in TINY_MODEL_PATH.rglob("*") if p.is_file())
    assert size <= MAX_BYTES
    info = json.loads((TINY_MODEL_PATH / "build_info.json").read_text())
    assert info["steps"] > 0 and "seed" in info
    # The warm start leaves room for RL: greedy answers are often wrong, sampled step-by-step
    # solutions are mostly right.
    assert info["greedy_accuracy"] <= 0.6
    assert info["sampled"]["steps_accuracy"] > info["greedy_accuracy"]


def test_tokenizer_round_trip(tokenizer) -> None:
    text = arith.prompt_text((80, 33, 95)) + arith.steps_completion((80, 33, 95))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer.convert_ids_to_tokens(tokenizer("\\boxed{208}", add_special_tokens=False)["input_ids"]) == [
        "\\boxed{", "2", "0", "8", "}",
    ]
    assert all(len(tokenizer(d, add_special_tokens=False)["input_ids"]) == 1 for d in "0123456789")
    assert tokenizer.eos_token is not None and tokenizer.pad_token is not None
    assert tokenizer.eos_token_id != tokenizer.pad_token_id
    assert tokenizer.decode([*ids, tokenizer.eos_token_id], skip_special_tokens=True) == text
    # The task's prompts are plain text; the chat template (for conversational data sets) renders a lone
    # user turn as exactly that plain prompt.
    chat = [{"role": "user", "content": "80+33+95=?"}]
    assert tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == arith.prompt_text(
        (80, 33, 95)
    )


def test_model_architecture(model, tokenizer) -> None:
    config = model.config
    assert config.model_type == "qwen3"
    assert (config.num_hidden_layers, config.hidden_size) == (4, 128)
    assert config.vocab_size == len(tokenizer)
    assert next(model.parameters()).dtype == torch.float32
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < n_params < 1.2e6


@pytest.mark.slow
def test_greedy_generation_is_well_formed(model, tokenizer) -> None:
    task = get_task("arithmetic")
    test = task.test_dataset(16)
    batch = tokenizer(list(test["prompt"]), return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, do_sample=False, max_new_tokens=48)
    new = out[:, batch["input_ids"].shape[1] :]
    boxed_id = tokenizer.convert_tokens_to_ids("\\boxed{")
    digit_ids = set(tokenizer.convert_tokens_to_ids(list("0123456789")))
    completions = tokenizer.batch_decode(new, skip_special_tokens=True)
    for row, completion in zip(new.tolist(), completions):
        assert tokenizer.eos_token_id in row, completion  # finished within the budget
        # The first token decides the strategy: `\boxed{` (direct) or a digit (step by step).
        first = row[arith.DECISIVE_TOKEN_INDEX]
        assert first == boxed_id or first in digit_ids
        assert (first == boxed_id) == (arith.strategy(completion) == "direct")
        answer = last_boxed(completion)
        assert answer is not None and answer.isdigit(), completion
    scores = task.reward(completions, test["solution"])
    assert all(s in (0.0, 1.0) for s in scores)
