"""Names for credit-method variants: a signal, then optional `+mix<lambda>`, `+warmup<N>`, `+topent<q>`.

    arca+mix0.5            credit: arca, credit_mix: 0.5
    arca+warmup10          credit: arca, credit_warmup_steps: 10
    uniform+topent0.2      credit: uniform, top_entropy_quantile: 0.2 (TRL's entropy mask)

`arca demo --methods` reads these names and `arca report` labels runs with them, so a run's label
says which mix it trained with; `final_mix` is the mix lambda a run ended with (what `arca report`
lists and `arca diagnose` applies). No torch import.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["SUFFIXES", "final_mix", "parse_variant", "variant_name"]

#: suffix -> (ARCAGRPOConfig field, value type, the field's default = the suffix left out)
SUFFIXES: dict[str, tuple[str, type, float]] = {
    "mix": ("credit_mix", float, 1.0),
    "warmup": ("credit_warmup_steps", int, 0),
    "topent": ("top_entropy_quantile", float, 1.0),
}
_PART = re.compile(r"^(mix|warmup|topent)(.+)$")
_FORM = "a signal, then +mix<lambda in [0, 1]>, +warmup<steps>, +topent<q in (0, 1]>, e.g. arca+mix0.5"


def parse_variant(name: str, signals: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """`"arca+mix0.5+warmup10"` -> `("arca", {"credit_mix": 0.5, "credit_warmup_steps": 10})`.

    `signals` are the registered signal names. Raises ValueError naming the bad part and the form.
    """
    signal, *parts = name.split("+")
    if signal not in signals:
        raise ValueError(f"{name!r}: unknown signal {signal!r}; registered: {', '.join(signals)} ({_FORM})")
    fields: dict[str, Any] = {}
    for part in parts:
        m = _PART.match(part)
        if m is None:
            raise ValueError(f"{name!r}: cannot read {part!r}; a method is {_FORM}")
        key, text = m.groups()
        field, kind, _ = SUFFIXES[key]
        if field in fields:
            raise ValueError(f"{name!r}: +{key} given twice")
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"{name!r}: +{key} needs {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        ok = {
            "mix": lambda v: math.isfinite(v) and 0 <= v <= 1,
            "warmup": lambda v: v >= 0,
            "topent": lambda v: math.isfinite(v) and 0 < v <= 1,
        }[key](value)
        if not ok:
            want = {"mix": "in [0, 1]", "warmup": ">= 0", "topent": "in (0, 1]"}[key]
            raise ValueError(f"{name!r}: +{key} must be {want} ({field}), got {text}")
        fields[field] = value
    return signal, fields


def _num(value: float) -> str:
    return f"{value:g}"


def variant_name(training: Mapping[str, Any], default_credit: str = "arca") -> str:
    """The variant name of a config's `training` section: the signal, plus a suffix for each of
    credit_mix, credit_warmup_steps, top_entropy_quantile that is not at its default."""
    credit = training.get("credit")
    name = credit if isinstance(credit, str) and credit else default_credit
    for key, (field, _, default) in SUFFIXES.items():
        value = training.get(field)
        if isinstance(value, bool) or not isinstance(value, int | float) or value == default:
            continue
        name += f"+{key}{_num(value)}"
    return name


def final_mix(training: Mapping[str, Any], logged: Sequence[float] = ()) -> float | None:
    """The credit_mix lambda in force at the end of a run: the last value it logged as `credit/mix`, else
    (nothing logged yet) `credit_mix * min(1, max_steps / credit_warmup_steps)` from its `training` config
    section (defaults 1 and 0). None when the config holds no readable values."""
    if logged:
        return float(logged[-1])
    mix, warmup = training.get("credit_mix", 1.0), training.get("credit_warmup_steps", 0)
    if isinstance(mix, bool) or not isinstance(mix, int | float) or isinstance(warmup, bool) or not isinstance(warmup, int):
        return None
    if warmup <= 0:
        return float(mix)
    steps = training.get("max_steps")
    if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0:
        return float(mix) * min(1.0, steps / warmup)
    return None
