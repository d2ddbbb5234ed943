"""What the machine has, for the defaults that depend on it (`training.bf16`, device checks).

torch is imported inside the functions, so that reading a config does not load it until it is needed.
"""

from __future__ import annotations

__all__ = ["accelerator_available", "bf16_available"]


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
