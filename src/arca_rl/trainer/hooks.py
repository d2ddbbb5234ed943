"""Small pieces of the trainers (`arca_rl.trainer`): the reward-output check and the hook that records the last
hidden state at the positions that score the completion."""

from __future__ import annotations

import functools
import numbers
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


def _numeric_rewards(func: Any, name: str) -> Any:
    """`func` with its output checked: one number (or None) per completion, else a TypeError naming it."""

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        out = func(*args, **kwargs)
        if out is None or isinstance(out, numbers.Real | str) or (isinstance(out, torch.Tensor) and out.dim() == 0):
            raise TypeError(
                f"reward function {name!r} returned a bare {type(out).__name__} {out!r:.40}, not a list; a reward "
                "function must return a list with one float (or None) per completion"
            )
        for value in out if isinstance(out, list | tuple) else [out]:
            if value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool)):
                continue
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                continue
            raise TypeError(
                f"reward function {name!r} returned {type(value).__name__} {value!r:.40}; a reward function must "
                "return a list with one float (or None) per completion"
            )
        return out

    return checked


def _completion_positions(hidden: torch.Tensor, logits_to_keep: int) -> torch.Tensor:
    """The hidden states that score the last `logits_to_keep` tokens: TRL scores y_t with the logits of position
    t - 1 (its fused head shifts by one), so `h[:, -(C + 1):-1]`; for y_0 that is the last prompt position."""
    return hidden[:, -(logits_to_keep + 1) : -1]


@contextmanager
def _capture_last_hidden(
    backbone: nn.Module, logits_to_keep: int, store: list[torch.Tensor], clone: bool
) -> Iterator[list[torch.Tensor]]:
    """Record the backbone's last hidden state (what the LM head reads) at the positions that score the completion.

    `clone=True` copies the slice, so a stored state does not keep the prompt part of the pass alive. Gradient
    checkpointing recomputes decoder layers inside the backward pass, never the backbone's own forward, so the hook
    fires once per forward with or without it.
    """

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
        hidden = _completion_positions(hidden, logits_to_keep).detach()
        store.append(hidden.clone() if clone else hidden)

    handle = backbone.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()
