"""GRAIL, OAR-G, DelTA and answer_only in the trainers (`arca_rl.model_credit`): once per generation batch, on this
process's rows, after TRL's rollout and before any training forward, as the other methods that read the model.

- grail, oar_g: the answer's gradient with respect to the input embeddings (`model_credit.embedding_scores`), on the
  policy as the training forward sees it: the adapter on, the model in the mode the training step put it in (its
  dropout active in training), gradient checkpointing as configured. Only the embeddings' gradient is asked for, so
  no parameter's `.grad` is written; the pass runs under a forked RNG, so its dropout and OAR-G's noise leave the
  training's random stream where it was; its tensors are freed when it returns, before the training forward.
- delta: one no-grad adapter-on forward over the batch (TRL's own log-prob helper) whose last hidden state the
  backbone hook records (as for ARCA's base pass).
- answer_only: no pass, only the answer's tokens.

The answer the task grades is `self.answer_span` (text -> `arca_rl.tasks.AnswerSpan` or None): the task's
`answer_span` when a reward function is a task's bound `reward` (`arca train` passes `task.reward`), else the last
``\\boxed{}`` (`arca_rl.tasks.boxed_span`, what the boxed tasks grade); set it to your own after building the trainer.
A mixin under `group._GroupCredit`, which calls `_model_credit` for these methods; `_CreditRouting` turns the output
into weights (A_it = A_i * w_it * T_i) as for every `"weights"` method.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from trl.models.utils import disable_gradient_checkpointing

from .. import group_credit
from ..model_credit import (
    answer_only_weights,
    answer_tokens,
    delta_weights,
    embedding_scores,
    grail_weights,
    oar_g_weights,
)
from ..tasks import boxed_span
from .hooks import _capture_last_hidden

if TYPE_CHECKING:  # the type checker reads the mixin as part of the TRL trainer it ends up in
    from trl import GRPOTrainer as _TRLTrainer
else:
    _TRLTrainer = object

logger = logging.getLogger(__name__)


def _task_answer_span(reward_funcs: Sequence[Any]) -> Callable[[str], Any] | None:
    """The `answer_span` of the task whose bound `reward` is one of `reward_funcs`, else None."""
    for func in reward_funcs:
        owner = getattr(getattr(func, "__wrapped__", func), "__self__", None)
        span = getattr(owner, "answer_span", None)
        if callable(span):
            return span
    return None


class _ModelCredit(_TRLTrainer):
    """The model-reading weights methods' pass, for `_GroupCredit` (listed after it and before the TRL trainer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        found = _task_answer_span(self.reward_funcs)
        #: text -> where its answer sits (`arca_rl.tasks.AnswerSpan`) or None; see the module docstring
        self.answer_span: Callable[[str], Any] = found if found is not None else boxed_span
        credit = self.args.credit
        if credit in group_credit.MODEL_METHODS and credit != "delta" and found is None:
            logger.info(
                "credit=%r: no reward function is a task's reward, so the answer is the last \\boxed{} of each "
                "completion; set trainer.answer_span to read another.", credit
            )
        if group_credit.is_gradient_method(credit) and (
            self.is_fsdp_enabled
            or (self.is_deepspeed_enabled and self.accelerator.state.deepspeed_plugin.zero_stage == 3)
        ):
            raise ValueError(
                f"credit={credit!r} takes the answer's gradient with respect to the input embeddings in a pass of its "
                "own, which a sharded model (FSDP, DeepSpeed ZeRO-3) cannot run outside its own forward and "
                "backward; use DDP or ZeRO-2, or another credit."
            )

    def _answer_tokens(self, batch: dict[str, Any], mask: Tensor) -> Any:
        tokenizer: Any = getattr(self.processing_class, "tokenizer", self.processing_class)

        def decode(ids: list[int]) -> str:
            return str(tokenizer.decode(ids, skip_special_tokens=True))

        return answer_tokens(decode, batch["completion_ids"], mask, self.answer_span)

    def _model_credit(self, name: str, batch: dict[str, Any], mask: Tensor) -> Tensor:
        """Method `name`'s unnormalised token weights omega [B, T] (this process's rows; `credit.token_weights` makes
        them weights), and its metrics: `credit/answer_found`, the share of completions whose answer was found."""
        kw = self.args.group_credit_kwargs(name)
        mode = "train" if self.model.training else "eval"
        advantages = batch["advantages"].float()
        if name == "delta":
            hidden, logps = self._policy_hidden(batch)
            return delta_weights(
                hidden, logps, mask, advantages, low=kw["delta_low"], high=kw["delta_high"], gate=kw["delta_gate"],
                steps=kw["delta_steps"],
            )  # fmt: skip
        answer = self._answer_tokens(batch, mask)
        found = answer.found.float().mean() if answer.found.numel() else torch.zeros(())
        self._metrics[mode]["credit/answer_found"].append(
            self.accelerator.gather(found.to(self.accelerator.device)).mean().item()
        )
        if name == "answer_only":
            return answer_only_weights(mask, answer, answer_weight=kw["answer_only_weight"])
        scores = self._embedding_scores(name, batch, answer.span, kw)
        if name == "grail":
            forced = kw["grail_answer_weight"]
            return grail_weights(
                scores, mask, answer, advantages, std=kw["grail_std"], low=kw["grail_min"], high=kw["grail_max"],
                answer_weight=forced if forced > 0 else None, wrong_only=kw["grail_wrong_only"],
            )  # fmt: skip
        return oar_g_weights(
            scores, mask, answer.found, tau=kw["oar_g_tau"], floor=kw["oar_g_floor"], boost=kw["oar_g_boost"]
        )

    def _isolated(self) -> AbstractContextManager[Any]:
        """A forked RNG: what a credit pass draws (dropout, OAR-G's noise) leaves the training's stream untouched."""
        device = self.accelerator.device
        return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])

    def _embedding_scores(self, name: str, batch: dict[str, Any], span: Tensor, kw: dict[str, Any]) -> Tensor:
        input_ids, attention_mask, width, rows = self._pass_inputs(batch)
        model = self.accelerator.unwrap_model(self.model)
        checkpointing = (self.args.gradient_checkpointing_kwargs or {}).get("use_reentrant") is True
        # reentrant checkpointing cannot give an input's gradient through torch.autograd.grad: off for this pass
        no_reentrant = (
            disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs)
            if checkpointing
            else nullcontext()
        )
        with self._isolated(), no_reentrant:
            return embedding_scores(
                model, input_ids, attention_mask, width, span, kind=name, temperature=self.temperature,
                noise_std=kw.get("oar_g_noise", 1e-3), rows=rows, autocast=self.accelerator.autocast,
            )  # fmt: skip

    @torch.no_grad()
    def _policy_hidden(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """(the last hidden state [B, T, D] that scores each completion token, log pi(y_t) [B, T] at the sampling
        temperature) from one no-grad adapter-on pass over the generation batch, as TRL scores it."""
        input_ids, attention_mask, width, rows = self._pass_inputs(batch)
        store: list[Tensor] = []
        no_checkpointing = disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs)
        backbone = self._backbone(self.model)
        with self._isolated(), no_checkpointing, _capture_last_hidden(backbone, width, store, clone=True):
            logps, _, _ = super()._get_per_token_logps_and_entropies(
                self.model, input_ids, attention_mask, width, batch_size=rows
            )
        return torch.cat(store, dim=0), logps.float()
