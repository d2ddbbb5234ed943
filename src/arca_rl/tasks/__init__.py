"""Tasks: prompts, reference solutions and verifiable rewards for GRPO.

``get_task(name, **options)`` builds one of `TASKS`:

- ``"arithmetic"``: the embedded default, sums of three 2-digit numbers, generated locally with
  disjoint splits; the shipped tiny model (`TINY_MODEL_PATH`) is warm-started on it.
- ``"math"``: MATH from the hub (``DigitalLearningGmbH/MATH-lighteval``) or local files, with the
  paper's prompt; answers checked mathematically by `arca_rl.tasks.math.score`.
- ``"gsm8k"``: GSM8K from the hub (``openai/gsm8k``) or local files; numeric answers.
- ``"addition"``: small sums asked in chat format, for real instruction-tuned models
  (``smollm2-135m-instruct``); generated locally with disjoint splits.
- ``"reasoning_gym"``: any `reasoning-gym` data set by name (``dataset="chain_sum"``, its options in
  ``config``), both splits drawn from the generator (disjoint seed ranges), judged on the ``<answer>`` the
  prompt asks for: correct when the data set's own ``score_answer`` is 1 or the numbers are equal.

Every task's ``train_dataset(n)`` / ``test_dataset(n)`` have a plain-text ``prompt`` column and a
``solution`` column. ``task.correct(completion, solution)`` is the accuracy (a bool, never partial),
``task.score(completion, solution)`` the graded score (partial credit where the task has one: reasoning_gym),
``task.grade`` both at once, and ``task.reward`` is a TRL reward function (``correct`` as 1.0 / 0.0, or the
graded score for a task built with ``reward="graded"``)::

    task = get_task("arithmetic")
    trainer = GRPOTrainer(model, reward_funcs=task.reward, train_dataset=task.train_dataset(), ...)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._common import REWARDS, AnswerSpan, Grade, Task, boxed_span, last_boxed
from .arithmetic import TINY_MODEL_PATH

__all__ = ["REWARDS", "TASKS", "TINY_MODEL_PATH", "AnswerSpan", "Grade", "Task", "boxed_span", "get_task", "last_boxed",
           "task_options", "tiny_model_path"]

#: The task names `get_task` knows.
TASKS: tuple[str, ...] = ("arithmetic", "math", "gsm8k", "addition", "reasoning_gym")


def get_task(name: str, **options: Any) -> Task:
    """Build the task called `name` with its `options`.

    Raises ValueError for an unknown task name, an option the task does not take, or a bad
    value (the message names the option). Datasets load lazily, on the first
    ``train_dataset()`` / ``test_dataset()`` call, so building a task never touches the network.
    """
    # each task's module is imported when asked for: math loads math-verify, gsm8k and math the datasets library
    make_task: Callable[..., Task]
    if name == "arithmetic":
        from .arithmetic import make_task
    elif name == "math":
        from .math import make_task
    elif name == "gsm8k":
        from .gsm8k import make_task
    elif name == "addition":
        from .addition import make_task
    elif name == "reasoning_gym":
        from .reasoning_gym import make_task
    else:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return make_task(**options)


def task_options(name: str) -> tuple[str, ...]:
    """The options `get_task(name, ...)` takes (ValueError for an unknown name)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    import importlib

    return tuple(importlib.import_module(f"{__name__}.{name}").OPTIONS)


def tiny_model_path() -> str:
    """The shipped tiny model folder, as a string for ``from_pretrained``."""
    return str(TINY_MODEL_PATH)
