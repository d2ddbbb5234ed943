"""Tasks from `reasoning-gym`: 100+ procedural, verifiable reasoning data sets, generated offline.

``get_task("reasoning_gym", dataset="chain_sum", config={"min_terms": 3}, seed=0)`` draws problems
from the named reasoning-gym data set (its own options in `config`, passed through) and rewards a
completion with that data set's own ``score_answer``. In a run config::

    task: {name: reasoning_gym, dataset: chain_sum, config: {min_terms: 2, max_terms: 2}, seed: 0}

Answers are read the way the prompts ask for them: the system prompt (reasoning-gym's ``default``
one unless `system` says otherwise) asks for the final answer inside ``<answer>...</answer>``, and
the content of the last such pair is what ``score_answer`` sees (none: reward 0). With
``answer: last_line`` (or ``last_number``) a completion without tags is scored on its last non-empty
line (or its last number) instead: for small models that ignore the tags (say so when you report numbers).

Splits. reasoning-gym seeds item ``i`` of a data set with ``seed + i``, so two seeds a few items
apart share items. The held-out split draws from seed ``(2 * seed + 1) * 10**7`` and the training split
from ``2 * seed * 10**7``: disjoint seed ranges for up to ten million items. Equal *questions* can still
come from different seeds when the question space is small, so the held-out split keeps its first
`n_test` distinct questions and the training split skips every question of those (``n_train`` draws
that do; a question space too small for both splits is refused with the numbers). The held-out split
is fixed by (`dataset`, `config`, `seed`, `n_test`): asking for more than `n_test` held-out problems is
refused, since the training split was filtered against the first `n_test` only.

The ``solution`` column holds the reference answer as JSON (``{"answer": ..., "question": ...,
"metadata": ...}``) because some data sets score against their metadata, not only the answer text;
the task keeps the generated entries, so scoring inside the process sees them exactly. A plain string
solution is scored as ``{"answer": solution}``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._common import GeneratedTask, check_int, check_options
from .addition import render_chat

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

__all__ = ["ANSWER_MODES", "OPTIONS", "ReasoningGymTask", "dataset_names", "extract_answer", "make_task"]

OPTIONS = ("dataset", "config", "seed", "n_train", "n_test", "chat", "system", "answer")
ANSWER_MODES = ("tags", "last_line", "last_number")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_SEED_STRIDE = 10**7  # a split's reasoning-gym seed range: [base, base + _SEED_STRIDE)
_MAX_DRAWS_PER_ITEM = 20  # give up when a split needs more draws than this per item (space too small)
_MIXTURE_TOLERANCE = 0.15  # total variation distance between the splits' mixtures above which training warns


def dataset_names() -> list[str]:
    """The data set names this reasoning-gym installation registers, sorted."""
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def extract_answer(completion: str, mode: str = "tags") -> str | None:
    """The answer a completion gives: the content of its last ``<answer>...</answer>`` (stripped); with no
    tags, for ``mode="last_line"`` its last non-empty line, for ``mode="last_number"`` its last number
    (``-12``, ``3.5``; thousands commas dropped). None when there is none."""
    from reasoning_gym.utils import extract_answer as tagged

    if not isinstance(completion, str):
        return None
    found = tagged(completion)
    if found is None and mode == "last_line":
        lines = [line.strip() for line in completion.splitlines() if line.strip()]
        found = lines[-1] if lines else None
    elif found is None and mode == "last_number":
        numbers = _NUMBER.findall(completion.replace(",", ""))
        found = numbers[-1] if numbers else None
    return found


def _mixture(items: list[dict[str, Any]]) -> dict[str, collections.Counter]:
    """Counts of each scalar metadata value (num_digits, num_terms, ...) over a split's items."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for item in items:
        for key, value in (item.get("metadata") or {}).items():
            if isinstance(value, (int, str)) and not isinstance(value, bool) and not key.startswith("source_"):
                counts[key][value] += 1
    return counts


