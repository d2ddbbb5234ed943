"""VinePPO credit in the trainers (`credit: vine`, arXiv 2410.01679): a completion's token advantages are the Monte
Carlo oracle's own token values in VinePPO's step form: token t of a measured interval (a, b] between two sampled
prefixes gets `A_it = V_b - V_a`. With every prefix sampled (`credit_vine_positions: all`) that is
`V_t - V_{t-1}`, the oracle's `delta_t`; adaptive positions leave an interval unsplit where the value did not
move beyond its error, and each of its tokens gets the interval's whole change, not a 1 / (b - a) share of it
(`arca_rl.oracle.segment_advantages`).

Once per generation batch, for each completion on this process: K continuations of each of its prefixes that
`credit_vine_positions` samples (adaptive, the default: the two ends, then only where the value moves, linear in
between; all: every prefix of 1 .. T - 1 tokens; `arca_rl.oracle`), and K fresh completions of its prompt (V_0,
shared by the prompt's completions on this process), are
sampled by the current policy (adapter on, the run's temperature, top-p and `max_completion_length`) with the
oracle's KV-cache-sharing sampler (`arca_rl.oracle.sampler.model_sampler`), and rewarded by the run's reward
functions, called as TRL calls them for the prompt's row and summed with `reward_weights`. V_T is the completion's
own reward. A completion's values read only its own prefix, so each process samples its own rows and nothing is
gathered but the cost (`credit/vine_rollouts`, `credit/vine_seconds`). A mixin under `group._GroupCredit`,
which calls `_vine_credit` for the method; `_CreditRouting` then mixes it with A_i as every signed method.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from trl.data_utils import is_conversational
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import is_async_callable

from .._causal_lm import seeded
from ..oracle import Sampler, oracle_values
from ..oracle.sampler import model_sampler

if TYPE_CHECKING:  # the type checker reads the mixin as part of the TRL trainer it ends up in
    from trl import GRPOTrainer as _TRLTrainer
else:
    _TRLTrainer = object

logger = logging.getLogger(__name__)


def vine_token_advantages(
    prompt_ids: Sequence[list[int]],
    completion_ids: Sequence[list[int]],
    groups: Sequence[int],
    rewards: Sequence[float],
    sampler: Sampler,
    reward: Callable[[int, list[list[int]]], Sequence[float]],
    *,
    samples: int,
    max_new_tokens: int,
    batch_rows: int,
    width: int,
    positions: str = "adaptive",
) -> tuple[Tensor, int]:
    """VinePPO's token advantages of B completions, [B, width] float32 (0 past each completion's tokens), and the
    number of continuations sampled: token t of measured interval (a, b] gets V_b - V_a (`segment_advantages`).

    Row b: its prompt `prompt_ids[b]`, its real completion tokens `completion_ids[b]` (up to and including the first
    EOS), its group id (the rows of a group share one prompt, hence one V_0) and its reward R_b (= V_T).
    `reward(b, completions)` scores whole completions (prefix + continuation) of row b's prompt. A completion with
    no tokens samples nothing and gets no advantage. `positions`: "adaptive" or "all" (`arca_rl.oracle.oracle_values`).
    """
    rows_of: dict[int, list[int]] = {}  # group id -> its rows with tokens, in order
    for b, g in enumerate(groups):
        if completion_ids[b]:
            rows_of.setdefault(int(g), []).append(b)
    first = [rows[0] for rows in rows_of.values()]  # a row of each group: whose prompt and columns reward it
    sampled = 0

    def count(n: int) -> None:
        nonlocal sampled
        sampled += n

    per_group = oracle_values(
        [
            (list(prompt_ids[rows[0]]), [(list(completion_ids[b]), float(rewards[b])) for b in rows])
            for rows in rows_of.values()
        ],
        sampler,
        lambda g, comps: reward(first[g], comps),
        samples=samples,
        max_new_tokens=max_new_tokens,
        batch_rows=batch_rows,
        on_rollouts=count,
        positions=positions,
    )
    out = torch.zeros(len(completion_ids), width, dtype=torch.float32)
    for rows, oracle_rows in zip(rows_of.values(), per_group, strict=True):
        for b, row in zip(rows, oracle_rows, strict=True):
            # VinePPO's step form: token t of a measured interval (a, b] gets V_b - V_a (per token, V_t - V_{t-1}, for
            # every prefix sampled); an interval the adaptive schedule left unsplit hands each token its whole change
            out[b, : row.length] = torch.tensor(row.segment_advantages(), dtype=torch.float32)
    return out, sampled


def _ignore(*args: Any, **kwargs: Any) -> None:
    """`log_extra` / `log_metric` for the continuations' rewards: what they score is not a rollout to log."""


