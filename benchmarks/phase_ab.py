"""Per-phase timing of a uniform and an arca trainer in one process, taking turns (diagnosis of step-time gaps).

    python benchmarks/phase_ab.py SHAPE DEVICE COMPLETION_LEN BETA     # e.g. qwen3-1.7b cuda 128 0.04

Prints, per step, the total and the time inside TRL's generation, its scoring forwards, the base pass, the
credit computation, rewards and the loss (nested: `_compute_loss` includes the training forward).
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from step_cost import SHAPES, build_tokenizer  # noqa: E402


def make(signal: str, shape: dict, device: str, length: int, beta: float, sync):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from arca_rl import ARCAGRPOConfig, ARCAGRPOTrainer

    torch.manual_seed(0)
    cfg = Qwen3Config(
        vocab_size=shape["vocab"],
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        head_dim=shape["head_dim"],
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
    )
    with torch.device(device):
        model = Qwen3ForCausalLM(cfg).to(torch.bfloat16 if device == "cuda" else torch.float32)
    args = ARCAGRPOConfig(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=8,
        num_generations=8,
        max_completion_length=length,
        generation_kwargs={"min_new_tokens": length},
        report_to=[],
        use_cpu=device == "cpu",
        bf16=device == "cuda",
        credit=signal,
        beta=beta,
        save_strategy="no",
        loss_type="grpo",
    )
    prompt = " ".join(f"w{3 + i * 7}" for i in range(32))
    lora = LoraConfig(
        r=64,
        lora_alpha=128,
        init_lora_weights=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )
    trainer = ARCAGRPOTrainer(
        model=model,
        reward_funcs=lambda completions, **k: [float(i % 2) for i in range(len(completions))],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": [prompt] * 64}),
        processing_class=build_tokenizer(shape["vocab"]),
        peft_config=lora,
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    trainer.phase = {}
    for name in [
        "_generate",
        "_get_per_token_logps_and_entropies",
        "_base_pass",
        "_assign_token_advantages",
        "_calculate_rewards",
        "_compute_loss",
    ]:
        fn = getattr(trainer, name)

        def wrapped(*a, _fn=fn, _name=name, **k):
            sync()
            t0 = time.perf_counter()
            out = _fn(*a, **k)
            sync()
            trainer.phase[_name] = trainer.phase.get(_name, 0) + time.perf_counter() - t0
            return out

        setattr(trainer, name, wrapped)
    return trainer


def main() -> None:
    shape_name, device, length, beta = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    trainers = {s: make(s, SHAPES[shape_name], device, length, beta, sync) for s in ["uniform", "arca"]}
    batch = next(iter(trainers["uniform"].get_train_dataloader()))
    rows: dict[str, list[dict]] = {s: [] for s in trainers}
    for rep in range(4):
        for s, trainer in trainers.items():
            trainer.phase = {}
            sync()
            t0 = time.perf_counter()
            trainer.training_step(trainer.model, batch, None)
            sync()
            row = {
                "total": round(time.perf_counter() - t0, 4),
                **{k: round(v, 4) for k, v in trainer.phase.items()},
            }
            trainer.model.zero_grad(set_to_none=True)
            print(s, row, flush=True)
            if rep:  # the first round is warm-up
                rows[s].append(row)
    for s, rs in rows.items():
        print("median", s, {k: round(statistics.median(r.get(k, 0.0) for r in rs), 4) for k in rs[0]})


if __name__ == "__main__":
    main()
