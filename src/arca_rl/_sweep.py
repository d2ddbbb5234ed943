"""`arca sweep`: a grid of runs (credit x LoRA rank x seed) from one base config, one after another.

    from arca_rl import plan_sweep, run_sweep
    plan = plan_sweep("configs/demo.yaml", credits=["uniform", "arca"], ranks=[4, 16], seeds=[1, 2])
    run_sweep(plan)                       # trains what is missing, then writes the report

Each grid point is the base config with these overrides (applied after the user's `--set`s):

    name=<base>-<credit>-r<rank>-s<seed>
    training.credit=<credit>   lora.r=<rank>   training.seed=<seed>
    lora.alpha=<ratio * rank>

LoRA alpha: the base config's alpha / r ratio is kept across ranks, so a base config with no alpha
(alpha = 2r, the paper's setting) or an explicit alpha = 2r gives alpha = 2 * rank at every rank;
a base config with another explicit ratio (e.g. alpha = r) keeps that ratio. A user `--set
lora.alpha=...` wins: alpha then stays fixed at that value for every rank.

Each run goes to `<runs_dir>/<name>/`. Decisions, per run folder: finished (`finished.json`) ->
skip; holds a checkpoint or earlier output but is not finished -> resume (`train(resume=True)`
continues from the newest checkpoint, or starts over if there is none); absent or empty -> train.
A failing run is reported and the sweep goes on with the next one. The sweep ends with
`arca report` over all grid folders that exist, written to `<runs_dir>/<base>-sweep-report/`.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import _outfolder, rundir
from ._config import apply_overrides, config_path, load_config, parse_assignment
from ._report import write_report
from .errors import ConfigError

__all__ = ["SweepPlan", "SweepRun", "alpha_ratio", "dry_run_lines", "plan_sweep", "run_sweep"]


@dataclass
class SweepRun:
    """One grid point: its name, overrides, folder and what the sweep will do with it."""

    name: str
    credit: str
    rank: int
    seed: int
    overrides: list[str]
    run_dir: Path
    action: str  # "train" | "resume" | "skip"
    reason: str = ""

    def command(self, config: str | Path, *, launcher: str = "accelerate launch") -> str:
        """The shell line that runs this grid point on its own (`--dry-run` prints these)."""
        parts = [*shlex.split(launcher), "-m", "arca_rl.cli", "train", "--config", str(config)]
        for o in self.overrides:
            parts += ["--set", o]
        parts += ["--output-dir", str(self.run_dir)]
        if self.action == "resume":
            parts.append("--resume")
        return shlex.join(parts)


@dataclass
class SweepPlan:
    """The grid, in run order (credit-major, then rank, then seed)."""

    config: Path
    base_name: str
    runs_dir: Path
    runs: list[SweepRun]
    alpha_note: str
    user_overrides: list[str] = field(default_factory=list)

    @property
    def report_dir(self) -> Path:
        return self.runs_dir / f"{self.base_name}-sweep-report"


def alpha_ratio(raw_lora: Any, base_rank: int) -> tuple[float, str]:
    """(alpha / r ratio to keep across ranks, a note saying why) from the base config's `lora` section."""
    alpha = raw_lora.get("alpha") if isinstance(raw_lora, dict) else None
    if alpha is None:
        return 2.0, "lora.alpha = 2 * rank (base config sets no alpha)"
    ratio = float(alpha) / float(base_rank)
    if ratio == 2.0:
        return 2.0, f"lora.alpha = 2 * rank (base config: alpha {alpha} = 2 * r {base_rank})"
    return ratio, f"lora.alpha = {ratio:g} * rank (the base config's ratio alpha {alpha} / r {base_rank})"


def _user_sets(overrides: Sequence[str], key: str) -> bool:
    return any(parse_assignment(o, "--set", example=f"{key}=...")[0] == key for o in overrides)


def _decide(run_dir: Path) -> tuple[str, str]:
    status = rundir.state(run_dir)
    if status == "finished":
        return "skip", "finished"
    if status == "fresh":
        return "train", "new"
    if status == "running":
        return "skip", "in use by another process (rerun the sweep once it has ended)"
    ckpt = rundir.last_checkpoint(run_dir)
    if ckpt is not None:
        return "resume", f"interrupted; resumes from {ckpt.name}"
    return "resume", f"unfinished without a checkpoint ({', '.join(rundir.outputs(run_dir))}); starts over"


