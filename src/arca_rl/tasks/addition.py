"""A chat-formatted task for real instruction-tuned models: small additions.

A problem is `n_terms` integers in [`low`, `high`]; the user message asks
``"What is 7 + 12? Put your final answer in \\boxed{}."`` and the prompt is that message in the
ChatML format (``<|im_start|>user ... <|im_end|>``, the format of SmolLM2's and Qwen's chat
templates, with SmolLM2's default system message), ending where the assistant's reply starts.
Prompts are plain text, like every task's, so training, `arca eval` and `arca diagnose` tokenize
them identically; `render_chat` builds them.

The reward (`score`) accepts the answer the model can reach from the start: the content of the
last ``\\boxed{}`` when it holds a number, otherwise the last number in the completion. Small chat
models often write the sum and then an empty ``\\boxed{}``; they still get the credit, and
learning to fill the box is not required. 1.0 when that number equals the sum, else 0.0.

Splits are disjoint by construction, as for ``arithmetic``: a problem belongs to the test split
when a hash of its terms falls in a fixed 10% bucket, whatever the seed; within a split a seeded
generator draws distinct problems in a fixed order (``train_dataset(n)`` is a prefix of
``train_dataset(m)`` for n <= m).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._common import (
    GeneratedTask,
    check_int,
    check_options,
    check_reward,
    check_split,
    draw_split,
    last_boxed,
    last_boxed_span,
    last_match_span,
)

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

__all__ = [
    "DEFAULT_SYSTEM",
    "OPTIONS",
    "AdditionTask",
    "extract_answer",
    "is_test_problem",
    "make_task",
    "problems",
    "question",
    "render_chat",
]

#: SmolLM2-Instruct's chat template inserts this system message when the conversation has none;
#: the prompts carry it so they match what ``apply_chat_template`` gives for a lone user message.
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

# Operand range and number of terms, chosen so that SmolLM2-135M-Instruct's sampled accuracy
# (temperature 1) starts in the middle (see docs/guide.md, "A real pretrained model, offline").
DEFAULT_LOW, DEFAULT_HIGH, DEFAULT_TERMS = 1, 20, 2
TEST_BUCKETS = 10
_SPLIT_SALT = "arca-addition-v1"
# Problem spaces up to this size are enumerated exactly (to know how many each split holds).
_ENUMERATE_LIMIT = 200_000

OPTIONS = ("seed", "n_train", "n_test", "low", "high", "n_terms", "system", "reward")
Problem = tuple[int, ...]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def question(terms: Problem) -> str:
    """The user message: ``"What is 7 + 12? Put your final answer in \\boxed{}."``."""
    return "What is " + " + ".join(str(t) for t in terms) + "? Put your final answer in \\boxed{}."


def render_chat(user: str, system: str | None = DEFAULT_SYSTEM) -> str:
    """One user turn in ChatML, ending with the assistant header (where the reply starts)."""
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return f"{head}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def extract_answer(completion: str) -> str | None:
    """The answer a completion gives: the last ``\\boxed{}`` holding a number, else its last number."""
    boxed = last_boxed(completion)
    if boxed is not None:
        numbers = _NUMBER.findall(boxed.replace(",", ""))
        if len(numbers) == 1:
            return numbers[0]
    numbers = _NUMBER.findall(completion.replace(",", ""))
    return numbers[-1] if numbers else None


def _as_int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def is_test_problem(terms: Problem) -> bool:
    """True when the problem belongs to the held-out split (a fixed, seed-independent hash bucket)."""
    key = (_SPLIT_SALT + ":" + "+".join(str(t) for t in terms)).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % TEST_BUCKETS == 0


def split_size(split: Literal["train", "test"], low: int, high: int, n_terms: int) -> int:
    """How many distinct problems `split` holds (exact for small spaces, a safe lower bound otherwise)."""
    total = (high - low + 1) ** n_terms
    if total <= _ENUMERATE_LIMIT:
        span = range(low, high + 1)
        n_test = sum(is_test_problem(t) for t in itertools.product(span, repeat=n_terms))
        return n_test if split == "test" else total - n_test
    # Large spaces: half the expected count, so rejection sampling stays fast.
    share = 1 / TEST_BUCKETS if split == "test" else 1 - 1 / TEST_BUCKETS
    return int(total * share / 2)


def problems(
    split: Literal["train", "test"],
    n: int,
    seed: int = 0,
    *,
    low: int = DEFAULT_LOW,
    high: int = DEFAULT_HIGH,
    n_terms: int = DEFAULT_TERMS,
) -> list[Problem]:
    """`n` distinct problems of `split`, drawn in a fixed order from a generator seeded by (`seed`, `split`)."""
    check_split(split, n)
    available = split_size(split, low, high, n_terms)
    if n > available:
        raise ValueError(
            f"at most {available} distinct {split} problems with terms in [{low}, {high}] x{n_terms}, asked for {n}"
        )

    def draw(rng: random.Random) -> Problem:
        return tuple(rng.randint(low, high) for _ in range(n_terms))

    return draw_split(split, n, f"{seed}:{split}:{low}:{high}:{n_terms}", draw, is_test_problem)


@dataclass
class AdditionTask(GeneratedTask):
    """Small additions in chat format; reward: the boxed (else last) number equals the sum.

    Options: `seed`, `n_train`, `n_test` (as for ``arithmetic``), `low`/`high` (operand range,
    inclusive), `n_terms`, `system` (the system message; an empty string leaves it out).
    """

    name: str = "addition"
    seed: int = 0
    n_train: int = 300
    n_test: int = 40
    low: int = DEFAULT_LOW
    high: int = DEFAULT_HIGH
    n_terms: int = DEFAULT_TERMS
    system: str = DEFAULT_SYSTEM
    _cache: dict[str, Dataset] = field(default_factory=dict, repr=False, compare=False)

    def _rows(self, which: str, n: int) -> dict[str, list[Any]]:
        drawn = problems(which, n, self.seed, low=self.low, high=self.high, n_terms=self.n_terms)  # type: ignore[arg-type]
        return {
            "prompt": [render_chat(question(t), self.system or None) for t in drawn],
            "solution": [str(sum(t)) for t in drawn],
        }

    def answer_span(self, completion: str) -> tuple[int, int] | None:
        """Where `extract_answer` reads: the last ``\\boxed{}`` when it holds one number, else the last number."""
        if not isinstance(completion, str):
            return None
        boxed = last_boxed(completion)
        if boxed is not None and len(_NUMBER.findall(boxed.replace(",", ""))) == 1:
            return last_boxed_span(completion)
        return last_match_span(_NUMBER, completion)

    def score(self, completion: str, solution: str) -> float:
        """1.0 when `extract_answer(completion)` equals the sum held in `solution`, else 0.0."""
        try:
            got = _as_int(extract_answer(completion)) if isinstance(completion, str) else None
            return 1.0 if got is not None and got == int(solution) else 0.0
        except (TypeError, ValueError):
            return 0.0


def make_task(**options: Any) -> AdditionTask:
    """Build the task from `get_task` options (see `AdditionTask`), checking every value."""
    check_options("addition", options, OPTIONS)
    check_reward("addition", options.get("reward", "exact"))
    seed = check_int("seed", options.get("seed", 0))
    n_train = check_int("n_train", options.get("n_train", 300), minimum=1)
    n_test = check_int("n_test", options.get("n_test", 40), minimum=1)
    low = check_int("low", options.get("low", DEFAULT_LOW), minimum=0)
    high = check_int("high", options.get("high", DEFAULT_HIGH), minimum=0)
    n_terms = check_int("n_terms", options.get("n_terms", DEFAULT_TERMS), minimum=2)
    if high < low:
        raise ValueError(f"option 'high' must be >= option 'low', got low={low}, high={high}")
    if n_terms > 6:
        raise ValueError(f"option 'n_terms' must be <= 6, got {n_terms}")
    system = options.get("system", DEFAULT_SYSTEM)
    if not isinstance(system, str):
        raise ValueError(f"option 'system' must be a string (empty for none), got {system!r}")
    for split, size in (("train", n_train), ("test", n_test)):
        available = split_size(split, low, high, n_terms)  # type: ignore[arg-type]
        if size > available:
            raise ValueError(
                f"option 'n_{split}' must be <= {available} (distinct {split} problems with terms in"
                f" [{low}, {high}] x{n_terms}), got {size}"
            )
    return AdditionTask(
        seed=seed, n_train=n_train, n_test=n_test, low=low, high=high, n_terms=n_terms, system=system
    )
