"""`--set` overrides: `section.key=value` strings applied to a config mapping, values parsed as YAML.

`training.learning_rate=1e-5`, `lora.target_modules=[q_proj,v_proj]`, `task.source=data/math`; an
empty value is null. `parse_assignment` is the `KEY=VALUE` reader the other `arca` flags share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from ..errors import ConfigError

__all__ = ["apply_overrides", "parse_assignment"]


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a deep copy of `raw` with each `a.b.c=value` applied (value parsed as YAML)."""
    out = _deepcopy(dict(raw))
    for item in overrides:
        key, value = parse_assignment(item, "--set", form="section.key=value", example="training.learning_rate=1e-5")
        parts = key.split(".")
        node: dict[str, Any] = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: depth + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def parse_assignment(text: str, flag: str, *, form: str = "KEY=VALUE", example: str) -> tuple[str, Any]:
    """`KEY=VALUE` -> (key, value parsed as YAML; an empty value is null). ConfigError names `flag`."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{flag} {text!r}: expected {form}, e.g. {example}")
    try:
        return key, yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{flag} {key}: value {value!r} is not valid YAML ({exc})") from exc


def _deepcopy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deepcopy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deepcopy(v) for v in value]
    return value
