"""Run by tests/test_distributed.py on two CPU ranks under `accelerate launch --config_file <file>` (DDP, DeepSpeed
ZeRO-2/3 or FSDP2: the file decides): trains each run given on the command line for 2 steps, one after the other in
this one launch, and writes what the credit computed to <out>/<run>/rank<i>.pt for the test to compare across
backends.

A run is `trainer:credit:beta[:resume]`, e.g. `grpo:arca:0.04`. Per rank and micro-batch it records the active
signal's salience, the token weights, the token advantages (GRPO: `A_i * w_it * T_i` as TRL's loss reads them; RLOO:
the same product, and the credit-weighted per-token log-probs it sums), the completions; then the logged credit
metrics and the full (gathered) LoRA parameters after the last step. `:resume` also saves a checkpoint per step, trains
a second trainer resumed from checkpoint-1 and records its parameters and the adapter file of checkpoint-2.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from arca_rl import ARCAGRPOConfig, ARCAGRPOTrainer, ARCARLOOConfig, ARCARLOOTrainer, credit  # noqa: E402
from arca_rl._config.hardware import shard_fsdp_on_cpu_ranks  # noqa: E402
from tiny import char_tokenizer, tiny_lora, tiny_model  # noqa: E402

SHARDED = any(os.environ.get(f"ACCELERATE_USE_{kind}") == "true" for kind in ("DEEPSPEED", "FSDP"))
PROMPTS = ["1+2=", "13+4=", "7=", "25+11+3=", "9+9=", "40-1=", "3*3=", "5="]
RECORD: dict[str, list[torch.Tensor]] = {}


def record(key: str, value: torch.Tensor) -> None:
    RECORD.setdefault(key, []).append(value.detach().float().cpu().clone())


_salience = credit.salience


def _recording_salience(name, **kwargs):
    out = _salience(name, **kwargs)
    record("salience", out)
    return out


credit.salience = _recording_salience  # the trainer calls `credit.salience`: record what it returns


def reward_len(completions, **kwargs):
    return [len(c) / 8 + (0.5 if "1" in c else 0.0) for c in completions]


class _Recording:
    def _token_weights(self, inputs, **kwargs):
        weights, mask = super()._token_weights(inputs, **kwargs)
        record("weights", weights)
        record("mask", mask)
        record("completion_ids", inputs["completion_ids"])
        return weights, mask

    def _apply_credit(self, inputs, logps, weights, mask):
        advantages = inputs["advantages"]
        out = super()._apply_credit(inputs, logps, weights, mask)
        if isinstance(self, ARCARLOOTrainer):  # RLOO keeps (B,) advantages; its credit is in the weighted log-probs
            record("token_advantages", advantages[:, None] * weights * mask.sum(1, keepdim=True))
            record("weighted_logps", out)
            record("weighted_old_logps", inputs["old_logps"])
        else:
            record("token_advantages", inputs["advantages"])
        return out


class GRPO(_Recording, ARCAGRPOTrainer):
    pass


class RLOO(_Recording, ARCARLOOTrainer):
    pass


def build(kind: str, signal: str, beta: float, output_dir: Path, save: bool):
    config_class, trainer_class = {"grpo": (ARCAGRPOConfig, GRPO), "rloo": (ARCARLOOConfig, RLOO)}[kind]
    args = config_class(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        max_steps=2,
        learning_rate=5e-3,
        beta=beta,
        report_to=[],
        logging_steps=1,
        save_strategy="steps" if save else "no",
        save_steps=1,
        seed=3,
        credit=signal,
        # CPU ranks: DDP needs use_cpu; DeepSpeed and FSDP need it off and the gloo backend named (else accelerate
        # leaves the ranks unconnected: world size 1 on each)
        use_cpu=not SHARDED,
        ddp_backend="gloo",
        dataloader_num_workers=0,
        bf16=False,
    )
    tok = char_tokenizer()
    return trainer_class(
        model=tiny_model(tok),  # seeds torch: every run starts from the same weights and LoRA init
        reward_funcs=reward_len,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tok,
        peft_config=tiny_lora(),
    )


def lora_state(trainer) -> dict[str, torch.Tensor]:
    """The full LoRA weights (gathered from the shards under ZeRO-3 / FSDP2); complete on rank 0."""
    wrapped = trainer.deepspeed if trainer.is_deepspeed_enabled else trainer.model
    state = trainer.accelerator.get_state_dict(wrapped) or {}  # ZeRO-3 gathers onto rank 0 only
    return {k: v.detach().float().cpu().clone() for k, v in state.items() if "lora_" in k}


def sharding(trainer) -> dict:
    """How a LoRA weight is held on this rank: its local element count against the full one."""
    name, param = next((n, p) for n, p in trainer.model.named_parameters() if "lora_A" in n)
    if hasattr(param, "ds_numel"):  # DeepSpeed ZeRO-3: the rank's partition
        return {"local": param.ds_tensor.numel(), "full": param.ds_numel, "kind": "zero3"}
    if hasattr(param, "to_local"):  # FSDP2: a DTensor
        return {"local": param.to_local().numel(), "full": param.numel(), "kind": "dtensor"}
    return {"local": param.numel(), "full": param.numel(), "kind": "plain"}


def run(spec: str, out: Path) -> None:
    kind, signal, beta, *extra = spec.split(":")
    resume = extra == ["resume"]
    folder = out / spec.replace(":", "_")
    RECORD.clear()
    trainer = build(kind, signal, float(beta), folder / "run", save=resume)
    trainer.train()
    acc = trainer.accelerator
    result = {k: torch.stack(v) for k, v in RECORD.items()}
    result["lora"] = lora_state(trainer)
    meta = {
        "world": acc.num_processes,
        "distributed_type": acc.distributed_type.value,
        "is_deepspeed_enabled": trainer.is_deepspeed_enabled,
        "is_fsdp_enabled": trainer.is_fsdp_enabled,
        "zero_stage": acc.state.deepspeed_plugin.zero_stage if trainer.is_deepspeed_enabled else None,
        "sharding": sharding(trainer),
        "wrapped": type(trainer.model_wrapped).__name__,
        "logged": [
            {k: v for k, v in h.items() if k.startswith("credit/")}
            for h in trainer.state.log_history
            if "credit/gini" in h
        ],
    }
    if resume:
        checkpoints = folder / "run"
        if acc.is_main_process:
            saved = load_file(str(checkpoints / "checkpoint-2" / "adapter_model.safetensors"))
            result["checkpoint2_adapter"] = {k: v.float() for k, v in saved.items()}
        del trainer
        again = build(kind, signal, float(beta), folder / "resumed", save=False)
        again.train(resume_from_checkpoint=str(checkpoints / "checkpoint-1"))
        result["resumed_lora"] = lora_state(again)
        meta["resumed_step"] = again.state.global_step
    rank = acc.process_index
    torch.save(result, folder / f"rank{rank}.pt")
    (folder / f"rank{rank}.json").write_text(json.dumps(meta))


if __name__ == "__main__":
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    # the Python API leaves accelerate as it is: under an FSDP launch on CPU ranks it would not shard; `arca train`
    # calls this itself
    shard_fsdp_on_cpu_ranks()
    for spec in sys.argv[2:]:
        run(spec, out)