def plan_sweep(
    config: str | Path,
    *,
    credits: Sequence[str],
    ranks: Sequence[int],
    seeds: Sequence[int],
    overrides: Sequence[str] = (),
    runs_dir: str | Path = rundir.RUNS_DIR,
) -> SweepPlan:
    """Validate the base config and every grid point (no model loads) and decide what each run needs.

    Raises `arca_rl.ConfigError` on a bad base config, override or grid value, naming it.
    """
    if not credits or not ranks or not seeds:
        raise ConfigError("sweep: --credit, --rank and --seed each need at least one value")
    path = config_path(config)  # a packaged config's name too, as `arca train -c` takes it
    base = load_config(path, overrides)
    raw = yaml.safe_load(path.read_text()) or {}
    raw_with_sets = apply_overrides(raw, overrides)
    user_alpha = _user_sets(overrides, "lora.alpha")
    ratio, note = alpha_ratio(raw_with_sets.get("lora") or {}, base.lora.r)
    if user_alpha:
        note = f"lora.alpha = {base.lora.alpha} at every rank (set with --set lora.alpha)"
    for key in ("name", "training.credit", "lora.r", "training.seed"):
        if _user_sets(overrides, key):
            raise ConfigError(f"sweep: --set {key}=... conflicts with the grid; the sweep sets {key} itself")

    runs_root = Path(runs_dir)
    planned: list[SweepRun] = []
    for credit in credits:
        for rank in ranks:
            for seed in seeds:
                name = f"{base.name}-{credit}-r{rank}-s{seed}"
                grid = [f"name={name}", f"training.credit={credit}", f"lora.r={rank}"]
                if not user_alpha:
                    alpha = ratio * rank
                    grid.append(f"lora.alpha={int(alpha) if float(alpha).is_integer() else alpha}")
                grid.append(f"training.seed={seed}")
                ovr = [*overrides, *grid]
                base.with_overrides(grid)  # validates the grid point now (ConfigError names the key)
                run_dir = rundir.default_run_dir(name, runs_root)
                action, reason = _decide(run_dir)
                planned.append(
                    SweepRun(
                        name=name,
                        credit=credit,
                        rank=rank,
                        seed=seed,
                        overrides=ovr,
                        run_dir=run_dir,
                        action=action,
                        reason=reason,
                    )
                )
    return SweepPlan(
        config=path,
        base_name=base.name,
        runs_dir=runs_root,
        runs=planned,
        alpha_note=note,
        user_overrides=list(overrides),
    )


def dry_run_lines(plan: SweepPlan, *, launcher: str = "accelerate launch") -> list[str]:
    """One shell line per run still to do (skipped runs as comments)."""
    lines = [f"# {len(plan.runs)} runs; {plan.alpha_note}"]
    for r in plan.runs:
        if r.action == "skip":
            lines.append(f"# skip {r.name}: {r.reason}")
        else:
            lines.append(r.command(plan.config, launcher=launcher))
    lines.append(
        f"# then: arca report {shlex.join(str(r.run_dir) for r in plan.runs)} --out {shlex.quote(str(plan.report_dir))}"
    )
    return lines


TrainFn = Callable[..., Path]


def run_sweep(
    plan: SweepPlan,
    *,
    train_fn: TrainFn | None = None,
    report: bool = True,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, str]:
    """Run the plan one run after another; returns {run name: outcome} with outcomes
    "skipped", "trained", "resumed" or "failed: <error>". Ends with the report over the grid.

    `train_fn(cfg, run_dir=..., resume=...)` defaults to `arca_rl.train` (tests pass a fake).
    """
    say = log or (lambda _m: None)
    if train_fn is None:
        # imported here: _run loads TRL, which planning a sweep (`arca sweep --dry-run`) does not need
        from ._run.training import train as train_fn

        def _train(cfg: Any, *, run_dir: Path, resume: bool) -> Path:
            return train_fn(cfg, run_dir=run_dir, resume=resume, progress=progress)  # type: ignore[misc]

        call: TrainFn = _train
    else:
        call = train_fn
    if report:  # a report folder holding the user's files is refused before any run trains, not after the last
        _outfolder.claim(plan.report_dir, command="report", flag="--runs-dir")
    outcomes: dict[str, str] = {}
    say(f"sweep: {len(plan.runs)} runs into {plan.runs_dir}/; {plan.alpha_note}")
    for i, r in enumerate(plan.runs, 1):
        head = f"[{i}/{len(plan.runs)}] {r.name}"
        if r.action == "skip":
            say(f"{head}: skipped ({r.reason})")
            # a member another process trains is not done: the sweep says so and ends non-zero
            outcomes[r.name] = "skipped" if r.reason == "finished" else "busy: in use by another process"
            continue
        say(f"{head}: {'resuming' if r.action == 'resume' else 'training'} ({r.reason})")
        t0 = time.time()
        try:
            cfg = load_config(plan.config, r.overrides)
            call(cfg, run_dir=r.run_dir, resume=r.action == "resume")
        except KeyboardInterrupt:
            say(f"{head}: interrupted; rerun the same `arca sweep` command to resume")
            raise
        except Exception as exc:  # one failing run must not stop the grid
            outcomes[r.name] = f"failed: {type(exc).__name__}: {exc}"
            say(f"{head}: FAILED after {time.time() - t0:.0f}s: {type(exc).__name__}: {exc}")
            continue
        outcomes[r.name] = "resumed" if r.action == "resume" else "trained"
        say(f"{head}: done in {time.time() - t0:.0f}s")
    if report:
        dirs = [r.run_dir for r in plan.runs if r.run_dir.is_dir()]
        if dirs:
            try:
                write_report(dirs, plan.report_dir, log=say)
            except (ConfigError, rundir.RunExistsError) as exc:  # e.g. no run finished: said, outcomes still returned
                say(f"no report: {exc}")
        else:
            say("no run folder exists; no report")
    failed = [n for n, o in outcomes.items() if o.startswith("failed")]
    if failed:
        say(f"{len(failed)} run(s) failed: {', '.join(failed)}")
    busy = [n for n, o in outcomes.items() if o.startswith("busy")]
    if busy:
        say(f"{len(busy)} run(s) skipped, in use by another process: {', '.join(busy)}; rerun the sweep once they end")
    return outcomes
