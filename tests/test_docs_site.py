"""The docs site builds with `mkdocs build --strict`, and --strict really fails on a broken link.

`make docs` (and so `make test`) builds the site too; these tests pin what that build promises: the
README's blocks are included in the site, not copied, and a dead link or anchor stops the build.
"""

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(cwd: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )


def page_text(path: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def test_site_builds_and_includes_the_readme_blocks(tmp_path):
    result = build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    readme = (ROOT / "README.md").read_text()
    api = re.search(r"```python\n(.*?)```", readme, flags=re.S).group(1)
    index = page_text(tmp_path / "site" / "index.html")
    for line in api.splitlines():  # every line of the README's API example, as the site shows it
        assert line.strip() in index
    assert "make demo" in index and "--8<--" not in index
    nav = ["guide", "trainer", "oracle", "guarantees", "results", "many-gpus", "layout"]
    assert all((tmp_path / "site" / name / "index.html").is_file() for name in nav)


def test_a_broken_link_or_anchor_fails_the_build(tmp_path):
    for name in ("mkdocs.yml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    guide = tmp_path / "docs" / "guide.md"
    guide.write_text(guide.read_text() + "\n[gone](no-such-page.md), [no anchor](trainer.md#no-such-heading)\n")
    result = build(tmp_path, tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stderr and "#no-such-heading" in result.stderr
