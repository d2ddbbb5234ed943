"""Build the tiny warm-started model shipped in ``src/arca_rl/assets/tiny/`` (``make tiny-model``).

Offline and deterministic: a character tokenizer built with ``tokenizers`` (``\\boxed{`` is one
token, so the first completion token decides the strategy), a 4-layer Qwen3-architecture model
(hidden 128, about 0.8M parameters) initialised from a fixed seed, and TRL's SFTTrainer with
completion-only loss on the arithmetic task's warm-start mixture (65% direct ``\\boxed{207}``
answers, 35% step-by-step solutions), all training problems drawn from the training split only.
A rebuild on the same machine with the same arguments gives the same weights.

Then it measures the result on held-out problems (greedy accuracy; at temperature 1, how often the
model picks each strategy and how accurate each is) and writes it all to ``build_info.json``.

    python scripts/build_tiny_model.py                 # the shipped build (25 min on one shared core)
    python scripts/build_tiny_model.py --steps 20 --out /tmp/tiny   # a quick smoke build

A task variant (`arithmetic.VARIANTS`, issue 34 §4) is warm-started from the shipped model: its tokenizer and
weights, a short SFT on the variant's completions (where the expected reward is decided moves; the problems, prompt
and reward stay the task's):

    python scripts/build_tiny_model.py --variant late --init src/arca_rl/assets/tiny --steps 300 --lr 3e-4 \
        --out runs/late
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from arca_rl.tasks import arithmetic

SPECIAL_TOKENS = {"eos": "<|endoftext|>", "pad": "<|pad|>", "unk": "<unk>"}
BOXED = "\\boxed{"
# A conversation in the model's own format: a user turn is "Q: <content>\n", an assistant turn
# "A: <content><eos>\n", a system turn its content and a newline; the generation prompt is "A: ". A lone
# user message "80+33+95=?" is then exactly the arithmetic prompt "Q: 80+33+95=?\nA: " the model was trained
# on, so conversational data sets work with it. Only characters of the vocabulary are used.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ message['content'] }}{{ '\\n' }}"
    "{%- elif message['role'] == 'user' -%}{{ 'Q: ' }}{{ message['content'] }}{{ '\\n' }}"
    "{%- else -%}{{ 'A: ' }}{{ message['content'] }}{{ eos_token }}{{ '\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'A: ' }}{%- endif -%}"
)
# Printable ASCII plus newline and tab, one token each.
CHARACTERS = [chr(code) for code in range(32, 127)] + ["\n", "\t"]


def build_tokenizer() -> Any:
    """A character-level fast tokenizer: special tokens, ``\\boxed{`` and printable ASCII."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab_list = list(SPECIAL_TOKENS.values()) + [BOXED] + CHARACTERS
    vocab = {token: index for index, token in enumerate(vocab_list)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk"]))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS.values()])
    # An added (non-special) token is matched in raw text before the per-character split.
    backend.add_tokens([AddedToken(BOXED, special=False, normalized=False, single_word=False)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=SPECIAL_TOKENS["eos"],
        pad_token=SPECIAL_TOKENS["pad"],
        unk_token=SPECIAL_TOKENS["unk"],
        model_max_length=512,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE  # the SFT data is plain text: the template does not touch the weights
    return tokenizer


def build_model(tokenizer: Any, seed: int) -> Any:
    """The untrained Qwen3-architecture model, initialised from `seed`."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=512,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen3ForCausalLM(config).to(torch.float32)
    generation = model.generation_config
    generation.eos_token_id = tokenizer.eos_token_id
    generation.pad_token_id = tokenizer.pad_token_id
    generation.bos_token_id = None
    generation.max_new_tokens = 48
    return model


def train(model: Any, tokenizer: Any, args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    """Warm-start `model` in place with TRL's SFTTrainer; return timing and loss figures."""
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    set_seed(args.seed)
    data = arithmetic.sft_dataset(
        args.steps * args.batch_size, direct_fraction=args.direct_fraction, seed=args.seed, variant=args.variant
    )
    config = SFTConfig(
        output_dir=workdir,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=args.warmup_steps,
        weight_decay=0.0,
        max_grad_norm=1.0,
        completion_only_loss=True,
        max_length=96 if args.variant != "tail" else 160,  # the tail variant's completions are longer
        bf16=False,
        fp16=False,
        use_cpu=True,
        gradient_checkpointing=False,
        seed=args.seed,
        data_seed=args.seed,
        dataloader_num_workers=0,
        logging_steps=max(1, min(50, args.steps // 10)),
        save_strategy="no",
        report_to="none",
        disable_tqdm=not sys.stderr.isatty(),
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer)
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"sft_seconds": round(seconds, 1), "final_loss": losses[-1] if losses else result.training_loss}


@torch.no_grad()
def evaluate(model: Any, tokenizer: Any, n: int, samples: int, seed: int, variant: str = "first") -> dict[str, Any]:
    """Held-out greedy accuracy, and the strategy mix and accuracies when sampling at temperature 1."""
    task = arithmetic.ArithmeticTask(n_test=n)
    test = task.test_dataset()
    prompts, solutions = test["prompt"], test["solution"]
    model.eval()

    def generate(do_sample: bool) -> list[str]:
        texts = []
        for start in range(0, len(prompts), 128):
            batch = tokenizer(prompts[start : start + 128], return_tensors="pt", padding=True)
            kwargs: dict[str, Any] = {"do_sample": do_sample, "max_new_tokens": 48 if variant != "tail" else 112}
            if do_sample:
                kwargs.update(temperature=1.0, top_p=1.0, top_k=0)
            out = model.generate(**batch, **kwargs)
            texts += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        return texts

    greedy = generate(do_sample=False)
    greedy_scores = [task.score(c, s) for c, s in zip(greedy, solutions)]

    def strategy(text: str) -> str:
        return arithmetic.variant_strategy(variant, text)

    torch.manual_seed(seed)
    counts = {"direct": [0, 0.0], "steps": [0, 0.0]}  # [how many, how many right]
    for _ in range(samples):
        for completion, solution in zip(generate(do_sample=True), solutions):
            entry = counts[strategy(completion)]
            entry[0] += 1
            entry[1] += task.score(completion, solution)
    total = sum(entry[0] for entry in counts.values())
    return {
        "eval_problems": len(prompts),
        "greedy_accuracy": round(sum(greedy_scores) / len(greedy_scores), 4),
        "greedy_steps_share": round(sum(strategy(c) == "steps" for c in greedy) / len(greedy), 4),
        "greedy_examples": [{"prompt": p, "completion": c} for p, c in zip(prompts[:3], greedy[:3])],
        "sampled": {
            "temperature": 1.0,
            "samples_per_problem": samples,
            "accuracy": round(sum(entry[1] for entry in counts.values()) / total, 4),
            "steps_share": round(counts["steps"][0] / total, 4),
            "direct_accuracy": round(counts["direct"][1] / max(1, counts["direct"][0]), 4),
            "steps_accuracy": round(counts["steps"][1] / max(1, counts["steps"][0]), 4),
        },
    }


def save(model: Any, tokenizer: Any, out: Path, info: dict[str, Any]) -> None:
    """Write float32 safetensors, the tokenizer and ``build_info.json`` into a fresh `out`."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model.config.use_cache = True  # the trainer turns the KV cache off while training
    model.to(torch.float32).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    for path in out.iterdir():
        path.chmod(0o644)  # safetensors writes 0600
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    info["size_bytes"] = size
    (out / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=arithmetic.TINY_MODEL_PATH, help="output folder (replaced)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1500, help="SFT optimizer steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup-steps", type=int, default=50)
    parser.add_argument("--direct-fraction", type=float, default=0.65, help="share of direct-answer targets")
    parser.add_argument("--variant", choices=list(arithmetic.VARIANTS), default="first",
                        help="the task variant's completions (default: the shipped task's)")
    parser.add_argument("--init", type=Path, default=None,
                        help="warm-start from this model folder (its tokenizer and weights) instead of a fresh model")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (fixed so a rebuild is bit-identical; results can differ with another value)",
    )
    parser.add_argument("--eval-n", type=int, default=500, help="held-out problems to measure on")
    parser.add_argument("--eval-samples", type=int, default=2, help="temperature-1 samples per held-out problem")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    if args.init is not None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.init)
        model = AutoModelForCausalLM.from_pretrained(args.init, dtype=torch.float32)
    else:
        tokenizer = build_tokenizer()
        model = build_model(tokenizer, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params:,} parameters, vocab {len(tokenizer)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tiny-sft-") as workdir:
        figures = train(model, tokenizer, args, workdir)
    print(f"SFT: {figures['sft_seconds']} s, final loss {figures['final_loss']:.4f}", flush=True)
    measured = evaluate(model, tokenizer, args.eval_n, args.eval_samples, args.seed, args.variant)
    import transformers
    import trl

    info: dict[str, Any] = {
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "warmup_steps": args.warmup_steps,
        "direct_fraction": args.direct_fraction,
        "variant": args.variant,
        "init": None if args.init is None else str(args.init),
        "parameters": n_params,
        "threads": args.threads,
        **figures,
        **measured,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
    }
    save(model, tokenizer, args.out, info)
    print(json.dumps(info, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
