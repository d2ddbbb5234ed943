"""What ARCA costs on top of stock GRPO: loss phase, scoring work, whole step and peak memory, arca / uniform
(and any other `--signals`, e.g. `--signals uniform,self_teacher`, against uniform).

A uniform and an arca trainer (same random-weight Qwen3-architecture model, same LoRA init) live in one process
and take turns, so both see the same machine state: generation speed differs more between processes than
ARCA's whole overhead (seen on an H200, see docs/results.md, "What ARCA costs"). 8 completions forced to
`--completion-len` tokens.

    python benchmarks/step_cost.py                         # CPU: 6 layers, d = 256, LoRA r = 16, 128 tokens
    python benchmarks/step_cost.py --shape qwen3-1.7b --device cuda --dtype bfloat16 --lora-r 64
    python benchmarks/step_cost.py --signals uniform,self_teacher --betas 0   # the self-teacher's two no-grad passes
    python benchmarks/step_cost.py --signals uniform,grail,oar_g,delta,answer_only --betas 0   # model-reading credit

Figures (medians over --repeats):
- loss phase: TRL's compute_loss forward + backward on one micro-batch (weights come from this forward).
- scoring: loss phase + the adapter-off pass ARCA adds per micro-batch when beta = 0 (0 when beta > 0: the
  base hidden state is captured inside TRL's reference pass). This is the fair comparison with the paper's
  code, whose 1.71x loss-step figure includes its two extra passes.
- whole step: generation + scoring + forward + backward (trainer.training_step).
- grail, oar_g (their gradient pass to the input embeddings), delta (one no-grad pass for the hidden state),
  answer_only (no pass): in the rollout too, so in the whole step; the answer is each completion's last word.
- self_teacher: its two no-grad passes (student and teacher context, full logits for the KL) run in the rollout,
  so they are in the whole step, not the loss phase; `teacher_context_ratio` is how much longer the teacher's
  context is than the student's (teacher prompt + completion over prompt + completion, `credit/teacher_context_ratio`).
- peak memory: CUDA max_memory_allocated during a step, over what was allocated before it; on CPU, where
  two trainers in one process cannot be told apart, each configuration runs one step in its own subprocess
  and reports the growth of its peak RSS (coarser: allocator caching blurs it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {
    # layers, hidden, heads, kv heads, head_dim, intermediate, vocab
    "cpu-small": dict(layers=6, hidden=256, heads=4, kv_heads=2, head_dim=64, intermediate=768, vocab=4096),
    "qwen3-1.7b": dict(
        layers=28, hidden=2048, heads=16, kv_heads=8, head_dim=128, intermediate=6144, vocab=151936
    ),
}
TARGETS = {"loss_beta0": 1.35, "loss_beta0.04": 1.05, "step": 1.10, "memory": 1.10}


def build_tokenizer(vocab_size: int):
    """A word-level tokenizer with `vocab_size` entries (random weights sample any id; every id must decode)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    for i in range(3, vocab_size):
        vocab[f"w{i}"] = i
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    tok.padding_side = "left"
    return tok


def _proc_status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB -> MiB
    raise RuntimeError(f"{field} not in /proc/self/status")


def build_trainer(opts: argparse.Namespace, signal: str, beta: float):
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from arca_rl import ARCAGRPOConfig, ARCAGRPOTrainer

    shape = SHAPES[opts.shape]
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=shape["vocab"],
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        head_dim=shape["head_dim"],
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
    )
    with torch.device(opts.device):
        model = Qwen3ForCausalLM(config).to(getattr(torch, opts.dtype))
    prompt = " ".join(f"w{3 + (i * 7) % (shape['vocab'] - 3)}" for i in range(opts.prompt_len))
    n = opts.completions
    args = ARCAGRPOConfig(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=n,
        num_generations=n,
        gradient_accumulation_steps=1,
        max_completion_length=opts.completion_len,
        generation_kwargs={"min_new_tokens": opts.completion_len},
        max_steps=100,
        learning_rate=1e-5,
        loss_type="grpo",
        beta=beta,
        credit=signal,
        report_to=[],
        logging_steps=10_000,
        save_strategy="no",
        use_cpu=opts.device == "cpu",
        bf16=opts.dtype == "bfloat16",
        seed=0,
    )
    r = opts.lora_r
    peft_config = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        lora_dropout=0.0,
        init_lora_weights=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )

    def reward(completions, **kw):
        return [float(i % 2) for i in range(len(completions))]

    trainer = ARCAGRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": [prompt] * 64}),
        processing_class=build_tokenizer(shape["vocab"]),
        peft_config=peft_config,
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which we bypass to time phases
    trainer.answer_span = last_word  # random words hold no \boxed{}: the answer of grail / oar_g / answer_only
    return trainer


