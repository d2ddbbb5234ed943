"""arca-rl's credit methods as verl advantage estimators (built and tested against verl 0.9.1).

    from arca_rl.integrations.verl import install
    install()   # in verl's TaskRunner process (docs/many-gpus.md): register_estimators() + the drop-in

`register_estimators()` adds to verl's registry (`verl.trainer.ppo.core_algos.register_adv_est`) one estimator
`arca_<method>` per credit method that verl's batch can feed: the group methods (`arca_ktae`, `arca_tempo`,
`arca_gtpo`, `arca_hicra`, and any registered with `arca_rl.register_group_method` before the call) and the signals
whose inputs verl computes (`arca_uniform`, `arca_surprisal`, `arca_entropy_reduction`, `arca_divergence`, and any
registered with `arca_rl.register_signal` that reads only `logps`, `entropies`, `ref_logps`). `arca` is not one: it
reads hidden states inside the actor's forward, which verl's advantage step never sees; nor are `vine`,
`self_teacher`, `grail`, `oar_g`, `delta` and `answer_only`, which run the policy or read the task's answers.
Calling it again registers what is new and nothing twice.

Each estimator takes verl's sequence advantage A_i from verl's own GRPO estimator (`compute_grpo_outcome_advantage`
over the group ids `uid`, with `algorithm.norm_adv_by_std_in_grpo`), so zero credit is verl's `grpo`; R_i is the
summed token-level reward. A group method gives the token advantages `group_credit.group_credit` gives (mixed with
A_i by `credit_mix`); a signal gives `A_i * w_it * T_i`, w the `token_weights` of its salience (mixed by
`credit_mix`), as arca-rl's trainer does. Settings come from an `arca:` block of verl's algorithm config, under the
names and defaults of arca-rl's `credit_*` fields (`SETTINGS` lists those that apply here):

    algorithm:
      adv_estimator: arca_tempo
      arca:
        credit_tempo_td_weight: 0.5
        credit_mix: 1.0

The inputs beyond the rewards: token ids (`batch["responses"]`: ktae, tempo, hicra), the policy's entropies
(`batch["entropy"]`, the legacy trainer's `"entropys"`: gtpo, hicra, entropy_reduction), its log-probs
(`batch["old_log_probs"]`: surprisal, divergence) and the reference's (`batch["ref_log_prob"]`, adapter off under
LoRA: divergence). verl's `compute_advantage` passes a registered estimator none of them, so the estimators take
them as keywords and `compute_advantage` here (verl's, same parameters) passes them; an estimator called without
one refuses in one line (`ConfigError`) naming it. `install()` makes verl's trainers call this `compute_advantage`.

This module imports without verl (for type checking and documentation); each function that needs verl says in one
line to install it.
"""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
import importlib
from collections.abc import Callable, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .. import credit, group_credit
from .._credit_fields import CreditConfigError, CreditFields, Use, defaults, settings
from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from verl import DataProto

__all__ = [
    "PREFIX",
    "SETTINGS",
    "VERL_VERSION",
    "compute_advantage",
    "estimator_inputs",
    "estimator_names",
    "install",
    "register_estimators",
]

PREFIX = "arca_"  # verl name of arca-rl method m: arca_<m>
VERL_VERSION = "0.9.1"  # the verl release this module is built and tested against

# verl's batch key of each arca-rl input, and what it holds (for the one-line refusals)
_BATCH_KEY = {
    "completion_ids": "responses", "entropies": "entropy", "logps": "old_log_probs", "ref_logps": "ref_log_prob",
}
_WHAT = {
    "responses": "the response token ids",
    "entropy": "the policy's entropies (verl computes them with old_log_probs)",
    "old_log_probs": "the policy's log-probs of the response tokens",
    "ref_log_prob": "the reference's log-probs (verl computes them when a reference policy is used: "
    "actor_rollout_ref.actor.use_kl_loss or algorithm.use_kl_in_reward)",
}
_ALWAYS = frozenset({"rewards", "advantages"})  # from token_level_rewards and verl's GRPO estimator

