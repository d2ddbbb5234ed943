"""The embedded task: sums of three 2-digit numbers, answered in ``\\boxed{}``.

A problem is three integers in [10, 99]. The prompt is plain text, ``"Q: 80+33+95=?\nA: "``,
and a completion either answers directly, ``\\boxed{208}``, or works it out step by step,
``80+33=113. 113+95=208. \\boxed{208}``. The first completion token decides which
(`DECISIVE_TOKEN_INDEX`): with the shipped tokenizer it is the single token ``\\boxed{`` for the
direct strategy and a digit for the step-by-step one (`strategy` tells them apart from the text).
That makes the task a ground truth for credit assignment: the warm-started model (`TINY_MODEL_PATH`)
answers directly when greedy and is right about a third of the time, while step-by-step solutions
are mostly right, so RL that learns to choose the step-by-step path at that first token gains a
lot, and the share of credit a method puts on that token can be measured.

Splits are disjoint by construction: a problem belongs to the test split when a hash of its text
falls in a fixed 10% bucket, independent of any seed, so no test problem is ever a training (or
warm-start) problem. Within a split, a seeded generator draws distinct problems in a fixed order,
so ``train_dataset(n)`` is always a prefix of ``train_dataset(m)`` for n <= m.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import math as _math
from ._common import GeneratedTask, check_int, check_options, check_reward, check_split, draw_split

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

__all__ = [
    "DECISIVE_TOKEN_INDEX",
    "OPTIONS",
    "TINY_MODEL_PATH",
    "ArithmeticTask",
    "answer",
    "direct_completion",
    "is_test_problem",
    "make_task",
    "problems",
    "prompt_text",
    "sft_dataset",
    "solution_text",
    "steps_completion",
    "strategy",
]

#: The warm-started tiny model and tokenizer shipped in the package (built by
#: ``scripts/build_tiny_model.py``); load with ``AutoModelForCausalLM.from_pretrained(TINY_MODEL_PATH)``.
TINY_MODEL_PATH: Path = Path(__file__).resolve().parent.parent / "assets" / "tiny"

#: Index of the completion token that decides the strategy: the first one.
DECISIVE_TOKEN_INDEX = 0

LOW, HIGH = 10, 99  # operand range (inclusive): 2-digit numbers
N_TERMS = 3
TEST_BUCKETS = 10  # one problem in TEST_BUCKETS lands in the test split
_SPLIT_SALT = "arca-arithmetic-v1"

# Caps on distinct problems per split (the split sizes are about 656k and 73k).
MAX_UNIQUE = {"train": 600_000, "test": 60_000}

OPTIONS = ("seed", "n_train", "n_test", "reward")
Problem = tuple[int, ...]


def prompt_text(terms: Problem) -> str:
    """The prompt for a problem: ``"Q: 80+33+95=?\\nA: "``."""
    return "Q: " + "+".join(str(t) for t in terms) + "=?\nA: "


def answer(terms: Problem) -> int:
    """The sum."""
    return sum(terms)


def direct_completion(terms: Problem) -> str:
    """The direct answer, ``\\boxed{208}``."""
    return "\\boxed{" + str(answer(terms)) + "}"


def steps_completion(terms: Problem) -> str:
    """The step-by-step solution, ``80+33=113. 113+95=208. \\boxed{208}``."""
    parts = []
    total = terms[0]
    for term in terms[1:]:
        parts.append(f"{total}+{term}={total + term}.")
        total += term
    return " ".join(parts) + " " + direct_completion(terms)


def solution_text(terms: Problem) -> str:
    """The reference solution stored in the ``solution`` column (the step-by-step text)."""
    return steps_completion(terms)


def strategy(completion: str) -> Literal["direct", "steps"]:
    """Which strategy a completion took: ``"direct"`` when it opens with ``\\boxed{``, else ``"steps"``.

    The first completion token (`DECISIVE_TOKEN_INDEX`) carries the choice, so this reads only the
    start of the text (leading whitespace ignored).
    """
    return "direct" if completion.lstrip().startswith("\\boxed{") else "steps"


def is_test_problem(terms: Problem) -> bool:
    """True when the problem belongs to the held-out split (a fixed, seed-independent hash bucket)."""
    key = (_SPLIT_SALT + ":" + "+".join(str(t) for t in terms)).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % TEST_BUCKETS == 0


def problems(split: Literal["train", "test"], n: int, seed: int = 0, *, unique: bool = True) -> list[Problem]:
    """`n` problems of `split`, drawn in a fixed order from a generator seeded by (`seed`, `split`).

    With `unique`, no problem repeats (there are about 656k training and 73k test problems).
    """
    check_split(split, n)
    limit = MAX_UNIQUE[split]
    if unique and n > limit:
        raise ValueError(f"at most {limit} distinct {split} problems can be drawn, asked for {n}")

    def draw(rng: random.Random) -> Problem:
        return tuple(rng.randint(LOW, HIGH) for _ in range(N_TERMS))

    return draw_split(split, n, f"{seed}:{split}", draw, is_test_problem, unique=unique)


def _rows(terms_list: list[Problem]) -> dict[str, list[Any]]:
    return {
        "prompt": [prompt_text(t) for t in terms_list],
        "solution": [solution_text(t) for t in terms_list],
    }


def sft_dataset(n: int, direct_fraction: float = 0.65, seed: int = 0) -> Dataset:
    """Warm-start data: `n` training problems with ``prompt``/``completion`` columns.

    Each completion is the direct answer with probability `direct_fraction`, else the
    step-by-step solution (the shipped model used 0.65). Problems come from the training split only
    and may repeat; the order and the mixture are fixed by `seed`.
    """
    from datasets import Dataset

    if not 0.0 <= direct_fraction <= 1.0:
        raise ValueError(f"direct_fraction must be in [0, 1], got {direct_fraction!r}")
    terms_list = problems("train", n, seed=seed, unique=False)
    rng = random.Random(f"{seed}:mixture")
    completions = [
        direct_completion(t) if rng.random() < direct_fraction else steps_completion(t) for t in terms_list
    ]
    return Dataset.from_dict({"prompt": [prompt_text(t) for t in terms_list], "completion": completions})


@dataclass
class ArithmeticTask(GeneratedTask):
    """Sums of three 2-digit numbers; the reward is `arca_rl.tasks.math.score` on the boxed answer.

    Options: `seed` (which problems, and their order; the split itself never depends on it),
    `n_train` and `n_test` (default sizes of `train_dataset()` / `test_dataset()`).
    """

    name: str = "arithmetic"
    seed: int = 0
    n_train: int = 5000
    n_test: int = 500
    _cache: dict[str, Dataset] = field(default_factory=dict, repr=False, compare=False)

    def _rows(self, which: str, n: int) -> dict[str, list[Any]]:
        return _rows(problems(which, n, seed=self.seed))  # type: ignore[arg-type]

    def score(self, completion: str, solution: str) -> float:
        """1.0 when the last ``\\boxed{}`` of `completion` equals the solution's (`math.score`)."""
        return _math.score(completion, solution)

    strategy = staticmethod(strategy)


def make_task(**options: Any) -> ArithmeticTask:
    """Build the task from `get_task` options (see `ArithmeticTask`), checking every value."""
    check_options("arithmetic", options, OPTIONS)
    check_reward("arithmetic", options.get("reward", "exact"))
    seed = check_int("seed", options.get("seed", 0))
    n_train = check_int("n_train", options.get("n_train", 5000), minimum=1)
    n_test = check_int("n_test", options.get("n_test", 500), minimum=1)
    if n_train > MAX_UNIQUE["train"]:
        raise ValueError(f"option 'n_train' must be <= {MAX_UNIQUE['train']}, got {n_train}")
    if n_test > MAX_UNIQUE["test"]:
        raise ValueError(f"option 'n_test' must be <= {MAX_UNIQUE['test']}, got {n_test}")
    return ArithmeticTask(seed=seed, n_train=n_train, n_test=n_test)
