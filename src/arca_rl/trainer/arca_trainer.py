"""ARCAGRPOTrainer / ARCARLOOTrainer: TRL's GRPO / RLOO with each completion's advantage spread over its tokens by a
credit signal.

Data flow (one generation batch, then one micro-batch at a time):

    rollout (TRL)  ->  adapter-off pass (no grad)        base hidden state, log pi_ref   [only if the signal needs it]
                   ->  training forward (adapter on)     log pi, entropy, last hidden state (captured by a hook)
                   ->  group methods (ktae, tempo, ...)  once per generation batch, over the group (group.py)
                   ->  salience -> token_weights         credit.py, float32, detached
                   ->  GRPO: A_it = A_i * w_it * T_i     uniform w = 1/T_i gives stock GRPO for every loss_type
                             or A_it = (1 - lam) A_i + lam A_it(method)   for a group method's signed token advantages
                       RLOO: log pi_i = sum_t T_i w_it log pi_t (and the same for the old log-prob)
                   ->  TRL's own loss, optimizer step, logging

The trainers only route tensors between TRL and `credit.py` / `diagnostics.py`; the routing is one mixin
(`_CreditRouting`), and each trainer says in `_apply_credit` how the weights enter its TRL loss. Mixins beside it:
what is logged (`metrics.py`) and the group methods' per-batch pass (`group.py`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import is_peft_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from trl import GRPOTrainer, RLOOTrainer
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import get_config_model_id, is_async_callable, use_adapter

from .. import _causal_lm, credit, group_credit
from ..trainer_config import ARCAGRPOConfig, ARCARLOOConfig
from .group import _GroupCredit
from .hooks import _capture_last_hidden, _completion_positions, _numeric_rewards
from .metrics import _CreditLogging
from .resume import _GenerationResume

logger = logging.getLogger(__name__)


@dataclass
class _Rollout:
    """What TRL's own no-grad passes during one rollout leave for the credit (see `_rollout_forward`)."""

    base_hidden: list[torch.Tensor] | None  # None: no scored signal reads the base hidden state
    base_logps: torch.Tensor | None = None  # set when TRL ran the base pass itself (its reference pass)
    base_seen: bool = False
    policy_logps: torch.Tensor | None = None  # TRL's adapter-on no-grad pass (RLOO's old log-probs)
    rewards_per_func: torch.Tensor | None = None  # TRL's rewards, gathered over processes (group methods read them)


