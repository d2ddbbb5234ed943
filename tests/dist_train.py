"""Run by tests/test_distributed.py under `accelerate launch --num_processes 2 --cpu`: 2 steps of arca with
credit_shadow; each rank writes the metrics it logged to <out>/rank<i>.json."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from datasets import Dataset  # noqa: E402
from peft import LoraConfig  # noqa: E402

from arca_rl import ARCAGRPOConfig, ARCAGRPOTrainer  # noqa: E402
from tiny import char_tokenizer, tiny_model  # noqa: E402


def reward_len(completions, **kwargs):
    return [len(c) / 8 + (0.5 if "1" in c else 0.0) for c in completions]


def main(out: Path) -> None:
    tok = char_tokenizer()
    args = ARCAGRPOConfig(
        output_dir=str(out / "run"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        max_steps=2,
        learning_rate=5e-3,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        seed=3,
        credit="arca",
        credit_shadow=True,
    )
    trainer = ARCAGRPOTrainer(
        model=tiny_model(tok),
        reward_funcs=reward_len,
        args=args,
        train_dataset=Dataset.from_dict(
            {"prompt": ["1+2=", "13+4=", "7=", "25+11+3=", "9+9=", "40-1=", "3*3=", "5="]}
        ),
        processing_class=tok,
        peft_config=LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
        ),
    )
    trainer.train()
    rank = trainer.accelerator.process_index
    logged = [
        {k: v for k, v in h.items() if k.startswith(("credit/", "shadow/"))}
        for h in trainer.state.log_history
        if "credit/gini" in h
    ]
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "world": trainer.accelerator.num_processes,
                "distributed_type": trainer.accelerator.distributed_type.value,
                "is_fsdp_enabled": trainer.is_fsdp_enabled,
                "logged": logged,
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