# the credit_* settings that apply in verl: the weights' and the mix's, and the group methods'. The others are
# refused when they differ from their default, with the reason:
_ELSEWHERE = {
    "credit": "the method is algorithm.adv_estimator (arca_<method>), not a setting",
    "credit_warmup_steps": "verl's advantage step is not told the optimizer step; set credit_mix directly",
    "credit_base": "verl's reference is the base model (the adapter off under LoRA), i.e. credit_base: disabled",
    "credit_shadow": "shadow signals are logged by arca-rl's trainer only",
    "credit_log_tokens_every": "the token dump is written by arca-rl's trainer only",
    "credit_log_tokens_count": "the token dump is written by arca-rl's trainer only",
    "credit_hicra_grams": "strategic grams need the tokenizer, which verl does not give an estimator; leave it empty "
    "for HICRA's top-entropy rule",
}
def _applies(kwarg: str | None, use: Use) -> bool:
    """Does a credit setting reach a method verl can feed: a weight or mix setting, or a group method's own setting
    for a group method that is not computed by arca-rl's trainer (vine, self_teacher, grail, oar_g, delta, ...)?"""
    if use in (Use.WEIGHTS, Use.LAMBDA):
        return True
    if use is not Use.GROUP:
        return False
    methods = sorted(group_credit.registered_group_methods(), key=len, reverse=True)
    owner = next((m for m in methods if str(kwarg).startswith(f"{m}_")), None)
    return owner is not None and not group_credit.is_trainer_method(owner)


SETTINGS: tuple[str, ...] = tuple(
    name for name, s in settings().items() if name not in _ELSEWHERE and _applies(s.kwarg, s.use)
)


def _verl(module: str = "verl") -> Any:
    """verl's `module`, or an ImportError in one line that says what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"arca_rl.integrations.verl needs verl (pip install verl=={VERL_VERSION}); importing {module} failed: {e}"
        ) from None


# ---------------------------------------------------------------------------------------------------
# which methods, and what each reads from verl's batch


def _feedable(method: str) -> bool:
    if group_credit.is_group_method(method):
        return not group_credit.is_trainer_method(method)
    return credit.signal_needs(method) <= {"logps", "entropies", "ref_logps"}


def estimator_names() -> dict[str, str]:
    """verl estimator name -> arca-rl method, for every registered method that verl's batch can feed."""
    return {f"{PREFIX}{m}": m for m in group_credit.registered_methods() if _feedable(m)}


def estimator_inputs(name: str) -> tuple[str, ...]:
    """The verl batch keys estimator `name` (`arca_tempo`, ...) reads besides the rewards, mask and `uid`."""
    method = _method(name)
    needs = group_credit.group_method_needs(method) if group_credit.is_group_method(method) else credit.signal_needs(
        method)
    return tuple(_BATCH_KEY[k] for k in _BATCH_KEY if k in needs - _ALWAYS)


def _method(name: str) -> str:
    methods = estimator_names()
    if name not in methods:
        close = difflib.get_close_matches(name, list(methods), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"algorithm.adv_estimator: {name!r} is not an arca-rl estimator{hint}; "
                          f"arca-rl's: {', '.join(methods)}")
    return methods[name]


# ---------------------------------------------------------------------------------------------------
# settings: the `arca:` block of verl's algorithm config


class _NoTrainerConfig:
    def __post_init__(self) -> None:  # CreditFields ends its checks with the trainer config's own; there is none
        pass


@dataclasses.dataclass
class _VerlCredit(CreditFields, _NoTrainerConfig):
    """The credit fields, checked as arca-rl's configs check them, for one verl estimator."""


def _block(config: Any) -> dict[str, Any]:
    """The `arca` mapping of verl's algorithm config (a DictConfig, verl's AlgoConfig, a dict or None)."""
    if config is None:
        return {}
    block = config.get("arca", None) if hasattr(config, "get") else getattr(config, "arca", None)
    if block is None:
        return {}
    if not hasattr(block, "items"):
        raise ConfigError(f"algorithm.arca: must be a mapping of credit_* settings, got {block!r}")
    return {str(k): v for k, v in block.items()}


