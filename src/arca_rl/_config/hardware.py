"""What the machine has, for the defaults that depend on it (`training.bf16`, device checks, CPU ranks).

torch is imported inside the functions, so that reading a config does not load it until it is needed.
"""

from __future__ import annotations

__all__ = ["accelerator_available", "bf16_available", "process_defaults"]


def bf16_available() -> bool:
    """A CUDA device with bf16 support is present."""
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def accelerator_available() -> bool:
    """A CUDA or XPU device is present."""
    import torch

    if torch.cuda.is_available():
        return True
    xpu = getattr(torch, "xpu", None)
    return bool(xpu is not None and xpu.is_available())


def process_defaults(kwargs: dict) -> None:
    """Fill in (in place) what the process layout needs and the training settings leave unset.

    `ddp_backend` only means something with several processes; in a single one (`arca eval`, `--dry-run`, a plain
    `arca train`) transformers would try to join a process group that does not exist, so it is dropped. Launched with
    several processes (`WORLD_SIZE` > 1) on a host without CUDA, the ranks talk over gloo (the backend for CPU
    tensors), and data parallel (no DeepSpeed, no FSDP) runs with `use_cpu`, else accelerate does not connect them.
    """
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        kwargs.pop("ddp_backend", None)
        return
    if accelerator_available():
        return
    kwargs.setdefault("ddp_backend", "gloo")
    sharded = any(os.environ.get(f"ACCELERATE_USE_{kind}", "").lower() == "true" for kind in ("DEEPSPEED", "FSDP"))
    if not sharded:
        kwargs.setdefault("use_cpu", True)
