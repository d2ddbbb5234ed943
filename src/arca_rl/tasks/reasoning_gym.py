"""Tasks from `reasoning-gym`: 100+ procedural, verifiable reasoning data sets, generated offline.

``get_task("reasoning_gym", dataset="chain_sum", config={"min_terms": 3}, seed=0)`` draws problems
from the named reasoning-gym data set (its own options in `config`, checked against the data set's option types)
and judges a completion against the reference. In a run config::

    task: {name: reasoning_gym, dataset: chain_sum, config: {min_terms: 2, max_terms: 2}, seed: 0}

Answers are read the way the prompts ask for them: the system prompt (reasoning-gym's ``default``
one unless `system` says otherwise) asks for the final answer inside ``<answer>...</answer>``, and
the content of the last such pair is the answer (none: wrong, score 0). With ``answer: last_line`` (or
``last_number``) a completion without tags is judged on its last non-empty line (or its last number: ``-12``,
``3.5``, ``.5``, ``1e3``, ``3/4``, a minus sign U+2212 read as ``-``) instead: for small models that ignore the
tags (say so when you report numbers).

Correct, score and reward. `correct` is the accuracy: the data set's own ``score_answer`` gives 1.0, or the answer
and the reference are both numbers (``-7``, ``7.0``, ``.5``, ``1e3``, ``3/4``) and equal as numbers, so ``7.0``
is a correct answer for 7 (the same number; the data set's string comparison scores it 0.33). `score` is the data
set's graded ``score_answer``, which gives partial credit (for the answer 7, ``-7`` and ``17`` score 0.5): kept,
named as a score, never as an accuracy. The reward is `correct` (``reward: exact``, the default) or the graded
score (``reward: graded``, what the smollm2-rg and smollm2-rg2 studies ran).

Splits. reasoning-gym seeds item ``i`` of a data set with ``seed + i``, so two seeds a few items apart share
items. The held-out split draws from seed ``(2 * seed + 1) * 10**7`` and the training split from
``2 * seed * 10**7``: disjoint seed ranges of ten million items each, below numpy's seed limit 2**32 for every
`seed` up to `MAX_SEED` (213; a larger one is refused). How the items become the splits (`split`):

- ``iid`` (the default): each split is the generator's items in order, nothing filtered, so both are samples of
  one distribution of question forms. In a small question space the same question can be in both splits (a
  frequent one more often): an evaluation leaves out the held-out questions the run trained on
  (`Task.held_out_seen`) and reports how many. Measured on ``basic_arithmetic`` with two one-digit terms (the
  smollm2 studies' task; 60,000 generator draws, 6,297 distinct questions; ``benchmarks/rg_split_mass.py``): the
  held-out questions that also appear among 80 training draws (20 steps x 4 prompts) carry 5.6% of the
  generator's probability, among 160 draws 10.5%, among 1,000 draws 41% (the expectation
  sum_q p_q (1 - (1 - p_q)^n) over the measured p_q). So a run that trains on each of its `n_train` prompts once
  (``n_train`` = steps x prompts per step) leaves about 6% of its held-out problems out, and what remains is a
  sample of the questions that run never saw. Filtering the *training* split instead would remove mass from what
  it trains on: the first 200 distinct questions carry 12.2% of it, the first 1,000 52% (the ``distinct``
  problem below).
- ``distinct`` (the smollm2-rg and smollm2-rg2 studies): the held-out split keeps its first `n_test` distinct
  questions and the training split skips every question of those (``n_train`` draws that do; a question space
  too small for both is refused with the numbers). In a small space the distinct held-out questions are the
  frequent ones, so the two splits are different mixtures (with two one-digit terms: 12% plain divisions held out
  against 3% in training); `split_mismatch` warns when the training split is built.

Either way the training split is compared with the held-out split (`split_mismatch`, what the questions are:
operators, brackets, terms, digits and the answer's sign for ``basic_arithmetic``, the metadata otherwise) and a
difference beyond sampling error is a warning with the figures. The held-out split is fixed by (`dataset`,
`config`, `seed`, `n_test`): asking for more than `n_test` held-out problems is refused.

The ``solution`` column holds the reference as JSON (``{"answer": ..., "question": ..., "metadata": ...}``)
because some data sets score against their metadata, not only the answer text; tuples and sets in the metadata
are tagged so that a fresh process reads them back exactly (arc_agi's boards). A plain string solution is judged
as ``{"answer": solution}``. Building a data set is checked once in a child process bounded in time
(`BUILD_SECONDS`), so options that make it unbuildable are one line, not a hang.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ._common import REWARDS, AnswerSpan, GeneratedTask, Grade, check_int, check_options, last_match_span
from ._rg_build import BUILD_SECONDS, build, build_checked, check_config, dump_entry, load_entry
from ._rg_forms import compare_splits, question_form, split_mismatch
from .addition import render_chat

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

__all__ = [
    "ANSWER_MODES",
    "BUILD_SECONDS",
    "MAX_SEED",
    "OPTIONS",
    "SPLITS",
    "ReasoningGymTask",
    "answer_span",
    "compare_splits",
    "dataset_names",
    "extract_answer",
    "make_task",
    "numbers_equal",
    "question_form",
    "split_mismatch",
]

OPTIONS = ("dataset", "config", "seed", "n_train", "n_test", "chat", "system", "answer", "reward", "split")
ANSWER_MODES = ("tags", "last_line", "last_number")
SPLITS = ("iid", "distinct")
_SEED_STRIDE = 10**7  # a split's reasoning-gym seed range: [base, base + _SEED_STRIDE)
#: The largest `seed`: both splits' seed ranges stay below 2**32, numpy's limit (pool_matrix seeds numpy with them).
MAX_SEED = (2**32 // _SEED_STRIDE - 2) // 2
_MAX_DRAWS_PER_ITEM = 20  # distinct splits: give up when a split needs more draws than this per item
_MINUS = str.maketrans({"\u2212": "-", "\ufe63": "-", "\uff0d": "-"})
# The last number of a completion: a sign only where it cannot be a binary minus (not after a digit, a letter or a
# closing bracket), digits with an optional decimal part or a bare decimal part, an optional exponent, an optional
# "/denominator". Thousands separators are removed before (`_THOUSANDS`).
_LAST_NUMBER = re.compile(
    r"(?<![\d.])(?:(?<![\w)\]])[-+])?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?(?:/\d+(?![\d.]))?"
)
_ANSWER_TAG = re.compile(r"<answer>\s?(.*?)\s?</answer>", re.DOTALL)  # reasoning_gym.utils.extract_answer's
_LAST_LINE = re.compile(r"[^\n]*\S[^\n]*")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# A whole answer that is a number: what `numbers_equal` compares.
_WHOLE_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?\d+/\d+")
_MAX_NUMBER_CHARS = 60  # longer "numbers" are not compared (Fraction of a huge exponent is slow)


def dataset_names() -> list[str]:
    """The data set names this reasoning-gym installation registers, sorted."""
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def extract_answer(completion: str, mode: str = "tags") -> str | None:
    """The answer a completion gives: the content of its last ``<answer>...</answer>`` (stripped); with no
    tags, for ``mode="last_line"`` its last non-empty line, for ``mode="last_number"`` its last number
    (``-12``, ``3.5``, ``.5``, ``1e3``, ``3/4``; thousands commas dropped, a leading ``+`` dropped, the minus
    sign U+2212 read as ``-``). None when there is none."""
    from reasoning_gym.utils import extract_answer as tagged

    if not isinstance(completion, str):
        return None
    found = tagged(completion)
    if found is None and mode == "last_line":
        lines = [line.strip() for line in completion.splitlines() if line.strip()]
        found = lines[-1] if lines else None
    elif found is None and mode == "last_number":
        numbers = _LAST_NUMBER.findall(_THOUSANDS.sub("", completion.translate(_MINUS)))
        found = numbers[-1].removeprefix("+") if numbers else None
    return found


# reasoning-gym's own answer tags (reasoning_gym.utils.extract_answer): the last <answer>...</answer>
_TAGGED = re.compile(r"<answer>\s?(.*?)\s?</answer>", flags=re.DOTALL)


def answer_span(completion: str, mode: str = "tags") -> AnswerSpan | None:
    """Where the answer `extract_answer(completion, mode)` reads sits in `completion`: the last ``<answer>`` tags
    (content stripped), else the last non-empty line (``last_line``) or the last number (``last_number``)."""
    if not isinstance(completion, str):
        return None
    tagged = None
    for tagged in _TAGGED.finditer(completion):  # noqa: B007 - keep the last match
        pass
    if tagged is not None:
        start, end = tagged.start(1), tagged.end(1)
        while start < end and completion[start].isspace():
            start += 1
        while end > start and completion[end - 1].isspace():
            end -= 1
        return AnswerSpan(tagged.start(), tagged.end(), start, end)
    if mode == "last_line":
        at, last = 0, None
        for line in completion.splitlines(keepends=True):
            if line.strip():
                lead = len(line) - len(line.lstrip())
                last = (at + lead, at + lead + len(line.strip()))
            at += len(line)
        return None if last is None else AnswerSpan(last[0], last[1], last[0], last[1])
    if mode == "last_number":
        span = last_match_span(_LAST_NUMBER, completion.translate(_MINUS), drop=_THOUSANDS)
        if span is not None and completion[span.start] == "+":  # extract_answer drops a leading "+"
            span = AnswerSpan(span.start, span.end, span.start + 1, span.end)
        return span
    return None


def _as_number(text: Any) -> Fraction | None:
    if not isinstance(text, str | int) or isinstance(text, bool):
        return None
    compact = str(text).strip().translate(_MINUS)
    if len(compact) > _MAX_NUMBER_CHARS or not _WHOLE_NUMBER.fullmatch(compact):
        return None
    exponent = re.search(r"[eE]([-+]?\d+)", compact)
    if exponent and abs(int(exponent.group(1))) > _MAX_NUMBER_CHARS:
        return None
    try:
        return Fraction(compact)
    except (ValueError, ZeroDivisionError):
        return None


def numbers_equal(answer: Any, reference: Any) -> bool:
    """True when `answer` and `reference` are each a whole number text (``-7``, ``7.0``, ``.5``, ``1e3``,
    ``3/4``) and equal as numbers, exactly (as fractions). False for anything else, never raises."""
    a, b = _as_number(answer), _as_number(reference)
    return a is not None and b is not None and a == b


def _system_prompt(system: str) -> str:
    """A reasoning-gym system prompt by name (``default``, ``simple``, ...), else `system` itself."""
    from reasoning_gym.utils import SYSTEM_PROMPTS

    return SYSTEM_PROMPTS.get(system, system)


_DISTINCT_FIX = (
    "split: distinct keeps the first distinct held-out questions (the frequent ones) and the training split skips"
    " them; use split: iid (both splits drawn from the generator as it is) or a question space large enough for"
    " both"
)
_IID_FIX = "both splits are drawn from one generator here, so this is a rare chance difference: try another seed"


@dataclass
class ReasoningGymTask(GeneratedTask):
    """A reasoning-gym data set as a task; `correct` is the exact answer, `score` the data set's ``score_answer``.

    Options: `dataset` (a reasoning-gym name), `config` (its options), `seed` (0 to `MAX_SEED`), `n_train`,
    `n_test`, `chat` (chat prompts in the model's chat template, `render_chat`; ChatML for a tokenizer without one;
    false: the system prompt and question as plain text),
    `system` (a reasoning-gym system prompt name or the text itself), `answer` (``tags``, ``last_line`` or
    ``last_number``), `reward` (``exact`` or ``graded``, stored as `reward_kind`), `split` (``iid`` or
    ``distinct``); see the module docstring.
    """

    name: str = "reasoning_gym"
    dataset: str = "chain_sum"
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    n_train: int = 2000
    n_test: int = 500
    chat: bool = True
    system: str = "default"
    answer: str = "tags"
    reward_kind: str = "exact"
    split: str = "iid"
    _cache: dict[str, Dataset] = field(default_factory=dict, repr=False, compare=False)
    _entries: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)
    _scorer: Any = field(default=None, repr=False, compare=False)
    _test_items_cache: list[dict[str, Any]] | None = field(default=None, repr=False, compare=False)
    skipped_train: int = field(default=0, repr=False, compare=False)
    """``split: distinct``: how many training draws the last training split skipped (held-out questions)."""

    def _source(self, base: int, size: int) -> Any:
        source = build(self.dataset, self.config, base, size)
        if self._scorer is None:
            self._scorer = source
        return source

    def _draw_iid(self, base: int, n: int) -> list[dict[str, Any]]:
        """The generator's first `n` items from seed `base`: a sample of its distribution, nothing filtered."""
        source = self._source(base, n)
        return [source[i] for i in range(n)]

    def _draw_distinct(self, base: int, n: int, exclude: set[str]) -> list[dict[str, Any]]:
        """``split: distinct``: the first `n` items with distinct questions not in `exclude`, from seeds base, ..."""
        budget = min(_MAX_DRAWS_PER_ITEM * n + 100, _SEED_STRIDE)
        source = self._source(base, budget)
        out: list[dict[str, Any]] = []
        seen = set(exclude)
        for i in range(len(source)):
            if len(out) == n:
                break
            item = source[i]
            if item["question"] in seen:
                if exclude and item["question"] in exclude:
                    self.skipped_train += 1
                continue
            seen.add(item["question"])
            out.append(item)
        if len(out) < n:
            raise ValueError(
                f"reasoning-gym {self.dataset} {self.config!r}: only {len(out)} distinct questions in {len(source)} "
                "draws"
                f" (asked for {n}); the question space is too small for these splits: widen `config`, lower"
                " n_train/n_test, or use split: iid"
            )
        return out

    def test_items(self) -> list[dict[str, Any]]:
        """The `n_test` held-out items as reasoning-gym returns them (question, answer, metadata), in order."""
        if self._test_items_cache is None:
            base = (2 * self.seed + 1) * _SEED_STRIDE
            if self.split == "iid":
                self._test_items_cache = self._draw_iid(base, self.n_test)
            else:
                self._test_items_cache = self._draw_distinct(base, self.n_test, set())
        return self._test_items_cache

    def train_items(self, n: int | None = None) -> list[dict[str, Any]]:
        """The first `n` (default `n_train`) training items as reasoning-gym returns them, in order."""
        n = self.n_train if n is None else n
        base = 2 * self.seed * _SEED_STRIDE
        if self.split == "iid":
            return self._draw_iid(base, n)
        self.skipped_train = 0
        return self._draw_distinct(base, n, {item["question"] for item in self.test_items()})

    def held_out_limit(self) -> int:
        """`n_test`: the held-out split is fixed by it, so no more can be asked for."""
        return self.n_test

    def _rows(self, which: str, n: int) -> dict[str, list[Any]]:
        if which == "test":
            if n > self.n_test:
                raise ValueError(f"at most n_test={self.n_test} held-out problems; raise the task option n_test to ask "
                                 f"for {n}")
            items = self.test_items()[:n]
        else:
            if n > _SEED_STRIDE:
                raise ValueError(f"option 'n_train' must be <= {_SEED_STRIDE} (a split's seed range), got {n}")
            items = self.train_items(n)
            mismatch = split_mismatch(
                self.test_items(), items, self.dataset, _IID_FIX if self.split == "iid" else _DISTINCT_FIX
            )
            if mismatch:
                warnings.warn(mismatch, UserWarning, stacklevel=3)
        system = _system_prompt(self.system)
        prompts, solutions = [], []
        for item in items:
            prompts.append(
                render_chat(item["question"], system or None, self.chat_tokenizer)
                if self.chat
                else f"{system}\n{item['question']}\n"
            )
            entry = {"answer": item["answer"], "question": item["question"], "metadata": item.get("metadata", {})}
            solution = dump_entry(entry)
            self._entries[solution] = item
            solutions.append(solution)
        return {"prompt": prompts, "solution": solutions}

    def _entry(self, solution: str) -> dict[str, Any]:
        if solution in self._entries:
            return self._entries[solution]
        try:
            entry = load_entry(solution)
        except (TypeError, ValueError, RecursionError):
            return {"answer": solution, "metadata": {}}
        if not isinstance(entry, dict) or "answer" not in entry:
            return {"answer": solution, "metadata": {}}
        entry.setdefault("metadata", {})
        return entry

    def grade(self, completion: str, solution: str) -> Grade:
        """`correct`: the data set's ``score_answer`` is 1.0, or the answer equals the reference as a number (so
        ``7.0`` for 7 is correct); `score`: that ``score_answer``, in [0, 1]. Wrong and 0.0 on any failure."""
        if self._scorer is None:
            self._scorer = build(self.dataset, self.config, 0, 1)
        try:
            entry = self._entry(solution)
            answer = extract_answer(completion, self.answer)
            value = float(self._scorer.score_answer(answer, entry))
            value = min(max(value, 0.0), 1.0) if value == value else 0.0
        except Exception:  # noqa: BLE001 - a scorer that raises on odd text gives no credit, never a crash
            return Grade(correct=False, score=0.0)
        return Grade(correct=value >= 1.0 or numbers_equal(answer, entry.get("answer")), score=value)

    def answer_span(self, completion: str) -> AnswerSpan | None:
        """Where the answer `grade` reads sits (`answer_span` with this task's `answer` mode)."""
        return answer_span(completion, self.answer)

    def score(self, completion: str, solution: str) -> float:
        """The data set's graded ``score_answer`` on the extracted answer, in [0, 1] (partial credit: for the answer
        7, ``-7`` scores 0.5); 0.0 on any failure. The accuracy is `correct`, not this."""
        return self.grade(completion, solution).score


