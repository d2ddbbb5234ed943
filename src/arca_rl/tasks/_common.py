"""Pieces shared by the tasks: the `Task` base class, answer extraction and data loading.

Private module: the public names are re-exported from `arca_rl.tasks`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

P = TypeVar("P", bound=tuple)  # a generated problem (hashable, e.g. the terms of a sum)

# A boxed answer longer than this (characters) is treated as no answer: real answers are short, and
# the symbolic checker's cost grows with the length of what it parses.
MAX_ANSWER_CHARS = 1000
# Brace nesting deeper than this inside one boxed answer is treated as no answer.
MAX_ANSWER_DEPTH = 32

# `\boxed{` / `\fbox{` opening, an escaped brace (a literal brace in LaTeX, ignored), or a plain brace.
_BRACE_TOKENS = re.compile(r"\\(?:boxed|fbox)\s*\{|\\[{}]|[{}]")
# `\boxed 5`: the unbraced form, which a few MATH solutions use.
_UNBRACED_BOXED = re.compile(r"\\boxed +([^\s${}\\]+)")


def last_boxed(text: str, *, span: list[tuple[int, int]] | None = None) -> str | None:
    """Return the content of the last complete ``\\boxed{...}`` (or ``\\fbox{...}``) in `text`.

    "Last" is the box whose closing brace comes last, so an unclosed box at the end of a
    truncated completion falls back to the previous complete one. Nested braces inside the box are
    kept (``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``). Runs in one linear pass, so megabyte
    inputs stay cheap. Returns None when there is no complete box, or when the answer is longer
    than `MAX_ANSWER_CHARS` or nests braces deeper than `MAX_ANSWER_DEPTH`. `span`: a list that gets the
    answer's character bounds [start, end) in `text` appended (`last_boxed_span`).
    """
    if not isinstance(text, str) or "\\" not in text:
        return None
    best: tuple[int, int, int] | None = None  # (end of the whole box, content start, content end)
    if "\\boxed" in text or "\\fbox" in text:
        # Stack of open braces: each entry is the content start for a box opening, or -1.
        stack: list[int] = []
        for match in _BRACE_TOKENS.finditer(text):
            token = match.group()
            if token == "}":
                if stack:
                    start = stack.pop()
                    if start >= 0:
                        best = (match.end(), start, match.start())
            elif token == "{":
                stack.append(-1)
            elif token[-1] == "{" and token[0] == "\\" and len(token) > 2:
                stack.append(match.end())
            # escaped braces: literal, no effect on nesting
    # The unbraced form `\boxed 5` counts only when it comes after every braced box.
    tail_start = best[0] if best is not None else 0
    unbraced = None
    for unbraced in _UNBRACED_BOXED.finditer(text, tail_start):  # noqa: B007 - keep the last match
        pass
    if unbraced is not None:
        best = (unbraced.end(), unbraced.start(1), unbraced.end(1))
    if best is None:
        return None
    _, start, end = best
    if end - start > MAX_ANSWER_CHARS:
        return None
    content = text[start:end].strip()
    if _brace_depth(content) > MAX_ANSWER_DEPTH:
        return None
    return content if span is None else _strip_span(text, start, end, span)


def last_boxed_span(text: str) -> tuple[int, int] | None:
    """The characters [start, end) of `last_boxed(text)` in `text` (the box's content, stripped), or None when
    there is no answer. Used to find which tokens hold a completion's final answer."""
    found: list[tuple[int, int]] = []
    return found[0] if last_boxed(text, span=found) is not None and found else None


def last_match_span(pattern: re.Pattern[str], text: str, group: int = 0) -> tuple[int, int] | None:
    """The characters [start, end) of the last match of `pattern` in `text` (its `group`, stripped), or None."""
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - keep the last match
        pass
    if last is None:
        return None
    found: list[tuple[int, int]] = []
    _strip_span(text, last.start(group), last.end(group), found)
    return found[0] if found[0][1] > found[0][0] else None


def _strip_span(text: str, start: int, end: int, out: list[tuple[int, int]]) -> str:
    """text[start:end].strip(), recording its bounds in `out`."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    out.append((start, end))
    return text[start:end]


def _brace_depth(text: str) -> int:
    """Maximum nesting depth of ``{``/``}`` in `text` (unbalanced closers are ignored)."""
    depth = deepest = 0
    for char in text:
        if char == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif char == "}" and depth:
            depth -= 1
    return deepest


def completion_text(completion: Any) -> str:
    """The text of one completion as TRL hands it to a reward function.

    Plain strings pass through; a conversational completion (a list of ``{"role", "content"}``
    messages) gives the content of its last message. Anything else becomes an empty string.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion:
        last = completion[-1]
        if isinstance(last, dict):
            content = last.get("content", "")
            if isinstance(content, str):
                return content
            if isinstance(content, list):  # multimodal-style content blocks
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


#: What a task's `reward` gives a completion: ``exact`` (1.0 for a correct answer, else 0.0; the default) or
#: ``graded`` (the task's graded `score`, e.g. reasoning-gym's partial credit).
REWARDS = ("exact", "graded")


class Grade(NamedTuple):
    """One completion judged against its reference: `correct` (the answer is right, never partial) and `score` (the
    task's graded score in [0, 1]; equal to ``float(correct)`` for tasks without partial credit)."""

    correct: bool
    score: float


@dataclass
class Task:
    """A training/evaluation task: prompts, reference solutions and a verifiable reward.

    Subclasses implement `_load` and `score`. Every dataset a task returns has a ``prompt``
    column (plain text, non-conversational) and a ``solution`` column (reference text holding the
    final answer), so `reward` can be passed directly to TRL's ``GRPOTrainer(reward_funcs=...)``:
    TRL calls it with the completions and the dataset columns as keyword arguments.

    Judging a completion: `correct` says whether its answer is right (a bool: what accuracy, pass@k, the learning
    curve, the oracle's success and the self-teacher's "verified solution" count); `score` is the graded score
    (partial credit where the task has one, e.g. reasoning-gym's ``score_answer``; for the other tasks it is 1.0
    exactly when `correct`); `grade` gives both from one check. `reward` is `correct` as 1.0 / 0.0 unless the task
    was built with ``reward="graded"`` (`reward_kind`).
    """

    name: str

    #: ``exact`` (the reward is 1.0 for a correct answer, else 0.0) or ``graded`` (the reward is `score`).
    reward_kind = "exact"

    def train_dataset(self, n: int | None = None) -> Dataset:
        """The training split, its first `n` rows when `n` is given (all rows otherwise)."""
        return _head(self._load("train"), n, "n")

    def test_dataset(self, n: int | None = None) -> Dataset:
        """The held-out split, its first `n` rows when `n` is given (all rows otherwise)."""
        return _head(self._load("test"), n, "n")

    def _load(self, which: str) -> Dataset:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, completion: str, solution: str) -> float:  # pragma: no cover - abstract
        """The graded score of `completion` against the answer held in `solution`, in [0, 1]. Never raises.

        For tasks without partial credit (all but reasoning_gym) it is 1.0 for a correct answer, else 0.0."""
        raise NotImplementedError

    def grade(self, completion: str, solution: str) -> Grade:
        """`correct` and `score` of one completion, from one check. Never raises.

        This default serves tasks whose `score` is exact (1.0 or 0.0): correct means a score of 1.0."""
        value = float(self.score(completion, solution))
        return Grade(correct=value >= 1.0, score=value)

    def correct(self, completion: str, solution: str) -> bool:
        """True when `completion`'s answer is right: the accuracy, never partial credit. Never raises."""
        return self.grade(completion, solution).correct

    def answer_span(self, completion: str) -> tuple[int, int] | None:
        """The characters [start, end) of the final answer that `correct` reads in `completion`, or None when it
        finds none (the oracle's `answer_only` reference row spreads credit over these). This default: the last
        ``\\boxed{}``'s content (`last_boxed_span`)."""
        return last_boxed_span(completion) if isinstance(completion, str) else None

    def held_out_limit(self) -> int | None:
        """The most held-out problems `test_dataset(n)` gives, or None when it has no fixed limit (it generates
        more on request, or returns what the source holds)."""
        return None

    def held_out_seen(self, trained_prompts: Iterable[str], n: int | None = None) -> list[int]:
        """Indices (into ``test_dataset(n)``) of held-out problems whose prompt is one of `trained_prompts`.

        An evaluation of a run leaves these out: they are the held-out questions the run trained on (the
        reasoning_gym task draws both splits independently from one generator, so a frequent question can be in
        both). Pass the prompts the run trained on (``train_dataset(task.n_train)["prompt"]`` when the run uses
        its whole training split once). Tasks with disjoint splits give an empty list. With an i.i.d. held-out
        split, ``len(result) / n`` estimates the generator probability of the questions trained on: the mass the
        evaluation leaves out, to report beside the accuracy.
        """
        seen = set(trained_prompts)
        return [i for i, prompt in enumerate(self.test_dataset(n)["prompt"]) if prompt in seen]

    def reward(self, completions: list[Any], solution: list[str], **kwargs: Any) -> list[float]:
        """Score a batch: a TRL reward function (extra dataset columns arrive in `kwargs`, unused).

        Each completion gets 1.0 when `correct`, else 0.0; with ``reward_kind == "graded"`` its `score`."""
        if len(completions) != len(solution):
            raise ValueError(
                f"reward: got {len(completions)} completions but {len(solution)} solutions"
            )
        graded = self.reward_kind == "graded"
        out = []
        for c, s in zip(completions, solution):
            judged = self.grade(completion_text(c), s)
            out.append(float(judged.score) if graded else float(judged.correct))
        return out

    def truncate_prompts(
        self, dataset: Dataset, tokenizer: Any, max_tokens: int | None = None
    ) -> Dataset:
        """Cut every prompt longer than `max_tokens` tokens down to its last `max_tokens` tokens.

        TRL 1.16's GRPO has no prompt-length limit; this restores the old ``max_prompt_length``
        behaviour (left truncation, so the prompt still ends where the completion starts).
        `max_tokens` defaults to the task's ``max_prompt_tokens`` option when it has one; with
        neither, the dataset is returned unchanged. Prompts within the limit are untouched.
        """
        if max_tokens is None:
            max_tokens = getattr(self, "max_prompt_tokens", None)
        if max_tokens is None:
            return dataset
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise ValueError(f"max_prompt_tokens must be a positive integer, got {max_tokens!r}")
        return truncate_prompts(dataset, tokenizer, max_tokens)


