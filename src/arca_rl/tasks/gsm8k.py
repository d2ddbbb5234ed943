"""GSM8K: grade-school word problems with a numeric answer.

The reference answer is the number after the last ``####`` of the ``answer`` column. The prompt
asks for the final answer in ``\\boxed{}``; scoring reads the number in the completion's last
``\\boxed{}`` and, when the completion has no box, falls back to the last number in the text
(option ``require_boxed=True`` turns the fallback off). Numbers compare exactly as rationals after
removing thousands separators, ``$``/``\\$``, ``%`` and units, so ``1,000``, ``$1000`` and
``1000.00`` all equal ``1000``; ``\\frac{a}{b}`` is read as a fraction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from . import math as _math
from ._common import check_options, check_reward, check_template, last_boxed, last_boxed_span, last_match_span
from .math import INSTRUCTION, MathTask, _common_options

__all__ = ["DEFAULT_CONFIG", "DEFAULT_SOURCE", "OPTIONS", "PROMPT_TEMPLATE", "Gsm8kTask", "make_task",
           "parse_number", "reference_number", "score"]

DEFAULT_SOURCE = "openai/gsm8k"
DEFAULT_CONFIG = "main"
PROMPT_TEMPLATE = INSTRUCTION + "\n\n{question}\n\n"

# A number: optional sign, digits with optional thousands separators, optional decimals.
_NUMBER = re.compile(r"(?<![\d.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|(?<![\d.])-?\.\d+")
_FRACTION = re.compile(r"^\\[dt]?frac\{\s*(-?\d+)\s*\}\{\s*(-?\d+)\s*\}$")
_MAX_DIGITS = 40  # longer digit strings are not answers (and int() of huge strings is slow)


def parse_number(text: str, *, last: bool = True) -> Fraction | None:
    """The last (or first) number in `text` as an exact fraction, or None.

    Thousands separators, currency and percent signs are ignored; a whole-text
    ``\\frac{3}{4}`` gives 3/4.
    """
    if not isinstance(text, str):
        return None
    compact = text.strip().strip("$").replace("\\$", "").replace("\\!", "").strip()
    fraction = _FRACTION.match(compact)
    if fraction:
        numerator, denominator = int(fraction.group(1)), int(fraction.group(2))
        return Fraction(numerator, denominator) if denominator else None
    chosen = None
    for match in _NUMBER.finditer(text):
        chosen = match
        if not last:
            break
    if chosen is None:
        return None
    token = chosen.group().replace(",", "")
    if sum(ch.isdigit() for ch in token) > _MAX_DIGITS:
        return None
    return Fraction(token)


def reference_number(solution: str) -> Fraction | None:
    """The reference answer: the number after the last ``####``, else the last boxed or bare number."""
    if not isinstance(solution, str):
        return None
    if "####" in solution:
        return parse_number(solution.rsplit("####", 1)[1], last=False)
    boxed = last_boxed(solution)
    return parse_number(boxed if boxed is not None else solution)


def score(completion: str, solution: str, *, require_boxed: bool = False) -> float:
    """1.0 when the completion's final number equals the reference number, else 0.0; never raises.

    The completion's final number is the last number inside its last ``\\boxed{}``; with no box
    it is the last number of the whole text, unless `require_boxed`.
    """
    try:
        gold = reference_number(solution)
        if gold is None or not isinstance(completion, str):
            return 0.0
        boxed = last_boxed(completion)
        if boxed is None:
            if require_boxed:
                return 0.0
            pred = parse_number(completion)
        else:
            pred = parse_number(boxed)
        return 1.0 if pred is not None and pred == gold else 0.0
    except Exception:  # model output must never crash training
        return 0.0


OPTIONS = (*_math.OPTIONS, "require_boxed")


@dataclass
class Gsm8kTask(MathTask):
    """GSM8K with a ``\\boxed{}`` prompt and exact numeric scoring.

    Options are those of `MathTask` (`source` defaults to the hub's ``openai/gsm8k`` with
    `config` ``main``; local files need ``question`` and ``answer`` columns; `template` uses
    ``{question}``), plus `require_boxed` (default False: a completion without a box is scored
    on its last number). Loading and prompting are `MathTask`'s, on these columns.
    """

    name: str = "gsm8k"
    source: str = DEFAULT_SOURCE
    config: str | None = DEFAULT_CONFIG
    template: str = PROMPT_TEMPLATE
    require_boxed: bool = False

    problem_column = "question"
    solution_column = "answer"
    template_field = "question"

    def answer_span(self, completion: str) -> tuple[int, int] | None:
        """Where `score` reads: the last ``\\boxed{}``; without one (unless `require_boxed`), the last number."""
        if not isinstance(completion, str):
            return None
        boxed = last_boxed_span(completion)
        if boxed is not None or self.require_boxed:
            return boxed
        return last_match_span(_NUMBER, completion)

    def score(self, completion: str, solution: str) -> float:
        """`arca_rl.tasks.gsm8k.score` with this task's `require_boxed`."""
        return score(completion, solution, require_boxed=self.require_boxed)


def make_task(**options: Any) -> Gsm8kTask:
    """Build the task from `get_task` options (see `Gsm8kTask`), checking every value."""
    check_options("gsm8k", options, OPTIONS)
    check_reward("gsm8k", options.get("reward", "exact"))
    if "source" in options and "config" not in options:
        options = {**options, "config": None}  # "main" is a configuration of the default source only
    values = _common_options(
        options,
        {"source": DEFAULT_SOURCE, "config": DEFAULT_CONFIG, "split": "train", "test_split": "test",
         "test_source": None, "template": PROMPT_TEMPLATE, "require_boxed": False,
         "max_prompt_tokens": None, "tokenizer": None},
    )
    check_template("template", values["template"], "question")
    if not isinstance(values["require_boxed"], bool):
        raise ValueError(f"option 'require_boxed' must be true or false, got {values['require_boxed']!r}")
    return Gsm8kTask(**values)