def last_word(text: str) -> tuple[int, int, int, int] | None:
    """The answer of the benchmark's random-word completions: their last word (so grail and oar_g run their pass)."""
    stripped = text.rstrip()
    start = stripped.rfind(" ") + 1
    return (start, len(stripped), start, len(stripped)) if stripped else None


def measure_beta(opts: argparse.Namespace, beta: float) -> list[dict]:
    """Both trainers in this process, taking turns; returns one result row per signal."""
    import torch

    cuda = opts.device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def timed(fn) -> float:
        sync()
        t = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t

    signals = opts.signals.split(",")
    trainers = {s: build_trainer(opts, s, beta) for s in signals}
    batch = next(iter(trainers[signals[0]].get_train_dataloader()))
    times: dict[str, dict[str, list[float]]] = {
        s: {"step": [], "loss": [], "base": [], "mem": []} for s in signals
    }

    def step(trainer):
        trainer.training_step(trainer.model, batch, None)
        trainer.model.zero_grad(set_to_none=True)

    for i in range(opts.repeats + 1):  # whole GRPO step; round 0 is warm-up
        for s, trainer in trainers.items():
            if cuda:
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
            t = timed(lambda trainer=trainer: step(trainer))
            if i > 0:
                times[s]["step"].append(t)
                if cuda:
                    times[s]["mem"].append((torch.cuda.max_memory_allocated() - before) / 2**20)
    fixed = {
        s: tr._prepare_inputs(batch) for s, tr in trainers.items()
    }  # one micro-batch each, for the loss phase
    for i in range(opts.repeats + 1):
        for s, trainer in trainers.items():

            def loss_phase(trainer=trainer, inputs=fixed[s]):
                loss = trainer.compute_loss(trainer.model, inputs)
                trainer.accelerator.backward(loss)
                trainer.model.zero_grad(set_to_none=True)

            t = timed(loss_phase)
            tb = (
                timed(lambda trainer=trainer, s=s: trainer._base_pass(fixed[s]))
                if beta == 0.0 and trainer._wants_base
                else 0.0
            )
            if i > 0:
                times[s]["loss"].append(t)
                times[s]["base"].append(tb)
    rows = []
    for s in signals:
        teacher_ratio = trainers[s]._metrics["train"].get("credit/teacher_context_ratio")
        found = trainers[s]._metrics["train"].get("credit/answer_found")
        rows.append(
            {
                "signal": s,
                "answer_found": statistics.mean(found) if found else None,
                "teacher_context_ratio": statistics.mean(teacher_ratio) if teacher_ratio else None,
                "beta": beta,
                "completion_tokens": int(fixed[s]["completion_mask"].sum()),
                "loss_s": statistics.median(times[s]["loss"]),
                "base_pass_s": statistics.median(times[s]["base"]),
                "step_s": statistics.median(times[s]["step"]),
                "peak_mem_mb": max(times[s]["mem"]) if cuda else None,
            }
        )
    return rows


def cpu_step_memory(opts: argparse.Namespace, signal: str, beta: float) -> float:
    """Peak RSS (MiB) of two GRPO steps above the process's size before them (Linux: the peak is reset first)."""
    trainer = build_trainer(opts, signal, beta)
    batch = next(iter(trainer.get_train_dataloader()))
    before = _proc_status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (the peak RSS) to the current RSS
    for _ in range(2):
        trainer.training_step(trainer.model, batch, None)
        trainer.model.zero_grad(set_to_none=True)
    return _proc_status_mb("VmHWM") - before


