"""What `arca report` checks in a run's files before it shows them: eval.json's figures and the token log's rows.

A value that cannot be shown is named in a message (file, key or line, the value found), never shown as a blank
cell or dropped without a word.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["eval_problems", "token_log_problems"]


# eval.json's figures: key -> (lowest, highest) value it may take
_EVAL_RANGES = {"greedy_accuracy": (0.0, 1.0), "pass_at_k": (0.0, 1.0), "k": (1.0, math.inf), "n": (1.0, math.inf)}


def eval_problems(ev: dict[str, Any]) -> list[str]:
    """One message per figure of an eval.json object that is missing or not a number in its range (each names
    the key and the value found): such a figure shows as a blank cell, and the message says why."""
    problems = []
    for key, (low, high) in _EVAL_RANGES.items():
        if key not in ev:
            # a greedy-only evaluation (eval.sampled: false) has no pass@k and no k: nothing is missing
            if key == "greedy_accuracy" or (key == "pass_at_k" and "k" in ev):
                problems.append(f"no {key}; left out of Table 2")
            continue
        v = ev[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not low <= v <= high:
            problems.append(f"{key} is {v!r}, not a number in [{low:g}, {high:g}]; left out of Table 2")
    return problems


def token_log_problems(path: str | Path) -> list[str]:
    """One message per line of a credit_tokens.jsonl whose per-token lists disagree in length (tokens, weights,
    salience, token advantages, entropy mask), named by line number: such a record cannot be drawn, and the
    heatmaps leave it out. Lines that are not JSON are counted elsewhere (`rundir.read_token_log`)."""
    problems = []
    path = Path(path)
    with path.open("rb") as fh:
        for i, raw in enumerate(fh, start=1):
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if not isinstance(row, dict):
                continue
            weights = row.get("weights")
            if not isinstance(weights, list):
                problems.append(f"{path.name} line {i}: no list of weights; left out of the heatmaps")
                continue
            lengths = {
                name: len(row[key])
                for key, name in (
                    ("tokens", "tokens"),
                    ("salience", "salience values"),
                    ("token_advantages", "token advantages"),
                    ("entropy_mask", "entropy mask values"),
                )
                if isinstance(row.get(key), list)
            }
            off = {name: n for name, n in lengths.items() if n != len(weights)}
            if off:
                shown = ", ".join(f"{n} {name}" for name, n in off.items())
                problems.append(
                    f"{path.name} line {i} (step {row.get('step')!r}, signal {row.get('signal')!r}): {shown} but "
                    f"{len(weights)} weights; left out of the heatmaps"
                )
    return problems
