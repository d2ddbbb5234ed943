"""Reports over finished runs (`arca report`) and the shared HTML/plot helpers of `arca diagnose`.

`write_report(run_dirs, out)` reads run directories written by `arca train` and writes into `out`:

- `report.md`   Tables 2 and 3 (mean ± 95% Student-t CI over seeds), the list of runs, messages
- `table2.csv`  method, rank, n, greedy_acc(+_ci95), pass_at_k(+_ci95), k, avg_train_reward(+_ci95)
- `table3.csv`  method, rank, n, mean_gini(+_ci95), mean_effective_token_ratio(+_ci95)
- `curves.png`  reward, Gini and EffN/T against step, one line per run
- `heatmaps.html` token-credit heatmaps of the runs that logged `credit_tokens.jsonl`

Missing or partial runs never stop the report: each gets a message and is left out of what it
cannot contribute to.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import rundir
from ..diagnostics import regime
from .html import Section, SummaryRow, completions_from_token_log, write_page
from .plots import plot_curves
from .tables import (
    TABLE2_COLUMNS,
    TABLE3_COLUMNS,
    RunData,
    RunLoadError,
    discover_runs,
    label_methods,
    load_run,
    markdown_table,
    mixed_settings,
    table2,
    table3,
    write_csv,
)

__all__ = ["ReportResult", "default_out_dir", "write_report"]

# Heatmaps per run: completions from the first and the last logged step, at most this many each.
HEATMAP_PER_STEP = 4


@dataclass
class ReportResult:
    """What `write_report` produced."""

    out_dir: Path
    runs: list[RunData]
    table2: list[dict]
    table3: list[dict]
    files: dict[str, Path] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


def default_out_dir(run_dirs: Sequence[str | Path]) -> Path:
    """`<common parent of the run directories>/report` (or `./report` when they share none)."""
    parents = [
        str(Path(p).resolve().parent if (Path(p) / rundir.CONFIG_FILE).is_file() else Path(p).resolve())
        for p in run_dirs
    ]
    if not parents:
        return Path("report")
    try:
        common = Path(os.path.commonpath(parents))
    except ValueError:
        return Path("report")
    return common / "report"


def _heatmap_sections(runs: Sequence[RunData], messages: list[str]):
    sections = []
    for r in runs:
        if r.token_log is None:
            continue
        records, bad = rundir.read_token_log(r.token_log)
        if bad:
            messages.append(f"{r.path}: skipped {bad} unreadable line(s) in credit_tokens.jsonl (not UTF-8 or not JSON)")
        comps = completions_from_token_log(records)
        if not comps:
            messages.append(f"{r.path}: credit_tokens.jsonl has no usable records")
            continue
        steps = sorted({step for c in comps if isinstance(step := c.meta.get("step"), int)})
        keep_steps = {steps[0], steps[-1]} if steps else set()
        chosen = []
        for s in sorted(keep_steps):
            chosen.extend([c for c in comps if c.meta.get("step") == s][:HEATMAP_PER_STEP])
        if not chosen:
            chosen = comps[:HEATMAP_PER_STEP]
        summary = [
            SummaryRow(
                signal=r.method,
                gini=r.mean_gini,
                effective_token_ratio=r.mean_effective_token_ratio,
                top10_mass=r.mean_of("credit/top10_mass"),
                regime=regime(r.mean_gini, r.mean_effective_token_ratio),
            )
        ]
        shadows = dict.fromkeys(
            k.split("/")[1] for m in r.metrics for k in m if k.startswith("shadow/") and k.count("/") == 2
        )
        for sig in shadows:  # signals scored alongside without driving the gradient (credit_shadow)
            g, e = r.mean_of(f"shadow/{sig}/gini"), r.mean_of(f"shadow/{sig}/effective_token_ratio")
            summary.append(
                SummaryRow(
                    signal=sig,
                    gini=g,
                    effective_token_ratio=e,
                    top10_mass=r.mean_of(f"shadow/{sig}/top10_mass"),
                    regime=regime(g, e),
                )
            )
        shown = ", ".join(str(s) for s in sorted(keep_steps)) or "?"
        sections.append(
            Section(
                title=f"{r.name}",
                subtitle=f"method {r.method} (drives the gradient; first row), rank {r.rank}, seed {r.seed}, "
                f"credit mix {'?' if r.final_mix is None else f'{r.final_mix:.3g}'} at the end; "
                f"completions logged at step(s) {shown} ({len(comps)} logged in all)"
                + (f"; shadow signals: {', '.join(shadows)}" if shadows else "")
                + ".",
                completions=chosen,
                summary=summary,
                table_note="Means over the run's logging steps of the logged batch figures.",
            )
        )
    return sections


def write_report(
    run_dirs: Iterable[str | Path],
    out: str | Path | None = None,
    *,
    log: Callable[[str], None] | None = print,
) -> ReportResult:
    """Read the run directories (or folders holding them) and write the report files into `out`.

    Returns a ReportResult; `log` receives progress and skip messages (None silences them).
    """
    say = log or (lambda _m: None)
    paths = list(run_dirs)
    found, messages = discover_runs(paths)
    out_dir = Path(out) if out is not None else default_out_dir(paths)
    out_dir = out_dir.resolve()
    runs: list[RunData] = []
    for d in found:
        if d.resolve() == out_dir or ((d / "report.md").is_file() and not (d / rundir.METRICS_FILE).is_file()):
            continue  # our own output folder
        try:
            run = load_run(d)
        except RunLoadError as exc:
            messages.append(f"{exc}; skipped")
            continue
        messages.extend(run.warnings)
        runs.append(run)

    label_methods(runs)  # runs that differ in trainer (or loss) are different methods, labelled as such
    messages.extend(mixed_settings(runs))
    t2 = table2(runs)
    t3 = table3(runs)
    result = ReportResult(out_dir=out_dir, runs=runs, table2=t2, table3=t3, messages=messages)
    out_dir.mkdir(parents=True, exist_ok=True)
    result.files["table2.csv"] = write_csv(t2, out_dir / "table2.csv", TABLE2_COLUMNS)
    result.files["table3.csv"] = write_csv(t3, out_dir / "table3.csv", TABLE3_COLUMNS)

    if runs:
        curves = plot_curves(runs, out_dir / "curves.png")
        if curves is not None:
            result.files["curves.png"] = curves
        else:
            messages.append(
                "no run logged reward / credit/gini / credit/effective_token_ratio; no curves.png"
            )

    sections = _heatmap_sections(runs, messages)
    if sections:
        result.files["heatmaps.html"] = write_page(
            out_dir / "heatmaps.html",
            "arca report: token credit heatmaps",
            sections,
            subtitle=f"{len(sections)} run(s) that logged credit_tokens.jsonl",
        )

    md = _markdown(result)
    result.files["report.md"] = out_dir / "report.md"
    result.files["report.md"].write_text(md, encoding="utf-8")
    for m in messages:
        say(m)
    say(markdown_table(t2, 2) if t2 else "Table 2: no run with eval.json")
    say(markdown_table(t3, 3) if t3 else "Table 3: no run with credit diagnostics")
    say(f"report written to {out_dir}")
    return result


def _markdown(res: ReportResult) -> str:
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        "# arca report",
        "",
        f"{len(res.runs)} run(s), generated {now}. Runs are grouped by (method, rank); with several seeds a cell is "
        "`mean ± half-width` of the 95% Student-t confidence interval (n - 1 degrees of freedom); a single seed "
        "has no interval.",
        "",
        "## Table 2: held-out accuracy and training reward",
        "",
        markdown_table(res.table2, 2) if res.table2 else "_No run has eval.json yet._",
        "",
        "## Table 3: token-weight concentration (means over training)",
        "",
        markdown_table(res.table3, 3)
        if res.table3
        else "_No run logged credit/gini or credit/effective_token_ratio._",
        "",
    ]
    if "curves.png" in res.files:
        lines += ["## Training curves", "", "![reward, Gini and EffN/T against step](curves.png)", ""]
    if "heatmaps.html" in res.files:
        lines += [
            "Token heatmaps of the runs that logged `credit_tokens.jsonl`: [heatmaps.html](heatmaps.html)",
            "",
        ]
    lines += [
        "## Runs",
        "",
        "| run | method | rank | seed | credit mix | steps logged | eval | path |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in res.runs:
        ev = "yes" if r.eval is not None else "missing"
        mix = "?" if r.final_mix is None else f"{r.final_mix:.3g}"
        lines.append(
            f"| {r.name} | {r.method} | {r.rank} | {r.seed} | {mix} | {len(r.metrics)} | {ev} | `{r.path}` |"
        )
    lines += [
        "",
        "_credit mix_: the `credit_mix` lambda in force at the end of training (the last logged `credit/mix`): each "
        "token's weight is `(1 - lambda) / T + lambda * w_signal`, so 1 is the signal alone and 0 uniform credit.",
    ]
    if res.messages:
        lines += ["", "## Messages", ""] + [f"- {m}" for m in res.messages]
    return "\n".join(lines) + "\n"
