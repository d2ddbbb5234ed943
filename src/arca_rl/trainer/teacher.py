"""The self-teacher in the trainers (`credit: self_teacher`, `arca_rl.self_teacher`): once per generation batch, each
completion on this process whose group holds a verified sibling gets a teacher context (the prompt with that
sibling shown as an earlier answer, then the prompt again), and one no-grad pass of the current policy (adapter
on) over the student and one over the teacher context give the per-token KL(pi_S || pi_T), the method's salience.

The teachers are chosen over the gathered group (a sibling may sit on another process: its tokens come from the
gathered completion ids); each process then builds and scores its own rows, so only the counts are gathered for
the metrics. A mixin under `group._GroupCredit`, which calls `_teacher_credit` for the method;
`_CreditRouting` turns the salience into weights (A_it = A_i * w_it * T_i) as for every `"weights"` method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from trl.models.utils import disable_gradient_checkpointing

from ..self_teacher import choose_teachers, teacher_kl, teacher_prompt_ids

if TYPE_CHECKING:  # the type checker reads the mixin as part of the TRL trainer it ends up in
    from trl import GRPOTrainer as _TRLTrainer
else:
    _TRLTrainer = object

_LOGITS_BUDGET = 2**26  # the most logits (rows x columns x vocabulary) one chunk of the KL pass holds, per forward


class _TeacherCredit(_TRLTrainer):
    """`credit: self_teacher`'s teacher pass, for `_GroupCredit` (listed after it and before the TRL trainer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._teacher_prompts: list[Any] | None = None  # this batch's prompts, as TRL passed them to the rewards
        super().__init__(*args, **kwargs)
        if self.args.credit != "self_teacher":
            return
        if getattr(self, "tools", None) or getattr(self, "environment_factories", None) is not None:
            raise ValueError(
                "credit='self_teacher': tool calls and environments are not supported (the teacher context shows a "
                "plain completion as the earlier answer); use another credit method."
            )

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        if self.args.credit == "self_teacher":  # the prompts the teacher contexts are built from
            self._teacher_prompts = list(prompts)
        return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)

    @torch.no_grad()
    def _teacher_credit(
        self,
        batch: dict[str, Any],
        mask: Tensor,
        start: int,
        all_ids: Tensor,
        all_mask: Tensor,
        rewards: Tensor,
        groups: Tensor,
    ) -> Tensor:
        """The self-teacher's salience [B, T] of this process's rows: KL(pi_S || pi_T) per token, 0 for a row with
        no teacher (uniform weights: A_i). `all_ids` / `all_mask` [N, T'] / `rewards` / `groups` [N] are the gathered
        batch, this process's rows at `start ..`. Logs `credit/teacher_fraction` (rows with a teacher, all
        processes), `credit/teacher_cut` (contexts whose shown solution was cut to fit), `credit/teacher_unfit`
        (rows whose chosen teacher context could not hold one solution token within the model's positions: they
        get no teacher) and `credit/teacher_context_ratio` (teacher context tokens / student context tokens, rows
        with a teacher)."""
        prompts, self._teacher_prompts = self._teacher_prompts, None
        if prompts is None:
            raise RuntimeError(f"{type(self).__name__}: TRL's rollout computed no rewards for credit='self_teacher'")
        B, T = mask.shape
        params = self.args.group_credit_kwargs("self_teacher")
        teachers = choose_teachers(rewards.tolist(), groups.tolist(), params["self_teacher_success"])
        local = teachers[start : start + B]
        acc = self.accelerator
        metrics = self._metrics["train" if self.model.training else "eval"]
        kl = torch.zeros(B, T, dtype=torch.float32, device=mask.device)
        if all(j < 0 for j in teachers):  # the same on every process: nobody runs the pass
            metrics["credit/teacher_fraction"].append(0.0)
            metrics["credit/teacher_cut"].append(0.0)
            metrics["credit/teacher_unfit"].append(0.0)
            return kl
        tokenizer: Any = getattr(self.processing_class, "tokenizer", self.processing_class)
        model = acc.unwrap_model(self.model)
        max_len = getattr(model.config, "max_position_embeddings", None)
        lengths = mask.sum(dim=1).tolist()
        prompt_lens = batch["prompt_mask"].sum(dim=1).tolist()
        rows_ids: list[list[int]] = []
        has_teacher: list[bool] = []
        cut_rows, ratio_sum, with_teacher, unfit = 0, 0.0, 0, 0
        for b, j in enumerate(local):
            fitted = None
            if j >= 0:
                solution = tokenizer.decode(all_ids[j][all_mask[j]].tolist(), skip_special_tokens=True)
                fitted = teacher_prompt_ids(
                    tokenizer, prompts[b], solution, int(lengths[b]), max_len,
                    getattr(self, "chat_template_kwargs", None),
                )  # fmt: skip
                unfit += fitted is None
            has_teacher.append(fitted is not None)
            if fitted is None:  # no teacher: its own prompt (scored, then zeroed; every process runs the same passes)
                rows_ids.append(batch["prompt_ids"][b][batch["prompt_mask"][b].bool()].tolist())
                continue
            ids, cut = fitted
            rows_ids.append(ids)
            cut_rows += cut > 0
            with_teacher += 1
            ratio_sum += (len(ids) + lengths[b]) / max(1, prompt_lens[b] + lengths[b])
        P = max(len(ids) for ids in rows_ids)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        t_prompt = torch.full((B, P), pad, dtype=torch.long, device=mask.device)
        t_att = torch.zeros((B, P), dtype=torch.long, device=mask.device)
        for b, ids in enumerate(rows_ids):  # left-padded, as TRL pads prompts
            t_prompt[b, P - len(ids) :] = torch.tensor(ids, dtype=torch.long, device=mask.device)
            t_att[b, P - len(ids) :] = 1
        teacher_ids = torch.cat([t_prompt, batch["completion_ids"]], dim=1)
        teacher_att = torch.cat([t_att, batch["completion_mask"].long()], dim=1)
        student_ids, student_att, _, batch_size = self._pass_inputs(batch)
        vocab = int(getattr(model.config, "vocab_size", 1) or 1)
        rows = max(1, min(batch_size, _LOGITS_BUDGET // max(1, (T + 1) * vocab)))
        no_checkpointing = disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs)
        with no_checkpointing, acc.autocast():
            kl, _ = teacher_kl(
                self.model, student_ids, student_att.long(), teacher_ids, teacher_att, T, mask,
                temperature=self.temperature, rows=rows,
            )  # fmt: skip
        has = torch.tensor(has_teacher, dtype=torch.bool, device=mask.device)
        kl = torch.where(has.unsqueeze(1), kl, 0.0)  # no teacher: salience 0, uniform weights, exactly A_i
        counts = acc.gather(
            torch.tensor([[cut_rows, ratio_sum, with_teacher, unfit]], dtype=torch.float64, device=acc.device)
        ).sum(0)
        metrics["credit/teacher_fraction"].append(counts[2].item() / max(1, len(teachers)))
        metrics["credit/teacher_cut"].append(counts[0].item())
        metrics["credit/teacher_unfit"].append(counts[3].item())
        metrics["credit/teacher_context_ratio"].append((counts[1] / counts[2].clamp_min(1)).item())
        return kl
