"""Names for credit-method variants: a signal, then optional `+mix<lambda>`, `+warmup<N>`, `+topent<q>`.

    arca+mix0.5            credit: arca, credit_mix: 0.5
    arca+warmup10          credit: arca, credit_warmup_steps: 10
    uniform+topent0.2      credit: uniform, top_entropy_quantile: 0.2 (TRL's entropy mask)

`arca demo --methods` reads these names and `arca report` labels runs with them, so a run's label
says which mix it trained with. The credit suffixes, their fields, ranges and defaults come from the
credit settings' owner (`CreditFields`: a field declared with `variant=` gets a suffix); `topent` is the one
suffix for a TRL field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from . import _credit_fields
from ._credit_fields import Range

__all__ = ["SUFFIXES", "parse_variant", "variant_name"]

#: suffix -> (ARCAGRPOConfig field, its range, its default = the suffix left out): the credit fields declared
#: with a variant suffix, then TRL's entropy mask (TRL's default 1.0 = every token kept)
SUFFIXES: dict[str, tuple[str, Range, Any]] = {
    **_credit_fields.variant_suffixes(),
    "topent": ("top_entropy_quantile", Range(low=0, low_open=True, high=1), 1.0),
}
_PART = re.compile(rf"^({'|'.join(map(re.escape, SUFFIXES))})(.+)$")
_FORM = (
    "a signal, then "
    + ", ".join(
        f"+{key}<{'steps' if check.integer else field + ' ' + check.bounds()}>"
        for key, (field, check, _) in SUFFIXES.items()
    )
    + ", e.g. arca+mix0.5"
)


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
        field, check, _ = SUFFIXES[key]
        if field in fields:
            raise ValueError(f"{name!r}: +{key} given twice")
        try:
            value = int(text) if check.integer else float(text)
        except ValueError:
            raise ValueError(
                f"{name!r}: +{key} needs {'an integer' if check.integer else 'a number'}, got {text!r}"
            ) from None
        if not check.contains(value):
            raise ValueError(f"{name!r}: +{key} must be {check.bounds()} ({field}), got {text}")
        fields[field] = value
    return signal, fields


def _num(value: float) -> str:
    return f"{value:g}"


def variant_name(training: Mapping[str, Any], default_credit: str | None = None) -> str:
    """The variant name of a config's `training` section: the signal (`default_credit` when it names none; None:
    `CreditFields`' default, `uniform`), plus a suffix for each field of `SUFFIXES` (credit_mix,
    credit_warmup_steps, top_entropy_quantile) that is not at its default."""
    credit = training.get("credit")
    fallback = default_credit if default_credit is not None else _credit_fields.defaults()["credit"]
    name = credit if isinstance(credit, str) and credit else fallback
    for key, (field, _, default) in SUFFIXES.items():
        value = training.get(field)
        if isinstance(value, bool) or not isinstance(value, int | float) or value == default:
            continue
        name += f"+{key}{_num(value)}"
    return name