class _VineCredit(_TRLTrainer):
    """`credit: vine`'s sampling, for `_GroupCredit` (listed after it and before the TRL trainer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._vine_rows: tuple[list[dict[str, Any]], list[Any]] | None = None  # this batch's TRL rows and prompts
        super().__init__(*args, **kwargs)
        if self.args.credit != "vine":
            return
        # Refused before any training: what vine cannot continue or score as TRL's rollouts are.
        why = None
        if any(isinstance(f, nn.Module) for f in self.reward_funcs):
            why = "a reward model (nn.Module) is not supported, only reward functions score its continuations"
        elif self.tools or self.environment_factories is not None or self.rollout_func is not None:
            why = "tool calls, environments and rollout_func are not supported (its continuations are plain sampling)"
        elif self.is_fsdp_enabled or (
            self.is_deepspeed_enabled and self.accelerator.state.deepspeed_plugin.zero_stage == 3
        ):
            why = (
                "each process samples its own continuations, but a sharded model (FSDP, ZeRO-3) needs every process "
                "in every forward; use DDP"
            )
        if why is not None:
            raise ValueError(f"credit='vine': {why}.")
        if self.top_k or self.min_p or self.repetition_penalty != 1.0 or self.args.generation_kwargs:
            logger.warning(
                "credit='vine' samples its continuations with temperature and top_p only; top_k, min_p, "
                "repetition_penalty and generation_kwargs shape the rollouts but not the continuations."
            )

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        if self.args.credit == "vine":  # the rows whose prompts and columns vine's continuations are rewarded for
            self._vine_rows = (inputs, prompts)
        return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)

    @torch.no_grad()
    def _vine_credit(self, batch: dict[str, Any], mask: Tensor, groups: Tensor, rewards: Tensor) -> Tensor:
        """VinePPO's token advantages [B, T] of this process's rows (`mask` [B, T], their TRL `groups` [B] and
        rewards [B], the weighted sum of the reward functions); logs the sampling cost."""
        if self._vine_rows is None:
            raise RuntimeError(f"{type(self).__name__}: TRL's rollout computed no rewards for credit='vine'")
        (inputs, prompts), self._vine_rows = self._vine_rows, None
        start = time.perf_counter()
        params = self.args.group_credit_kwargs("vine")
        lengths = mask.sum(dim=1).tolist()  # completion_mask is 1 up to and including the first EOS
        prompt_ids = [ids[m.bool()].tolist() for ids, m in zip(batch["prompt_ids"], batch["prompt_mask"])]
        completion_ids = [ids[:n].tolist() for ids, n in zip(batch["completion_ids"], lengths)]
        model = self.accelerator.unwrap_model(self.model)
        sampler = model_sampler(model, temperature=self.temperature, top_p=self.top_p, eos_ids=self.eos_token_ids)
        training = self.model.training
        # one seed per (run seed, step, process, mode): reproducible, and TRL's own random stream is left untouched
        seed = (
            (int(self.args.seed) * 1_000_003 + self.state.global_step) * 1009 + self.accelerator.process_index
        ) * 2 + training
        no_checkpointing = disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs)
        with seeded(model, seed), no_checkpointing:
            values, rollouts = vine_token_advantages(
                prompt_ids, completion_ids, groups.tolist(), rewards.tolist(), sampler,
                functools.partial(self._vine_reward, inputs, prompts), samples=params["vine_samples"],
                max_new_tokens=self.max_completion_length, batch_rows=params["vine_batch_rows"], width=mask.shape[1],
                positions=params.get("vine_positions", "adaptive"),
            )  # fmt: skip
        acc = self.accelerator
        cost = acc.gather(
            torch.tensor([[rollouts, time.perf_counter() - start]], dtype=torch.float64, device=acc.device)
        )
        metrics = self._metrics["train" if training else "eval"]
        metrics["credit/vine_rollouts"].append(cost[:, 0].sum().item())  # continuations sampled, all processes
        metrics["credit/vine_seconds"].append(cost[:, 1].max().item())  # the slowest process's sampling time
        return values.to(mask.device)

    def _vine_reward(
        self, inputs: list[dict[str, Any]], prompts: list[Any], row: int, completions: list[list[int]]
    ) -> list[float]:
        """Rewards of whole completions (prefix + continuation) of row `row`'s prompt: each reward function called as
        TRL's `_calculate_rewards` calls it (the row's prompt and dataset columns, texts decoded as TRL decodes them),
        summed with `reward_weights`; a None is left out of the sum as TRL leaves it; a continuation that every function
        returned None for is refused, naming the functions (it has no reward to average)."""
        n, prompt = len(completions), prompts[row]
        texts: list[Any] = self.processing_class.batch_decode(completions, skip_special_tokens=True)
        if is_conversational({"prompt": prompt}):
            texts = [[{"role": "assistant", "content": t}] for t in texts]
        kwargs: dict[str, Any] = {
            k: [v] * n for k, v in inputs[row].items() if k not in ("prompt", "completion", "completion_ids")
        }
        kwargs.update(trainer_state=self.state, log_extra=_ignore, log_metric=_ignore)
        per_func = torch.full((n, len(self.reward_funcs)), torch.nan)  # float32, as TRL's
        none = torch.zeros(per_func.shape, dtype=torch.bool)  # which function returned None for which continuation
        for i, func in enumerate(self.reward_funcs):
            out = func(prompts=[prompt] * n, completions=texts, completion_ids=completions, **kwargs)
            if is_async_callable(func):
                out = asyncio.run_coroutine_threadsafe(out, self.async_loop).result()
            if len(out) != n:
                raise ValueError(f"reward function {self.reward_func_names[i]!r} returned {len(out)} rewards for {n} "
                                 "completions")
            per_func[:, i] = torch.tensor([torch.nan if r is None else float(r) for r in out])
            none[:, i] = torch.tensor([r is None for r in out])
        unscored = int(none.all(dim=1).sum())  # a continuation no function scored: it has no value to average
        if unscored:
            names = [repr(self.reward_func_names[i]) for i in range(len(self.reward_funcs)) if none[:, i].any()]
            raise ValueError(
                f"reward function{'s' if len(names) > 1 else ''} {', '.join(names)} returned None for {unscored} of "
                f"{n} "
                f"continuations of prompt {prompt!r:.60}; credit='vine' averages the rewards of its continuations, so "
                "each needs a number from some reward function: return a float (0.0 for no reward) instead of None"
            )
        total = (per_func * self.reward_weights.cpu().unsqueeze(0)).nansum(dim=1)  # sum_j w_j r_j, as TRL
        # NaN from every function: the oracle refuses it, naming the prompt
        total[per_func.isnan().all(dim=1)] = torch.nan
        return total.tolist()
