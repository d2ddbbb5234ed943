"""Where `model.name_or_path` points: a hub id, a local folder, a short name of `arca_rl.models.MODELS`,
or (null) the tiny model shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..models import MODELS, model_dir, resolve_model
from ..tasks import tiny_model_path

__all__ = ["check_model_folder", "default_model_path", "resolve"]


def resolve(name_or_path: str | None, *, check: bool = False) -> str:
    """`RunConfig.model_path`: `name_or_path`, with null resolved to the embedded tiny model's folder.
    With `check`, a missing embedded model raises FileNotFoundError saying how to build it."""
    if name_or_path:
        # A short name (`arca_rl.models.MODELS`) means its converted folder; unchecked, the
        # folder's path even before `make real-model` has built it.
        if check or name_or_path.strip().lower() not in MODELS:
            path = resolve_model(name_or_path)
            if check:
                check_model_folder(path, "model.name_or_path")
            return path
        return str(model_dir(name_or_path.strip().lower()))
    path = default_model_path()
    if check and not (Path(path) / "config.json").is_file():
        raise FileNotFoundError(
            f"the embedded tiny model is missing ({path}); build it with `make tiny-model` "
            "or set model.name_or_path"
        )
    return path


def check_model_folder(name_or_path: str | Path, what: str = "model") -> None:
    """A local model folder must hold config.json; a path that looks local must exist. Hub ids pass
    (they are checked when they download). Raises ConfigError naming `what` and the folder."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"{what}: {text} has no config.json, so it is not a model folder; point it at a folder "
                "written by save_pretrained (or a hub id)"
            )
    elif path.exists():
        raise ConfigError(f"{what}: {text} is a file; point it at a model folder (or a hub id)")
    elif text.startswith(("/", "./", "../", "~")):
        raise ConfigError(f"{what}: {text} does not exist; point it at a model folder (or a hub id)")


def default_model_path() -> str:
    """Folder of the tiny model shipped with the package (`arca_rl.tasks.TINY_MODEL_PATH`)."""
    return tiny_model_path()