def split_mismatch(held_out: list[dict[str, Any]], training: list[dict[str, Any]], dataset: str) -> str | None:
    """One line when the two splits are different mixtures of a per-problem choice of the generator, else None.

    reasoning-gym draws a difficulty per problem (e.g. ``num_digits`` between ``min_digits`` and ``max_digits``).
    The held-out split keeps distinct questions and the training split skips those, so when one difficulty has a
    small question space (100 one-digit products against 8,100 two-digit ones) the held-out split takes most of it
    and the training split is almost all of the other: the held-out score then measures another task than the one
    trained on. Compared per metadata key with at most 10 values (and at least five items per value in each
    split): total variation distance above 0.15 warns.
    """
    test_mix, train_mix = _mixture(held_out), _mixture(training)
    for key in sorted(test_mix.keys() & train_mix.keys()):
        values = sorted(set(test_mix[key]) | set(train_mix[key]), key=str)
        if not 1 < len(values) <= min(10, len(held_out) // 5, len(training) // 5):
            continue  # a per-problem choice repeats across items; splits too small to compare say nothing
        share = {
            split: {v: mix[key][v] / max(sum(mix[key].values()), 1) for v in values}
            for split, mix in (("held-out", test_mix), ("training", train_mix))
        }
        # total variation distance: half the summed absolute difference of the two splits' shares
        distance = 0.5 * sum(abs(share["held-out"][v] - share["training"][v]) for v in values)
        if distance > _MIXTURE_TOLERANCE:
            shown = "; ".join(
                f"{split} " + ", ".join(f"{v}: {shares[v]:.0%}" for v in values) for split, shares in share.items()
            )
            stem = key.removeprefix("num_")
            return (
                f"reasoning-gym {dataset}: the training and held-out splits are different mixtures of {key} ({shown}):"
                f" the held-out split keeps distinct questions and the training split skips them, so a small part of"
                f" the question space sits mostly in one split and the held-out score measures another mix than the"
                f" one trained on; give {key} one value in `config` (e.g. min_{stem} = max_{stem}) or the same"
                f" question space to every value"
            )
    return None


def _system_prompt(system: str) -> str:
    """A reasoning-gym system prompt by name (``default``, ``simple``, ...), else `system` itself."""
    from reasoning_gym.utils import SYSTEM_PROMPTS

    return SYSTEM_PROMPTS.get(system, system)


def _build_dataset(name: str, config: dict[str, Any], seed: int, size: int) -> Any:
    """``reasoning_gym.create_dataset`` with a one-line error for a bad name, option or value."""
    from reasoning_gym.factory import DATASETS

    if name not in DATASETS:
        raise ValueError(
            f"option 'dataset': unknown reasoning-gym data set {name!r}; choose one of {', '.join(sorted(DATASETS))}"
        )
    _, config_cls = DATASETS[name]
    fields = [f.name for f in dataclasses.fields(config_cls) if f.name not in ("seed", "size")]
    for key in config:
        if key not in fields:
            raise ValueError(f"option 'config': {name} has no option {key!r}; its options: {', '.join(fields)}")
    try:
        cfg = config_cls(**config, seed=seed, size=size)
        if hasattr(cfg, "validate"):
            cfg.validate()
        dataset_cls, _ = DATASETS[name]
        return dataset_cls(config=cfg)
    except (AssertionError, TypeError, ValueError) as exc:  # the data sets validate with assert
        raise ValueError(f"option 'config': {name} refused {config!r}: {exc or type(exc).__name__}") from None


@dataclass
class ReasoningGymTask(GeneratedTask):
    """A reasoning-gym data set as a task; reward: the data set's own ``score_answer``.

    Options: `dataset` (a reasoning-gym name), `config` (its options), `seed`, `n_train`, `n_test`,
    `chat` (ChatML prompts for chat models; false: the system prompt and question as plain text),
    `system` (a reasoning-gym system prompt name or the text itself), `answer` (``tags`` or
    ``last_line``, see the module docstring).
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
    _cache: dict[str, Dataset] = field(default_factory=dict, repr=False, compare=False)
    _entries: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)
    _scorer: Any = field(default=None, repr=False, compare=False)
    _test_questions: set[str] | None = field(default=None, repr=False, compare=False)
    skipped_train: int = field(default=0, repr=False, compare=False)

    def _draw(self, base: int, n: int, exclude: set[str]) -> list[dict[str, Any]]:
        """The first `n` items with distinct questions not in `exclude`, from seeds base, base + 1, ..."""
        budget = _MAX_DRAWS_PER_ITEM * n + 100
        source = _build_dataset(self.dataset, self.config, base, min(budget, _SEED_STRIDE))
        if self._scorer is None:
            self._scorer = source
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
                f" (asked for {n}); the question space is too small for these splits: widen `config` or lower "
                "n_train/n_test"
            )
        return out

    def _test_items(self) -> list[dict[str, Any]]:
        return self._draw((2 * self.seed + 1) * _SEED_STRIDE, self.n_test, set())

    def _rows(self, which: str, n: int) -> dict[str, list[Any]]:
        if which == "test":
            if n > self.n_test:
                raise ValueError(f"at most n_test={self.n_test} held-out problems; raise the task option n_test to ask "
                                 f"for {n}")
            items = self._test_items()[:n]
        else:
            if self._test_questions is None:
                self._test_questions = {item["question"] for item in self._test_items()}
            self.skipped_train = 0
            items = self._draw(2 * self.seed * _SEED_STRIDE, n, self._test_questions)
            mismatch = split_mismatch(self._test_items(), items, self.dataset)
            if mismatch:
                warnings.warn(mismatch, UserWarning, stacklevel=3)
        system = _system_prompt(self.system)
        prompts, solutions = [], []
        for item in items:
            prompts.append(
                render_chat(item["question"], system or None) if self.chat else f"{system}\n{item['question']}\n"
            )
            solution = json.dumps(
                {"answer": item["answer"], "question": item["question"], "metadata": item.get("metadata", {})},
                default=str,
                sort_keys=True,
            )
            self._entries[solution] = item
            solutions.append(solution)
        return {"prompt": prompts, "solution": solutions}

    def _entry(self, solution: str) -> dict[str, Any]:
        if solution in self._entries:
            return self._entries[solution]
        try:
            entry = json.loads(solution)
        except (TypeError, ValueError):
            return {"answer": solution, "metadata": {}}
        return entry if isinstance(entry, dict) and "answer" in entry else {"answer": solution, "metadata": {}}

    def score(self, completion: str, solution: str) -> float:
        """The data set's ``score_answer`` on the extracted answer, in [0, 1]; 0.0 on any failure."""
        if self._scorer is None:
            self._scorer = _build_dataset(self.dataset, self.config, 0, 1)
        try:
            value = float(self._scorer.score_answer(extract_answer(completion, self.answer), self._entry(solution)))
        except Exception:  # noqa: BLE001 - a scorer that raises on odd text gives no credit, never a crash
            return 0.0
        return min(max(value, 0.0), 1.0) if value == value else 0.0


def make_task(**options: Any) -> ReasoningGymTask:
    """Build the task from `get_task` options (see `ReasoningGymTask`), checking every value."""
    check_options("reasoning_gym", options, OPTIONS)
    name = options.get("dataset", "chain_sum")  # like every task, it builds without options
    if not isinstance(name, str):
        raise ValueError(f"option 'dataset' must be a reasoning-gym data set name, got {name!r}")
    config = options.get("config", {}) or {}
    if not isinstance(config, dict):
        raise ValueError(f"option 'config' must be a mapping of {name}'s options, got {config!r}")
    seed = check_int("seed", options.get("seed", 0), minimum=0)
    n_train = check_int("n_train", options.get("n_train", 2000), minimum=1)
    n_test = check_int("n_test", options.get("n_test", 500), minimum=1)
    chat = options.get("chat", True)
    if not isinstance(chat, bool):
        raise ValueError(f"option 'chat' must be true or false, got {chat!r}")
    system = options.get("system", "default")
    if not isinstance(system, str):
        raise ValueError(f"option 'system' must be a string (a reasoning-gym prompt name or the text), got {system!r}")
    answer = options.get("answer", "tags")
    if answer not in ANSWER_MODES:
        raise ValueError(f"option 'answer' must be one of {', '.join(ANSWER_MODES)}, got {answer!r}")
    _build_dataset(name, config, 0, 1)  # a bad name or option fails here, before any model loads
    return ReasoningGymTask(
        dataset=name,
        config=dict(config),
        seed=seed,
        n_train=n_train,
        n_test=n_test,
        chat=chat,
        system=system,
        answer=answer,
    )