def make_task(**options: Any) -> ReasoningGymTask:
    """Build the task from `get_task` options (see `ReasoningGymTask`), checking every value; the data set is built
    once, in a child process bounded in time (`BUILD_SECONDS`), so that bad options fail here, as one line."""
    check_options("reasoning_gym", options, OPTIONS)
    name = options.get("dataset", "chain_sum")  # like every task, it builds without options
    if not isinstance(name, str):
        raise ValueError(f"option 'dataset' must be a reasoning-gym data set name, got {name!r}")
    config = options.get("config", {}) or {}
    if not isinstance(config, dict):
        raise ValueError(f"option 'config' must be a mapping of {name}'s options, got {config!r}")
    seed = check_int("seed", options.get("seed", 0), minimum=0)
    if seed > MAX_SEED:
        raise ValueError(
            f"option 'seed' must be between 0 and {MAX_SEED}, got {seed}: the splits draw reasoning-gym seeds"
            f" (2 * seed + 1) * 10**7 + i, which must stay below 2**32 (numpy's seed range)"
        )
    n_train = check_int("n_train", options.get("n_train", 2000), minimum=1)
    n_test = check_int("n_test", options.get("n_test", 500), minimum=1)
    for option, value in (("n_train", n_train), ("n_test", n_test)):
        if value > _SEED_STRIDE:
            raise ValueError(f"option {option!r} must be <= {_SEED_STRIDE} (a split's seed range), got {value}")
    chat = options.get("chat", True)
    if not isinstance(chat, bool):
        raise ValueError(f"option 'chat' must be true or false, got {chat!r}")
    system = options.get("system", "default")
    if not isinstance(system, str):
        raise ValueError(f"option 'system' must be a string (a reasoning-gym prompt name or the text), got {system!r}")
    answer = options.get("answer", "tags")
    if answer not in ANSWER_MODES:
        raise ValueError(f"option 'answer' must be one of {', '.join(ANSWER_MODES)}, got {answer!r}")
    reward = options.get("reward", "exact")
    if reward not in REWARDS:
        raise ValueError(
            f"option 'reward' must be one of {', '.join(REWARDS)} (exact: 1 for a correct answer, else 0; graded:"
            f" the data set's partial credit), got {reward!r}"
        )
    split = options.get("split", "iid")
    if split not in SPLITS:
        raise ValueError(
            f"option 'split' must be one of {', '.join(SPLITS)} (iid: both splits drawn from the generator as it is;"
            f" distinct: the smollm2-rg2 study's distinct held-out questions), got {split!r}"
        )
    check_config(name, config)  # a bad name, option or type fails here, with no process started
    build_checked(name, config)  # then the build itself, bounded in time
    return ReasoningGymTask(
        dataset=name, config=dict(config), seed=seed, n_train=n_train, n_test=n_test, chat=chat, system=system,
        answer=answer, reward_kind=reward, split=split,
    )
