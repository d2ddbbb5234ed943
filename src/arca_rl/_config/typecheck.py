"""The generic checks of YAML values: a value against a type annotation (`check`), and the one-line
message for an unknown key with its nearest valid key (`unknown_key`, `suggest`).

`check` reads dataclass annotations (the project's sections and TRL's `GRPOConfig` / `RLOOConfig` fields
alike) and coerces lightly: an integral float to int, a string such as `5e-6` to float (PyYAML reads
YAML 1.1, where a number without a dot is a string), one string to a one-item list.
"""

from __future__ import annotations

import difflib
import enum
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import ConfigError

__all__ = ["check", "suggest", "unknown_key"]


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
