"""What TRL keeps between a generation and its use, saved with each checkpoint and restored on resume.

TRL generates once per `steps_per_generation * num_iterations` micro-batches and buffers the split generation batch
(`_buffered_inputs`), counting micro-batches in `_step`. Neither is in a checkpoint: stock TRL 1.16, resumed from a
checkpoint inside a generation batch, starts `_step` at 0, samples new completions for the batch it had half used
and from then on generates off its schedule, so the resumed run is not the run it continues. A mixin of
`trainer._CreditRouting` saves both beside the RNG state (`_save_rng_state`, called for every process's checkpoint)
and puts them back where HF Trainer restores the RNG state (`_load_rng_state`), so a resumed run is the
uninterrupted one, wherever its checkpoint falls.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # the type checker reads the mixin as part of the TRL trainer it ends up in
    from trl import GRPOTrainer as _TRLTrainer
else:
    _TRLTrainer = object

logger = logging.getLogger(__name__)

BUFFER_FILE = "arca_generation_{}.pt"  # one per process: its own share of the generation batch


def buffer_file(checkpoint: str | os.PathLike[str], process_index: int) -> str:
    """The file of process `process_index`'s generation buffer in `checkpoint`."""
    return os.path.join(checkpoint, BUFFER_FILE.format(process_index))


class _GenerationResume(_TRLTrainer):
    """Saves and restores TRL's `_step` and `_buffered_inputs` with each checkpoint (see the module docstring)."""

    _step: int
    _buffered_inputs: list[dict[str, Any]] | None

    def _generate_every(self) -> int:
        return int(self.args.steps_per_generation) * int(self.num_iterations)

    def _save_rng_state(self, output_dir: str) -> None:
        super()._save_rng_state(output_dir)
        # inside a generation batch: the rest of it; at a boundary: nothing to keep but the count
        inside = self._step % self._generate_every() != 0
        state = {"step": self._step, "buffered_inputs": self._buffered_inputs if inside else None}
        torch.save(state, buffer_file(output_dir, self.args.process_index))

    def _load_rng_state(self, checkpoint: str | None) -> None:
        super()._load_rng_state(checkpoint)
        if checkpoint is None:
            return
        path = buffer_file(checkpoint, self.args.process_index)
        if not os.path.isfile(path):
            expected = self.state.global_step * self.args.gradient_accumulation_steps
            if expected % self._generate_every() != 0:
                logger.warning(
                    "%s has no saved generation batch (an older checkpoint, or another number of processes): "
                    "the run resumes inside a generation batch as stock TRL does, with new completions",
                    checkpoint,
                )
            self._step = expected
            return
        state = torch.load(path, map_location=self.accelerator.device, weights_only=True)
        self._step = int(state["step"])
        self._buffered_inputs = state["buffered_inputs"]
