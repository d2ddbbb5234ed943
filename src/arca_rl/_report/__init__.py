"""Reports over finished runs (`arca report`) and the shared HTML/plot helpers of `arca diagnose`.

`write_report(run_dirs, out)` reads run directories written by `arca train` and writes into `out`:

- `report.md`   Tables 2 and 3 (mean ± 95% Student-t CI over seeds), the list of runs, messages
- `table2.csv`  method, rank, n, greedy_acc(+_ci95), pass_at_k(+_ci95), k, avg_train_reward(+_ci95)
- `table3.csv`  method, rank, n, mean_gini(+_ci95), mean_effective_token_ratio(+_ci95)
- `curves.png`  reward, Gini and EffN/T against step, one line per run
- `paired.json` with a baseline method (`baseline`, default uniform when a uniform run is there): every other
  method's paired difference from it seed by seed, with its 95% t interval and wins / ties / losses, for held-out
  greedy accuracy, pass@k and the learning-curve area; the paired t test's p Holm-corrected across the methods,
  the minimum detectable effect (80% power), with a `margin` the equivalence test (TOST) and its verdict, and with
  per-problem records (`eval_problems.jsonl`) a bootstrap interval over seeds and problems (`_report.paired`).
  Only runs whose configs differ in the method, its credit settings, the trainer and the seed are paired
- `learning_curves.png` held-out greedy accuracy (curve.jsonl, `eval.every_steps`) and training reward against
  step, a line per method (mean over seeds) and a band (lowest to highest seed)
- `heatmaps.html` the learning curves and token-credit heatmaps of the runs that logged `credit_tokens.jsonl`

What is read: each path must exist and be (or hold, up to two levels down) a run folder with config.yaml;
otherwise `ConfigError` (one line) and nothing is written. Only finished runs (finished.json) count: a run
still training (its lock held) or unfinished is skipped with a message, never averaged with finished seeds;
two runs of one method, rank and seed are one seed. Damaged files and values are named in a message.

Where: `out` is new, empty, or an earlier report's folder; a folder holding anything else (a user's files) is
refused before any run is read, and only files an earlier report recorded writing are replaced or removed
(`arca_rl._outfolder`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import _outfolder, rundir
from .._checks import check_number
from ..diagnostics import regime
from ..errors import ConfigError
from .checks import token_log_problems
from .html import Section, SummaryRow, completions_from_token_log, write_page
from .paired import MEASURES, PairedEntry, default_baseline, paired_differences, paired_json, paired_markdown
from .plots import plot_curves, plot_learning_curves
from .tables import (
    TABLE2_COLUMNS,
    TABLE3_COLUMNS,
    RunData,
    RunLoadError,
    deduplicate_seeds,
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
    baseline: str | None = None
    paired: list[PairedEntry] = field(default_factory=list)
    margin: float | None = None


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
            messages.append(
                f"{r.path}: skipped {bad} unreadable line(s) in credit_tokens.jsonl (not UTF-8 or not JSON)"
            )
        messages.extend(f"{r.path}: {problem}" for problem in token_log_problems(r.token_log))
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


_GLOB_CHARS = ("*", "?", "[")


def _runs_in(paths: Sequence[str | Path]) -> tuple[list[Path], list[str]]:
    """The run folders under the given paths, and messages about folders skipped on the way; ConfigError (one
    line, before anything is written) for a path that is missing, a file, or holds no run folder."""
    if not paths:
        raise ConfigError(
            "arca report: no run folder given; pass run folders written by arca train, or folders holding them"
        )
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            if any(c in str(raw) for c in _GLOB_CHARS):
                raise ConfigError(
                    f"{raw}: the pattern matched nothing (the shell passed it as it is); train a run there first, "
                    "or pass existing run folders"
                )
            raise ConfigError(f"{raw}: does not exist; pass run folders written by arca train, or folders holding them")
        if not p.is_dir():
            raise ConfigError(
                f"{raw}: is a file, not a run folder; pass run folders written by arca train, or folders holding them"
            )
    found, messages = discover_runs(paths)
    for raw in paths:
        mine, _ = discover_runs([raw])
        if not mine and not rundir.outputs(raw):  # a run's outputs without config.yaml: said, and skipped
            raise ConfigError(
                f"{raw}: no run folder (one with config.yaml) in it or its subfolders; pass run folders written by "
                "arca train"
            )
    return found, messages


def write_report(
    run_dirs: Iterable[str | Path],
    out: str | Path | None = None,
    *,
    baseline: str | None = None,
    margin: float | None = None,
    pair_anyway: bool = False,
    log: Callable[[str], None] | None = print,
) -> ReportResult:
    """Read the run directories (or folders holding them) and write the report files into `out`.

    `baseline` names the method every other one is paired with (default: uniform when a uniform run is
    there); a named baseline with no finished run raises ConfigError, and so do runs of a named baseline and
    another method whose configs differ beyond the method (`_report.paired`), unless `pair_anyway` (then paired,
    the keys listed); with the default baseline such a method is left out with a message. `margin` (> 0, in the
    measures' units) adds the equivalence test and its verdict. A path that is missing, a file or
    holds no run folder raises ConfigError before anything is written, and so does a set of runs none of
    which is finished. Returns a ReportResult; `log` receives progress and skip messages (None silences them).
    `out` must be new, empty or an earlier report's (RunExistsError otherwise, naming what it holds, before any
    run is read); the files an earlier report recorded writing there and this one does not write are removed
    (`_outfolder`), so no curve or table of another set of runs stays beside this report.
    """
    say = log or (lambda _m: None)
    paths = list(run_dirs)
    if margin is not None:
        margin = check_number(margin, "--margin", low=0, low_open=True)
    found, messages = _runs_in(paths)
    out_dir = Path(out) if out is not None else default_out_dir(paths)
    out_dir = out_dir.resolve()
    earlier = _outfolder.claim(out_dir, command="report")  # a folder of the user's: refused before any run is read
    found, messages = _runs_in(paths)
    runs: list[RunData] = []
    for d in found:
        if d.resolve() == out_dir or ((d / "report.md").is_file() and not (d / rundir.METRICS_FILE).is_file()):
            continue  # our own output folder
        if rundir.is_running(d):
            messages.append(f"{d}: still training (a live process holds its lock); skipped")
            continue
        if not rundir.is_finished(d):
            messages.append(
                f"{d}: unfinished (no {rundir.FINISHED_FILE}: interrupted or crashed; `arca train --resume` "
                "continues it); skipped"
            )
            continue
        try:
            run = load_run(d)
        except RunLoadError as exc:
            messages.append(f"{exc}; skipped")
            continue
        messages.extend(run.warnings)
        runs.append(run)
    if not runs:
        why = "; ".join(messages[:3]) + (f"; and {len(messages) - 3} more" if len(messages) > 3 else "")
        raise ConfigError(f"arca report: no finished run to report on ({why}); nothing written")

    label_methods(runs)  # runs that differ in trainer (or loss) are different methods, labelled as such
    runs, duplicates = deduplicate_seeds(runs)
    messages.extend(duplicates)
    if baseline is not None and not any(r.method == baseline for r in runs):
        methods = ", ".join(sorted({r.method for r in runs}))
        raise ConfigError(f"--baseline: no finished run of method {baseline!r} (the runs' methods: {methods}); pick "
                          "one of them")
    named = baseline is not None
    baseline = baseline if baseline is not None else default_baseline(runs)
    if margin is not None and baseline is None:
        raise ConfigError(
            f"--margin {margin:g}: no baseline to compare with (no uniform run, none named); name one with --baseline"
        )
    messages.extend(mixed_settings(runs))
    t2 = table2(runs)
    t3 = table3(runs)
    paired: list[PairedEntry] = []
    if baseline is not None:
        paired, paired_messages = paired_differences(
            runs, baseline, margin=margin, refuse=named, pair_anyway=pair_anyway
        )
        messages.extend(paired_messages)
    result = ReportResult(
        out_dir=out_dir, runs=runs, table2=t2, table3=t3, messages=messages, baseline=baseline, paired=paired,
        margin=margin,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    result.files["table2.csv"] = write_csv(t2, out_dir / "table2.csv", TABLE2_COLUMNS)
    result.files["table3.csv"] = write_csv(t3, out_dir / "table3.csv", TABLE3_COLUMNS)
    if baseline is not None:
        result.files["paired.json"] = out_dir / "paired.json"
        body = json.dumps(paired_json(paired, baseline, margin=margin), indent=2)
        result.files["paired.json"].write_text(body + "\n")

    curves = plot_curves(runs, out_dir / "curves.png")
    if curves is not None:
        result.files["curves.png"] = curves
    else:
        messages.append("no run logged reward / credit/gini / credit/effective_token_ratio; no curves.png")
    learning = plot_learning_curves(runs, out_dir / "learning_curves.png")
    if learning is not None:
        result.files["learning_curves.png"] = learning
    if not any(r.curve for r in runs):
        messages.append("no run has a held-out curve (curve.jsonl: set eval.every_steps); no learning-curve area")

    sections = _heatmap_sections(runs, messages)
    if learning is not None:
        sections.insert(0, _learning_section(result, learning))
    if sections:
        n_heat = len(sections) - (learning is not None)
        result.files["heatmaps.html"] = write_page(
            out_dir / "heatmaps.html",
            "arca report: learning curves and token credit heatmaps",
            sections,
            subtitle=f"{n_heat} run(s) that logged credit_tokens.jsonl",
        )

    md = _markdown(result)
    result.files["report.md"] = out_dir / "report.md"
    result.files["report.md"].write_text(md, encoding="utf-8")
    _outfolder.record(out_dir, result.files.values(), earlier, command="report")  # and an earlier report's rest goes
    for m in messages:
        say(m)
    say(markdown_table(t2, 2) if t2 else "Table 2: no run with eval.json")
    say(markdown_table(t3, 3) if t3 else "Table 3: no run with credit diagnostics")
    if baseline is not None:
        say(f"Paired differences from {baseline} (same seed):")
        say(paired_markdown(paired, baseline, margin=margin) if paired else f"  no method to pair with {baseline}")
    say(f"report written to {out_dir}")
    return result


_BAND = "line: mean over seeds; band: lowest to highest seed (min-max)"


def _learning_section(res: ReportResult, png: Path) -> Section:
    notes = []
    for e in res.paired:
        ci = (
            f" [{e.ci_low:+.3f}, {e.ci_high:+.3f}]"
            if e.ci_low is not None and e.ci_high is not None
            else f" ({e.note})"
        )
        tests = "" if e.p_holm is None else f", Holm-corrected p {e.p_holm:.3g}"
        tests += "" if e.verdict is None else f", {e.verdict}"
        notes.append(
            f"{e.method} r{e.rank} − {res.baseline}, {e.measure}: {e.mean:+.3f}{ci} over {e.n_seeds} seed(s), "
            f"wins / ties / losses {e.wins} / {e.ties} / {e.losses}{tests}"
        )
    return Section(
        title="Learning curves",
        subtitle=f"Held-out greedy accuracy (curve.jsonl) and training reward against step; {_BAND}."
        + (f" Paired differences from {res.baseline} (95% t interval over seeds):" if notes else ""),
        notes=notes,
        histograms=False,
        figures=[(f"held-out greedy accuracy and training reward; {_BAND}", png)],
    )


def _eval_time_line(runs: Sequence[RunData]) -> list[str]:
    """The held-out evaluation's wall time over the runs (finished.json's eval_seconds), as a paragraph."""
    secs = [s for r in runs if r.eval is not None and (s := r.eval_seconds) is not None]
    if not secs:
        return []
    ns = sorted({int(n) for r in runs if (n := r.eval_value("n")) is not None})
    problems = f" on {'/'.join(map(str, ns))} held-out problems" if ns else ""
    spread = f"{min(secs):.1f} s" if min(secs) == max(secs) else f"{min(secs):.1f}-{max(secs):.1f} s"
    return [
        f"Held-out evaluation after training (greedy + sampled for pass@k){problems}: {spread} of wall time per "
        f"run over {len(secs)} run(s) (finished.json's `eval_seconds`; per run in the runs table).",
        "",
    ]


def _statistics_paragraph(res: ReportResult) -> list[str]:
    """What the paired table's test columns mean, as a paragraph."""
    text = (
        "_p (Holm)_: the two-sided paired t test of a zero mean difference, Holm-corrected across the methods "
        "compared on the same measure (`p` in paired.json is uncorrected). _MDE_: the minimum detectable effect of "
        "this design, the true difference a two-sided paired t test at 0.05 over these seeds would detect with 80% "
        "power given the observed paired standard deviation (noncentral t); a difference smaller than it may have "
        "gone unseen."
    )
    if any(e.boot_ci_low is not None for e in res.paired):
        text += (
            " _bootstrap 95% CI_: greedy accuracy's percentile interval from resampling seeds and, within them, "
            "held-out problems (the same problems for both methods; `eval_problems.jsonl`), 2000 resamples."
        )
    if res.margin is not None:
        m = f"{res.margin:g}"
        text += (
            f" _verdict_ at the margin ±{m} (two one-sided paired t tests, TOST, Holm-corrected, at 0.05): "
            f"`equivalent within ±{m}` when the difference is shown to lie inside ±{m} (with one method: its 90% "
            "interval lies inside); otherwise `better` or `worse` when the Holm-corrected p is below 0.05 (with one "
            "method: the 95% interval excludes 0); otherwise `undecided` (also with one seed or no spread)."
        )
    else:
        text += " With `--margin M`, an equivalence test at ±M gives each row a verdict."
    return [text, ""]


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
        *_eval_time_line(res.runs),
        "## Table 3: token-weight concentration (means over training)",
        "",
        markdown_table(res.table3, 3)
        if res.table3
        else "_No run logged credit/gini or credit/effective_token_ratio._",
        "",
    ]
    if res.baseline is not None:
        lines += [f"## Paired differences from {res.baseline}", ""]
        lines += [
            f"Each method minus {res.baseline}, seed by seed (runs of one seed see the same prompts in the same "
            "order), over the seeds both have at the same rank: the mean difference with its 95% Student-t "
            "interval (n - 1 degrees of freedom; none with one seed) and wins / ties / losses over seeds. "
            "Also in `paired.json`. Measures: "
            + "; ".join(f"`{name}`: {what}" for name, (what, _v) in MEASURES.items())
            + ".",
            "",
            *_statistics_paragraph(res),
            paired_markdown(res.paired, res.baseline, margin=res.margin)
            if res.paired
            else f"_No method to pair with {res.baseline}._",
            "",
        ]
    if "learning_curves.png" in res.files:
        lines += [
            "## Learning curves",
            "",
            f"Held-out greedy accuracy (`curve.jsonl`, `eval.every_steps`) and training reward against step; {_BAND}.",
            "",
            "![held-out greedy accuracy and training reward against step](learning_curves.png)",
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
        "| run | method | rank | seed | credit mix | steps logged | eval | eval s | curve points | curve area | path |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in res.runs:
        ev = "yes" if r.eval is not None else "missing"
        mix = "?" if r.final_mix is None else f"{r.final_mix:.3g}"
        secs = "—" if r.eval_seconds is None else f"{r.eval_seconds:.1f}"
        auc = "—" if r.curve_auc is None else f"{r.curve_auc:.3f}"
        lines.append(
            f"| {r.name} | {r.method} | {r.rank} | {r.seed} | {mix} | {len(r.metrics)} | {ev} | {secs} | "
            f"{len(r.curve)} | {auc} | `{r.path}` |"
        )
    lines += [
        "",
        "_credit mix_: the `credit_mix` lambda in force at the end of training (the last logged `credit/mix`): each "
        "token's weight is `(1 - lambda) / T + lambda * w_signal`, so 1 is the signal alone and 0 uniform credit. "
        "_eval s_: wall time of the held-out evaluation after training (finished.json's `eval_seconds`). "
        "_curve area_: the area under the held-out curve over its step span (trapezoid rule), a mean accuracy.",
    ]
    if res.messages:
        lines += ["", "## Messages", ""] + [f"- {m}" for m in res.messages]
    return "\n".join(lines) + "\n"
