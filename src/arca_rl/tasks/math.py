"""The MATH task and the answer checker every task's reward goes through.

`score(completion, solution)` compares the last ``\\boxed{}`` of a completion with the last
``\\boxed{}`` of the reference solution *mathematically*, with math-verify (so ``\\frac12``,
``0.5`` and ``\\dfrac{1}{2}`` agree, unlike the paper's normalized string match).

Bounded time, from any thread. math-verify's own timeout uses ``SIGALRM``, which only works on the
main thread, and no signal interrupts a single long C-level operation (sympy asked for
``9^{9^{9^{9}}}`` computes it). So the comparison runs in a small pool of child processes, each
with an address-space cap; a child that does not answer within `VERIFY_TIMEOUT_S` is killed and the
answer counts as wrong. Before that: the answers are found in one linear pass (megabyte inputs cost
milliseconds), over-long or over-nested answers count as wrong, identical answers and plain integers
are decided without a child, and results are cached. The first symbolic comparison in a process
starts a child (about half a second); the embedded arithmetic task never needs one.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ._common import (
    MAX_ANSWER_CHARS,
    Task,
    check_int,
    check_options,
    check_reward,
    check_str,
    check_template,
    last_boxed,
    load_rows,
)

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

__all__ = [
    "DEFAULT_SOURCE",
    "INSTRUCTION",
    "OPTIONS",
    "PROMPT_TEMPLATE",
    "VERIFY_TIMEOUT_S",
    "MathTask",
    "answers_equal",
    "make_task",
    "reference_answer",
    "score",
]

DEFAULT_SOURCE = "DigitalLearningGmbH/MATH-lighteval"
#: The paper's instruction; the prompt is this, a blank line, then the problem.
INSTRUCTION = "Solve this math problem step by step. Put your final answer in \\boxed{}."
PROMPT_TEMPLATE = INSTRUCTION + "\n\n{problem}\n\n"

#: Seconds one symbolic comparison may take before its child process is killed (answer: wrong).
VERIFY_TIMEOUT_S = 3.0
#: Seconds a child process may take to start (import math-verify and sympy).
STARTUP_TIMEOUT_S = 60.0
#: Child processes at most, i.e. how many threads can compare answers at the same time.
MAX_WORKERS = 4

_INTEGER = re.compile(r"[+-]?\d{1,15}")
_WORKER_SCRIPT = Path(__file__).resolve().parent / "_verify_worker.py"
# Run the worker file by path without putting its folder on sys.path (this folder holds a module
# named `math`, which would shadow the standard library in the child).
_BOOT = "import runpy, sys; del sys.path[0]; runpy.run_path(sys.argv[1], run_name='__main__')"


class VerifierUnavailable(RuntimeError):
    """The math-verify child process cannot start (math-verify missing or the interpreter broken)."""


# ---------------------------------------------------------------------------------------------
# the checker


def reference_answer(solution: str) -> str | None:
    """The answer held by a reference solution: its last ``\\boxed{}``.

    A solution with no box that is short (a bare answer such as ``"42"`` or ``"$\\frac{1}{2}$"``)
    is its own answer.
    """
    if not isinstance(solution, str):
        return None
    boxed = last_boxed(solution)
    if boxed is not None:
        return boxed
    bare = solution.strip().strip("$").strip()
    if bare and len(bare) <= MAX_ANSWER_CHARS and "\\boxed" not in bare and "\n" not in bare:
        return bare
    return None


def score(completion: str, solution: str) -> float:
    """1.0 when the last ``\\boxed{}`` of `completion` equals the answer of `solution`, else 0.0.

    Equality is mathematical (math-verify ``parse``/``verify``): ``\\frac12`` equals ``0.5``,
    ``x=3`` equals ``3``. No box in the completion, an empty box, an answer over 1000 characters or
    nested more than 32 braces deep scores 0.0. Never raises on model output, and takes at most
    about `VERIFY_TIMEOUT_S` seconds plus linear scanning time, on any thread.

    Raises `VerifierUnavailable` only if the math-verify child process cannot start at all.
    """
    try:
        pred = last_boxed(completion) if isinstance(completion, str) else None
        if not pred:
            return 0.0
        gold = reference_answer(solution)
        if not gold:
            return 0.0
        return 1.0 if answers_equal(gold, pred) else 0.0
    except VerifierUnavailable:
        raise
    except Exception:  # model output must never crash training
        return 0.0


def answers_equal(gold: str, pred: str) -> bool:
    """Whether two answers (box contents, without ``\\boxed{}``) are mathematically equal."""
    gold, pred = gold.strip(), pred.strip()
    if not gold or not pred or max(len(gold), len(pred)) > MAX_ANSWER_CHARS:
        return False
    if gold == pred:
        return True
    if _INTEGER.fullmatch(gold) and _INTEGER.fullmatch(pred):
        return int(gold) == int(pred)
    return _symbolic_equal(gold, pred)


def _symbolic_equal(gold: str, pred: str) -> bool:
    key = (gold, pred)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    result = _pool().compare(gold, pred, VERIFY_TIMEOUT_S)
    if result is None:  # timed out or the child died: wrong, and not cached
        return False
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = result
    return result


_CACHE: dict[tuple[str, str], bool] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 65536


# ---------------------------------------------------------------------------------------------
# the child processes


class _Worker:
    """One math-verify child process, spoken to over pipes, one request at a time."""

    def __init__(self) -> None:
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(_WORKER_SCRIPT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError as err:
            raise VerifierUnavailable(f"cannot start the math-verify process: {err}") from err
        self._buffer = b""
        if self._read_line(STARTUP_TIMEOUT_S) != b"ready":
            self.kill()
            raise VerifierUnavailable(
                "the math-verify process did not start; check that `python -c 'import math_verify'` works"
            )

    def _read_line(self, timeout: float) -> bytes | None:
        stdout: IO[bytes] = self.proc.stdout  # type: ignore[assignment]
        fd = stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:  # the child died
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.strip()

    def compare(self, gold: str, pred: str, timeout: float) -> bool | None:
        """True/False from the child, or None when it failed to answer in time."""
        stdin: IO[bytes] = self.proc.stdin  # type: ignore[assignment]
        try:
            stdin.write((json.dumps({"gold": gold, "pred": pred}) + "\n").encode())
            stdin.flush()
        except OSError:
            return None
        line = self._read_line(timeout)
        if line is None:
            return None
        return line == b"1"

    def kill(self) -> None:
        """Stop the child and release its pipes."""
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


class _Pool:
    """Up to `MAX_WORKERS` children; a thread borrows an idle one (or starts one) per comparison."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._count = 0

    def compare(self, gold: str, pred: str, timeout: float) -> bool | None:
        worker = self._acquire()
        result: bool | None = None
        try:
            result = worker.compare(gold, pred, timeout)
        finally:
            if result is None:
                worker.kill()
                with self._cond:
                    self._count -= 1
                    self._cond.notify()
            else:
                with self._cond:
                    self._idle.append(worker)
                    self._cond.notify()
        return result

    def _acquire(self) -> _Worker:
        with self._cond:
            while not self._idle and self._count >= MAX_WORKERS:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._count += 1
        try:
            return _Worker()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def close(self) -> None:
        """Stop the idle children (busy ones stop when their pipes close)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for worker in idle:
            worker.kill()


_POOL: _Pool | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> _Pool:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.pid != os.getpid():  # a forked process starts its own children
            _POOL = _Pool()
        return _POOL


@atexit.register
def _close_pool() -> None:
    if _POOL is not None and _POOL.pid == os.getpid():
        _POOL.close()


# ---------------------------------------------------------------------------------------------
# the task

OPTIONS = (
    "source",
    "config",
    "split",
    "test_split",
    "test_source",
    "template",
    "max_prompt_tokens",
    "tokenizer",
    "reward",
)


@dataclass
class MathTask(Task):
    """Competition math (MATH) with the paper's prompt and the `score` checker.

    Options:
        source: hub dataset name (default ``DigitalLearningGmbH/MATH-lighteval``), or a local
            ``.jsonl``/``.json``/``.parquet`` file or a folder of split files (``train.jsonl``,
            ``test.parquet``, ...) with ``problem`` and ``solution`` columns.
        config: hub dataset configuration name (default none).
        split, test_split: split names for `train_dataset` / `test_dataset` (``train`` / ``test``).
            A single local file is one split: it serves both unless `test_source` is given.
        test_source: where the test split comes from, when not from `source`.
        template: the prompt, with ``{problem}`` where the problem goes (default: the paper's
            instruction, a blank line, the problem, a blank line).
        max_prompt_tokens, tokenizer: with both set, the datasets come with prompts
            left-truncated to `max_prompt_tokens` tokens (`Task.truncate_prompts`).
    """

    name: str = "math"
    source: str = DEFAULT_SOURCE
    config: str | None = None
    split: str = "train"
    test_split: str = "test"
    test_source: str | None = None
    template: str = PROMPT_TEMPLATE
    max_prompt_tokens: int | None = None
    tokenizer: Any = field(default=None, repr=False)
    _cache: dict[str, Dataset] = field(default_factory=dict, repr=False, compare=False)

    problem_column = "problem"
    solution_column = "solution"
    template_field = "problem"

    def _load(self, which: str) -> Dataset:
        if which in self._cache:
            return self._cache[which]
        if which == "train":
            source, split, option = self.source, self.split, "source"
        else:
            source, split = self.test_source or self.source, self.test_split
            option = "test_source" if self.test_source else "source"
        rows = load_rows(
            source,
            split,
            config=self.config,
            required=(self.problem_column, self.solution_column),
            option=option,
        )
        template, placeholder = self.template, "{" + self.template_field + "}"
        problem_column, solution_column = self.problem_column, self.solution_column

        def to_prompt(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            return {
                "prompt": [template.replace(placeholder, str(p)) for p in batch[problem_column]],
                "solution": [str(s) for s in batch[solution_column]],
            }

        dataset = rows.map(to_prompt, batched=True, desc=f"{self.name} prompts")
        empty = [i for i, prompt in enumerate(dataset["prompt"]) if not prompt.strip()]
        if empty:  # TRL would fail deep inside generation, after the model has loaded
            raise ValueError(
                f"option {option!r}: {source} ({split} split) gives an empty prompt in {len(empty)} row(s), "
                f"the first row {empty[0]} (its {problem_column!r} is empty); remove or fill those rows"
            )
        if self.tokenizer is not None and self.max_prompt_tokens is not None:
            dataset = self.truncate_prompts(dataset, self.tokenizer, self.max_prompt_tokens)
        self._cache[which] = dataset
        return dataset

    def score(self, completion: str, solution: str) -> float:
        """`arca_rl.tasks.math.score`."""
        return score(completion, solution)


def _common_options(options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Check the loading options shared by `math` and `gsm8k`; return the values to build with."""
    values = dict(defaults)
    values.update(options)
    values.pop("reward", None)  # checked by each make_task: the answers are right or wrong, the reward exact
    check_str("source", values["source"])
    for key in ("split", "test_split"):
        check_str(key, values[key])
    for key in ("config", "test_source"):
        if values.get(key) is not None:
            check_str(key, values[key])
    if values.get("max_prompt_tokens") is not None:
        check_int("max_prompt_tokens", values["max_prompt_tokens"], minimum=1)
    tokenizer = values.get("tokenizer")
    if tokenizer is not None and not callable(tokenizer):
        raise ValueError(f"option 'tokenizer' must be a tokenizer (callable), got {type(tokenizer).__name__}")
    return values


def make_task(**options: Any) -> MathTask:
    """Build the task from `get_task` options (see `MathTask`), checking every value."""
    check_options("math", options, OPTIONS)
    check_reward("math", options.get("reward", "exact"))
    values = _common_options(
        options,
        {"source": DEFAULT_SOURCE, "config": None, "split": "train", "test_split": "test",
         "test_source": None, "template": PROMPT_TEMPLATE, "max_prompt_tokens": None, "tokenizer": None},
    )
    check_template("template", values["template"], "problem")
    return MathTask(**values)
