"""The chat-formatted `addition` task: prompts, reward, disjoint splits, options."""

from __future__ import annotations

import itertools

import pytest

from arca_rl.tasks import TASKS, get_task
from arca_rl.tasks.addition import (
    DEFAULT_SYSTEM,
    extract_answer,
    is_test_problem,
    problems,
    question,
    render_chat,
    split_size,
)


def test_registered() -> None:
    assert "addition" in TASKS
    task = get_task("addition")
    assert task.name == "addition"


def test_prompt_is_one_chatml_user_turn() -> None:
    task = get_task("addition", n_train=3)
    row = task.train_dataset()[0]
    a, b = (int(x) for x in row["prompt"].split("What is ")[1].split("?")[0].split(" + "))
    assert row["prompt"] == (
        f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\nWhat is {a} + {b}? Put your final answer in \\boxed{{}}.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert row["solution"] == str(a + b)
    assert 1 <= a <= 20 and 1 <= b <= 20
    assert render_chat("hi", system=None) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert get_task("addition", system="").train_dataset(1)[0]["prompt"].startswith("<|im_start|>user\n")
    assert question((7, 12, 3)) == "What is 7 + 12 + 3? Put your final answer in \\boxed{}."


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("7 + 12 = 19\n\nThe answer is \\boxed{19}.", 1.0),
        ("\\boxed{19}", 1.0),
        ("7 + 12 = 19\n\nThe answer is \\boxed{}.", 1.0),  # empty box: the last number counts
        ("7 + 12 = 19", 1.0),
        ("The sum is 19.", 1.0),
        ("It is \\boxed{19} (7 + 12)", 1.0),  # a numeric box wins over a later number
        ("\\boxed{19.0}", 1.0),
        ("7 + 12 = 18", 0.0),
        ("\\boxed{18} but really 19", 0.0),
        ("7 + 12 = 19, so \\boxed{20}", 0.0),
        ("7 + 12", 0.0),  # echoing the question is not an answer
        ("no idea", 0.0),
        ("", 0.0),
        ("\\boxed{19.5}", 0.0),
    ],
)
def test_score(completion: str, expected: float) -> None:
    assert get_task("addition").score(completion, "19") == expected


def test_extract_answer() -> None:
    assert extract_answer("1,019") == "1019"
    assert extract_answer("\\boxed{x = 4}") == "4"
    assert extract_answer("\\boxed{3 and 4} 5") == "5"  # a box with two numbers is not an answer
    assert extract_answer("-3") == "-3"
    assert extract_answer("none") is None


def test_reward_is_a_trl_reward_function() -> None:
    task = get_task("addition")
    completions = ["\\boxed{5}", [{"role": "assistant", "content": "2 + 3 = 5"}], "6"]
    assert task.reward(completions, solution=["5", "5", "5"], prompt=["p"] * 3) == [1.0, 1.0, 0.0]


def test_splits_are_disjoint_and_fixed() -> None:
    task = get_task("addition")
    every = set(itertools.product(range(1, 21), repeat=2))
    train = problems("train", split_size("train", 1, 20, 2))
    test = problems("test", split_size("test", 1, 20, 2))
    assert len(set(train)) == len(train) and len(set(test)) == len(test)
    assert set(train) | set(test) == every and not set(train) & set(test)
    assert all(is_test_problem(t) for t in test) and not any(is_test_problem(t) for t in train)
    # The split does not depend on the seed; the order does.
    other = problems("test", len(test), seed=7)
    assert set(other) == set(test) and other != test
    # Prefixes, and the datasets are the drawn problems.
    assert problems("train", 10) == train[:10]
    prompts = task.test_dataset()["prompt"]
    assert len(prompts) == 40 and prompts == [render_chat(question(t)) for t in test[:40]]


def test_wider_ranges_and_more_terms() -> None:
    task = get_task("addition", low=10, high=99, n_terms=3, n_train=50, n_test=10)
    train = task.train_dataset()
    assert len(train) == 50 and len(task.test_dataset()) == 10
    for prompt, solution in zip(train["prompt"], train["solution"]):
        terms = [int(x) for x in prompt.split("What is ")[1].split("?")[0].split(" + ")]
        assert len(terms) == 3 and all(10 <= t <= 99 for t in terms) and sum(terms) == int(solution)
    assert not set(train["prompt"]) & set(task.test_dataset()["prompt"])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"n_test": 1000}, "n_test"),
        ({"n_train": 0}, "n_train"),
        ({"low": 5, "high": 4}, "high"),
        ({"n_terms": 1}, "n_terms"),
        ({"n_terms": 7}, "n_terms"),
        ({"low": "1"}, "low"),
        ({"system": 3}, "system"),
        ({"source": "x"}, "unknown option 'source'"),
    ],
)
def test_bad_options(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        get_task("addition", **options)
