"""Run by tests/test_distributed.py under `accelerate launch` with 2 CPU ranks: 1 step of tempo with every other
method as a shadow, 2 completions per rank and 4 per prompt, so each group spans both ranks. Each rank writes its
generation batch and the group methods' token outputs (its own slice) to <out>/group_rank<i>.pt. Then 1 step of
self_teacher (it runs the policy, never a shadow): each rank also scores the whole gathered batch as one process
would (every row local), recorded beside its own slice."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from accelerate.utils import gather_object  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import LoraConfig  # noqa: E402

from arca_rl import (  # noqa: E402
    ARCAGRPOConfig,
    ARCAGRPOTrainer,
    group_credit,  # noqa: E402
)
from tiny import char_tokenizer, tiny_model  # noqa: E402


def reward_len(completions, **kwargs):
    # varies with almost any change of the text, so the four completions of the group get different rewards
    return [(sum(map(ord, c)) % 7) / 7 for c in completions]


class Recording(ARCAGRPOTrainer):
    records: list[dict] = []
    teacher_records: list[dict] = []

    def _teacher_credit(self, batch, mask, start, all_ids, all_mask, rewards, groups):
        prompts = self._teacher_prompts
        own = super()._teacher_credit(batch, mask, start, all_ids, all_mask, rewards, groups)
        acc = self.accelerator
        whole = {  # the generation batch as one process holds it: prompts left-padded, completions right-padded
            "prompt_ids": acc.gather(acc.pad_across_processes(batch["prompt_ids"], dim=1, pad_index=0, pad_first=True)),
            "prompt_mask": acc.gather(
                acc.pad_across_processes(batch["prompt_mask"], dim=1, pad_index=0, pad_first=True)
            ),
            "completion_ids": acc.gather(acc.pad_across_processes(batch["completion_ids"], dim=1, pad_index=0)),
            "completion_mask": acc.gather(acc.pad_across_processes(batch["completion_mask"], dim=1, pad_index=0)),
        }
        self._teacher_prompts = gather_object(prompts)
        one = super()._teacher_credit(whole, whole["completion_mask"].bool(), 0, all_ids, all_mask, rewards, groups)
        self.teacher_records.append({"own": own, "whole": one, "mask": mask, "rewards_all": rewards})
        return own

    def _policy_entropies(self, batch):
        out = super()._policy_entropies(batch)
        self._last_entropies = out
        return out

    def _group_credit(self, batch, rewards_per_func):
        self._last_entropies = None
        out = super()._group_credit(batch, rewards_per_func)
        if self.args.credit == "self_teacher":  # recorded by _teacher_credit
            return out
        self.records.append(
            {
                "completion_ids": batch["completion_ids"],
                "mask": batch["completion_mask"],
                "advantages": batch["advantages"],
                "rewards_all": rewards_per_func[:, 0],  # gathered by TRL: the same on both ranks
                "entropies": self._last_entropies,
                **{k: v for k, v in out.items()},
            }
        )
        return out


def main(out: Path) -> None:
    tok = char_tokenizer()
    args = ARCAGRPOConfig(
        output_dir=str(out / "run"),
        per_device_train_batch_size=2,
        num_generations=4,
        max_completion_length=8,
        max_steps=1,
        learning_rate=5e-3,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        seed=5,
        temperature=1.5,
        credit="tempo",
        credit_shadow=True,
    )
    trainer = Recording(
        model=tiny_model(tok),
        reward_funcs=reward_len,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["1+2=", "13+4=", "7=", "25+11+3="]}),
        processing_class=tok,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    # every group method but vine (which samples, never a shadow) is scored
    others = {m for m in group_credit.registered_group_methods() if not group_credit.is_trainer_method(m)}
    assert others <= {"tempo", *trainer._shadow_signals}
    trainer.train()
    args.credit, args.credit_shadow, args.output_dir = "self_teacher", False, str(out / "teacher")
    teacher = Recording(
        model=tiny_model(tok),
        reward_funcs=reward_len,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["1+2=", "13+4=", "7=", "25+11+3="]}),
        processing_class=tok,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    teacher.train()
    rank = trainer.accelerator.process_index
    torch.save(
        {
            "world": trainer.accelerator.num_processes,
            "records": Recording.records,
            "teacher": Recording.teacher_records,
        },
        out / f"group_rank{rank}.pt",
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
