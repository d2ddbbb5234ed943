"""Test harness only (not part of arca-rl): make accelerate shard with FSDP on CPU ranks.

accelerate 1.15 switches to `DistributedType.FSDP` only when the process group sits on an accelerator (CUDA, XPU,
...); on a host without one, an FSDP config silently runs unsharded (and rank 1 crashes). tests/test_distributed.py
puts this folder on the PYTHONPATH of FSDP launches, so every rank imports this file at start-up; it wraps
`AcceleratorState.__init__` so that, given an FSDP plugin and more than one process, the state says FSDP and keeps
the plugin.
"""

from accelerate import state as _state
from accelerate.utils import DistributedType

_original_init = _state.AcceleratorState.__init__


def _init(self, *args, fsdp_plugin=None, **kwargs):
    _original_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    unsharded = self.distributed_type in (DistributedType.NO, DistributedType.MULTI_CPU)
    if fsdp_plugin is not None and self.num_processes > 1 and unsharded:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin
        _state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP


_state.AcceleratorState.__init__ = _init
