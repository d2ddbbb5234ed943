"""`trainer: sdpo`: TRL's own SDPO (`trl.experimental.sdpo.SDPOTrainer`, arXiv 2601.20802) beside GRPO and RLOO, from
the same CLI, task, model, LoRA, evaluation and run folder, so that `arca report` puts it in the same tables.

SDPO replaces the policy-gradient credit with its own self-distillation loss (the policy shown a successful sibling
is the teacher; `distillation_weight` blends it with GRPO's loss), so token credit has no place in it: only
`credit: uniform` is accepted, anything else is refused with one line. Every SDPO setting (`distillation_weight`,
`success_reward_threshold`, `dont_reprompt_on_self_success`, `reprompt_template`, ...) passes through `training:`
as any TRL field does. The `credit_*` logging settings are accepted (a shared config trains every trainer) but
SDPO logs no token credit. Imported only when `trainer: sdpo` is asked for (TRL marks the module experimental).
"""

from __future__ import annotations

import warnings

from ..trainer_config.sdpo import ARCASDPOConfig

with warnings.catch_warnings():  # TRL warns on every import of trl.experimental; choosing sdpo is the user's intent
    warnings.filterwarnings("ignore", message=".*trl.experimental.*")
    from trl.experimental.sdpo import SDPOTrainer

__all__ = ["ARCASDPOConfig", "ARCASDPOTrainer"]


class ARCASDPOTrainer(SDPOTrainer):
    """TRL's `SDPOTrainer`, unchanged but for its log: the batch's mean reward is also logged as `reward`, the key
    GRPO and RLOO log it under (what `arca report`'s average training reward and curves read)."""

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        rewards = [v for v in self._metrics[mode].get("self_distillation/reward_mean", []) if v == v]  # not NaN
        if rewards and "reward" not in self._metrics[mode]:
            self._metrics[mode]["reward"] = [sum(rewards) / len(rewards)]
        super().log(logs, start_time)
