"""`make gpu-wheels` (scripts/gpu_wheels.py) and the device command benchmarks/gpu_check.sh.

The set check is tested on wheels the tests write (no network); the downloaded set, when .whl/ is there, is checked
as it is; and the slow test proves it complete: in a fresh virtual environment holding only a stand-in for the GPU
image (CPU torch 2.13.0, transformers 5.17.0 and the image's packages the set needs, from .whl-test/, offline), the
wheels install with --no-index and gpu_check.sh runs gpu_check.py at --shape tiny. A clone without .whl/ (CI)
skips what needs it: `make gpu-wheels` needs PyPI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_wheels", ROOT / "scripts" / "gpu_wheels.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_wheels"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


gw = load_script()


def write_wheel(
    folder: Path, name: str, version: str, requires: tuple[str, ...] = (), tag: str = "py3-none-any"
) -> Path:
    """A minimal wheel: its METADATA with `requires` as Requires-Dist lines (all the set check reads)."""
    stem = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{stem}-{tag}.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{stem}.dist-info/METADATA", meta)
    return path


def synthetic_set(tmp_path: Path, **changes: str | None) -> list:
    """arca-rl needs a>=1, b[x], img>=2 (an image package), e on Python < 3.12 only; b's extra x needs c, its extra
    y needs d. `changes`: a name -> another version, or None to leave that wheel out."""
    specs = {
        "arca-rl": ("0.1.0", ("a>=1", "b[x]", "img>=2", 'e; python_version < "3.12"')),
        "a": ("1.5", ()),
        "b": ("2.0", ('c; extra == "x"', 'd; extra == "y"')),
        "c": ("3.0", ()),
    }
    wheels = []
    for name, (version, requires) in specs.items():
        version = changes.get(name, version)
        if version is not None:
            wheels.append(gw.Wheel.read(write_wheel(tmp_path, name, version, requires)))
    return wheels


IMAGE = {canonicalize_name("img"): "2.5", canonicalize_name("other"): None}


def test_a_complete_set_passes_and_names_what_it_takes_from_the_image(tmp_path):
    rep = gw.check_set(synthetic_set(tmp_path), IMAGE)
    assert rep.problems == [] and set(rep.image_needs) == {"img"} and rep.unverified == []


def test_a_requirement_met_by_nothing_is_reported(tmp_path):
    rep = gw.check_set(synthetic_set(tmp_path, c=None), IMAGE)  # b[x] needs c
    assert rep.problems == ['b 2.0 needs c; extra == "x", which neither .whl nor the image holds']


def test_a_carried_version_outside_the_range_is_reported(tmp_path):
    rep = gw.check_set(synthetic_set(tmp_path, a="0.5"), IMAGE)
    assert rep.problems == ["arca-rl 0.1.0 needs a>=1, but .whl holds 0.5"]


def test_the_image_version_is_checked_where_it_was_read(tmp_path):
    old = {canonicalize_name("img"): "1.0"}
    assert gw.check_set(synthetic_set(tmp_path), old).problems == [
        "arca-rl 0.1.0 needs img>=2, but the image holds 1.0: carry one it accepts"
    ]
    unread = {canonicalize_name("img"): None}
    rep = gw.check_set(synthetic_set(tmp_path), unread)
    assert rep.problems == [] and rep.unverified == ["arca-rl 0.1.0 needs img>=2"]


def test_two_versions_a_stray_wheel_and_a_wrong_platform_are_reported(tmp_path):
    wheels = synthetic_set(tmp_path)
    (tmp_path / "second").mkdir()
    wheels.append(gw.Wheel.read(write_wheel(tmp_path / "second", "a", "1.6")))
    wheels.append(gw.Wheel.read(write_wheel(tmp_path, "stray", "1.0")))
    wheels.append(gw.Wheel.read(write_wheel(tmp_path, "compiled", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")))
    problems = gw.check_set(wheels, IMAGE).problems
    assert "two versions of a: a-1.5-py3-none-any.whl and a-1.6-py3-none-any.whl" in problems
    assert "stray-1.0-py3-none-any.whl: nothing in the set needs it" in problems
    assert (
        "compiled-1.0-cp311-cp311-manylinux_2_17_x86_64.whl: not installable on CPython 3.12 manylinux x86_64"
    ) in problems


def test_the_device_tags_are_cpython_312_on_linux_x86_64():
    from packaging.tags import Tag

    tags = gw.device_tags()
    for ok in ["py3-none-any", "cp312-cp312-manylinux_2_17_x86_64", "cp310-abi3-manylinux_2_28_x86_64",
               "py312-none-any", "cp312-cp312-linux_x86_64"]:  # fmt: skip
        assert Tag(*ok.split("-")) in tags, ok
    for bad in ["cp311-cp311-manylinux_2_17_x86_64", "cp312-cp312-manylinux_2_17_aarch64", "py313-none-any",
                "cp312-cp312-macosx_11_0_arm64"]:  # fmt: skip
        assert Tag(*bad.split("-")) not in tags, bad


def test_the_image_list_is_dated_and_lacks_what_is_carried():
    image = gw.read_image()
    assert re.fullmatch(r"20\d\d-\d\d-\d\d", gw.image_read_date())
    assert image["torch"] == "2.11.0" and image["transformers"] == "5.17.0" and image["accelerate"] == "1.15.0"
    assert {"peft", "scipy", "pandas", "pyarrow", "matplotlib", "numpy"} <= set(image)
    carried = {canonicalize_name(n) for n in gw.PINS} - {canonicalize_name(n) for n in gw.CARRIED_ANYWAY}
    assert not carried & set(image)


WHEELS = sorted((ROOT / ".whl").glob("*.whl"))
needs_wheels = pytest.mark.skipif(not WHEELS, reason=".whl/ is absent: `make gpu-wheels` (needs PyPI) downloads it")


@needs_wheels
def test_the_downloaded_set_is_complete_pinned_and_small():
    wheels = [gw.Wheel.read(p) for p in WHEELS]
    rep = gw.check_set(wheels, gw.read_image())
    assert rep.problems == []
    got = {w.name: str(w.version) for w in wheels}
    assert got == {"arca-rl": "0.1.0", **{canonicalize_name(n): v for n, v in gw.PINS.items()}}
    assert sum(p.stat().st_size for p in WHEELS) <= 60 * 2**20
    assert gw.main(["--check-only"]) == 0  # what `make gpu-wheels` ends with, on the set that is there


def test_the_device_command_refuses_without_wheels(tmp_path):
    env = {**os.environ, "GPU_CHECK_WHEELS": str(tmp_path / "none")}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out"), "60"],
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert proc.returncode == 2 and "run 'make gpu-wheels'" in proc.stderr
    bad = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out"), "6m"],
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert bad.returncode == 2 and "BUDGET_S must be a whole number of seconds" in bad.stderr


def host_wheels(wheels: list[Path], host: Path, dest: Path) -> None:
    """`dest`: the wheels of .whl/ that this Python installs, and for each of the others this machine's build of
    the same name and version from .whl-test/host/ (CPython 3.12 builds do not install on the test's Python)."""
    from packaging.tags import sys_tags

    mine = set(sys_tags())
    builds = {(w.name, w.version): w for w in map(gw.Wheel.read, host.glob("*.whl")) if w.tags & mine}
    dest.mkdir()
    for p in wheels:
        w = gw.Wheel.read(p)
        use = p if w.tags & mine else builds[(w.name, w.version)].path
        (dest / use.name).symlink_to(use)


@pytest.mark.slow
@needs_wheels
def test_the_wheels_complete_a_fresh_image_like_environment(tmp_path):
    cache = ROOT / ".whl-test"
    standin = cache / "standin.txt"
    if not standin.is_file():
        pytest.skip(".whl-test/ is absent: `make gpu-wheels` prepares the image stand-in this test needs")
    header = standin.read_text().splitlines()[0]
    here = f"Python {sys.version_info[0]}.{sys.version_info[1]}"
    if not header.endswith(here):
        pytest.skip(f".whl-test/ was prepared for another Python ({header}); this is {here}")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", HF_HUB_OFFLINE="1")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    py = str(venv / "bin" / "python")
    pip = [py, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--find-links", str(cache / "standin")]
    install = subprocess.run([*pip, "-r", str(standin)], capture_output=True, text=True, env=env)
    if install.returncode != 0:
        pytest.skip(f"the image stand-in cannot be built offline here: {(install.stdout + install.stderr)[-1500:]}")
    listed = subprocess.run([py, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True, env=env)
    present = {canonicalize_name(d["name"]): d["version"] for d in json.loads(listed.stdout)}
    # the environment holds the image's packages alone: nothing the wheels must bring is there already
    assert set(present) - {"pip"} <= set(gw.read_image()), set(present) - set(gw.read_image())
    assert present["transformers"] == "5.17.0" and present["torch"].startswith("2.13.0")

    wheels = tmp_path / "wheels"
    host_wheels(WHEELS, cache / "host", wheels)
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", str(out), "600", "--shape", "tiny", "--repeats", "1", "--oracle-k", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**env, "PYTHON": py, "GPU_CHECK_WHEELS": str(wheels)},
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "imports: ok" in proc.stdout
    result = json.loads((out / "gpu_check.json").read_text())
    carried = {w.name: str(w.version) for w in map(gw.Wheel.read, WHEELS)}
    v = result["versions"]
    assert v["python"].startswith(f"{sys.version_info[0]}.{sys.version_info[1]}.")
    assert v["transformers"] == "5.17.0" and v["torch"] == present["torch"]
    for name in ("trl", "peft", "datasets", "arca-rl"):  # what ran is what .whl carries
        assert v[name] == carried[name], name
    assert result["shape"] == "tiny" and set(result["step_s"]) == {"uniform", "arca", "surprisal", "tempo"}
    assert result["budget_s"] == 600 and result["oracle"]["continuations"] > 0


def test_the_documented_device_call_fits_the_device_limits():
    """docs/many-gpus.md's call: the script exists, .whl travels, the budget and its hard stop end inside 8 minutes,
    and the call's own limit leaves room for the install on top of the hard stop."""
    text = (ROOT / "docs" / "many-gpus.md").read_text()
    (block,) = re.findall(r"```json\n(\{.*?\})\n```", text, flags=re.S)
    call = json.loads(block)
    words = call["command"].split()
    assert words[:2] == ["bash", "benchmarks/gpu_check.sh"] and (ROOT / words[1]).is_file()
    assert call["carry"] == [".whl"]
    budget = int(words[3])
    script = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    (extra,) = map(int, re.findall(r"timeout -k 15 \$\(\(budget \+ (\d+)\)\)", script))
    assert budget + extra + 15 < 8 * 60
    assert budget + extra + 15 + 30 <= call["timeout_s"] <= 600
