"""The LM head gets a contiguous input in every generation path (`_causal_lm.contiguous_head_input`).

`generate` feeds the head `hidden[:, -1:]`, a strided view at the prompt pass; with a frozen head (LoRA) torch's
matmul then broadcasts the head's weight over the batch and, in bf16 on CPU, copies it once per row (seconds for
SmolLM2; benchmarks/smollm2_step_profile.py measures it). These tests check what the head receives and computes,
not how fast."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from arca_rl import ARCAGRPOConfig, ARCAGRPOTrainer, _causal_lm
from arca_rl._diagnose.sample import sample
from arca_rl._run.evaluation import generate_completions
from tiny import char_tokenizer, tiny_lora, tiny_model


def record_head_inputs(model) -> list[torch.Tensor]:
    """Every input the head's forward itself receives (after its pre-hooks), kept as given."""
    head = model.get_output_embeddings()
    seen: list[torch.Tensor] = []
    forward = head.forward

    def recording(x, *args, **kwargs):
        seen.append(x)
        return forward(x, *args, **kwargs)

    head.forward = recording
    return seen


def frozen_tiny(dtype=torch.float32):
    tok = char_tokenizer()
    model = tiny_model(tok, seed=0).to(dtype)
    model.requires_grad_(False)  # as under LoRA: the head takes no gradient
    return model, tok


def test_without_the_hook_generation_hands_the_head_a_strided_view():
    """What the fix is for (so the tests below are not vacuous): the prompt pass's input is not contiguous."""
    model, tok = frozen_tiny()
    seen = record_head_inputs(model)
    enc = tok(["1+2=", "13+4="], return_tensors="pt", padding=True)
    model.generate(**enc, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
    assert seen and not seen[0].is_contiguous()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_hooked_head_computes_the_same_logits_from_a_contiguous_input(dtype):
    model, _ = frozen_tiny(dtype)
    head = model.get_output_embeddings()
    hidden = torch.randn(3, 5, head.in_features, generator=torch.Generator().manual_seed(0)).to(dtype)
    view = hidden[:, -1:, :]
    before = head(view)  # the strided path
    assert _causal_lm.contiguous_head_input(model) is model
    seen = record_head_inputs(model)
    after = head(view)
    assert len(seen) == 1 and seen[0].is_contiguous() and torch.equal(seen[0], view)
    # the product by hand, in float32: both paths agree with it to the dtype's rounding
    by_hand = view.float() @ head.weight.float().t()
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    torch.testing.assert_close(after.float(), by_hand, **tol)
    torch.testing.assert_close(before.float(), by_hand, **tol)


def test_the_hook_is_added_once():
    model, _ = frozen_tiny()
    head = model.get_output_embeddings()
    n = len(head._forward_pre_hooks)
    _causal_lm.contiguous_head_input(model)
    _causal_lm.contiguous_head_input(model)
    assert len(head._forward_pre_hooks) == n + 1


def test_a_model_without_output_embeddings_is_left_alone():
    module = torch.nn.Linear(2, 2)
    assert _causal_lm.contiguous_head_input(module) is module
    assert not module._forward_pre_hooks


def test_evaluation_generation_gives_the_head_contiguous_inputs():
    model, tok = frozen_tiny()
    seen = record_head_inputs(model)
    texts = generate_completions(model, tok, ["1+2=", "13+4=", "7="], max_new_tokens=3, batch_size=3)
    assert len(texts) == 3
    assert len(seen) >= 1 and all(x.is_contiguous() for x in seen)


def test_diagnose_sampling_gives_the_head_contiguous_inputs():
    model, tok = frozen_tiny()
    seen = record_head_inputs(model)
    out = sample(model, tok, ["1+2=", "13+4="], k=2, max_new_tokens=3, temperature=0.7, top_p=1.0, seed=0,
                 batch_size=4, say=lambda _: None)
    assert len(out) == 4
    assert len(seen) >= 1 and all(x.is_contiguous() for x in seen)


def test_the_trainers_rollouts_give_the_head_contiguous_inputs(tmp_path):
    tok = char_tokenizer()
    args = ARCAGRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=4, max_completion_length=4,
        max_steps=1, learning_rate=1e-3, report_to=[], logging_steps=1, save_strategy="no", use_cpu=True, seed=0,
    )
    trainer = ARCAGRPOTrainer(
        model=tiny_model(tok, seed=0),
        reward_funcs=lambda completions, **kw: [float(len(c)) for c in completions],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["1+2=", "13+4=", "7=", "9+9="]}),
        processing_class=tok,
        peft_config=tiny_lora(),
    )
    seen = record_head_inputs(trainer.accelerator.unwrap_model(trainer.model))
    trainer.train()
    # the rollout's generate calls the head (the training forward reads its weight in TRL's fused kernel)
    assert len(seen) >= 1 and all(x.is_contiguous() for x in seen)
