"""Reading a config file: UTF-8 YAML text -> overrides applied -> a validated `RunConfig`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from ..errors import ConfigError
from .overrides import apply_overrides
from .schema import RunConfig, parse_config

__all__ = ["PACKAGED_CONFIGS", "config_path", "is_packaged", "load_config", "packaged_configs"]

#: The configs that ship inside the package (`arca_rl/configs/`): a pip-installed user has no `configs/` folder,
#: so `arca train -c demo` finds them by name from any folder.
PACKAGED_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def packaged_configs() -> list[str]:
    """The names of the packaged configs: their paths under `arca_rl/configs/` without `.yaml` (`demo`,
    `smollm2-rg/uniform`, ...), sorted."""
    return sorted(p.relative_to(PACKAGED_CONFIGS).with_suffix("").as_posix() for p in PACKAGED_CONFIGS.rglob("*.yaml"))


def config_path(path: str | Path) -> Path:
    """The config file `path` names, by one rule every command follows (`arca train -c`, `arca eval --config`,
    `arca sweep --config`, `arca demo --config`, `load_config`, `plan_sweep`):

    1. `path` itself when it is a file (a file of yours wins);
    2. `path` + ``.yaml`` when that is a file (``-c demo`` reads ``./demo.yaml`` when there is one);
    3. the packaged config it names (`demo`, `demo.yaml`, `smollm2-rg/uniform`; `packaged_configs`).

    A folder is never a config: a local folder ``demo/`` does not hide the packaged `demo`. When none of these
    is a file, `path` comes back unchanged (reading it then fails with one line that lists the packaged names).
    `is_packaged` tells the caller which kind it got, so that it can say which file it read.
    """
    path = Path(path)
    if path.is_file():
        return path
    if path.name and path.suffix != ".yaml":
        local = path.with_name(path.name + ".yaml")
        if local.is_file():
            return local
    name = path.as_posix().removesuffix(".yaml")
    if name in packaged_configs():
        return PACKAGED_CONFIGS / f"{name}.yaml"
    return path


def is_packaged(path: str | Path) -> bool:
    """Whether `path` is one of the configs that ship in the package."""
    try:
        return Path(path).resolve().is_relative_to(PACKAGED_CONFIGS)
    except OSError:
        return False


def load_config(path: str | Path, overrides: Sequence[str] = (), *, build: bool = True) -> RunConfig:
    """Read a YAML config, apply `section.key=value` overrides, validate everything (no model loads).

    `path` may name a packaged config (`demo`, see `packaged_configs`). `name` defaults to the file's stem.
    `build`: see `parse_config`.
    """
    path = config_path(path)
    known = f"packaged configs, by name: {', '.join(packaged_configs())}"
    if path.is_dir():
        raise ConfigError(f"{path}: a folder, not a config file; name a YAML file in it, or one of the {known}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        hint = "" if path.exists() else f"; {known}"
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc}){hint}") from exc
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