class _CreditRouting(_GenerationResume, _CreditLogging, _GroupCredit):
    """The credit routing shared by `ARCAGRPOTrainer` and `ARCARLOOTrainer` (listed before the TRL trainer).

    Three TRL methods are extended, each only to route tensors: `_generate_and_score_completions` (attach the base
    hidden state / reference log-probs to the generation batch), `_get_per_token_logps_and_entropies` (capture the
    last hidden state of passes TRL already runs, and turn the training forward's outputs into token weights) and
    `_compute_loss` (mark which forward is the training forward of this micro-batch). How the weights then enter
    TRL's loss is the one thing that differs between estimators: `_apply_credit`.
    """

    _config_class: type[ARCAGRPOConfig] | type[ARCARLOOConfig]
    _needs_policy_logps = False  # does `_apply_credit` read the rollout's per-token log-probs (credit_old_logps)?

    _trl_trainer: type  # GRPOTrainer / RLOOTrainer: whose constructor this one is
    _run_suffix: str  # "GRPO" / "RLOO": TRL's default output_dir is "<model name>-<suffix>"

    def __init__(self, *pargs: Any, **kwargs: Any):
        # Exactly the TRL trainer's constructor: its parameters and defaults (bound here, so a wrong call fails
        # as it would there), and a default config when `args` is None, as TRL builds one.
        bound = inspect.signature(self._trl_trainer).bind(*pargs, **kwargs)  # the class's: no `self`
        model, args = bound.arguments["model"], bound.arguments.get("args")
        config_name = self._config_class.__name__
        if args is None:
            model_name = model if isinstance(model, str) else get_config_model_id(model.config)
            args = bound.arguments["args"] = self._config_class(f"{model_name.split('/')[-1]}-{self._run_suffix}")
        if not isinstance(args, self._config_class):
            raise TypeError(
                f"`args` must be an {config_name}, got {type(args).__name__}; build one with the credit fields."
            )
        # Per-batch routing state; set before super().__init__ since TRL may run passes while building.
        self._rollout: _Rollout | None = None
        self._credit_inputs: dict[str, Any] | None = None
        self._last_token_dump_step = -1
        # TRL's own argument checks (no data set, mismatched reward processing classes, ...) speak first: a
        # broken setup is told its real problem before any credit check.
        super().__init__(*bound.args, **bound.kwargs)
        # TRL turns a reward function's output into a float tensor with no check of its own, so a function
        # returning strings fails with "too many dimensions 'str'"; name the function instead.
        self.reward_funcs: list[Any] = [
            f if isinstance(f, nn.Module) or is_async_callable(f) else _numeric_rewards(f, name)
            for f, name in zip(self.reward_funcs, self.reward_func_names, strict=True)
        ]

        unwrapped = self.accelerator.unwrap_model(self.model)
        _causal_lm.contiguous_head_input(unwrapped)  # TRL's rollouts: a frozen head copies its weight per row otherwise
        self._is_peft = is_peft_model(unwrapped)
        if group_credit.method_needs_base(args.credit) and not self._is_peft and self.ref_model is None:
            raise ValueError(
                f"credit={args.credit!r} compares the model against its base, but the model has no PEFT adapter and "
                "beta = 0 (so TRL holds no reference model). Pass `peft_config=LoraConfig(...)` (or a PeftModel), or "
                "set beta > 0 to take the residual against TRL's frozen reference model (full fine-tuning), or pick "
                "a signal that needs no base: uniform, surprisal, entropy_reduction."
            )
        self._tuner_layer = next((m for m in unwrapped.modules() if isinstance(m, BaseTunerLayer)), None)
        self._base_available = self._is_peft or self.ref_model is not None
        self._use_ref_adapter = (
            self._is_peft and args.credit_base == "reference" and "ref" in unwrapped.peft_config
        )
        if args.credit_base == "reference" and self._is_peft and not self._use_ref_adapter:
            logger.warning(
                "credit_base='reference' but the model holds no 'ref' adapter (TRL adds one only when an existing "
                "adapter is re-trained with beta > 0); comparing against the adapter-disabled model instead."
            )
        # Shadow signals: every other registered method whose inputs this setup can provide.
        self._shadow_signals: list[str] = []
        if args.credit_shadow:
            for signal in group_credit.registered_methods():
                if signal == args.credit or group_credit.is_trainer_method(signal):  # vine, self_teacher: never shadows
                    continue
                if group_credit.method_needs_base(signal) and not self._base_available:
                    logger.warning(
                        f"credit_shadow: skipping {signal!r}, it needs an adapter or a reference model."
                    )
                    continue
                self._shadow_signals.append(signal)
        scored = [args.credit, *self._shadow_signals]
        # group methods run once per generation batch (`_group_credit`); signals once per micro-batch
        self._group_methods = [s for s in scored if group_credit.is_group_method(s)]
        self._token_signals = [s for s in scored if not group_credit.is_group_method(s)]
        self._wants_base = any(group_credit.method_needs_base(s) for s in self._token_signals)
        self._wants_hidden = any({"hidden", "base_hidden"} & credit.signal_needs(s) for s in self._token_signals)
        self._wants_ref_logps = any("ref_logps" in credit.signal_needs(s) for s in self._token_signals)

    # ---- which model is "the base" -------------------------------------------------------------------------

    def _backbone(self, model: nn.Module) -> nn.Module:
        """The module whose output is the last hidden state the LM head reads (what TRL's fused head calls)."""
        model = self.accelerator.unwrap_model(model)
        if is_peft_model(model):
            model = model.get_base_model()
        return model.base_model

    def _is_base_pass(self, model: nn.Module) -> bool:
        """Is this forward the base we compare against (adapter off, 'ref' adapter, or the reference model)?"""
        if self.ref_model is not None and not self._is_peft:
            return self.accelerator.unwrap_model(model) is self.accelerator.unwrap_model(self.ref_model)
        if self._tuner_layer is None:
            return False
        if self._use_ref_adapter:
            return not self._tuner_layer.disable_adapters and list(self._tuner_layer.active_adapters) == [
                "ref"
            ]
        return bool(self._tuner_layer.disable_adapters)

    def _is_policy_pass(self, model: nn.Module) -> bool:
        """Is this forward the trained policy itself (adapter on, not TRL's 'ref' copy, not a reference model)?"""
        if self.accelerator.unwrap_model(model) is not self.accelerator.unwrap_model(self.model):
            return False
        layer = self._tuner_layer
        return layer is None or (not layer.disable_adapters and "ref" not in layer.active_adapters)

    @contextmanager
    def _base_model(self) -> Iterator[nn.Module]:
        """Yield the model to run for the base pass, with the adapter state `credit_base` asks for."""
        if self._is_peft:
            with use_adapter(
                self.accelerator.unwrap_model(self.model), "ref" if self._use_ref_adapter else None
            ):
                yield self.model
        else:
            yield self.ref_model

    # ---- rollout: attach base hidden states / reference log-probs ------------------------------------------

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        # Extends TRL's rollout: when beta > 0, TRL's own reference pass is the base pass and we only record its
        # hidden state; otherwise we run one no-grad adapter-off pass over the generation batch (the base model is
        # frozen, so it is reused for every micro-batch and every `num_iterations` pass).
        self._rollout = _Rollout(base_hidden=[] if self._wants_hidden else None)
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            rollout, self._rollout = self._rollout, None
        if self._needs_policy_logps:
            if rollout.policy_logps is None:
                raise RuntimeError(
                    f"{type(self).__name__}: TRL's rollout ran no adapter-on log-prob pass to weight the old "
                    "log-probs with; this TRL version is not supported (arca-rl needs trl 1.16)."
                )
            output["credit_old_logps"] = rollout.policy_logps
        if self._group_methods:
            output.update(self._group_credit(output, rollout.rewards_per_func))
        if not self._wants_base:
            return output
        if rollout.base_seen:
            base_hidden = torch.cat(rollout.base_hidden, dim=0) if rollout.base_hidden else None
            ref_logps = rollout.base_logps
        else:
            base_hidden, ref_logps = self._base_pass(output)
        if self._wants_hidden:
            output["credit_base_hidden"] = base_hidden
        if ref_logps is not None:
            output["credit_ref_logps"] = ref_logps.detach()
        return output

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # Extends TRL's reward step only to record its output (gathered over processes) for the group methods.
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self._rollout is not None:
            self._rollout.rewards_per_func = rewards_per_func
        return rewards_per_func

    @torch.no_grad()
    def _base_pass(self, batch: dict[str, Any]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """One no-grad forward of the base over the generation batch, in micro-batch chunks.

        When no scored signal reads `log pi_ref`, only the backbone runs (the LM head is skipped: about a fifth of
        a Qwen3-1.7B forward). Sharded setups (FSDP, DeepSpeed) always go through the full model call, whose
        wrapper gathers the root module's parameters (calling the inner backbone directly would skip that).
        """
        input_ids, attention_mask, logits_to_keep, batch_size = self._pass_inputs(batch)
        store: list[torch.Tensor] = []
        sharded = self.is_fsdp_enabled or self.is_deepspeed_enabled
        # As in TRL's own no-grad passes: checkpointing buys nothing without a backward pass.
        no_checkpointing = disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs)
        with self._base_model() as model, no_checkpointing:
            if not self._wants_ref_logps and not sharded:
                backbone = self._backbone(model)
                for start in range(0, input_ids.size(0), batch_size):
                    chunk = slice(start, start + batch_size)
                    with self.accelerator.autocast():
                        out = backbone(
                            input_ids=input_ids[chunk], attention_mask=attention_mask[chunk], use_cache=False
                        )
                    store.append(_completion_positions(out.last_hidden_state, logits_to_keep).clone())
                return torch.cat(store, dim=0), None
            ctx = _capture_last_hidden(self._backbone(model), logits_to_keep, store, clone=True)
            with ctx if self._wants_hidden else nullcontext():
                ref_logps, _, _ = super()._get_per_token_logps_and_entropies(
                    model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size
                )
        return (torch.cat(store, dim=0) if store else None), ref_logps

    def _get_per_token_logps_and_entropies(
        self,
        model: nn.Module,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[Any, ...]:
        # Extends TRL's forward helper. During a rollout it records what TRL's own no-grad passes give the credit
        # (no pass is added); otherwise, on the training forward of a micro-batch, it turns the detached hidden
        # state, log-probs and entropies into token weights and hands TRL's loss the credit (`_apply_credit`).
        parent = super()._get_per_token_logps_and_entropies
        if self._rollout is not None:
            return self._rollout_forward(parent, model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)
        if self._credit_inputs is None:
            return parent(model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)
        store: list[torch.Tensor] = []
        with (
            _capture_last_hidden(self._backbone(model), logits_to_keep, store, clone=False)
            if self._wants_hidden
            else nullcontext()
        ):
            logps, entropies, aux = parent(model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)
        # exactly one training forward per micro-batch: clear the request before using it
        inputs, self._credit_inputs = self._credit_inputs, None
        hidden = torch.cat(store, dim=0) if store else None
        weights, mask = self._token_weights(inputs, logps=logps, entropies=entropies, hidden=hidden)
        return self._apply_credit(inputs, logps, weights, mask), entropies, aux

    def _rollout_forward(
        self,
        parent: Callable[..., tuple[Any, ...]],
        model: nn.Module,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[Any, ...]:
        """One of TRL's no-grad rollout passes: record the base pass's hidden state and log-probs (when beta > 0 it
        is our base) and the policy pass's log-probs (when `_apply_credit` needs them)."""
        rollout = self._rollout
        assert rollout is not None  # set by `_generate_and_score_completions` around TRL's rollout
        if self._wants_base and self._is_base_pass(model):
            rollout.base_seen = True
            ctx: AbstractContextManager[Any] = nullcontext()
            if rollout.base_hidden is not None:
                ctx = _capture_last_hidden(self._backbone(model), logits_to_keep, rollout.base_hidden, clone=True)
            with ctx:
                out = parent(model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)
            rollout.base_logps = out[0]
            return out
        out = parent(model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)
        if self._needs_policy_logps and self._is_policy_pass(model):
            rollout.policy_logps = out[0].detach()
        return out

    # ---- loss: sequence advantage -> token credit -----------------------------------------------------------

    def _compute_loss(self, model: nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        # Extends TRL's loss: TRL reads the advantages (and old log-probs) right after the training forward; we hand
        # it a copy of the micro-batch that `_apply_credit` edits once that forward has run. The buffered batch keeps
        # its (B,) advantages, so `num_iterations > 1` recomputes the weights from the current adapter.
        self._credit_inputs = dict(inputs)
        try:
            return super()._compute_loss(model, self._credit_inputs)
        finally:
            self._credit_inputs = None

    def _apply_credit(
        self, inputs: dict[str, Any], logps: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Make TRL's loss use the token weights `weights` ([B, T], rows sum to 1, 0 off `mask`), or a signed group
        method's mixed token advantages `inputs["credit_token_advantages"]`: edit the micro-batch copy `inputs` and
        return the per-token log-probs TRL's loss should read."""
        raise NotImplementedError

    @torch.no_grad()
    def _token_weights(
        self,
        inputs: dict[str, Any],
        *,
        logps: torch.Tensor,
        entropies: torch.Tensor | None,
        hidden: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The active method's token weights (float32, detached) and their mask; logs every scored method's
        diagnostics. A signed group method's mixed token advantages go to `inputs["credit_token_advantages"]` (for
        `_apply_credit`); its weights are its shares |A_it| / sum_k |A_ik| (what the metrics and the dump read)."""
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        signal_inputs = {
            "logps": logps.detach().float(),
            "entropies": None if entropies is None else entropies.detach().float(),
            "ref_logps": inputs.get("credit_ref_logps"),
            "hidden": hidden,
            "base_hidden": inputs.get("credit_base_hidden"),
        }
        args = self.args
        lam = self._credit_lambda()
        weights_of: dict[str, torch.Tensor] = {}
        salience_of: dict[str, torch.Tensor] = {}
        advantages_of: dict[str, torch.Tensor] = {}
        for name in [args.credit, *self._shadow_signals]:
            if group_credit.is_group_method(name):
                raw = inputs[f"credit_group/{name}"].float()  # computed once per generation batch, over the group
                salience_of[name] = raw  # raw: the dump keeps it, so the mix can be recomputed
                if group_credit.group_method_output(name) == "advantages":
                    # (1 - lam) A_i + lam A_it: what the gradient, the credit metrics and the dump all use
                    advantages_of[name] = group_credit.mix_advantages(raw, inputs["advantages"], mask, lam)
                    weights_of[name] = group_credit.advantage_shares(advantages_of[name], mask)
                    continue
                alpha = raw
            else:
                alpha = credit.salience(name, mask=mask, **signal_inputs)  # [B, T] float32, 0 on padding
                salience_of[name] = alpha  # raw: the dump keeps it, so the mix can be recomputed
            signal_weights = credit.token_weights(alpha, mask, **args.token_weight_kwargs())
            # (1 - lam) / T + lam * w: what the gradient, the credit metrics and the dump all use
            weights_of[name] = credit.mix_weights(signal_weights, mask, lam)
        if args.credit_shuffle and args.credit not in advantages_of:  # the control: same shape, random place
            weights_of[args.credit] = self._shuffled(weights_of[args.credit], mask, inputs["completion_ids"])
        weights = weights_of[args.credit]
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["credit/mix"].append(lam)
        self._log_credit("credit", weights, mask, mode)
        for name in self._shadow_signals:
            self._log_credit(f"shadow/{name}", weights_of[name], mask, mode)
        if "arca" in salience_of:  # arca's salience is the residual norm itself
            self._log_residual(salience_of["arca"], mask, mode)
        if mode == "train":
            self._maybe_dump_tokens(
                inputs, mask, weights_of, salience_of, inputs["advantages"], entropies, advantages_of
            )
        if args.credit in advantages_of:
            inputs["credit_token_advantages"] = advantages_of[args.credit]
        return weights, mask

    def _shuffled(self, weights: torch.Tensor, mask: torch.Tensor, completion_ids: torch.Tensor) -> torch.Tensor:
        """`credit_shuffle`: each row's weights permuted within its completion, seeded by (run seed, optimizer step,
        process, row, the row's tokens), so a rerun or a resumed run draws the same permutation."""
        step, seed, rank = self.state.global_step, int(self.args.seed), self.accelerator.process_index
        keys = [
            credit.shuffle_key(seed, step, rank, b, ids[m.bool()].tolist())
            for b, (ids, m) in enumerate(zip(completion_ids, mask))
        ]
        return credit.shuffle_weights(weights, mask, keys)

    def _credit_lambda(self) -> float:
        """The `credit_mix` lambda in force: `credit_mix * min(1, s / credit_warmup_steps)`, s = optimizer steps
        already taken. `global_step` only moves after an optimizer step, so every micro-batch of a step and every
        `num_iterations` pass over a generation batch get the same lambda."""
        return self.args.credit_lambda(self.state.global_step)


def _sequence_advantage(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A_i as a (B, 1) column, back from token advantages A_it = A_i * w_it * T_i (their masked mean over the T_i
    tokens), for TRL's decisions that are made once per sequence from the advantage's sign."""
    if advantages.dim() == 1:
        return advantages.unsqueeze(1)
    if advantages.size(1) == 1:
        return advantages
    mask = mask.to(advantages.dtype)
    return (advantages * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1.0)


def _constructor_of(trl_trainer: type) -> Any:
    """`_CreditRouting.__init__` under `trl_trainer.__init__`'s signature (what `inspect.signature` and IDEs show)."""

    def __init__(self: Any, *pargs: Any, **kwargs: Any) -> None:
        _CreditRouting.__init__(self, *pargs, **kwargs)

    __init__.__signature__ = inspect.signature(trl_trainer.__init__)  # type: ignore[attr-defined,misc]
    __init__.__doc__ = f"The constructor of `trl.{trl_trainer.__name__}`: same parameters, same defaults."
    return __init__


class ARCAGRPOTrainer(_CreditRouting, GRPOTrainer):
    """[`trl.GRPOTrainer`] whose advantages are spread over tokens by a credit signal (see `ARCAGRPOConfig`).

    Same constructor as `GRPOTrainer`. Token credit enters TRL's loss as token advantages `A_it = A_i * w_it * T_i`,
    which every `loss_type` accepts; uniform weights (1/T_i) give back stock GRPO. TRL's per-sequence decisions
    (the `off_policy_mask_threshold` sequence mask, VESPO's gamma weight) read the sign of A_i, exactly as stock;
    credit changes how each kept sequence's gradient is spread over its tokens, not which sequences are kept.
    """

    _config_class = ARCAGRPOConfig
    _trl_trainer = GRPOTrainer
    _run_suffix = "GRPO"
    __init__ = _constructor_of(GRPOTrainer)

    def _apply_credit(
        self, inputs: dict[str, Any], logps: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        advantages = inputs["advantages"]
        token_advantages = inputs.pop("credit_token_advantages", None)
        if token_advantages is not None:  # a group method's signed token advantages, already mixed with A_i
            inputs["advantages"] = token_advantages.to(advantages.dtype)
            return logps
        # A_it = A_i * w_it * T_i : uniform w = 1/T_i gives back A_i on every token, i.e. stock GRPO.
        num_tokens = mask.sum(dim=1, keepdim=True).float()
        inputs["advantages"] = (advantages.float().unsqueeze(1) * weights * num_tokens).to(advantages.dtype)
        return logps

    @staticmethod
    def get_off_policy_mask(
        advantages: torch.Tensor,
        per_token_logps: torch.Tensor,
        sampling_per_token_logps: torch.Tensor,
        mask: torch.Tensor,
        off_policy_threshold: float,
    ) -> torch.Tensor:
        # TRL keeps a sequence when A_i >= 0 or its mean KL is small: decide on A_i, as stock GRPO does.
        return GRPOTrainer.get_off_policy_mask(
            _sequence_advantage(advantages, mask), per_token_logps, sampling_per_token_logps, mask, off_policy_threshold
        )

    @staticmethod
    def get_gamma_weights(
        advantages: torch.Tensor,
        log_ratio_per_token: torch.Tensor,
        mask: torch.Tensor,
        importance_sampling_ratio: torch.Tensor,
        **kwargs: Any,
    ) -> torch.Tensor:
        # VESPO's sequence weight picks its (k, lambda) by the sign of A_i: one weight per sequence, as stock.
        return GRPOTrainer.get_gamma_weights(
            _sequence_advantage(advantages, mask), log_ratio_per_token, mask, importance_sampling_ratio, **kwargs
        )


class ARCARLOOTrainer(_CreditRouting, RLOOTrainer):
    """[`trl.RLOOTrainer`] with token credit (see `ARCARLOOConfig`). Same constructor as `RLOOTrainer`.

    TRL's RLOO loss is per sequence: `ratio_i = exp(sum_t log pi_t - sum_t log pi_old_t)`, clipped, times the (B,)
    leave-one-out advantage. Token credit weights both sums by `T_i * w_it`:

        ratio_i = exp(sum_t T_i w_it (log pi_t - log pi_old_t))

    so on-policy the ratio is 1 and the gradient is `A_i * sum_t T_i w_it grad log pi_t` (stock RLOO's
    `A_i * sum_t grad log pi_t` when w = 1/T_i). Off-policy (`num_iterations > 1`) the ratio becomes a credit-weighted
    product of token ratios: drift on high-credit tokens moves it, and reaches the clip range, sooner than drift on
    low-credit tokens, whose gradient is small anyway. The old per-token log-probs come from TRL's own no-grad
    rollout pass (no pass is added).
    """

    _config_class = ARCARLOOConfig
    _trl_trainer = RLOOTrainer
    _run_suffix = "RLOO"
    __init__ = _constructor_of(RLOOTrainer)
    _needs_policy_logps = True

    def _apply_credit(
        self, inputs: dict[str, Any], logps: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        if inputs.pop("credit_token_advantages", None) is not None:  # refused by ARCARLOOConfig; a guard
            raise ValueError("RLOO's per-sequence loss takes token weights only, not signed token advantages")
        scale = weights * mask.sum(dim=1, keepdim=True).float()  # T_i * w_it: 1 on every real token when uniform
        old_logps = inputs["old_logps"]
        inputs["old_logps"] = (inputs["credit_old_logps"].float() * scale).sum(dim=1).to(old_logps.dtype)
        return logps * scale.to(logps.dtype)  # TRL sums these into the sequence log-prob
