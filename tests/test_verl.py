"""arca-rl's credit methods as verl advantage estimators (`arca_rl.integrations.verl`), against verl 0.9.1 itself.

The tests that need verl run in its own environment (`make test-verl`: verl 0.9.1 on the CPU torch); in `make test`
they are skipped, and only the module's behaviour without verl is checked. The references are arca-rl's own tensor
functions (`group_credit`, `credit`), the contract the estimators must keep, fed with verl's GRPO A_i; and verl's own
`grpo` estimator for zero credit.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from arca_rl import credit, group_credit
from arca_rl.errors import ConfigError
from arca_rl.integrations import verl as arca_verl

HAS_VERL = importlib.util.find_spec("verl") is not None
needs_verl = pytest.mark.skipif(not HAS_VERL, reason="verl is not installed here: `make test-verl` runs these")

GROUP = ["arca_ktae", "arca_tempo", "arca_gtpo", "arca_hicra"]
SIGNALS = ["arca_uniform", "arca_surprisal", "arca_entropy_reduction", "arca_divergence"]


# -----------------------------------------------------------------------------
# without verl: the module imports, and says in one line what is missing


def test_imports_without_verl_and_says_what_to_install(monkeypatch):
    for name in [m for m in sys.modules if m == "verl" or m.startswith("verl.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "verl", None)  # `import verl` now fails, as where it is not installed
    assert arca_verl.estimator_names()["arca_tempo"] == "tempo"  # type-only use needs no verl
    with pytest.raises(ImportError) as info:
        arca_verl.register_estimators()
    message = str(info.value)
    assert "\n" not in message and f"pip install verl=={arca_verl.VERL_VERSION}" in message


def test_which_methods_verl_can_feed_and_what_each_reads():
    names = arca_verl.estimator_names()
    assert set(GROUP + SIGNALS) <= set(names)
    # arca reads hidden states inside the actor's forward; vine and self_teacher run the policy
    assert not {"arca_arca", "arca_vine", "arca_self_teacher"} & set(names)
    assert arca_verl.estimator_inputs("arca_tempo") == ("responses",)
    assert arca_verl.estimator_inputs("arca_ktae") == ("responses",)
    assert arca_verl.estimator_inputs("arca_gtpo") == ("entropy",)
    assert arca_verl.estimator_inputs("arca_hicra") == ("responses", "entropy")
    assert arca_verl.estimator_inputs("arca_divergence") == ("old_log_probs", "ref_log_prob")
    assert arca_verl.estimator_inputs("arca_uniform") == ()
    # the settings: the credit_* fields' own names, the group methods' and the weights' and mix's
    assert {"credit_tempo_td_weight", "credit_ktae_scale", "credit_mix", "credit_power"} <= set(arca_verl.SETTINGS)
    assert not {"credit", "credit_warmup_steps", "credit_vine_samples", "credit_hicra_grams"} & set(arca_verl.SETTINGS)


# -----------------------------------------------------------------------------
# with verl 0.9.1


def _batch(seed: int = 0):
    """12 right-padded responses in 3 groups of 4 (uids interleaved), siblings sharing prefixes; verl's
    token_level_rewards (the reward on the last real token; one group all-equal), entropies and log-probs."""
    gen = torch.Generator().manual_seed(seed)
    B, T = 12, 9
    uid = np.array([f"prompt-{i % 3}" for i in range(B)], dtype=object)
    responses = torch.randint(3, 8, (B, T), generator=gen)
    for b in range(3, B):  # share a prefix with the previous row of the same group
        k = int(torch.randint(0, T, (1,), generator=gen))
        responses[b, :k] = responses[b - 3, :k]
    lengths = torch.randint(2, T + 1, (B,), generator=gen)
    mask = (torch.arange(T) < lengths[:, None]).float()
    reward = torch.tensor([1.0, 0.0, 0.5, 0.0, 1.0, 0.5, 1.0, 0.0, 0.5, 0.0, 1.0, 0.5])  # group 2: all 0.5
    token_level_rewards = torch.zeros(B, T)
    token_level_rewards[torch.arange(B), lengths - 1] = reward
    logps = -torch.rand(B, T, generator=gen) * 3
    tensors = {
        "responses": responses, "response_mask": mask, "token_level_rewards": token_level_rewards,
        "entropy": torch.rand(B, T, generator=gen) * 2 + 0.1, "old_log_probs": logps,
        "ref_log_prob": logps + 0.3 * torch.randn(B, T, generator=gen),
    }
    return tensors, uid


def _proto(tensors, uid, drop=()):
    from verl import DataProto

    return DataProto.from_dict(
        tensors={k: v.clone() for k, v in tensors.items() if k not in drop}, non_tensors={"uid": uid.copy()}
    )


def _algorithm(**arca):
    from omegaconf import OmegaConf

    return OmegaConf.create({"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": True, "arca": arca})


def _verl_grpo(tensors, uid):
    from verl.trainer.ppo import core_algos

    out, _ = core_algos.compute_grpo_outcome_advantage(
        token_level_rewards=tensors["token_level_rewards"], response_mask=tensors["response_mask"], index=uid
    )
    return out


def _expected(name: str, tensors, uid, **settings):
    """arca-rl's own functions on the same batch: A_i = verl's GRPO advantage (on each row's tokens)."""
    mask = tensors["response_mask"] != 0
    first_seen: dict[str, int] = {}
    groups = torch.tensor([first_seen.setdefault(u, len(first_seen)) for u in uid])
    a_seq = _verl_grpo(tensors, uid).gather(1, mask.to(torch.uint8).argmax(-1, keepdim=True)).squeeze(1)
    method = name.removeprefix("arca_")
    lam = settings.pop("credit_mix", 1.0)
    kwargs = {k.removeprefix("credit_"): v for k, v in settings.items()}
    if group_credit.is_group_method(method):
        raw = group_credit.group_credit(
            method, mask=mask, groups=groups, completion_ids=tensors["responses"],
            rewards=tensors["token_level_rewards"].sum(-1), advantages=a_seq, entropies=tensors["entropy"], **kwargs,
        )
        return group_credit.mix_advantages(raw, a_seq, mask, lam)
    alpha = credit.salience(method, mask=mask, logps=tensors["old_log_probs"], entropies=tensors["entropy"],
                            ref_logps=tensors["ref_log_prob"])
    w = credit.mix_weights(credit.token_weights(alpha, mask, **kwargs), mask, lam)
    return a_seq.unsqueeze(1) * w * mask.sum(-1, keepdim=True).float()


@pytest.fixture
def verl_registry(monkeypatch):
    """verl's estimator registry and ray_trainer.compute_advantage, restored after the test."""
    pytest.importorskip("verl", reason="verl is not installed here: `make test-verl` runs these")
    from verl.trainer.ppo import core_algos, ray_trainer

    monkeypatch.setattr(core_algos, "ADV_ESTIMATOR_REGISTRY", dict(core_algos.ADV_ESTIMATOR_REGISTRY))
    monkeypatch.setattr(ray_trainer, "compute_advantage", ray_trainer.compute_advantage)
    if importlib.util.find_spec("transfer_queue") is not None:  # verl[verl-core]: the v1 trainer imports
        from verl.trainer.ppo.v1 import trainer_base, utils

        monkeypatch.setattr(utils, "compute_advantage", utils.compute_advantage)
        monkeypatch.setattr(trainer_base.PPOTrainer, "_compute_advantage", trainer_base.PPOTrainer._compute_advantage)
    return core_algos, ray_trainer


@needs_verl
def test_register_estimators_is_idempotent(verl_registry):
    core_algos, _ = verl_registry
    names = arca_verl.register_estimators()
    assert set(GROUP + SIGNALS) <= set(names)
    fns = {n: core_algos.get_adv_estimator_fn(n) for n in names}
    assert arca_verl.register_estimators() == names  # again: nothing registered twice, no error from verl
    assert all(core_algos.get_adv_estimator_fn(n) is fns[n] for n in names)
    assert core_algos.get_adv_estimator_fn("grpo") is core_algos.compute_grpo_outcome_advantage  # verl's own stay


@needs_verl
@pytest.mark.parametrize("name,settings", [
    ("arca_tempo", {}), ("arca_tempo", {"credit_tempo_td_weight": 0.5, "credit_mix": 0.7}),
    ("arca_ktae", {"credit_ktae_scale": 2.0}), ("arca_gtpo", {"credit_gtpo_alpha2": 0.5}),
    ("arca_hicra", {"credit_hicra_alpha": 0.3, "credit_hicra_entropy_frac": 0.3}),
    ("arca_surprisal", {"credit_power": 2.0}), ("arca_entropy_reduction", {"credit_mix": 0.5}),
    ("arca_divergence", {}), ("arca_uniform", {}),
])
def test_estimator_and_drop_in_equal_arca_rl(verl_registry, name, settings):
    core_algos, _ = verl_registry
    arca_verl.register_estimators()
    tensors, uid = _batch()
    want = _expected(name, tensors, uid, **dict(settings))
    config = _algorithm(**settings)
    fn = core_algos.get_adv_estimator_fn(name)
    adv, ret = fn(
        token_level_rewards=tensors["token_level_rewards"], response_mask=tensors["response_mask"], index=uid,
        config=config, responses=tensors["responses"], entropy=tensors["entropy"],
        old_log_probs=tensors["old_log_probs"], ref_log_prob=tensors["ref_log_prob"],
    )
    assert torch.equal(adv, want) and torch.equal(ret, want)
    data = arca_verl.compute_advantage(_proto(tensors, uid), adv_estimator=name, config=config)
    assert torch.equal(data.batch["advantages"], want) and torch.equal(data.batch["returns"], want)


@needs_verl
@pytest.mark.parametrize("name,settings", [
    ("arca_tempo", {"credit_tempo_td_weight": 0.0}), ("arca_ktae", {"credit_ktae_scale": 0.0}),
    *[(n, {"credit_mix": 0.0}) for n in GROUP],
])
def test_zero_credit_is_verls_grpo(verl_registry, name, settings):
    _, ray_trainer = verl_registry
    arca_verl.register_estimators()
    tensors, uid = _batch(1)
    grpo = ray_trainer.compute_advantage(_proto(tensors, uid), adv_estimator="grpo", config=_algorithm())
    ours = arca_verl.compute_advantage(_proto(tensors, uid), adv_estimator=name, config=_algorithm(**settings))
    assert torch.equal(ours.batch["advantages"], grpo.batch["advantages"])
    # a signal with zero mix: A_i * (1/T_i) * T_i, A_i up to float rounding
    uniform = arca_verl.compute_advantage(_proto(tensors, uid), adv_estimator="arca_surprisal",
                                          config=_algorithm(credit_mix=0.0))
    assert torch.allclose(uniform.batch["advantages"], grpo.batch["advantages"], rtol=1e-6, atol=0)


@needs_verl
def test_verls_own_compute_advantage_refuses_in_one_line(verl_registry):
    """verl's compute_advantage passes an estimator no token ids: arca_tempo says so, and where to get them."""
    _, ray_trainer = verl_registry
    arca_verl.register_estimators()
    tensors, uid = _batch()
    with pytest.raises(ConfigError) as info:
        ray_trainer.compute_advantage(_proto(tensors, uid), adv_estimator="arca_tempo", config=_algorithm())
    message = str(info.value)
    assert "\n" not in message and "batch['responses']" in message and "install()" in message
    # the drop-in on a batch without entropies (verl's legacy trainer drops them): one line naming them
    with pytest.raises(ConfigError) as info:
        arca_verl.compute_advantage(_proto(tensors, uid, drop=("entropy",)), adv_estimator="arca_gtpo",
                                    config=_algorithm())
    assert "\n" not in str(info.value) and "batch['entropy']" in str(info.value)
    # the legacy trainer's name for them is read too
    legacy = _proto(tensors, uid, drop=("entropy",))
    legacy.batch["entropys"] = tensors["entropy"].clone()
    data = arca_verl.compute_advantage(legacy, adv_estimator="arca_gtpo", config=_algorithm())
    assert torch.equal(data.batch["advantages"], _expected("arca_gtpo", tensors, uid))


@needs_verl
@pytest.mark.parametrize("arca,field,words", [
    ({"credit_tempo_weight": 1.0}, "credit_tempo_weight", "did you mean credit_tempo_td_weight"),
    ({"credit_tempo_td_weight": -1.0}, "credit_tempo_td_weight", ">= 0"),
    ({"credit_power": 2.0}, "credit_power", "signed token advantages"),
    ({"credit_ktae_scale": 2.0}, "credit_ktae_scale", "applies to credit='ktae' only"),
    ({"credit_warmup_steps": 10}, "credit_warmup_steps", "not used with verl"),
    ({"credit_hicra_grams": "let me"}, "credit_hicra_grams", "tokenizer"),
])
def test_bad_settings_are_one_clear_error_before_any_work(verl_registry, arca, field, words):
    arca_verl.register_estimators()
    tensors, uid = _batch()
    with pytest.raises(ConfigError) as info:
        arca_verl.compute_advantage(_proto(tensors, uid), adv_estimator="arca_tempo", config=_algorithm(**arca))
    message = str(info.value)
    assert message.startswith(f"algorithm.arca.{field}:") and words in message and "\n" not in message


@needs_verl
def test_install_routes_verls_trainers_through_the_drop_in(verl_registry):
    _, ray_trainer = verl_registry
    verls = ray_trainer.compute_advantage
    names = arca_verl.install()
    assert "arca_tempo" in names and ray_trainer.compute_advantage is arca_verl.compute_advantage
    arca_verl.install()  # idempotent
    tensors, uid = _batch()
    # verl's own estimators still go to verl's compute_advantage
    grpo = ray_trainer.compute_advantage(_proto(tensors, uid), adv_estimator="grpo", config=_algorithm())
    assert torch.equal(grpo.batch["advantages"], verls(_proto(tensors, uid), "grpo", config=_algorithm()).batch[
        "advantages"])
    tempo = ray_trainer.compute_advantage(_proto(tensors, uid), adv_estimator="arca_tempo", config=_algorithm())
    assert torch.equal(tempo.batch["advantages"], _expected("arca_tempo", tensors, uid))
    if importlib.util.find_spec("transfer_queue") is not None:  # the v1 trainer: its call and its advantage step
        from verl.trainer.ppo.v1 import trainer_base, utils

        assert utils.compute_advantage is arca_verl.compute_advantage
        assert getattr(trainer_base.PPOTrainer._compute_advantage, "_arca_fields", False)


@needs_verl
def test_v1_advantage_step_reads_the_token_ids_beside_verls_fields(verl_registry):
    """The v1 trainer reads only rewards, masks and log-probs for its advantage step; install()'s wrapper reads the
    token ids and entropies an arca estimator needs (same keys, same order) for the drop-in."""
    from omegaconf import OmegaConf
    from tensordict import TensorDict

    arca_verl.register_estimators()
    tensors, uid = _batch()
    asked = []

    class FakeTransferQueue:  # verl's TransferQueue: the step's fields by key, padded by the caller
        def kv_batch_get(self, keys, partition_id, select_fields):
            asked.append((keys, partition_id, tuple(select_fields)))
            return TensorDict({k: tensors[k] for k in select_fields}, batch_size=[len(keys)])

    class Step:  # the part of verl's v1 trainer the wrapper sees: _compute_advantage(batch, metrics)
        def __init__(self, estimator):
            self.config = OmegaConf.create({"algorithm": {"adv_estimator": estimator}})

        def _compute_advantage(self, batch, metrics):
            data = _proto(tensors, uid, drop=("responses", "entropy"))  # the fields verl's own step reads
            return arca_verl.compute_advantage(data, self.config.algorithm.adv_estimator, config=_algorithm())

    class Meta:
        keys = [f"k{i}" for i in range(len(uid))]
        partition_id = "train"

    arca_verl._fetch_fields(Step, FakeTransferQueue())
    arca_verl._fetch_fields(Step, FakeTransferQueue())  # wraps once
    out = Step("arca_hicra")._compute_advantage(Meta(), {})
    assert torch.equal(out.batch["advantages"], _expected("arca_hicra", tensors, uid))
    assert asked == [(Meta.keys, "train", ("responses", "entropy"))]
    Step("arca_surprisal")._compute_advantage(Meta(), {})  # reads nothing more: old_log_probs are verl's
    assert len(asked) == 1


@needs_verl
def test_the_documented_launcher_installs_in_its_task_runner(verl_registry, monkeypatch):
    """docs/many-gpus.md's launcher, run as a module (not as __main__): its TaskRunner is verl's with install() at the
    start of `run`, in the process that then runs verl's trainer."""
    import re
    from pathlib import Path

    from verl.trainer import main_ppo

    _, ray_trainer = verl_registry
    page = (Path(__file__).resolve().parent.parent / "docs" / "many-gpus.md").read_text()
    [block] = [b for b in re.findall(r"```python\n(.*?)```", page, flags=re.S) if "from verl" in b]
    namespace: dict = {"__name__": "verl_arca"}
    exec(compile(block, "docs/many-gpus.md:verl", "exec"), namespace)
    runner_cls = namespace["ArcaTaskRunner"].__ray_actor_class__
    assert issubclass(runner_cls, main_ppo.TaskRunnerV1.__ray_actor_class__)
    started = []
    monkeypatch.setattr(main_ppo.TaskRunnerV1.__ray_actor_class__, "run",
                        lambda self, config: started.append(ray_trainer.compute_advantage))
    runner_cls.run(object.__new__(runner_cls), config=None)
    assert started == [arca_verl.compute_advantage]  # installed before verl's run began
