"""The SmolLM2 reasoning-gym study (issue 25): a queue of `arca train -c smollm2-rg/<method>` runs, a few at a time.

Every (method, seed) trains into runs/rg/<method>-s<seed>/ with the packaged config `smollm2-rg/<method>` and
`training.seed=<seed>` (task.seed stays 0, so every run has the same held-out set). When a run finishes, its summary
(command, held-out eval, learning curve, training reward per step, finished.json) is written to
benchmarks/results/smollm2_rg/<method>-s<seed>.json and committed on its own, so a session that ends mid-queue
keeps every finished run. A pair whose summary exists is skipped: rerunning the same command continues the queue.

    python benchmarks/smollm2_rg_study.py --methods uniform arca surprisal --seeds 0 1 2 3 4 5 --parallel 2

The order is seed-major (all methods of seed 0, then seed 1, ...), so a cut queue leaves complete paired seeds.
The comparison itself: `arca report runs/rg/* --baseline uniform` (paired over the seeds both methods have).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_ROOT = ROOT / "benchmarks" / "results"


def command(
    method: str, seed: int, out: Path, threads: int, study: str = "smollm2-rg", *, task_seed: bool = False,
    sets: list[str] | None = None,
) -> list[str]:
    """The `arca train` line of one run. `task_seed`: the seed sets the task's problems too (`task.seed`), so each
    seed is a new draw of training and held-out questions, the same for every method of that seed."""
    cmd = ["arca", "train", "-c", f"{study}/{method}", "--set", f"training.seed={seed}"]
    if task_seed:
        cmd += ["--set", f"task.seed={seed}"]
    for extra in sets or []:
        cmd += ["--set", extra]
    return [*cmd, "--output-dir", str(out), "--threads", str(threads), "--quiet"]


def summarize(method: str, seed: int, out: Path, cmd: list[str]) -> dict:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    curve_file = out / "curve.jsonl"
    curve = (
        [json.loads(line) for line in curve_file.read_text().splitlines() if line.strip()]
        if curve_file.exists()
        else []
    )
    return {
        "method": method,
        "seed": seed,
        "command": " ".join(cmd),
        "eval": json.loads((out / "eval.json").read_text()) if (out / "eval.json").is_file() else None,
        "curve": curve,
        "train_reward": [r["reward"] for r in rows if "reward" in r and "step" in r],
        "step_time": [round(r["step_time"], 2) for r in rows if "step_time" in r],
        "finished": json.loads((out / "finished.json").read_text()),
    }


def commit(paths: list[Path], message: str) -> None:
    """Commit these files on their own; retried while another git operation (a merge) holds the tree."""
    names = [str(p) for p in paths]
    for _ in range(40):
        if not (ROOT / ".git" / "MERGE_HEAD").exists():
            add = subprocess.run(["git", "add", *names], cwd=ROOT, capture_output=True)
            done = subprocess.run(["git", "commit", "-m", message, "--", *names], cwd=ROOT, capture_output=True)
            if add.returncode == 0 and done.returncode == 0:
                return
        time.sleep(30)
    print(f"could not commit {names}: commit them by hand", file=sys.stderr)


def keep_records(out: Path, folder: Path) -> list[Path]:
    """Copy the run's config.yaml, its per-problem records (eval_problems.jsonl) and the small files `arca report`
    reads (eval.json, finished.json, metrics.jsonl, curve.jsonl), when it has them, into `folder`: a later
    reanalysis runs `arca report` on these folders as on the run folders (no weights are kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    kept = []
    for name in ("config.yaml", "eval_problems.jsonl", "eval.json", "finished.json", "metrics.jsonl", "curve.jsonl"):
        if (out / name).is_file():
            shutil.copyfile(out / name, folder / name)
            kept.append(folder / name)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--methods", nargs="+", default=["uniform", "arca", "surprisal", "tempo", "self_teacher", "sdpo"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5])
    parser.add_argument(
        "--pairs", nargs="+", default=None, help="explicit queue of METHOD:SEED (instead of the grid)"
    )
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (one thread each)")
    parser.add_argument(
        "--study",
        default="smollm2-rg",
        help="packaged config folder: smollm2-rg (products, 1-2 digits), smollm2-rg2 (basic_arithmetic, two "
             "one-digit terms, graded), smollm2-rg3 (the same task, exact, one mixture, 1,000 held-out problems)",
    )
    parser.add_argument("--runs-dir", type=Path, help="default runs/rg (smollm2-rg), runs/rg2 (smollm2-rg2)")
    parser.add_argument(
        "--results", type=Path, help="where the summaries go; default benchmarks/results/<study> (e.g. smollm2_rg2)"
    )
    parser.add_argument(
        "--task-seed", action=argparse.BooleanOptionalAction, default=None,
        help="the seed sets task.seed too (default: on for smollm2-rg3, off for the earlier studies)",
    )
    parser.add_argument("--set", dest="sets", action="append", default=[], help="extra --set for every run")
    parser.add_argument("--nice", type=int, default=5)
    parser.add_argument("--no-commit", action="store_true")
    args = parser.parse_args()

    results = args.results or RESULTS_ROOT / args.study.replace("-", "_")  # this study's summaries
    args.runs_dir = args.runs_dir or ROOT / "runs" / args.study.removeprefix("smollm2-")
    results.mkdir(parents=True, exist_ok=True)
    task_seed = args.task_seed if args.task_seed is not None else args.study == "smollm2-rg3"
    grid = [(m, s) for s in args.seeds for m in args.methods]
    if args.pairs:
        grid = [(p.split(":")[0], int(p.split(":")[1])) for p in args.pairs]
    queue = [(m, s) for m, s in grid if not (results / f"{m}-s{s}.json").exists()]
    running: list[tuple[str, int, Path, list[str], subprocess.Popen, float]] = []
    while queue or running:
        while queue and len(running) < args.parallel:
            method, seed = queue.pop(0)
            out = args.runs_dir / f"{method}-s{seed}"
            cmd = command(method, seed, out, threads=1, study=args.study, task_seed=task_seed, sets=args.sets)
            if out.exists():  # a run cut by an earlier session (no summary): start it again from scratch
                shutil.rmtree(out)
            logs = args.runs_dir.parent / f"{args.runs_dir.name}-logs"  # beside: `arca report runs/rg/*` sees runs
            logs.mkdir(parents=True, exist_ok=True)
            with open(logs / f"{method}-s{seed}.log", "w") as log:  # Popen keeps its own copy of the descriptor
                proc = subprocess.Popen(
                    ["nice", "-n", str(args.nice), *cmd], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
                )
            running.append((method, seed, out, cmd, proc, time.time()))
            print(f"started {method} seed {seed}", flush=True)
        time.sleep(10)
        for item in list(running):
            method, seed, out, cmd, proc, start = item
            if proc.poll() is None:
                continue
            running.remove(item)
            minutes = (time.time() - start) / 60
            if proc.returncode != 0:
                print(f"FAILED {method} seed {seed} (exit {proc.returncode}, {minutes:.1f} min)", flush=True)
                continue
            summary = summarize(method, seed, out, cmd)
            path = results / f"{method}-s{seed}.json"
            path.write_text(json.dumps(summary, indent=1) + "\n")
            kept = keep_records(out, results / f"{method}-s{seed}")
            # the final evaluation, or (a pilot with eval.enabled false) the curve's last point
            last = summary["eval"] or (summary["curve"][-1] if summary["curve"] else {"greedy_accuracy": float("nan")})
            greedy = last["greedy_accuracy"]
            print(f"finished {method} seed {seed}: greedy {greedy:.3f} ({minutes:.1f} min)", flush=True)
            if not args.no_commit:
                commit(
                    [path, *kept],
                    f"SmolLM2 reasoning-gym study ({args.study}): {method} seed {seed} finished, held-out greedy "
                    f"{greedy:.3f}",
                )


if __name__ == "__main__":
    main()
