"""Group credit in the trainers: the group methods (`group_credit.py`: ktae, tempo, gtpo, hicra, or registered ones)
read every completion of a prompt, so they run once per generation batch, over the group gathered across
processes, and their per-token output travels with the batch to the micro-batches (as the base hidden state does).
A mixin of `trainer._CreditRouting`, apart so that the routing between TRL and `credit.py` reads on its own."""

from __future__ import annotations

from typing import Any

import torch
from trl.models.utils import disable_gradient_checkpointing

from .. import group_credit
from .model_credit import _ModelCredit
from .teacher import _TeacherCredit
from .vine import _VineCredit


class _GroupCredit(_TeacherCredit, _VineCredit, _ModelCredit):
    """The group methods' per-batch pass of `_CreditRouting` (listed after it and before the TRL trainer, so that
    `super()` here is TRL's own forward helper, not the routing's override); `vine` samples in `_VineCredit`, the
    self-teacher's pass is `_TeacherCredit`'s, grail / oar_g / delta / answer_only read the model in `_ModelCredit`."""

    _group_methods: list[str]  # the scored group methods (the active one and shadow ones; set by the routing)

    @torch.no_grad()
    def _group_credit(self, batch: dict[str, Any], rewards_per_func: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Every scored group method's token output over the whole generation batch, `credit_group/<name>` [B, T].

        A prompt's completions may sit on several processes, so the group's tensors are gathered first (as TRL
        gathers the rewards for its advantages): completion ids and masks padded to one width, TRL's sequence
        advantages, its rewards (weighted sum of the reward functions), and, for methods that read them, the
        sampling policy's entropies from one no-grad adapter-on pass. Rows `g * num_generations ..` of the
        gathered batch are one group, as in TRL. Each process keeps its own slice, which then travels with the
        batch to the micro-batches (and is reused by every `num_iterations` pass).
        """
        if rewards_per_func is None:
            raise RuntimeError(
                f"{type(self).__name__}: TRL's rollout computed no rewards for the group methods; this TRL version "
                "is not supported (arca-rl needs trl 1.16)."
            )
        acc = self.accelerator
        mask = batch["completion_mask"].bool()
        if "tool_mask" in batch:
            mask = mask & batch["tool_mask"].bool()
        B, T = mask.shape
        entropies = None
        if any("entropies" in group_credit.group_method_needs(m) for m in self._group_methods):
            entropies = self._policy_entropies(batch)
        local = {"completion_ids": batch["completion_ids"], "entropies": entropies}
        gathered = {
            k: None if v is None else acc.gather(acc.pad_across_processes(v, dim=1, pad_index=0))
            for k, v in local.items()
        }
        advantages = acc.gather(batch["advantages"].float())
        weights = self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        rewards = (rewards_per_func * weights).nansum(dim=1)
        rewards[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        mode = "train" if self.model.training else "eval"
        per_group = self.num_generations if mode == "train" else self.num_generations_eval
        groups = torch.arange(rewards.numel(), device=rewards.device) // per_group  # TRL's grouping
        # an unscorable completion (every reward None) counts as its group's mean: neither correct nor incorrect
        group_mean = torch.nan_to_num(
            torch.nanmean(rewards.view(-1, per_group), dim=1).repeat_interleave(per_group), nan=0.0
        )
        rewards = torch.where(torch.isnan(rewards), group_mean, rewards)
        start = acc.process_index * B
        all_mask = acc.gather(acc.pad_across_processes(mask.long(), dim=1, pad_index=0)).bool()
        out: dict[str, torch.Tensor] = {}
        for name in self._group_methods:
            if group_credit.is_sampled_method(name):  # vine: sampled on this process's own rows
                out[f"credit_group/{name}"] = self._vine_credit(
                    batch, mask, groups[start : start + B], rewards[start : start + B]
                )
                continue
            if name in group_credit.MODEL_METHODS:  # the model on this process's rows (gradient pass or hidden state)
                out[f"credit_group/{name}"] = self._model_credit(name, batch, mask)
                continue
            if name == "self_teacher":  # the policy shown a verified sibling: this process's rows, teachers over all
                out[f"credit_group/{name}"] = self._teacher_credit(
                    batch, mask, start, gathered["completion_ids"], all_mask, rewards, groups
                )
                continue
            full = group_credit.group_credit(
                name,
                mask=all_mask,
                groups=groups.to(all_mask.device),
                completion_ids=gathered["completion_ids"],
                rewards=rewards.float(),
                advantages=advantages,
                entropies=gathered["entropies"],
                **self._group_kwargs(name),
            )
            out[f"credit_group/{name}"] = full[start : start + B, :T]  # this process's rows, its own width
        return out

    def _group_kwargs(self, name: str) -> dict[str, Any]:
        """Group method `name`'s hyper-parameters from the config (HICRA's strategic grams as token ids)."""
        return self.args.group_credit_kwargs(name, getattr(self.processing_class, "tokenizer", self.processing_class))

    def _pass_inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """(prompt + completion ids, their attention mask, completion width, chunk size) for one no-grad pass over
        the generation batch, chunked as TRL chunks its own passes."""
        input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        mode = "train" if self.model.training else "eval"
        batch_size = (
            self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
        )
        return input_ids, attention_mask, batch["completion_ids"].size(1), batch_size

    @torch.no_grad()
    def _policy_entropies(self, batch: dict[str, Any]) -> torch.Tensor:
        """The sampling policy's predictive entropies [B, T] over the generation batch (one no-grad adapter-on
        pass, at the sampling temperature as TRL computes them)."""
        input_ids, attention_mask, logits_to_keep, batch_size = self._pass_inputs(batch)
        no_checkpointing = disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs)
        with no_checkpointing:
            _, entropies, _ = super()._get_per_token_logps_and_entropies(
                self.model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size, compute_entropy=True
            )
        return entropies.float()
