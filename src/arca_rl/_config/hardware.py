"""What the machine has, for the defaults that depend on it (`training.bf16`, device checks, CPU ranks).

torch is imported inside the functions, so that reading a config does not load it until it is needed.
"""

from __future__ import annotations

__all__ = ["accelerator_available", "bf16_available", "process_defaults", "shard_fsdp_on_cpu_ranks"]


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
    tensors), and data parallel (no DeepSpeed, no FSDP) runs with `use_cpu`, else accelerate does not connect them;
    under FSDP, accelerate is made to shard (`shard_fsdp_on_cpu_ranks`).
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
    shard_fsdp_on_cpu_ranks()


def shard_fsdp_on_cpu_ranks() -> bool:
    """Make accelerate honour an FSDP launch on CPU ranks; True when it will (now or already).

    accelerate (1.15, 1.16) picks `DistributedType.FSDP` only when its processes sit on an accelerator (CUDA, XPU,
    ...); on a host without one, `accelerate launch` with an FSDP config leaves every rank unsharded, and the ranks
    then disagree on the data (rank 1 fails with an IndexError in the first step). Launched that way (several
    processes, `ACCELERATE_USE_FSDP=true`, no CUDA/XPU), this wraps `AcceleratorState.__init__` of this process so
    that, given an FSDP plugin, the state it builds says FSDP and keeps the plugin: torch's `fully_shard` then
    shards for real, over gloo. Anywhere else it changes nothing. Idempotent; call it before the trainer is built.
    """
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or os.environ.get("ACCELERATE_USE_FSDP", "").lower() != "true":
        return False
    if accelerator_available():
        return True  # accelerate selects FSDP itself
    from accelerate import state
    from accelerate.utils import DistributedType

    init = state.AcceleratorState.__init__
    if getattr(init, "_arca_fsdp_on_cpu", False):
        return True

    def _init(self: state.AcceleratorState, *args: object, fsdp_plugin: object = None, **kwargs: object) -> None:
        init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.num_processes > 1 and self.distributed_type in (
            DistributedType.NO,
            DistributedType.MULTI_CPU,
        ):
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin
            state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    _init._arca_fsdp_on_cpu = True  # type: ignore[attr-defined]
    state.AcceleratorState.__init__ = _init
    return True
