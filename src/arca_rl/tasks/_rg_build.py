"""Building reasoning-gym data sets from a task's options: the options checked against the data set's own config
class, the build bounded in time, and reference entries kept exactly through JSON.

Private module of `arca_rl.tasks.reasoning_gym`. Every failure is one `ValueError` line naming the option
(``option 'config': ...``), whatever the data set raised.

- Types. reasoning-gym's config classes are dataclasses that do not check types; a value of the wrong type
  passes their ``validate()`` and fails later, deep in generation (``min_terms: 2.5``: "non-integer arg 1 for
  randrange()"). Each option is checked against the field's annotation first (`check_config`), with the two
  readings a YAML file needs (``1e9``, read as a string by YAML 1.1, is a number; ``2.0`` is an integer).
- ``composite``: its ``datasets`` are `DatasetSpec` objects, which YAML cannot write; a list of mappings
  (``{name, weight: 1.0, config: {}}``) is read into them, each sub data set's options checked the same way.
- Time. Some options make the build itself unbounded (``count_primes`` with ``max_n: 1e9`` sieves a billion
  numbers when the data set is made). `build_checked` makes the data set and its first item in a forked child
  process that is killed after `BUILD_SECONDS`; where ``fork`` is unavailable it builds in this process, unbounded.
- JSON. A reference entry travels as JSON in the ``solution`` column, and some scorers compare against metadata
  of types JSON does not keep (arc_agi's boards are tuples of tuples: after a plain round trip the exact reference
  answer scored 0.05). `dump_entry` tags tuples, sets and dicts with non-string keys, and `load_entry` restores
  them, so a fresh process scores a solution exactly as the one that generated it.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from .._checks import yaml11_number

__all__ = ["BUILD_SECONDS", "build", "build_checked", "check_config", "dump_entry", "load_entry"]

#: A data set (and its first item) that takes longer than this to build is refused (seconds).
BUILD_SECONDS = 60.0
#: Memory the build may take beyond what the process holds (bytes; Linux, where the child's address space is capped).
BUILD_MEMORY = 4 * 2**30
_TAGS = ("__tuple__", "__set__", "__dict__")


# ---------------------------------------------------------------------------------------------------------------
# option checking


def _registry() -> dict[str, Any]:
    from reasoning_gym.factory import DATASETS

    return DATASETS


def check_config(name: str, config: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
    """`config` for reasoning-gym data set `name`, each value checked against the config class's field type and
    read as the field needs it (``"1e9"`` -> 1000000000 for an int, a list for a tuple field; composite's
    ``datasets`` -> `DatasetSpec`). ValueError naming `where` and the field otherwise."""
    datasets = _registry()
    if name not in datasets:
        raise ValueError(
            f"option 'dataset': unknown reasoning-gym data set {name!r}; choose one of {', '.join(sorted(datasets))}"
        )
    if not isinstance(config, Mapping):
        raise ValueError(f"option {where!r} must be a mapping of {name}'s options, got {config!r}")
    _, config_cls = datasets[name]
    fields = [f.name for f in dataclasses.fields(config_cls) if f.name not in ("seed", "size")]
    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: its values are not checked
        hints = {}
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key not in fields:
            raise ValueError(f"option {where!r}: {name} has no option {key!r}; its options: {', '.join(fields)}")
        if name == "composite" and key == "datasets":
            out[key] = _dataset_specs(value, where)
            continue
        ok, read = _read(value, hints.get(key, Any))
        if not ok:
            raise ValueError(
                f"option {where!r}: {name}'s {key} must be {_describe(hints.get(key, Any))}, got {value!r}"
            )
        out[key] = read
    return out


def _dataset_specs(value: Any, where: str) -> list[Any]:
    """composite's ``datasets``: mappings ``{name, weight (default 1.0), config (default {})}`` -> `DatasetSpec`."""
    from reasoning_gym.composite import DatasetSpec

    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ValueError(
            f"option {where!r}: composite's datasets must be a non-empty list of {{name, weight, config}} mappings,"
            f" e.g. [{{name: chain_sum}}], got {value!r}"
        )
    specs = []
    for i, spec in enumerate(value):
        if isinstance(spec, DatasetSpec):
            specs.append(spec)
            continue
        at = f"{where}.datasets[{i}]"
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ValueError(
                f"option {at!r}: must be a mapping with a name (and optional weight, config), got {spec!r}"
            )
        unknown = sorted(set(spec) - {"name", "weight", "config"})
        if unknown:
            raise ValueError(
                f"option {at!r}: unknown key(s) {', '.join(map(repr, unknown))}; its keys: name, weight, config"
            )
        sub = spec["name"]
        if sub == "composite" or not isinstance(sub, str):
            raise ValueError(f"option {at!r}: name must be a reasoning-gym data set other than composite, got {sub!r}")
        weight = spec.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise ValueError(f"option {at!r}: weight must be a number > 0, got {weight!r}")
        sub_config = check_config(sub, spec.get("config") or {}, f"{at}.config")
        specs.append(DatasetSpec(name=sub, weight=float(weight), config=sub_config))
    return specs


