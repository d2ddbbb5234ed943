"""Reading a config file: UTF-8 YAML text -> overrides applied -> a validated `RunConfig`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from ..errors import ConfigError
from .overrides import apply_overrides
from .schema import RunConfig, parse_config

__all__ = ["PACKAGED_CONFIGS", "config_path", "load_config", "packaged_configs"]

#: The configs that ship inside the package (`arca_rl/configs/`): a pip-installed user has no `configs/` folder,
#: so `arca train -c demo` finds them by name from any folder.
PACKAGED_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def packaged_configs() -> list[str]:
    """The names of the packaged configs: their paths under `arca_rl/configs/` without `.yaml` (`demo`,
    `smollm2-rg/uniform`, ...), sorted."""
    return sorted(p.relative_to(PACKAGED_CONFIGS).with_suffix("").as_posix() for p in PACKAGED_CONFIGS.rglob("*.yaml"))


def config_path(path: str | Path) -> Path:
    """`path` itself when it exists (a file of yours wins), else the packaged config it names (`demo`,
    `demo.yaml`, `smollm2-rg/uniform`), else `path` unchanged (reading it then fails with the usual error,
    which lists the packaged names)."""
    path = Path(path)
    if path.exists():
        return path
    name = path.as_posix().removesuffix(".yaml")
    if name in packaged_configs():
        return PACKAGED_CONFIGS / f"{name}.yaml"
    return path


def load_config(path: str | Path, overrides: Sequence[str] = (), *, build: bool = True) -> RunConfig:
    """Read a YAML config, apply `section.key=value` overrides, validate everything (no model loads).

    `path` may name a packaged config (`demo`, see `packaged_configs`). `name` defaults to the file's stem.
    `build`: see `parse_config`.
    """
    path = config_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        known = "" if path.exists() else f"; packaged configs, by name: {', '.join(packaged_configs())}"
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc}){known}") from exc
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
