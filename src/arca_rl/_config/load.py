"""Reading a config file: UTF-8 YAML text -> overrides applied -> a validated `RunConfig`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from ..errors import ConfigError
from .overrides import apply_overrides
from .schema import RunConfig, parse_config

__all__ = ["load_config"]


def load_config(path: str | Path, overrides: Sequence[str] = (), *, build: bool = True) -> RunConfig:
    """Read a YAML config, apply `section.key=value` overrides, validate everything (no model loads).

    `name` defaults to the file's stem. `build`: see `parse_config`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}); "
            "save the config as UTF-8"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    return parse_config(apply_overrides(raw, overrides), build=build)
