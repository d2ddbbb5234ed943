"""What the trainers log about the credit: batch figures of the weights (`credit/*`, `shadow/<signal>/*`), the
adapter residual, and the token dump `credit_tokens.jsonl`. A mixin of `trainer._CreditRouting`, apart so that
the routing between TRL and `credit.py` reads on its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .. import diagnostics, rundir

if TYPE_CHECKING:  # the type checker reads the mixin as part of the TRL trainer it ends up in
    from trl import GRPOTrainer as _TRLTrainer
else:
    _TRLTrainer = object


class _CreditLogging(_TRLTrainer):
    """Logging of `_CreditRouting` (listed before the TRL trainer, which provides `_metrics`, `accelerator`, `args`,
    `state` and `_tokenizer`)."""

    _last_token_dump_step: int  # the optimizer step of the last token dump (-1: none yet; set by the routing)

    # ---- metrics ---------------------------------------------------------------------------------------------

    def _log_credit(self, prefix: str, weights: torch.Tensor, mask: torch.Tensor, mode: str) -> None:
        """Per-row Gini / EffN/T / top-10% mass, gathered over processes, averaged over rows with T >= 2."""
        rows = torch.stack(
            [
                diagnostics.gini(weights, mask),
                diagnostics.effective_token_ratio(weights, mask),
                diagnostics.top_mass(weights, mask, frac=0.1),
                (mask.sum(dim=1) >= 2).float(),
            ],
            dim=1,
        ).float()
        rows = self.accelerator.gather(rows)
        valid = rows[:, 3] > 0
        if not bool(valid.any()):
            return  # nothing to average; a missing point beats a NaN in every logger
        means = rows[valid, :3].mean(dim=0).tolist()
        for key, value in zip(("gini", "effective_token_ratio", "top10_mass"), means):
            self._metrics[mode][f"{prefix}/{key}"].append(value)

    def _log_residual(self, residual: torch.Tensor, mask: torch.Tensor, mode: str) -> None:
        real = mask.bool()
        local = torch.stack(
            [
                residual[real].sum(),
                real.sum().float(),
                residual[real].max() if real.any() else residual.new_zeros(()),
            ]
        ).float()
        totals = self.accelerator.gather(local.unsqueeze(0))
        count = totals[:, 1].sum()
        if count > 0:
            self._metrics[mode]["credit/residual_norm_mean"].append((totals[:, 0].sum() / count).item())
            self._metrics[mode]["credit/residual_norm_max"].append(totals[:, 2].max().item())

    def _maybe_dump_tokens(
        self,
        inputs: dict[str, Any],
        mask: torch.Tensor,
        weights_of: dict[str, torch.Tensor],
        salience_of: dict[str, torch.Tensor],
        advantages: torch.Tensor,
        entropies: torch.Tensor | None = None,
        advantages_of: dict[str, torch.Tensor] | None = None,
    ) -> None:
        every, step = self.args.credit_log_tokens_every, self.state.global_step
        if every <= 0 or step % every != 0 or step == self._last_token_dump_step:
            return
        self._last_token_dump_step = step
        keep = None
        quantile = getattr(self, "top_entropy_quantile", 1.0)  # TRL's GRPO has it; RLOO has no entropy mask
        if quantile < 1.0 and entropies is not None and hasattr(self, "get_high_entropy_mask"):
            # TRL's entropy mask, computed as its loss computes it (a gather: every process calls it), so the dump
            # shows which tokens' advantages A_i * w_it * T_i actually reach the gradient
            keep = self.get_high_entropy_mask(entropies.float(), mask, 1 - quantile)
        if not self.accelerator.is_main_process:
            return
        completion_ids = inputs["completion_ids"]
        records = []
        for row in range(min(self.args.credit_log_tokens_count, completion_ids.size(0))):
            real = mask[row].bool()
            tokens = [self._tokenizer.decode([i]) for i in completion_ids[row][real].tolist()]
            records += [
                rundir.TokenRecord(
                    step=step,
                    signal=name,
                    active=name == self.args.credit,
                    sample=row,
                    tokens=tokens,
                    weights=weights_of[name][row][real].tolist(),
                    salience=salience_of[name][row][real].tolist(),
                    advantage=float(advantages[row]),
                    # top_entropy_quantile < 1: 1 where TRL's mask keeps the token
                    entropy_mask=keep[row][real].tolist() if keep is not None else None,
                    # a signed group method: its token advantages as the loss gets them
                    token_advantages=advantages_of[name][row][real].tolist()
                    if advantages_of and name in advantages_of
                    else None,
                )
                for name in weights_of
            ]
        rundir.append_token_records(self.args.output_dir, records)
