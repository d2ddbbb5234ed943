"""Per-problem records of a run's final held-out evaluation, and the paired bootstrap `arca report` draws from them.

A run folder may hold `eval_problems.jsonl`: one JSON object a line per held-out problem of the evaluation after
training, `{"id": <str>, "correct": <bool>, "score": <float or null>}` (`correct`: the answer is right; `score`:
the task's graded score where it has one). `read_eval_problems` reads it; `paired_bootstrap` resamples the
per-problem differences method - baseline (each 1, 0 or -1 in accuracy) over seeds and problems together:

- a resample draws n seeds with replacement from the n paired seeds, and, for each seed drawn (each draw on its
  own), its N_s problems with replacement from that seed's N_s problems; the same problem ids for the method and
  the baseline (the difference of a problem is resampled, never the two accuracies apart);
- its statistic is the mean over the drawn seeds of the mean difference over the drawn problems (the estimate
  itself: the mean over seeds of each seed's accuracy difference);
- `BOOTSTRAP_RESAMPLES` resamples from `numpy.random.default_rng(BOOTSTRAP_SEED)`, so a report is reproducible;
  the interval is the percentile interval: the 2.5th and 97.5th percentiles of the resampled statistics (numpy's
  linear interpolation).

This counts both sources of noise a comparison of accuracies has: which seeds were run (training noise) and which
problems the held-out set happens to hold (evaluation noise), where the t interval over seeds sees only the
per-seed accuracies.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "EVAL_PROBLEMS_FILE",
    "ProblemRecord",
    "paired_bootstrap",
    "read_eval_problems",
]

EVAL_PROBLEMS_FILE = "eval_problems.jsonl"
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
_CHUNK = 2_000_000  # most problem indices drawn in one numpy call (bounds memory with large held-out sets)


@dataclass(frozen=True)
class ProblemRecord:
    """One held-out problem of a run's final evaluation."""

    id: str
    correct: bool
    score: float | None


def read_eval_problems(run_dir: str | Path) -> list[ProblemRecord] | None:
    """The records of `run_dir`/eval_problems.jsonl in file order; None when the run has no such file.

    Blank lines are skipped. Anything else that is not a record (a torn line, bytes that are not UTF-8, an `id`
    that is not a non-empty string, a `correct` that is not true or false, a `score` that is not a finite number
    or null, an id given twice) raises ValueError naming the file, the line and the value: a record left out would
    unpair the problems of two runs, so the file is used whole or not at all.
    """
    path = Path(run_dir) / EVAL_PROBLEMS_FILE
    if not path.is_file():
        return None
    records: list[ProblemRecord] = []
    first_line: dict[str, int] = {}
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            where = f"{path} line {number}"
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise ValueError(f"{where}: not a JSON object (torn, or not UTF-8)") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{where}: not a JSON object, got {obj!r}")
            pid, correct, score = obj.get("id"), obj.get("correct"), obj.get("score")
            if not isinstance(pid, str) or not pid:
                raise ValueError(f"{where}: 'id' must be a non-empty string, got {pid!r}")
            if not isinstance(correct, bool):
                raise ValueError(f"{where}: 'correct' must be true or false, got {correct!r}")
            if score is not None and (
                isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score)
            ):
                raise ValueError(f"{where}: 'score' must be a finite number or null, got {score!r}")
            if pid in first_line:
                raise ValueError(f"{where}: id {pid!r} given twice (first on line {first_line[pid]})")
            first_line[pid] = number
            records.append(ProblemRecord(pid, correct, None if score is None else float(score)))
    return records


def paired_bootstrap(
    differences: Sequence[Sequence[float]],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """The percentile interval of the two-stage bootstrap (module docstring) over `differences`: one sequence per
    paired seed, of that seed's per-problem differences method - baseline. Raises ValueError with no seed or a
    seed without problems."""
    diffs = [np.asarray(d, dtype=np.float64) for d in differences]
    if not diffs or any(d.size == 0 for d in diffs):
        raise ValueError("paired_bootstrap: needs at least one seed, each with at least one problem")
    rng = np.random.default_rng(seed)
    n = len(diffs)
    picks = rng.integers(0, n, size=(resamples, n))  # the seeds drawn by each resample
    sums: np.ndarray = np.zeros(resamples, dtype=np.float64)
    for s, d in enumerate(diffs):
        times = (picks == s).sum(axis=1)  # how often each resample drew seed s
        owner: np.ndarray = np.repeat(np.arange(resamples), times)  # one row per draw of seed s: its resample
        rows = max(1, _CHUNK // d.size)
        for start in range(0, owner.size, rows):
            part = owner[start : start + rows]
            means = d[rng.integers(0, d.size, size=(part.size, d.size))].mean(axis=1)  # its problems, redrawn
            np.add.at(sums, part, means)
    stats = sums / n
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)