def child_memory(opts: argparse.Namespace, signal: str, beta: float) -> float:
    cmd = [sys.executable, __file__, "--signal", signal, "--beta", str(beta)]
    for key in (
        "shape",
        "device",
        "dtype",
        "lora_r",
        "completions",
        "completion_len",
        "prompt_len",
        "repeats",
    ):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(opts, key))]
    out = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"memory probe failed ({signal}, beta={beta}):\n{out.stderr[-3000:]}")
    return json.loads(line[len("RESULT ") :])["peak_mem_mb"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default="cpu-small")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--completions", type=int, default=8)
    p.add_argument("--completion-len", type=int, default=128)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--signals", default="uniform,arca")
    p.add_argument("--betas", default="0,0.04")
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: stable figures on a shared CPU)"
    )
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--signal", help=argparse.SUPPRESS)  # child mode
    p.add_argument("--beta", type=float, help=argparse.SUPPRESS)
    opts = p.parse_args()
    if opts.device == "cpu" and opts.threads > 0:
        import torch

        torch.set_num_threads(opts.threads)
    if opts.signal is not None:  # child: CPU peak-memory probe of one configuration
        print(
            "RESULT " + json.dumps({"peak_mem_mb": cpu_step_memory(opts, opts.signal, opts.beta)}), flush=True
        )
        return

    results = []
    for beta in [float(b) for b in opts.betas.split(",")]:
        rows = measure_beta(opts, beta)
        for row in rows:
            if row["peak_mem_mb"] is None:
                row["peak_mem_mb"] = child_memory(opts, row["signal"], beta)
            print(f"  measured {row['signal']:8s} beta={beta:<5}: {row}", file=sys.stderr, flush=True)
        results += rows

    by = {(r["signal"], r["beta"]): r for r in results}
    print(
        f"\nstep cost, shape={opts.shape} device={opts.device} dtype={opts.dtype} LoRA r={opts.lora_r}, "
        f"{opts.completions} completions x {opts.completion_len} tokens, median of {opts.repeats}"
    )
    print(f"{'beta':>5} {'signal':>11} {'loss ms':>9} {'base ms':>9} {'step ms':>9} {'peak MB':>9}")
    for r in results:
        print(
            f"{r['beta']:>5} {r['signal']:>11} {1e3 * r['loss_s']:9.1f} {1e3 * r['base_pass_s']:9.1f} "
            f"{1e3 * r['step_s']:9.1f} {r['peak_mem_mb']:9.1f}"
        )
    summary: dict[str, dict[str, float]] = {}
    for name, beta in [(r["signal"], r["beta"]) for r in results if r["signal"] != "uniform"]:
        a, u = by.get((name, beta)), by.get(("uniform", beta))
        if not (a and u):
            continue
        print(f"\n{name} / uniform:")
        ratios = {
            "loss": a["loss_s"] / u["loss_s"],
            "scoring": (a["loss_s"] + a["base_pass_s"]) / (u["loss_s"] + u["base_pass_s"]),
            "step": a["step_s"] / u["step_s"],
            "memory": a["peak_mem_mb"] / max(u["peak_mem_mb"], 1e-9),
        }
        summary[str(beta) if name == "arca" else f"{name} {beta}"] = ratios  # arca's keys as before
        loss_target = TARGETS["loss_beta0"] if beta == 0 else TARGETS["loss_beta0.04"]

        def mark(v: float, t: float) -> str:
            return f"{v:.3f} ({'ok' if v <= t else 'OVER'} <= {t})"

        print(
            f"  beta={beta}: loss phase {mark(ratios['loss'], loss_target)}, "
            f"scoring incl. base pass {mark(ratios['scoring'], loss_target)}, "
            f"whole step {mark(ratios['step'], TARGETS['step'])}, peak memory "
            f"{mark(ratios['memory'], TARGETS['memory'])}"
        )
        if a.get("teacher_context_ratio"):
            print(f"  teacher context / student context: {a['teacher_context_ratio']:.2f}x tokens")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(
                {
                    "options": {k: v for k, v in vars(opts).items() if k not in ("signal", "beta")},
                    "results": results,
                    "ratios": summary,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
