"""ARCA's residual in bf16: how far it is from float32, and its noise floor (for `credit_min_salience`).

ARCA's salience is alpha_t = ||h_adapted_t - h_base_t||_2, a difference of two forward passes. In bf16 each
hidden state carries a rounding error of about 2^-8 of its size, so when the adapter is small the difference
is rounding, not the adapter. This script measures it on SmolLM2-135M-Instruct with a trained ARCA adapter
from the smollm2-rg2 study, scaled by `s` (the LoRA update times s: s = 1 is the trained adapter, small s
an adapter early in training):

- the residual's median token value and median row peak, float32 and bf16, for each scale;
- bf16 against float32 at the same scale: the median relative error per token and the total variation
  distance between the two rows of ARCA weights (power 2, as the study trains);
- the floor: the bf16 row peak at the smallest scales, where float32's residual is far below it.

    python benchmarks/bf16_salience_floor.py --adapter runs/rg2/arca-s0/adapter \\
        --out benchmarks/results/bf16_salience_floor.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from arca_rl._causal_lm import render_prompt
from arca_rl._run.evaluation import load_model_for_eval
from arca_rl.credit import residual_norm, token_weights
from arca_rl.tasks import get_task

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
SCALES = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def lora_scalings(model: torch.nn.Module) -> dict[str, float]:
    """Each LoRA layer's scaling (alpha / r) of the `default` adapter, by module name: the scale-1 values."""
    return {
        n: m.scaling["default"]
        for n, m in model.named_modules()
        if isinstance(getattr(m, "scaling", None), dict) and "default" in m.scaling
    }


def set_lora_scale(model: torch.nn.Module, s: float, base: dict[str, float]) -> None:
    """Multiply every LoRA layer's scaling (alpha / r) by s, from the values in `base`."""
    for name, module in model.named_modules():
        if name in base:
            module.scaling["default"] = base[name] * s


def residuals(
    model, ids: torch.Tensor, attn: torch.Tensor, n_prompt: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, ||h_base||) [B, T] over the completion positions: ||h_adapted - h_base|| of the backbone's last
    hidden state, and the size of the base hidden state it is measured against."""
    backbone = model.get_base_model().model
    with torch.no_grad():
        h = backbone(input_ids=ids, attention_mask=attn).last_hidden_state[:, n_prompt:]
        with model.disable_adapter():
            hb = backbone(input_ids=ids, attention_mask=attn).last_hidden_state[:, n_prompt:]
    return residual_norm(h, hb), hb.float().norm(dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--adapter", default="runs/rg2/arca-s0/adapter")
    parser.add_argument("--model", default=str(Path.home() / ".cache/arca-rl/models/smollm2-135m-instruct"))
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--per-prompt", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()

    task = get_task(
        "reasoning_gym",
        dataset="basic_arithmetic",
        seed=0,
        n_test=200,
        n_train=1000,
        system=SYSTEM,
        config={"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
        answer="last_number",
    )
    prompts = list(task.train_dataset().select(range(args.prompts))["prompt"])

    # rollouts from the float32 adapted model, sampled as the study samples them (temperature 0.7)
    model, tok = load_model_for_eval(args.model, args.adapter, dtype="float32")
    tok.padding_side = "left"
    texts = [render_prompt(tok, p) for p in prompts]
    enc = tok([t for t in texts for _ in range(args.per_prompt)], return_tensors="pt", padding=True)
    torch.manual_seed(0)
    with torch.no_grad():
        seqs = model.generate(
            **enc,
            do_sample=True,
            temperature=0.7,
            max_new_tokens=args.max_new_tokens,
            pad_token_id=tok.pad_token_id,
        )
    n_prompt = enc["input_ids"].shape[1]
    completion = seqs[:, n_prompt:]
    # real completion tokens: up to and including the first EOS
    is_eos = completion == tok.eos_token_id
    after = (is_eos.cumsum(-1) - is_eos.long()) > 0
    mask = (~after).float()
    attn = torch.cat([enc["attention_mask"], mask.long()], dim=1)

    results: dict[str, dict[str, dict[str, float]]] = {}
    alphas: dict[tuple[str, float], torch.Tensor] = {}
    for dtype in ("float32", "bfloat16"):
        if dtype != "float32":
            model, _ = load_model_for_eval(args.model, args.adapter, dtype=dtype)
        base = lora_scalings(model)
        results[dtype] = {}
        for s in SCALES:
            set_lora_scale(model, s, base)
            a, h_norm = residuals(model, seqs, attn, n_prompt)
            alphas[(dtype, s)] = a
            real = a[mask > 0]
            peaks = torch.where(mask > 0, a, -1.0).amax(-1)
            results[dtype][str(s)] = {
                "median_token": float(real.median()),
                "median_row_peak": float(peaks.median()),
                "max_row_peak": float(peaks.max()),
                "median_base_hidden_norm": float(h_norm[mask > 0].median()),
            }
            print(
                f"{dtype:9s} scale {s:g}: median token {float(real.median()):.3g}, "
                f"median row peak {float(peaks.median()):.3g}",
                flush=True,
            )

    compare = {}
    for s in SCALES[1:]:
        a32, a16 = alphas[("float32", s)], alphas[("bfloat16", s)]
        real = mask > 0
        rel = ((a16 - a32).abs() / a32.clamp_min(1e-30))[real]
        w32, w16 = token_weights(a32, mask, power=2.0), token_weights(a16, mask, power=2.0)
        tv = 0.5 * (w32 - w16).abs().sum(-1)  # total variation between the two weight rows, in [0, 1]
        top_same = (
            torch.where(real, w32, -1.0).argmax(-1) == torch.where(real, w16, -1.0).argmax(-1)
        ).float()
        compare[str(s)] = {
            "median_relative_error": float(rel.median()),
            "median_weight_tv": float(tv.median()),
            "top_token_agreement": float(top_same.mean()),
        }
        print(
            f"scale {s:g}: bf16 vs float32 median relative error {float(rel.median()):.3g}, "
            f"weight TV median {float(tv.median()):.3f}, same top token {float(top_same.mean()):.2f}",
            flush=True,
        )

    summary = {
        "model": "SmolLM2-135M-Instruct",
        "adapter": args.adapter,
        "rows": int(seqs.shape[0]),
        "completion_tokens": int(mask.sum()),
        "scales": list(SCALES),
        "residual": results,
        "bf16_vs_float32": compare,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