def _read(value: Any, annotation: Any) -> tuple[bool, Any]:
    """(whether `value` fits `annotation`, the value as the field takes it). Types it cannot check pass as they are."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or annotation is None:
        return True, value
    if annotation is type(None):
        return value is None, value
    if origin is typing.Union or origin is types.UnionType:
        for option in args:
            ok, read = _read(value, option)
            if ok:
                return True, read
        return False, value
    if origin is typing.Literal:
        return value in args, value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        value = yaml11_number(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is float:
        value = yaml11_number(value)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if annotation is str:
        return isinstance(value, str), value
    if annotation in (list, tuple) or origin in (list, tuple, Sequence):
        if not isinstance(value, list | tuple):
            return False, value
        if origin is tuple and len(args) > 1 and args[1] is not Ellipsis:  # a fixed-length tuple
            if len(args) != len(value):
                return False, value
            element_types = list(args)
        else:
            element_types = [args[0] if args else Any] * len(value)
        items = [_read(v, t) for v, t in zip(value, element_types)]
        if not all(ok for ok, _ in items):
            return False, value
        read = [v for _, v in items]
        return True, tuple(read) if (annotation is tuple or origin is tuple) else read
    return True, value  # enums, dates, nested option classes: left to the data set's own checks


def _describe(annotation: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if annotation in names:
        return names[annotation]
    args = typing.get_args(annotation)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return " or ".join(_describe(a) for a in rest) + " (or null)"
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if typing.get_origin(annotation) in (list, tuple, Sequence) and args:
        return f"a list of {_describe(args[0]).removeprefix('an ').removeprefix('a ')}s"
    return f"of type {getattr(annotation, '__name__', annotation)}"


# ---------------------------------------------------------------------------------------------------------------
# building


def build(name: str, config: Mapping[str, Any], seed: int, size: int) -> Any:
    """The reasoning-gym data set `name` with options `config` (checked: `check_config`), drawing items from
    `seed`, `size` of them. Any failure is one ValueError line (``option 'config': ...``)."""
    checked = check_config(name, config)
    _, config_cls = _registry()[name]
    dataset_cls, _ = _registry()[name]
    try:
        cfg = config_cls(**checked, seed=seed, size=size)
        if hasattr(cfg, "validate"):
            cfg.validate()
        return dataset_cls(config=cfg)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - the data sets validate with assert, and fail in many other ways
        raise ValueError(f"option 'config': {name} refused {dict(config)!r}: {_one_line(exc)}") from None


def _first_item(name: str, config: Mapping[str, Any]) -> None:
    dataset = build(name, config, 0, 1)
    try:
        dataset[0]
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ValueError(
            f"option 'config': {name} with {dict(config)!r} fails to generate a problem: {_one_line(exc)}"
        ) from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _cap_memory() -> None:
    """Cap this (child) process's address space at what it holds now plus `BUILD_MEMORY`, where Linux allows it."""
    try:
        import resource

        with open("/proc/self/statm", encoding="ascii") as fh:
            held = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = held + BUILD_MEMORY
        if hard == resource.RLIM_INFINITY or limit < hard:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):  # not Linux: the time bound alone
        pass


