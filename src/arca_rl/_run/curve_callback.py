"""`HeldOutCurveCallback`: the TRL / HF `TrainerCallback` that writes a run's held-out learning curve
(`curve.jsonl`, its format and reading in `arca_rl._run.curve`), wired in by `arca train` when `eval.every_steps` is
set."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ..errors import ConfigError
from .curve import CURVE_FILE
from .evaluation import generate_completions

__all__ = ["HeldOutCurveCallback"]


class HeldOutCurveCallback(TrainerCallback):
    """Greedy accuracy on the first `n` held-out problems at step 0 and every `every_steps` steps (see the module).

    `eval_arguments` is `RunConfig.eval_arguments()` (its batch_size, max_new_tokens and max_prompt_tokens are
    used); the task gives the problems (`test_dataset(n)`) and the score.
    """

    def __init__(
        self,
        run_dir: str | Path,
        task: Any,
        tokenizer: Any,
        *,
        every_steps: int,
        n: int,
        eval_arguments: Mapping[str, Any],
        skip: Sequence[int] = (),
    ) -> None:
        self.path = Path(run_dir) / CURVE_FILE
        self.task = task
        self.tokenizer = tokenizer
        self.every_steps = every_steps
        self.n = n
        self.batch_size = int(eval_arguments.get("batch_size", 64))
        self.max_new_tokens = int(eval_arguments.get("max_new_tokens", 256))
        self.max_prompt_tokens = eval_arguments.get("max_prompt_tokens")
        self.skip = [int(i) for i in skip]
        self._problems: tuple[list[str], list[Any]] | None = None

    def problems(self) -> tuple[list[str], list[Any]]:
        """The fixed subset: (prompts, solutions) of the first `n` test problems, prompts cut as in evaluation."""
        if self._problems is None:
            try:
                data = self.task.test_dataset(n=self.n)
            except ValueError as exc:
                raise ConfigError(f"task: {exc}") from exc
            left_out = {i for i in self.skip if 0 <= i < len(data)}
            if left_out:  # the held-out questions the run trains on, left out as in the final evaluation
                data = data.select([i for i in range(len(data)) if i not in left_out])
            if self.max_prompt_tokens is not None:
                data = self.task.truncate_prompts(data, self.tokenizer, self.max_prompt_tokens)
            self._problems = (list(data["prompt"]), list(data["solution"]))
        return self._problems

    def measure(self, model: Any, step: int) -> dict[str, Any]:
        """Score the subset greedily with `model` and append the line for `step`; returns it."""
        prompts, solutions = self.problems()
        t0 = time.perf_counter()
        texts = generate_completions(
            model, self.tokenizer, prompts, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size
        )
        scores = [float(_correct(self.task, t[0], s)) for t, s in zip(texts, solutions)]  # accuracy: exact
        row = {
            "step": int(step),
            "greedy_accuracy": sum(scores) / len(scores),
            "n": len(scores),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        return row

    def _due(self, step: int, max_steps: int) -> bool:
        return step == 0 or step % self.every_steps == 0 or (max_steps > 0 and step == max_steps)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        step = state.global_step  # 0, or the checkpoint's step on --resume
        kept: list[bytes] = []
        if step > 0 and self.path.is_file():  # keep what was measured up to the checkpoint
            for raw in self.path.read_bytes().splitlines():
                try:
                    row = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    continue
                if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
                    kept.append(raw + b"\n")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"".join(kept))
        measured = {json.loads(raw)["step"] for raw in kept}
        if self._due(step, state.max_steps) and step not in measured:
            self.measure(kwargs["model"], step)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.is_world_process_zero and self._due(state.global_step, state.max_steps):
            self.measure(kwargs["model"], state.global_step)


def _correct(task: Any, completion: str, solution: Any) -> bool:
    """Is `completion` right (`task.correct`; for a task without it, a score of 1)."""
    if hasattr(task, "correct"):
        return bool(task.correct(completion, solution))
    return float(task.score(completion, solution)) >= 1.0