def check_split(split: str, n: int) -> None:
    """A split name ("train" or "test") and a problem count >= 0, or ValueError naming the bad one."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    check_int("n", n, minimum=0)


def draw_split(
    split: str,
    n: int,
    rng_key: str,
    draw: Callable[[random.Random], P],
    in_test: Callable[[P], bool],
    *,
    unique: bool = True,
) -> list[P]:
    """`n` problems of `split` in a fixed order: `draw` from a generator seeded by `rng_key`, keeping a
    draw when `in_test` puts it in `split` (and, with `unique`, it is new). Check the arguments first
    (`check_split`): with too few problems in the split this would never end."""
    want_test = split == "test"
    rng = random.Random(rng_key)
    seen: set[P] = set()
    out: list[P] = []
    while len(out) < n:
        problem = draw(rng)
        if in_test(problem) != want_test or (unique and problem in seen):
            continue
        seen.add(problem)
        out.append(problem)
    return out


class GeneratedTask(Task):
    """A task whose problems are drawn from a seed: the first `n_train` / `n_test` of each split are
    built once and cached, and more are generated on request. Subclasses implement `_rows`."""

    n_train: int
    n_test: int
    _cache: dict[str, Dataset]

    def _rows(self, which: str, n: int) -> dict[str, list[Any]]:  # pragma: no cover - abstract
        """The first `n` problems of split `which` as dataset columns (``prompt``, ``solution``, ...)."""
        raise NotImplementedError

    def _load(self, which: str) -> Dataset:
        from datasets import Dataset

        if which not in self._cache:
            size = self.n_train if which == "train" else self.n_test
            self._cache[which] = Dataset.from_dict(self._rows(which, size))
        return self._cache[which]

    def train_dataset(self, n: int | None = None) -> Dataset:
        """`n` (default `n_train`) training problems; more than `n_train` are generated on request."""
        return self._sized("train", n, self.n_train)

    def test_dataset(self, n: int | None = None) -> Dataset:
        """`n` (default `n_test`) held-out problems; more than `n_test` are generated on request."""
        return self._sized("test", n, self.n_test)

    def _sized(self, which: str, n: int | None, default: int) -> Dataset:
        from datasets import Dataset

        if n is None:
            return self._load(which)
        check_int("n", n, minimum=0)
        if n <= default:
            return self._load(which).select(range(n))
        return Dataset.from_dict(self._rows(which, n))


def truncate_prompts(dataset: Dataset, tokenizer: Any, max_tokens: int) -> Dataset:
    """Left-truncate the ``prompt`` column of `dataset` to `max_tokens` tokens of `tokenizer`."""

    def cut(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        prompts = batch["prompt"]
        ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        out = []
        for prompt, tokens in zip(prompts, ids):
            if len(tokens) <= max_tokens:
                out.append(prompt)
            else:
                out.append(tokenizer.decode(tokens[-max_tokens:], skip_special_tokens=False))
        return {"prompt": out}

    return dataset.map(cut, batched=True, desc=f"truncating prompts to {max_tokens} tokens")


def _head(dataset: Dataset, n: int | None, option: str) -> Dataset:
    if n is None:
        return dataset
    check_int(option, n, minimum=0)
    return dataset.select(range(min(n, len(dataset))))


# ---------------------------------------------------------------------------------------------
# option checking


def check_options(task: str, options: dict[str, Any], allowed: Sequence[str]) -> None:
    """Raise ValueError naming the first option of `options` that `task` does not take."""
    for key in options:
        if key not in allowed:
            raise ValueError(
                f"unknown option {key!r} for task {task!r}; allowed: {', '.join(sorted(allowed))}"
            )


def check_int(option: str, value: Any, minimum: int | None = None) -> int:
    """Return `value` if it is an int (not a bool) >= `minimum`, else raise ValueError naming `option`."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"option {option!r} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"option {option!r} must be >= {minimum}, got {value!r}")
    return value


