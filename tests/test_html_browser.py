"""The heatmap page in headless Chromium (Debian `chromium`): it loads without JavaScript errors,
every signal row is in the DOM, hostile token text stays text, and a screenshot renders.

Set ARCA_SCREENSHOT_DIR to keep the screenshot (e.g. to look at it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from arca_rl._report.html import Completion, Section, SummaryRow, write_page

pytestmark = pytest.mark.browser

SIGNALS = ["uniform", "surprisal", "entropy_reduction", "divergence", "arca"]
HOSTILE = [
    "<img src=x onerror=\"document.body.setAttribute('data-pwned', 1)\">",
    "&amp;",
    '"q"',
    "'s",
    "</span>",
    " ",
    "\n",
    "\t",
    "",
    "é",
    "<script>x()</script>",
]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


CHROMIUM = _chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless chromium not found (install Debian's `chromium`; `make test` runs scripts/ensure_chromium.sh)",
)


def _page(tmp_path: Path) -> Path:
    comps = []
    for i in range(3):
        toks = [
            "Step",
            " 1",
            ":",
            " 12",
            "+",
            "7",
            "=",
            "19",
            ".",
            "\n",
            *HOSTILE,
            " \\boxed{",
            "19",
            "}",
            "<eos>",
        ]
        n = len(toks)
        weights = {
            "uniform": [1 / n] * n,
            "surprisal": [(j % 5 + 1) / sum(k % 5 + 1 for k in range(n)) for j in range(n)],
            "entropy_reduction": [0.9 if j == 1 + i else 0.1 / (n - 1) for j in range(n)],
            "divergence": [(j + 1) / (n * (n + 1) / 2) for j in range(n)],
            "arca": [(n - j) / (n * (n + 1) / 2) for j in range(n)],
        }
        sal = {s: [w * 10 for w in ws] for s, ws in weights.items()}
        comps.append(
            Completion(
                tokens=toks,
                weights=weights,
                salience=sal,
                title=f"prompt {i} <b>",
                prompt="What is 12+7? <&>",
                meta={"reward": 1.0},
            )
        )
    summary = [
        SummaryRow(
            signal=s,
            gini=0.1 * k,
            effective_token_ratio=1 - 0.1 * k,
            top10_mass=0.2,
            regime="middle",
            n_rows=3,
        )
        for k, s in enumerate(SIGNALS)
    ]
    sec = Section(
        title="test <section>",
        completions=comps,
        summary=summary,
        absent={"custom": "needs <base_hidden>"},
        notes=["a note & more"],
    )
    return write_page(tmp_path / "report.html", "browser test", [sec])


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    base = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    return subprocess.run([*base, *args], capture_output=True, text=True, timeout=120)


@needs_chromium
def test_page_loads_without_errors_and_has_every_row(tmp_path: Path):
    page = _page(tmp_path)
    proc = _run(["--virtual-time-budget=3000", "--dump-dom", page.as_uri()], tmp_path)
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'id="js-status" data-status="ok"' in dom, "the page script did not run to its end"
    assert re.search(r'<div id="js-errors">\s*</div>', dom), (
        "JavaScript errors: " + dom[dom.find('id="js-errors"') :][:500]
    )
    # console errors Chromium logged for the page itself (network / dbus noise of the sandbox is not the page's)
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln and "report.html" in ln]
    assert not console, console
    for s in SIGNALS:
        assert dom.count(f'data-signal="{s}"') == 3, s  # one row per signal in each of the 3 completions
    # hostile token text is text: no element was injected and the image handler never ran
    assert not re.search(r"<body[^>]*data-pwned", dom)
    assert "<img" not in dom and "<script>x()" not in dom
    assert "&lt;img src=x onerror=" in dom
    assert "absent: needs &lt;base_hidden&gt;" in dom


@needs_chromium
def test_screenshot_is_not_empty(tmp_path: Path):
    page = _page(tmp_path)
    shot = tmp_path / "shot.png"
    proc = _run(
        ["--virtual-time-budget=3000", f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri()],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a blank page compresses to a few KB
    keep = os.environ.get("ARCA_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "heatmap_browser_test.png")
