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
    "TAIL",
    "TINY_MODEL_PATH",
    "VARIANTS",
    "ArithmeticTask",
    "answer",
    "decisive_chars",
    "direct_completion",
    "is_test_problem",
    "make_task",
    "problems",
    "prompt_text",
    "sft_dataset",
    "solution_text",
    "steps_completion",
    "strategy",
    "variant_completion",
    "variant_strategy",
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


#: Warm-start variants (issue 34 §4): the same problems, prompt and reward, but the model is warm-started on
#: completions that differ in where, and how many, tokens decide the expected reward. The written-out additions
#: always sit where the shipped model writes them (a tiny model shifted by a preamble relearns its arithmetic
#: slowly), so what moves is the decision. Per variant, the warm-start mixture of (additions written out, answer
#: boxed, share); an unboxed answer, ``So 208.``, gets no reward:
#:
#: - ``first``: the shipped task, ``\boxed{208}`` or ``80+33=113. 113+95=208. \boxed{208}``: the first token decides.
#: - ``two``: 0, 1 or 2 additions written out: the first token, and after one addition the next token, decide.
#: - ``late``: both additions always written out, then ``\boxed{208}`` or ``So 208.``: the token after them decides.
#: - ``ends``: ``first``'s choice, and after the additions ``late``'s: the first and a late token decide.
#: - ``tail``: ``first``'s completions followed by a fixed sentence that changes nothing: the first token decides, in
#:   completions three to six times as long.
#: - ``digits``: the direct answer only: no strategy to choose; the answer's digits decide.
VARIANTS: dict[str, list[tuple[int, bool, float]]] = {
    "first": [(0, True, 0.65), (2, True, 0.35)],
    "two": [(0, True, 0.5), (1, True, 0.25), (2, True, 0.25)],
    "late": [(2, True, 0.35), (2, False, 0.65)],
    "ends": [(0, True, 0.65), (2, True, 0.175), (2, False, 0.175)],
    "tail": [(0, True, 0.65), (2, True, 0.35)],
    "digits": [(0, True, 1.0)],
}

#: ``tail``'s fixed ending: after the box is closed nothing changes the reward.
TAIL = " I added the numbers one at a time and checked each sum."


def _additions(terms: Problem, steps: int) -> tuple[str, int]:
    """The first `steps` additions written out (``80+33=113. 113+95=208.``) and the running total after them."""
    total, parts = terms[0], []
    for term in terms[1:][:steps]:
        parts.append(f"{total}+{term}={total + term}.")
        total += term
    return " ".join(parts), total


def variant_completion(variant: str, terms: Problem, steps: int, boxed: bool = True) -> str:
    """Variant `variant`'s completion of a problem with `steps` additions written out (0: the direct answer) and
    the answer boxed (``\boxed{208}``, rewarded) or not (``So 208.``, no reward)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; variants: {', '.join(VARIANTS)}")
    written, _ = _additions(terms, steps)
    end = direct_completion(terms) if boxed else f"So {answer(terms)}."
    text = f"{written} {end}" if written else end
    return text + TAIL if variant == "tail" else text


def variant_strategy(variant: str, completion: str) -> Literal["direct", "steps"]:
    """`strategy` of a completion in `variant`'s form (whether its first token opens the direct answer)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; variants: {', '.join(VARIANTS)}")
    return strategy(completion)


def decisive_chars(variant: str, terms: Problem, completion: str) -> list[int]:
    """The characters of `completion` (a completion of `terms` in `variant`'s form) whose token decides the expected
    reward, by construction: where the strategy is chosen (the direct answer or an addition), where the answer is
    boxed or not after both additions (``late``, ``ends``), or, for ``digits``, the answer's digits. The oracle
    (``positions="all"``) should find the value jumps there."""
    if variant == "digits":
        start = completion.find("\\boxed{")
        if start < 0:
            return []
        start += len("\\boxed{")
        end = completion.find("}", start)
        return list(range(start, end if end >= 0 else len(completion)))
    out = [] if variant == "late" else [0]
    one, _ = _additions(terms, 1)
    both, _ = _additions(terms, 2)
    if variant == "two" and completion.startswith(one + " "):
        out.append(len(one) + 1)  # one addition written out: the next token decides again
    if variant in ("late", "ends") and completion.startswith(both + " "):
        out.append(len(both) + 1)  # boxed or not
    return out


def sft_dataset(n: int, direct_fraction: float = 0.65, seed: int = 0, variant: str = "first") -> Dataset:
    """Warm-start data: `n` training problems with ``prompt``/``completion`` columns.

    Each completion is the direct answer with probability `direct_fraction`, else the
    step-by-step solution (the shipped model used 0.65). Problems come from the training split only
    and may repeat; the order and the mixture are fixed by `seed`. Another `variant` (`VARIANTS`) writes its
    own completions, in its own mixture of 0, 1 or 2 written-out additions (`direct_fraction` is then unused).
    """
    from datasets import Dataset

    if not 0.0 <= direct_fraction <= 1.0:
        raise ValueError(f"direct_fraction must be in [0, 1], got {direct_fraction!r}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; variants: {', '.join(VARIANTS)}")
    terms_list = problems("train", n, seed=seed, unique=False)
    rng = random.Random(f"{seed}:mixture")
    if variant == "first":  # the shipped warm start, draw for draw
        completions = [
            direct_completion(t) if rng.random() < direct_fraction else steps_completion(t) for t in terms_list
        ]
    else:
        mix = VARIANTS[variant]
        completions = []
        for t in terms_list:
            u, acc, (steps, boxed, _) = rng.random(), 0.0, mix[-1]
            for k, box, share in mix:
                acc += share
                if u < acc:
                    steps, boxed = k, box
                    break
            completions.append(variant_completion(variant, t, steps, boxed))
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