def _settings(method: str, config: Any) -> _VerlCredit:
    given, known = _block(config), defaults()
    for key, value in given.items():
        if key in _ELSEWHERE:
            if value != known[key]:
                raise ConfigError(f"algorithm.arca.{key}: not used with verl: {_ELSEWHERE[key]}")
        elif key not in SETTINGS:
            close = difflib.get_close_matches(key, SETTINGS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(
                f"algorithm.arca.{key}: not an arca-rl credit setting; {hint}settings: {', '.join(SETTINGS)}"
            )
    values = {k: v for k, v in given.items() if k in SETTINGS}
    try:
        return _VerlCredit(credit=method, **values)
    except CreditConfigError as e:
        raise ConfigError(f"algorithm.arca.{e.field}: {e.reason}") from None


# ---------------------------------------------------------------------------------------------------
# the estimators


def _missing(name: str, key: str, where: str) -> ConfigError:
    return ConfigError(f"{name} needs batch[{key!r}], {_WHAT[key]}, {where}")


_NOT_PASSED = ("which verl's compute_advantage does not pass to an estimator: call arca_rl.integrations.verl.install() "
               "in verl's TaskRunner process (docs/many-gpus.md)")


def _token_advantages(
    name: str,
    *,
    token_level_rewards: Tensor,
    response_mask: Tensor,
    index: Any,
    config: Any,
    inputs: Mapping[str, Tensor | None],
    norm_adv_by_std_in_grpo: bool | None,
    epsilon: float,
) -> tuple[Tensor, Tensor]:
    method = _method(name)
    cfg = _settings(method, config)  # a bad setting fails before any work
    if index is None:
        raise ConfigError(f"{name} needs the group ids (verl's non_tensor_batch['uid'], passed as index)")
    for key in estimator_inputs(name):
        if inputs[key] is None:
            raise _missing(name, key, _NOT_PASSED)
    core_algos = _verl("verl.trainer.ppo.core_algos")
    if norm_adv_by_std_in_grpo is None:
        norm_adv_by_std_in_grpo = bool(config.get("norm_adv_by_std_in_grpo", True)) if config is not None else True
    # A_i: verl's own GRPO estimator (A_i on every real token), read back at each row's first real token
    seq, _ = core_algos.compute_grpo_outcome_advantage(
        token_level_rewards=token_level_rewards, response_mask=response_mask, index=index, epsilon=epsilon,
        norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo,
    )
    real = response_mask != 0
    first = real.to(torch.uint8).argmax(-1, keepdim=True)
    a_seq = torch.where(real.any(-1), seq.gather(1, first).squeeze(1), 0.0).float()
    lam = float(cfg.credit_mix)
    if group_credit.is_group_method(method):
        groups = torch.as_tensor(np.unique(np.asarray(index), return_inverse=True)[1].reshape(-1), device=real.device)
        raw = group_credit.group_credit(
            method, mask=real, groups=groups, completion_ids=inputs["responses"],
            rewards=token_level_rewards.sum(-1).float(), advantages=a_seq, entropies=inputs["entropy"],
            **cfg.group_credit_kwargs(method),
        )
        if group_credit.group_method_output(method) == "advantages":
            out = group_credit.mix_advantages(raw, a_seq, real, lam)
            return out.to(token_level_rewards.dtype), out.to(token_level_rewards.dtype)
        alpha = raw
    else:
        alpha = credit.salience(
            method, mask=real, logps=inputs["old_log_probs"], entropies=inputs["entropy"],
            ref_logps=inputs["ref_log_prob"],
        )
    weights = credit.mix_weights(credit.token_weights(alpha, real, **cfg.token_weight_kwargs()), real, lam)
    # A_it = A_i * w_it * T_i (as arca-rl's trainer): uniform weights give A_i on every token
    out = a_seq.unsqueeze(1) * weights * real.sum(-1, keepdim=True).float()
    return out.to(token_level_rewards.dtype), out.to(token_level_rewards.dtype)


_ESTIMATORS: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {}  # one function per name: verl refuses a second


def _estimator(name: str) -> Callable[..., tuple[Tensor, Tensor]]:
    if name in _ESTIMATORS:
        return _ESTIMATORS[name]

    def estimator(
        token_level_rewards: Tensor,
        response_mask: Tensor,
        index: Any = None,
        config: Any = None,
        reward_baselines: Tensor | None = None,
        *,
        responses: Tensor | None = None,
        entropy: Tensor | None = None,
        old_log_probs: Tensor | None = None,
        ref_log_prob: Tensor | None = None,
        norm_adv_by_std_in_grpo: bool | None = None,
        epsilon: float = 1e-6,
    ) -> tuple[Tensor, Tensor]:
        inputs = {"responses": responses, "entropy": entropy, "old_log_probs": old_log_probs,
                  "ref_log_prob": ref_log_prob}
        return _token_advantages(
            name, token_level_rewards=token_level_rewards, response_mask=response_mask, index=index, config=config,
            inputs=inputs, norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo, epsilon=epsilon,
        )

    estimator.__name__ = estimator.__qualname__ = name
    estimator.__doc__ = (
        f"arca-rl's {_method(name)!r} as a verl advantage estimator: (advantages, returns) [B, T], both the token "
        "advantages. Keywords beyond verl's: the batch's responses, entropy, old_log_probs, ref_log_prob "
        f"(this one reads {', '.join(estimator_inputs(name)) or 'none of them'})."
    )
    _ESTIMATORS[name] = estimator
    return estimator


def register_estimators() -> list[str]:
    """Add `arca_<method>` to verl's advantage estimators for every method verl's batch can feed (idempotent: a
    name already registered is left alone). Returns the names, in arca-rl's registration order."""
    core_algos = _verl("verl.trainer.ppo.core_algos")
    names = list(estimator_names())
    for name in names:
        fn = _estimator(name)
        if core_algos.ADV_ESTIMATOR_REGISTRY.get(name) is not fn:
            core_algos.register_adv_est(name)(fn)
    return names


# ---------------------------------------------------------------------------------------------------
# the drop-in compute_advantage and its installation

_verl_compute_advantage: Callable[..., Any] | None = None  # verl's own, before install() replaced it
# the fields the v1 trainer's advantage step does not read, fetched beside it by install()'s wrapper
_EXTRA: contextvars.ContextVar[dict[str, Tensor] | None] = contextvars.ContextVar("arca_verl_extra", default=None)


def _original() -> Callable[..., Any]:
    global _verl_compute_advantage
    if _verl_compute_advantage is None:
        fn = _verl("verl.trainer.ppo.ray_trainer").compute_advantage
        if fn is compute_advantage:  # replaced by hand, without install()
            raise RuntimeError("verl's compute_advantage was replaced before arca_rl.integrations.verl saw it; "
                               "use install()")
        _verl_compute_advantage = fn
    return _verl_compute_advantage


_HINTS = {
    "responses": "",
    "entropy": " (verl's legacy trainer drops them after logging: use trainer.use_v1=true; rollout correction's "
    "bypass mode computes none)",
    "old_log_probs": " (rollout correction's bypass mode names them rollout_log_probs)",
    "ref_log_prob": "",
}


def compute_advantage(
    data: DataProto,
    adv_estimator: Any,
    gamma: float = 1.0,
    lam: float = 1.0,
    num_repeat: int = 1,
    norm_adv_by_std_in_grpo: bool = True,
    config: Any = None,
) -> DataProto:
    """verl's `ray_trainer.compute_advantage`, same parameters: an `arca_*` estimator also gets the batch's token
    ids, entropies and log-probs (`estimator_inputs`); any other is verl's own. A missing input is one ConfigError."""
    name = adv_estimator.value if isinstance(adv_estimator, Enum) else str(adv_estimator)
    if name not in estimator_names():
        return _original()(
            data, adv_estimator=adv_estimator, gamma=gamma, lam=lam, num_repeat=num_repeat,
            norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo, config=config,
        )
    batch = data.batch
    if "response_mask" not in batch.keys():  # noqa: SIM118 (a TensorDict refuses `in`)
        batch["response_mask"] = _verl("verl.trainer.ppo.ray_trainer").compute_response_mask(data)
    extra = _EXTRA.get() or {}
    inputs: dict[str, Tensor | None] = {}
    for key in ("responses", "entropy", "old_log_probs", "ref_log_prob"):
        names = (key, "entropys") if key == "entropy" else (key,)
        value = next((batch[k] for k in names if k in batch.keys()), extra.get(key))  # noqa: SIM118
        if value is not None and tuple(value.shape) != tuple(batch["response_mask"].shape):
            raise ConfigError(f"{name}: batch[{key!r}] has shape {tuple(value.shape)}, the response mask "
                              f"{tuple(batch['response_mask'].shape)}")
        inputs[key] = value
    for key in estimator_inputs(name):
        if inputs[key] is None:
            raise _missing(name, key, f"which this batch does not hold{_HINTS[key]}")
    advantages, returns = _estimator(name)(
        token_level_rewards=batch["token_level_rewards"], response_mask=batch["response_mask"],
        index=data.non_tensor_batch.get("uid"), config=config, norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo,
        **inputs,
    )
    batch["advantages"] = advantages
    batch["returns"] = returns
    return data


def _fetch_fields(trainer_cls: type, tq: Any) -> None:
    """Wrap the v1 trainer's `_compute_advantage` (verl reads only the rewards, masks and log-probs for it): for an
    `arca_*` estimator, read the token ids and entropies it needs from the TransferQueue first, for `compute_advantage`
    (rows in the step's key order, as verl's own read)."""
    original = trainer_cls._compute_advantage  # type: ignore[attr-defined]
    if getattr(original, "_arca_fields", False):
        return

    def _compute_advantage(self: Any, batch: Any, metrics: dict) -> Any:
        name = str(self.config.algorithm.adv_estimator)
        wanted = [k for k in estimator_inputs(name) if k in ("responses", "entropy")] if (
            name in estimator_names()) else []
        if not wanted:
            return original(self, batch, metrics)
        try:
            fields = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=wanted)
        except Exception as e:  # a field verl did not compute this run (entropy in bypass mode)
            raise ConfigError(f"{name} needs {', '.join(wanted)} from verl's TransferQueue, which failed: {e}") from e
        padded = fields.to_padded_tensor()
        token = _EXTRA.set({k: padded[k] for k in wanted})
        try:
            return original(self, batch, metrics)
        finally:
            _EXTRA.reset(token)

    _compute_advantage._arca_fields = True  # type: ignore[attr-defined]
    _compute_advantage.__doc__ = original.__doc__
    trainer_cls._compute_advantage = _compute_advantage  # type: ignore[attr-defined]


def install() -> list[str]:
    """`register_estimators()`, then make verl's trainers call `compute_advantage` above: the legacy trainer's
    (`verl.trainer.ppo.ray_trainer.compute_advantage`) and the v1 trainer's (`verl.trainer.ppo.v1.utils`, with its
    advantage step also reading the token ids and entropies). Run it in the process that runs the trainer, verl's
    TaskRunner, before the trainer starts (docs/many-gpus.md); idempotent. Returns the estimator names."""
    names = register_estimators()
    ray_trainer = _verl("verl.trainer.ppo.ray_trainer")
    _original()  # remember verl's own first
    setattr(ray_trainer, "compute_advantage", compute_advantage)  # noqa: B010
    try:  # the v1 trainer needs verl's TransferQueue (verl[fsdp] and co.); without it there is no v1 trainer
        v1_utils = importlib.import_module("verl.trainer.ppo.v1.utils")
        trainer_base = importlib.import_module("verl.trainer.ppo.v1.trainer_base")
        tq = importlib.import_module("transfer_queue")
    except ImportError:
        return names
    setattr(v1_utils, "compute_advantage", compute_advantage)  # noqa: B010
    _fetch_fields(trainer_base.PPOTrainer, tq)
    return names
