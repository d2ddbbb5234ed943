"""The generic checks of YAML values: a value against a type annotation (`check`), the one-line
message for an unknown key with its nearest valid key (`unknown_key`, `suggest`), and the one-line
message of a section's pydantic error (`section_error`).

`check` reads dataclass annotations (TRL's `GRPOConfig` / `RLOOConfig` fields; the project's own
sections are pydantic models, see `schema`) and coerces lightly: an integral float to int, a string such as `5e-6` to
float (PyYAML reads YAML 1.1, where a number without a dot is a string), one string to a one-item list.
"""

from __future__ import annotations

import difflib
import enum
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError

__all__ = ["check", "section_error", "suggest", "unknown_key"]


# Names people bring from PEFT / HF / other tools -> the key they mean here.
_ALIASES = {
    "rank": "r",
    "lora_r": "r",
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
    "path": "name_or_path",
    "model_name_or_path": "name_or_path",
    "torch_dtype": "dtype",
    "lr": "learning_rate",
    "num_problems": "n",
    "pass_k": "k",
}


def suggest(key: str, valid: Iterable[str]) -> str:
    valid = list(valid)
    if _ALIASES.get(str(key)) in valid:
        return f"; did you mean {_ALIASES[str(key)]}?"
    match = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def unknown_key(path: str, key: str, valid: Iterable[str]) -> ConfigError:
    valid = sorted(valid)
    hint = suggest(key, valid)
    if not hint and len(valid) <= 12:
        hint = f"; valid keys: {', '.join(valid)}"
    return ConfigError(f"{path}.{key}: unknown key{hint}")


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return "one of " + ", ".join(repr(m.value) for m in tp)
        return {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
                "dict": "a mapping", "list": "a list"}.get(tp.__name__, tp.__name__)
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:  # the schema's Int / Float: the type is the first argument
        return _type_name(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if any(isinstance(a, type) and issubclass(a, enum.Enum) for a in args):
            args = tuple(a for a in args if a is not str)
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, Sequence):
        return "a list"
    if origin in (dict, Mapping):
        return "a mapping"
    return str(tp)


class _Mismatch(Exception):
    pass


def check(value: Any, tp: Any, path: str) -> Any:
    """Type-check (and lightly coerce) a YAML value against an annotation; raise ConfigError naming `path`."""
    try:
        return _match(value, tp, coerce=False)
    except _Mismatch:
        pass
    try:
        return _match(value, tp, coerce=True)
    except _Mismatch:
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {_describe(value)}") from None


def _match(value: Any, tp: Any, *, coerce: bool) -> Any:
    if tp is Any or tp is object:
        return value
    if tp is type(None) or tp is None:
        if value is None:
            return None
        raise _Mismatch
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if any(isinstance(a, type) and issubclass(a, enum.Enum) for a in args):
            # `SchedulerType | str`: the str arm only exists for parsing; the value must be a member
            args = tuple(a for a in args if a is not str)
        for arm in args:  # exact matches first, so `int | str` keeps 3 an int
            try:
                return _match(value, arm, coerce=False)
            except _Mismatch:
                continue
        if coerce:
            for arm in args:
                try:
                    return _match(value, arm, coerce=True)
                except _Mismatch:
                    continue
        raise _Mismatch
    if origin is typing.Literal:
        if value in typing.get_args(tp) and not (isinstance(value, bool) and False not in typing.get_args(tp)):
            return value
        raise _Mismatch
    if origin in (list, Sequence, tuple):
        if not isinstance(value, list | tuple):
            if coerce and isinstance(value, str):  # `target_modules: q_proj` -> [q_proj]
                value = [value]
            else:
                raise _Mismatch
        (item_tp,) = typing.get_args(tp)[:1] or (Any,)
        return [_match(v, item_tp, coerce=coerce) for v in value]
    if origin in (dict, Mapping):
        if not isinstance(value, dict):
            raise _Mismatch
        return value
    if not isinstance(tp, type):
        return value  # an annotation we cannot check (TypeVar, ForwardRef, ...): let the constructor decide
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if coerce and isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if coerce and isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads 5e-6 as a string
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value.value
        if isinstance(value, str) and value in {m.value for m in tp}:
            return value
        raise _Mismatch
    if tp in (dict, list):
        if isinstance(value, tp):
            return value
        raise _Mismatch
    if isinstance(value, tp):
        return value
    raise _Mismatch


# pydantic's range errors; `section_error` words them from the field's own bounds
_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}


def section_error(exc: ValidationError, section: type[BaseModel], raw: Mapping[str, Any], path: str) -> ConfigError:
    """The first error of validating `raw` as `section` (at key path `path`) as one line naming the key:
    unknown key (with did-you-mean), not one of the allowed values, out of range (the field's bounds,
    "(or null)" where null is allowed), a field validator's sentence, or the expected type."""
    err = exc.errors(include_url=False)[0]
    key = str(err["loc"][0]) if err["loc"] else ""
    where = f"{path}.{key}" if key else path
    if err["type"] == "extra_forbidden":
        return unknown_key(path, key, section.model_fields)
    if err["type"] == "value_error":  # a field validator's own sentence
        return ConfigError(f"{where}: {err['ctx']['error']}")
    info = section.model_fields[key]
    value = raw.get(key, err["input"])
    if err["type"] == "literal_error":
        allowed = typing.get_args(info.annotation)
        return ConfigError(f"{where}: must be one of {', '.join(map(str, allowed))}, got {value!r}")
    if err["type"] in _RANGE_ERRORS:
        return ConfigError(f"{where}: must be {_span(info)}, got {value}")
    return ConfigError(f"{where}: expected {_type_name(info.annotation)}, got {_describe(value)}")


def _span(info: Any) -> str:
    """`>= 1`, `in [0, 1)`, `a finite number > 0 (or null for 2 * r)`: a field's range in words."""
    bound = {name: getattr(m, name) for m in info.metadata for name in ("ge", "gt", "le", "lt") if hasattr(m, name)}
    low, high = bound.get("ge", bound.get("gt")), bound.get("le", bound.get("lt"))
    if high is None:
        span = f"{'>=' if 'ge' in bound else '>'} {low}"
    else:
        span = f"in {'[' if 'ge' in bound else '('}{low}, {high}{']' if 'le' in bound else ')'}"
    finite = any(getattr(m, "allow_inf_nan", None) is False for m in info.metadata)
    extra = info.json_schema_extra or {}
    notes = []
    if type(None) in typing.get_args(info.annotation):
        notes.append(f"or null for {extra['null']}" if "null" in extra else "or null")
    if "why" in extra:
        notes.append(str(extra["why"]))
    return ("a finite number " if finite else "") + span + (f" ({', '.join(notes)})" if notes else "")