def check_str(option: str, value: Any) -> str:
    """Return `value` if it is a non-empty string, else raise ValueError naming `option`."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"option {option!r} must be a non-empty string, got {value!r}")
    return value


def check_reward(task: str, value: Any, *, graded: bool = False) -> str:
    """The `reward` option: ``exact`` or ``graded``; ``graded`` only where the task has partial credit (`graded`)."""
    if value not in REWARDS:
        raise ValueError(f"option 'reward' must be one of {', '.join(REWARDS)}, got {value!r}")
    if value == "graded" and not graded:
        raise ValueError(
            f"option 'reward': task {task!r} has no graded score (its score is already 1 for a correct answer and 0"
            " otherwise); leave it out or write 'exact'"
        )
    return str(value)


def check_template(option: str, value: Any, field: str) -> str:
    """A prompt template: a non-empty string holding the ``{field}`` placeholder.

    Templates are filled with `str.replace`, so other braces (``\\boxed{}``) need no escaping.
    """
    check_str(option, value)
    if "{" + field + "}" not in value:
        raise ValueError(f"option {option!r} must contain the placeholder {{{field}}}, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------
# data loading

_LOCAL_SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def is_local_source(source: str) -> bool:
    """True when `source` names an existing file or folder (rather than a hub dataset)."""
    return Path(source).expanduser().exists()


def load_rows(
    source: str,
    split: str,
    *,
    config: str | None = None,
    required: Sequence[str],
    option: str = "source",
    loader: Callable[..., Any] | None = None,
) -> Dataset:
    """Load one split of `source` and check it has the `required` columns.

    `source` is a local ``.jsonl``/``.json``/``.parquet`` file (the whole file is the split), a
    local folder (split files are found by name, ``train*.jsonl``, ``test-*.parquet``, ... as
    ``datasets`` does for folders), or else a hub dataset name passed to
    ``datasets.load_dataset(source, config, split=split)``.
    """
    import datasets

    load = loader or datasets.load_dataset
    path = Path(source).expanduser()
    if path.is_file():
        kind = _LOCAL_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise ValueError(
                f"option {option!r}: unsupported file type {path.suffix!r} for {source!r}"
                f" (use one of {', '.join(sorted(_LOCAL_SUFFIXES))})"
            )
        dataset = load(kind, data_files=str(path), split="train")
    elif path.is_dir():
        try:
            dataset = load(str(path), split=split)
        except ValueError as err:  # datasets raises ValueError for an unknown split
            raise ValueError(f"option {option!r}: no {split!r} split in folder {source!r}: {err}") from err
    else:
        dataset = load(source, config, split=split) if config else load(source, split=split)
    missing = [column for column in required if column not in dataset.column_names]
    if missing:
        raise ValueError(
            f"option {option!r}: {source!r} (split {split!r}) lacks column(s) {missing};"
            f" it has {dataset.column_names}"
        )
    return dataset
