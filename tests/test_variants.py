"""Variant names of credit methods (`arca demo --methods`, `arca report` labels)."""

from __future__ import annotations

import pytest

from arca_rl.variants import parse_variant, variant_name

SIGNALS = ["uniform", "surprisal", "entropy_reduction", "divergence", "arca"]


def test_parse_variant_reads_each_suffix():
    assert parse_variant("arca", SIGNALS) == ("arca", {})
    assert parse_variant("arca+mix0.5", SIGNALS) == ("arca", {"credit_mix": 0.5})
    assert parse_variant("arca+warmup10", SIGNALS) == ("arca", {"credit_warmup_steps": 10})
    assert parse_variant("uniform+topent0.2", SIGNALS) == ("uniform", {"top_entropy_quantile": 0.2})
    got = parse_variant("surprisal+topent1+warmup0+mix0", SIGNALS)
    assert got == ("surprisal", {"top_entropy_quantile": 1.0, "credit_warmup_steps": 0, "credit_mix": 0.0})
    assert isinstance(parse_variant("arca+warmup3", SIGNALS)[1]["credit_warmup_steps"], int)


@pytest.mark.parametrize(
    "name, match",
    [
        ("nope+mix0.5", "unknown signal 'nope'"),
        ("arca+mx0.5", "cannot read 'mx0.5'"),
        ("arca+mix", "cannot read 'mix'"),
        ("arca+mix1.5", r"\+mix must be in \[0, 1\] \(credit_mix\)"),
        ("arca+mixnan", r"\+mix must be in \[0, 1\]"),
        ("arca+mixabc", r"\+mix needs a number, got 'abc'"),
        ("arca+warmup2.5", r"\+warmup needs an integer"),
        ("arca+warmup-1", r"\+warmup must be >= 0"),
        ("uniform+topent0", r"\+topent must be in \(0, 1\]"),
        ("arca+mix0.5+mix0.2", r"\+mix given twice"),
    ],
)
def test_parse_variant_errors_name_the_part(name, match):
    with pytest.raises(ValueError, match=match):
        parse_variant(name, SIGNALS)


def test_variant_name_round_trips_and_skips_defaults():
    assert variant_name({"credit": "arca"}) == "arca"
    assert variant_name({}) == "uniform"  # ARCAGRPOConfig's default credit: stock GRPO
    assert variant_name({"credit_mix": 0.5}) == "uniform+mix0.5"
    assert variant_name({"credit": "arca", "credit_mix": 1.0, "credit_warmup_steps": 0}) == "arca"
    training = {"credit": "arca", "credit_mix": 0.5, "credit_warmup_steps": 10, "top_entropy_quantile": 0.2}
    assert variant_name(training) == "arca+mix0.5+warmup10+topent0.2"
    for name in ("arca+mix0.5", "arca+warmup10", "uniform+topent0.2", "divergence+mix0.25+warmup4"):
        signal, fields = parse_variant(name, SIGNALS)
        assert variant_name({"credit": signal, **fields}) == name
