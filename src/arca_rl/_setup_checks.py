"""Checks of a training config against the setup it runs in, made where the config is validated (before any model
loads): what the sampled method (vine) cannot run under. Imports nothing of the package."""

from __future__ import annotations

import importlib.util
import json
import os
from typing import Any

__all__ = [
    "MAX_VINE_ROLLOUTS",
    "config_problem",
    "gradient_method_problem",
    "sampled_method_problem",
    "vine_token_bound",
]

MAX_VINE_ROLLOUTS = 10**8  # continuations sampled for one generation batch, as `arca diagnose --oracle` caps them


def _zero_stage(deepspeed: Any) -> int | None:
    """The ZeRO stage of this launch: accelerate's environment (`accelerate launch` with a DeepSpeed config), or the
    `deepspeed` training argument (a dict or a JSON file)."""
    env = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE")
    if env and env.strip().isdigit():
        return int(env)
    if isinstance(deepspeed, str) and os.path.isfile(deepspeed):
        try:
            with open(deepspeed, encoding="utf-8") as fh:
                deepspeed = json.load(fh)
        except (OSError, ValueError):
            return None
    if isinstance(deepspeed, dict):
        stage = (deepspeed.get("zero_optimization") or {}).get("stage")
        return stage if isinstance(stage, int) else None
    return None


def sampled_method_problem(credit: str, args: Any) -> tuple[str, str] | None:
    """(field, reason) when a sampled method (vine: continuations sampled from the policy during training) cannot run
    with these training arguments, else None."""
    if getattr(args, "use_vllm", False) and importlib.util.find_spec("vllm") is None:
        return "use_vllm", (
            f"is true but vLLM is not installed, and credit={credit!r} samples its continuations with the policy; "
            "set use_vllm: false (or install vllm)"
        )
    samples, length = getattr(args, "credit_vine_samples", 1), getattr(args, "max_completion_length", None) or 256
    rows = int(args.per_device_train_batch_size) * int(args.steps_per_generation or args.gradient_accumulation_steps)
    if rows * samples * length > MAX_VINE_ROLLOUTS:
        return "credit_vine_samples", (
            f"{samples} continuations of each of up to {length} prefixes of each of the {rows} completions a process "
            f"generates at once is {rows * samples * length:.3g} rollouts per generation batch, over the cap of "
            f"{MAX_VINE_ROLLOUTS:.0e} (as arca diagnose --oracle); lower credit_vine_samples or max_completion_length"
        )
    if _zero_stage(getattr(args, "deepspeed", None)) == 3:
        return "credit", (
            f"{credit!r} samples continuations from the policy, which DeepSpeed ZeRO-3 partitions over processes; "
            "use ZeRO-2, DDP or FSDP, or another credit"
        )
    return None


def _uses_fsdp(args: Any) -> bool:
    """Does this launch shard the model with FSDP: accelerate's environment or the `fsdp` training argument?"""
    if os.environ.get("ACCELERATE_USE_FSDP", "").strip().lower() in ("1", "true", "yes"):
        return True
    fsdp = getattr(args, "fsdp", None)
    return bool(fsdp) and fsdp not in ("", [], "no")


def gradient_method_problem(credit: str, args: Any) -> tuple[str, str] | None:
    """(field, reason) when a gradient method (grail, oar_g: the answer's gradient with respect to the input
    embeddings, taken outside TRL's loss) cannot run under this launch: DeepSpeed ZeRO-3 and FSDP, which shard the
    parameters that pass would need gathered outside their own forward and backward. Else None."""
    sharded = "DeepSpeed ZeRO-3" if _zero_stage(getattr(args, "deepspeed", None)) == 3 else None
    if sharded is None and _uses_fsdp(args):
        sharded = "FSDP"
    if sharded is None:
        return None
    return "credit", (
        f"{credit!r} takes the answer's gradient with respect to the input embeddings in a pass of its own, which "
        f"{sharded} cannot run outside its sharded forward and backward; use DDP or ZeRO-2, or another credit"
    )


def config_problem(args: Any, sampled: bool, gradient: bool = False) -> tuple[str, str] | None:
    """(field, reason) of the first setting these credit training arguments cannot run with, else None. `sampled`:
    the credit is a sampled method (vine); `gradient`: it takes an input-embedding gradient (grail, oar_g)."""
    grams = str(getattr(args, "credit_hicra_grams", "") or "")
    if getattr(args, "credit", None) == "hicra" and grams.strip() and not any(p.strip() for p in grams.split("|")):
        return "credit_hicra_grams", (
            f"{grams!r} holds no phrase (phrases are separated by '|'); give phrases such as 'let me|wait', or "
            "leave it empty for HICRA's top-entropy rule"
        )
    if gradient:
        return gradient_method_problem(args.credit, args)
    return sampled_method_problem(args.credit, args) if sampled else None


def vine_token_bound(samples: int, completions: int, length: int) -> int:
    """At most how many tokens vine samples for `completions` completions of at most `length` tokens: K continuations
    of each prefix and K fresh completions (K x T rollouts per completion), each of at most `length` tokens."""
    return completions * samples * length * length
