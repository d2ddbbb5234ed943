"""The credit settings have one owner (`CreditFields`, `arca_rl._credit_fields`): every consumer knows every field.

Each test enumerates the owner's fields, so a credit setting added to `CreditFields` that some consumer
(validation, `--resume`, the method variants, `arca diagnose`, the trainer's weights) does not handle fails here.
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import pytest
import yaml

from arca_rl import _credit_fields, credit, diagnose, group_credit, rundir
from arca_rl._config import ConfigError, parse_config
from arca_rl._credit_fields import IS_BOOL, SIGNAL, TEXT, CreditFields, OneOf, Range, Use
from arca_rl._diagnose.driver import run_settings
from arca_rl.trainer_config import ARCAGRPOConfig, ARCARLOOConfig, CreditConfigError
from arca_rl.variants import SUFFIXES, parse_variant, variant_name


def config(**fields) -> ARCAGRPOConfig:
    return ARCAGRPOConfig(output_dir="unused", report_to="none", use_cpu=True, bf16=False, **fields)


FIELDS = [f.name for f in dataclasses.fields(CreditFields)]
SETTINGS = _credit_fields.settings()


def other_value(name: str):
    """A valid value of field `name` other than its default, chosen from the declared check."""
    default, check = _credit_fields.defaults()[name], SETTINGS[name].check
    if check is SIGNAL:
        return next(s for s in credit.registered_signals() if s != default)
    if check is IS_BOOL:
        return not default
    if check is TEXT:
        return default + "x"
    if isinstance(check, OneOf):
        return next(v for v in check.values if v != default)
    assert isinstance(check, Range), f"{name}: no rule for a check of type {type(check).__name__}"
    if default is None:  # an optional setting (null: its own default rule): any number in its range
        return check.low + 1 if check.low is not None else 0.5
    if check.high is not None:  # a bounded range: the midpoint (never the default of the ranges we have)
        value = (check.low + check.high) / 2
        assert value != default
        return value
    return default + 1


def changed(name: str) -> dict:
    """Field `name` at `other_value(name)`, with the credit it applies to (a group method's setting is refused with
    another method)."""
    kwarg = SETTINGS[name].kwarg or ""
    owner = next((m for m in sorted(group_credit.registered_group_methods(), key=len, reverse=True)
                  if SETTINGS[name].use is Use.GROUP and kwarg.startswith(f"{m}_")), None)
    return {name: other_value(name), **({"credit": owner} if owner else {})}


def bad_values(check: Range) -> list:
    """Values outside `check`, worked out from its bounds: just past each bound, NaN/inf/2.5 where not allowed."""
    bad: list = [True, "1"]
    if check.low is not None:
        bad.append(check.low if check.low_open else check.low - 1)
    if check.high is not None:
        bad.append(check.high if check.high_open else check.high + 1)
    bad += [2.5] if check.integer else [math.nan, math.inf]
    return bad


def test_every_credit_field_is_declared_once_with_its_setting():
    # no credit field of the configs bypasses the owner
    for cls in (ARCAGRPOConfig, ARCARLOOConfig):
        declared = [f.name for f in dataclasses.fields(cls) if f.name.startswith("credit")]
        assert declared == FIELDS, cls.__name__
    doc = inspect.getdoc(CreditFields)
    for f in dataclasses.fields(CreditFields):
        assert f.name.startswith("credit_") or f.name == "credit"
        assert f.metadata["help"], f.name  # TRL's argument parser shows it
        assert isinstance(SETTINGS[f.name], _credit_fields.Setting)
        assert f"\n    {f.name} (`" in f"\n{doc}".replace("\n        ", "\n    "), f"{f.name}: not in the Parameters"
        # the default passes the field's own check
        assert SETTINGS[f.name].check.error(f.name, f.default) is None, f.name
    assert config().credit == _credit_fields.defaults()["credit"]


@pytest.mark.parametrize("name", [n for n in FIELDS if isinstance(SETTINGS[n].check, Range)])
def test_each_range_rejects_values_outside_it_naming_the_field(name):
    check = SETTINGS[name].check
    for bad in bad_values(check):
        with pytest.raises(CreditConfigError) as err:
            config(**{name: bad})
        assert err.value.field == name and str(err.value).startswith(f"{name} must be {check.describe()}"), bad
        if isinstance(bad, str):
            continue  # the YAML layer reads number strings ("1e-5") as numbers, as YAML 1.1 does
        # the YAML layer names the key path
        with pytest.raises(ConfigError, match=rf"^training\.{name}: "):
            parse_config({"training": {name: bad}}).training_args("unused", for_validation=True)
    config(**changed(name))


def test_checks_of_the_other_kinds_reject_what_they_should():
    for name in FIELDS:
        check = SETTINGS[name].check
        if isinstance(check, Range):
            continue
        bad = {id(SIGNAL): "no_such_signal", id(IS_BOOL): 1, id(TEXT): 3}.get(id(check), "no_such_value")
        with pytest.raises(CreditConfigError) as err:
            config(**{name: bad})
        assert err.value.field == name


def _saved(tmp_path, training: dict) -> tuple:
    cfg = parse_config({"name": "r", "task": {"name": "arithmetic"}, "training": dict(training)})
    run = tmp_path / "r"
    run.mkdir(exist_ok=True)
    (run / rundir.CONFIG_FILE).write_text(yaml.safe_dump(cfg.to_yaml_dict()))
    return cfg, run


@pytest.mark.parametrize("name", FIELDS)
def test_resume_refuses_a_change_exactly_to_the_fields_declared_fixed(tmp_path, name):
    owner = {k: v for k, v in changed(name).items() if k == "credit" != name}
    _, run = _saved(tmp_path, owner)
    changed_cfg = parse_config({"name": "r", "task": {"name": "arithmetic"}, "training": changed(name)})
    if SETTINGS[name].fixed_on_resume:
        with pytest.raises(ConfigError, match=rf"training\.{name}: "):
            rundir.check_resume_config(run, changed_cfg)
    else:
        assert any(c.startswith(f"training.{name}: ") for c in rundir.check_resume_config(run, changed_cfg))
    # only what the run logs, and a memory cap that leaves the result alone, may change midway
    assert SETTINGS[name].fixed_on_resume == (
        SETTINGS[name].use is not Use.LOGGING and name != "credit_vine_batch_rows"
    )


def test_every_variant_suffix_reads_checks_and_names_its_field():
    declared = {s.variant: name for name, s in SETTINGS.items() if s.variant is not None}
    assert {k: SUFFIXES[k][0] for k in declared} == declared
    for suffix, name in declared.items():
        value = other_value(name)
        text = f"{value:g}"
        assert parse_variant(f"arca+{suffix}{text}", ["arca"]) == ("arca", {name: value})
        assert variant_name({"credit": "arca", name: value}) == f"arca+{suffix}{text}"
        assert variant_name({"credit": "arca", name: _credit_fields.defaults()[name]}) == "arca"
        for bad in bad_values(SETTINGS[name].check)[2:]:
            with pytest.raises(ValueError, match=rf"\+{suffix} (must be|needs)"):
                parse_variant(f"arca+{suffix}{bad}", ["arca"])


def test_diagnose_applies_every_weight_setting_and_the_final_lambda_of_a_run(tmp_path):
    # every kind of use is one diagnose knows what to do with: apply it, or say why not (Use's docstring)
    assert set(Use) == {Use.SIGNAL, Use.WEIGHTS, Use.LAMBDA, Use.BASE, Use.LOGGING, Use.GROUP, Use.PLACEMENT}
    # a placement control moves credit, it does not reshape it: diagnose scores every method's shuffled control
    assert [name for name, s in SETTINGS.items() if s.use is Use.PLACEMENT] == ["credit_shuffle"]
    weights = {name: s.kwarg for name, s in SETTINGS.items() if s.use is Use.WEIGHTS}
    for kwarg in weights.values():
        assert kwarg in inspect.signature(credit.token_weights).parameters
        assert kwarg in inspect.signature(diagnose).parameters
    lam_fields = [name for name, s in SETTINGS.items() if s.use is Use.LAMBDA]
    assert sorted(lam_fields) == ["credit_mix", "credit_warmup_steps"]  # the two the schedule reads

    training = {name: other_value(name) for name in weights} | {
        "credit_mix": 0.5,
        "credit_warmup_steps": 8,
        "max_steps": 2,
    }
    cfg, run = _saved(tmp_path, training)
    got = run_settings(cfg, run)
    for name, kwarg in weights.items():
        assert got[kwarg] == training[name], name
    assert got["mix"] == pytest.approx(0.5 * 2 / 8)  # credit_mix * min(1, max_steps / warmup), nothing logged
    (run / rundir.METRICS_FILE).write_text('{"step": 1, "credit/mix": 0.0}\n{"step": 2, "credit/mix": 0.0625}\n')
    assert run_settings(cfg, run)["mix"] == 0.0625  # what the trainer logged last wins
    # the trainer weights through the same keywords
    args = cfg.training_args(run, for_validation=True)
    assert args.token_weight_kwargs() == {kwarg: training[name] for name, kwarg in weights.items()}


def test_final_lambda_follows_the_schedule():
    f = _credit_fields.final_lambda
    assert f({}) == 1.0  # the defaults: the signal alone
    assert f({"credit_mix": 0.4}) == 0.4
    assert f({"credit_mix": 0.4, "credit_warmup_steps": 10, "max_steps": 5}) == pytest.approx(0.2)
    assert f({"credit_mix": 0.4, "credit_warmup_steps": 10, "max_steps": 50}) == pytest.approx(0.4)
    assert f({"credit_mix": 0.4, "credit_warmup_steps": 10}) is None  # no step count: unknown
    assert f({"credit_mix": "x"}) is None
    assert f({"credit_mix": 0.4}, [0.1, 0.3]) == 0.3


def test_every_group_setting_reaches_its_method():
    """A Use.GROUP setting is a keyword of `group_credit.group_credit` named <method>_..., for a registered group
    method: the config hands it to that method (`group_credit_kwargs`, what the trainer and diagnose call)."""
    group = {name: s.kwarg for name, s in SETTINGS.items() if s.use is Use.GROUP}
    assert group
    for name, kwarg in group.items():
        # e.g. self_teacher_...
        method = next(m for m in group_credit.registered_group_methods() if kwarg.startswith(f"{m}_"))
        assert method in group_credit.registered_group_methods(), name
        fn = group_credit._GROUP_METHODS[method].fn
        assert kwarg in inspect.signature(fn).parameters, name
        if isinstance(SETTINGS[name].check, Range):
            value = other_value(name)
            assert config(**changed(name)).group_credit_kwargs(method)[kwarg] == value, name


@pytest.mark.parametrize(
    "fields, name",
    [({"credit": "arca", "credit_ktae_scale": 2.0}, "credit_ktae_scale"),
     ({"credit": "uniform", "credit_hicra_alpha": 0.5}, "credit_hicra_alpha"),
     ({"credit": "tempo", "credit_shadow": True, "credit_vine_samples": 4}, "credit_vine_samples"),
     # issue 38: accepted under credit_shadow and did nothing (self_teacher runs the policy: never a shadow)
     ({"credit": "tempo", "credit_shadow": True, "credit_teacher_success": 1.0}, "credit_teacher_success")],
)
def test_a_group_methods_setting_with_another_method_is_refused(fields, name):
    """Issue 28 §4: refused as credit_power with tempo is, naming the field and the method it belongs to; shadow
    signals read the other methods' settings (vine and self_teacher are never shadows)."""
    with pytest.raises(CreditConfigError, match=rf"^{name} applies to credit='\w+' only") as err:
        config(**fields)
    assert err.value.field == name
    with pytest.raises(ConfigError, match=rf"^training\.{name}: applies to credit="):
        parse_config({"training": fields}).training_args("unused", for_validation=True)
    config(credit="arca", credit_shadow=True, credit_ktae_scale=2.0)  # a shadow ktae reads it


def test_credit_shuffle_takes_weights_methods_only():
    for method in ("surprisal", "arca", "self_teacher", "uniform"):
        assert config(credit=method, credit_shuffle=True).credit_shuffle
    for method in ("tempo", "ktae", "gtpo", "hicra", "vine"):
        with pytest.raises(CreditConfigError, match=r"^credit_shuffle permutes a weights method's weights") as err:
            config(credit=method, credit_shuffle=True)
        assert err.value.field == "credit_shuffle"
    with pytest.raises(ConfigError, match=r"^training\.credit_shuffle: permutes"):
        parse_config({"training": {"credit": "tempo", "credit_shuffle": True}}).training_args("u", for_validation=True)