def _child(writer: Any, name: str, config: Mapping[str, Any]) -> None:
    try:
        _cap_memory()
        _first_item(name, config)
        writer.send(None)
    except ValueError as exc:
        writer.send(str(exc))
    except MemoryError:
        writer.send(
            f"option 'config': building reasoning-gym {name} with {dict(config)!r} needs more than"
            f" {BUILD_MEMORY / 2**30:g} GiB of memory; lower the options"
        )
    except BaseException as exc:  # noqa: BLE001 - still one line to the parent
        writer.send(f"option 'config': {name} with {dict(config)!r} fails to build: {_one_line(exc)}")
    finally:
        writer.close()


def build_checked(name: str, config: Mapping[str, Any], seconds: float | None = None) -> None:
    """Check that data set `name` builds with `config` and generates its first item within `seconds` (default
    `BUILD_SECONDS`), in a forked child process that is killed at the limit. ValueError (one line) otherwise.
    Where ``fork`` is unavailable the check runs in this process, without the time bound."""
    check_config(name, config)  # the cheap checks first, here, so their message is the same everywhere
    limit = BUILD_SECONDS if seconds is None else seconds
    if "fork" not in multiprocessing.get_all_start_methods():
        _first_item(name, config)
        return
    ctx = multiprocessing.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    with warnings.catch_warnings():  # Python 3.12 warns about fork in a threaded process; the child runs no threads
        warnings.simplefilter("ignore", DeprecationWarning)
        child = ctx.Process(target=_child, args=(writer, name, config), daemon=True)
        child.start()
    writer.close()
    try:
        if not reader.poll(limit):
            raise ValueError(
                f"option 'config': building reasoning-gym {name} with {dict(config)!r} took more than {limit:g} s"
                " (stopped); options this large make the data set unbuildable: lower them"
            )
        try:
            message = reader.recv()
        except EOFError:
            child.join(5)
            message = (
                f"option 'config': building reasoning-gym {name} with {dict(config)!r} ended the build process"
                f" (exit code {child.exitcode}; out of memory?); lower the options"
            )
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        reader.close()
    if message is not None:
        raise ValueError(message)


# ---------------------------------------------------------------------------------------------------------------
# entries through JSON


def _tagged(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return {"__tuple__": [_tagged(x) for x in obj]}
    if isinstance(obj, set | frozenset):
        return {"__set__": [_tagged(x) for x in sorted(obj, key=repr)]}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not (len(obj) == 1 and next(iter(obj), None) in _TAGS):
            return {k: _tagged(v) for k, v in obj.items()}
        return {"__dict__": [[_tagged(k), _tagged(v)] for k, v in obj.items()]}
    if isinstance(obj, list):
        return [_tagged(x) for x in obj]
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return _tagged(obj.tolist())
    return str(obj)


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        key, value = next(iter(obj.items()))
        if key == "__tuple__":
            return tuple(value)
        if key == "__set__":
            return set(value)
        if key == "__dict__":
            return {k: v for k, v in value}
    return obj


def dump_entry(entry: Mapping[str, Any]) -> str:
    """An entry (``answer``, ``question``, ``metadata``) as JSON that `load_entry` turns back into an equal entry:
    tuples, sets and dicts with non-string keys are tagged; other types JSON lacks become their text."""
    return json.dumps(_tagged(dict(entry)), sort_keys=True)


def load_entry(text: str) -> Any:
    """The entry `dump_entry` wrote (any JSON otherwise). Raises ValueError/TypeError for text that is not JSON."""
    return json.loads(text, object_hook=_untag)
