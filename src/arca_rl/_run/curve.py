"""The held-out learning curve of a run (`eval.every_steps`, `eval.curve_n`): `curve.jsonl` in the run folder.

During `arca train`, `curve_callback.HeldOutCurveCallback` measures greedy accuracy on a fixed held-out subset (the
first `eval.curve_n` problems of the task's test split) before the first optimizer step (step 0) and every
`eval.every_steps` steps after it, the last step included, and appends one JSON line per measurement:

    {"step": 10, "greedy_accuracy": 0.35, "n": 100, "seconds": 4.2}

`step` counts the optimizer steps done, `n` the problems scored, `seconds` the wall time of the measurement.
Greedy decoding draws no random numbers and the model is put back in training mode afterwards, so the curve
changes nothing in training. Only the main process measures. On `--resume` from checkpoint-N the lines after
step N are dropped (they are measured again); `arca report` turns the curve into its learning-speed measure
(`curve_auc`: the area under the curve over its step span, a mean accuracy).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["CURVE_FILE", "curve_auc", "read_curve"]

CURVE_FILE = "curve.jsonl"


def read_curve(run_dir: str | Path) -> tuple[list[tuple[int, float]], list[str]]:
    """The (step, greedy accuracy) points of a run's curve.jsonl, sorted by step (the last line of a step wins),
    and one message per line that cannot be read (named by its line number). No file: no points."""
    path = Path(run_dir) / CURVE_FILE
    points: dict[int, float] = {}
    problems: list[str] = []
    if not path.is_file():
        return [], problems
    with path.open("rb") as fh:
        for i, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                problems.append(f"{path} line {i}: not a JSON line; left out of the curve")
                continue
            step = row.get("step") if isinstance(row, dict) else None
            acc = row.get("greedy_accuracy") if isinstance(row, dict) else None
            if (
                not isinstance(step, int)
                or isinstance(step, bool)
                or isinstance(acc, bool)
                or not isinstance(acc, int | float)
                or not 0.0 <= float(acc) <= 1.0
            ):
                problems.append(
                    f"{path} line {i}: needs an integer step and a greedy_accuracy in [0, 1], got "
                    f"step {step!r}, greedy_accuracy {acc!r}; left out of the curve"
                )
                continue
            points[step] = float(acc)
    return sorted(points.items()), problems


def curve_auc(points: Sequence[tuple[float, float]]) -> float | None:
    """Area under a curve of (step, accuracy) points by the trapezoid rule, divided by its step span: the mean
    accuracy over training. None with fewer than two distinct steps."""
    pts = sorted(points)
    if len(pts) < 2 or pts[-1][0] == pts[0][0]:
        return None
    area = sum((x1 - x0) * (y0 + y1) / 2.0 for (x0, y0), (x1, y1) in zip(pts, pts[1:]))
    return area / (pts[-1][0] - pts[0][0])
