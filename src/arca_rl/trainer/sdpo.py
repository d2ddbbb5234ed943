"""`trainer: sdpo`: TRL's own SDPO (`trl.experimental.sdpo.SDPOTrainer`, arXiv 2601.20802) beside GRPO and RLOO, from
the same CLI, task, model, LoRA, evaluation and run folder, so that `arca report` puts it in the same tables.

SDPO replaces the policy-gradient credit with its own self-distillation loss (the policy shown a successful sibling
is the teacher; `distillation_weight` blends it with GRPO's loss), so token credit has no place in it: only
`credit: uniform` is accepted, anything else is refused with one line. Every SDPO setting (`distillation_weight`,
`success_reward_threshold`, `dont_reprompt_on_self_success`, `reprompt_template`, ...) passes through `training:`
as any TRL field does. The `credit_*` logging settings are accepted (a shared config trains every trainer) but
SDPO logs no token credit. Imported only when `trainer: sdpo` is asked for (TRL marks the module experimental).

Resume. Stock TRL 1.16 cannot resume SDPO: its EMA teacher under LoRA is a second adapter, `teacher`, saved in each
checkpoint's `teacher/` folder and loaded back by HF Trainer, after which TRL's callback tries to create it again
(`Adapter with name 'teacher' already exists`); the EMA's running weights live in that callback, not in the
checkpoint. Here the callback is given back the checkpoint's teacher as its EMA state; the EMA teacher of a full-
weight model (a model of its own, not in any checkpoint) is saved beside the RNG state (`TEACHER_FILE`) and read back
from it; TRL's generation buffer is kept as for GRPO (`resume._GenerationResume`). A resumed run is the run it
continues, bit for bit (tests/test_sdpo.py).
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import torch

from ..errors import ConfigError
from ..trainer_config.sdpo import ARCASDPOConfig
from .resume import _GenerationResume

with warnings.catch_warnings():  # TRL warns on every import of trl.experimental; choosing sdpo is the user's intent
    warnings.filterwarnings("ignore", message=".*trl.experimental.*")
    from trl.experimental.sdpo import SDPOTrainer
    from trl.experimental.sdpo.teacher_sync import PEFTAdapterEMACallback

__all__ = ["TEACHER_FILE", "ARCASDPOConfig", "ARCASDPOTrainer"]

logger = logging.getLogger(__name__)

TEACHER_FILE = "arca_sdpo_teacher.safetensors"  # the full-weight EMA teacher, in each checkpoint (main process)


class ARCASDPOTrainer(_GenerationResume, SDPOTrainer):
    """TRL's `SDPOTrainer`, resumable (see the module docstring), with two keys added to its log: the batch's mean
    reward as `reward` (the key GRPO and RLOO log it under, what `arca report`'s average training reward and curves
    read) and the share of completions whose self-distillation term is on (a successful sibling shown to their
    teacher; TRL's `self_distillation/reprompt_sample_fraction`) as `credit/teacher_fraction`, the key under which
    `credit: self_teacher` logs the same share."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sharded = self.is_deepspeed_enabled or self.is_fsdp_enabled
        if self._separate_ema_teacher() and sharded and self.args.save_strategy != "no":
            raise ConfigError(
                f"training.save_strategy: {self.args.save_strategy!r}: trainer: sdpo with full weights (lora.enabled: "
                "false) under DeepSpeed or FSDP keeps its EMA teacher sharded, which a checkpoint does not hold (a "
                "resume would restart it); use LoRA, training.teacher_model_kind: live or base, or save_strategy: no"
            )

    def _separate_ema_teacher(self) -> bool:
        """Is the teacher a model of its own, averaged by TRL's `SyncTeacherModelCallback` (EMA, no LoRA)?"""
        return self.args.teacher_model_kind == "ema" and self.teacher_model is not self.model

    def _ema_adapter_callback(self) -> PEFTAdapterEMACallback | None:
        return next((c for c in self.callback_handler.callbacks if isinstance(c, PEFTAdapterEMACallback)), None)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        self._restore_ema_adapter()

    def _restore_ema_adapter(self) -> None:
        """The checkpoint's `teacher` adapter (loaded by HF Trainer with the student's) becomes the EMA callback's
        state, as it was when the checkpoint was saved: the callback would otherwise add the adapter again (an
        error) and restart the average from zero."""
        from peft import get_peft_model_state_dict

        callback = self._ema_adapter_callback()
        if callback is None or callback._initialized:
            return
        model = self.accelerator.unwrap_model(self.model)
        name = callback.teacher_adapter_name
        if name not in getattr(model, "peft_config", {}):
            return  # no teacher saved: TRL starts it as in a fresh run
        student = model.active_adapter or "default"
        callback.teacher_adapter_config = model.peft_config[student]
        teacher = get_peft_model_state_dict(model, adapter_name=name)
        callback.shadow_weights = {k: v.detach().clone() for k, v in teacher.items()}
        callback._initialized = True

    def _save_rng_state(self, output_dir: str) -> None:
        super()._save_rng_state(output_dir)
        if self._separate_ema_teacher() and self.args.process_index == 0:
            from safetensors.torch import save_model  # tied weights (embeddings and head) are kept once

            save_model(self.accelerator.unwrap_model(self.teacher_model), os.path.join(output_dir, TEACHER_FILE))

    def _load_rng_state(self, checkpoint: str | None) -> None:
        super()._load_rng_state(checkpoint)
        if checkpoint is None or not self._separate_ema_teacher():
            return
        path = os.path.join(checkpoint, TEACHER_FILE)
        if not os.path.isfile(path):
            logger.warning("%s holds no EMA teacher (%s): the resumed run restarts it from the model's initial "
                           "weights, so it is not the run it continues", checkpoint, TEACHER_FILE)
            return
        from safetensors.torch import load_model

        with torch.no_grad():
            load_model(self.accelerator.unwrap_model(self.teacher_model), path, device=str(self.accelerator.device))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        metrics = self._metrics[mode]
        for source, key in (("self_distillation/reward_mean", "reward"),
                            ("self_distillation/reprompt_sample_fraction", "credit/teacher_fraction")):
            values = [v for v in metrics.get(source, []) if v == v]  # not NaN
            if values and key not in metrics:
                metrics[key] = [sum(values) / len(values)]
        super().log(logs, start_time)
