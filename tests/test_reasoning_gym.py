"""The reasoning_gym task: disjoint splits, the data set's own scorer, answers from <answer> tags, clear errors;
packaged configs by name."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import pytest
import reasoning_gym

from arca_rl._config import ConfigError, config_path, load_config, packaged_configs
from arca_rl.tasks import get_task
from arca_rl.tasks.reasoning_gym import extract_answer

# one-digit two-term chain sums: 10 x 10 x 2 = 200 questions, small enough that the splits collide
SMALL = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}


def _questions(ds) -> list[str]:
    return [json.loads(s)["question"] for s in ds["solution"]]


def test_splits_share_no_question_even_in_a_small_space() -> None:
    task = get_task("reasoning_gym", dataset="chain_sum", config=SMALL, n_train=120, n_test=40)
    train, test = _questions(task.train_dataset()), _questions(task.test_dataset())
    assert len(train) == 120 and len(test) == 40
    assert len(set(test)) == 40  # distinct held-out questions
    assert not set(train) & set(test)
    assert task.skipped_train > 0  # the space is small: the filter had work to do
    # the held-out split is reasoning-gym's own items from the documented seed range, in order
    source = reasoning_gym.create_dataset("chain_sum", seed=10**7, size=400, **SMALL)
    expected: list[str] = []
    for item in source:
        if item["question"] not in expected:
            expected.append(item["question"])
    assert test == expected[:40]


def test_splits_are_fixed_by_the_seed() -> None:
    a = get_task("reasoning_gym", dataset="chain_sum", seed=3, n_train=20, n_test=10)
    b = get_task("reasoning_gym", dataset="chain_sum", seed=3, n_train=20, n_test=10)
    c = get_task("reasoning_gym", dataset="chain_sum", seed=4, n_train=20, n_test=10)
    assert a.train_dataset()["prompt"] == b.train_dataset()["prompt"]
    assert a.test_dataset()["prompt"] != c.test_dataset()["prompt"]
    with pytest.raises(ValueError, match="n_test"):
        a.test_dataset(11)


def test_reward_is_the_datasets_own_score_answer() -> None:
    task = get_task("reasoning_gym", dataset="chain_sum", n_train=8, n_test=8)
    test = task.test_dataset()
    entry = json.loads(test[0]["solution"])
    right, wrong = entry["answer"], str(int(entry["answer"]) + 1)
    completions = [
        f"thinking...\n<answer>{right}</answer>",
        f"<answer>{wrong}</answer>",
        right,
        f"<answer>x</answer> <answer>{right}</answer>",
    ]
    got = task.reward(completions, solution=[test[0]["solution"]] * 4)
    # independently: reasoning-gym's own scorer on the tag contents, the entry rebuilt from its seed
    source = reasoning_gym.create_dataset("chain_sum", seed=10**7, size=1)
    assert source[0]["question"] == entry["question"]
    expected = [source.score_answer(a, source[0]) for a in (right, wrong, None, right)]
    assert got == expected == [1.0, 0.0, 0.0, 1.0]
    # a solution given as plain text (outside the process that generated it) scores on the answer alone
    assert task.score(f"<answer>{right}</answer>", right) == 1.0


def test_answer_modes() -> None:
    assert extract_answer("a <answer> 5 </answer> b <answer>7</answer>") == "7"
    assert extract_answer("no tags\n12\n") is None
    assert extract_answer("no tags\n12\n\n", "last_line") == "12"
    assert extract_answer("so 1,200 - 3 = -1197.", "last_number") == "-1197"
    assert extract_answer("<answer>4</answer> then 5", "last_number") == "4"  # tags win when present
    lenient = get_task("reasoning_gym", dataset="chain_sum", answer="last_line", n_train=4, n_test=4)
    sol = lenient.test_dataset()[0]["solution"]
    assert lenient.score("so the sum is\n" + json.loads(sol)["answer"], sol) == 1.0


def test_chat_and_plain_prompts() -> None:
    chat = get_task("reasoning_gym", dataset="chain_sum", n_train=2, n_test=2)
    prompt = chat.train_dataset()[0]["prompt"]
    assert prompt.startswith("<|im_start|>system\nGiven a problem") and prompt.endswith("<|im_start|>assistant\n")
    assert "<answer>" in prompt  # the system prompt asks for the tags the scorer reads
    plain = get_task("reasoning_gym", dataset="chain_sum", chat=False, system="direct", n_train=2, n_test=2)
    text = plain.train_dataset()[0]["prompt"]
    assert "<|im_start|>" not in text and text.startswith("Answer the question directly")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dataset": "chain_summ"}, "unknown reasoning-gym data set 'chain_summ'; choose one of .*chain_sum"),
        (
            {"dataset": "chain_sum", "config": {"min_term": 2}},
            "chain_sum has no option 'min_term'; its options: min_terms",
        ),
        (
            {"dataset": "chain_sum", "config": {"min_terms": 5, "max_terms": 2}},
            "chain_sum refused .*max_terms must be >= min_terms",
        ),
        ({"dataset": 3}, "option 'dataset' must be a reasoning-gym data set name"),
        ({"dataset": "chain_sum", "answer": "boxed"}, "option 'answer' must be one of tags, last_line, last_number"),
        ({"dataset": "chain_sum", "sead": 1}, "unknown option 'sead'"),
    ],
)
def test_bad_options_name_what_exists(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_task("reasoning_gym", **options)


def test_too_small_a_space_is_refused_with_the_numbers() -> None:
    tiny = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}
    task = get_task("reasoning_gym", dataset="chain_sum", config=tiny, n_train=500, n_test=10)
    with pytest.raises(ValueError, match="only .* distinct questions .* too small"):
        task.train_dataset()


def test_a_config_selects_the_task_and_packaged_configs_load_by_name(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no configs/ folder here, as for a pip-installed user
    assert "demo" in packaged_configs()
    assert config_path("demo").is_file() and config_path("demo.yaml") == config_path("demo")
    cfg = load_config(
        "demo", ["task.name=reasoning_gym", "task.dataset=chain_sum", "task.config={min_terms: 3, max_terms: 3}"]
    )
    assert cfg.task.name == "reasoning_gym"
    assert cfg.task.options == {"seed": 0, "dataset": "chain_sum", "config": {"min_terms": 3, "max_terms": 3}}
    with pytest.raises(ConfigError, match="option 'config': chain_sum has no option 'terms'"):
        load_config("demo", ["task.name=reasoning_gym", "task.dataset=chain_sum", "task.config={terms: 3}"])
    with pytest.raises(ConfigError, match="packaged configs, by name: .*demo"):
        load_config("no-such-config")
    out = subprocess.run(
        [sys.executable, "-m", "arca_rl.cli", "train", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in out.stdout.split("--config")[2]


def _digit_shares(ds) -> dict[int, float]:
    """Share of each operand length in a split, read from the question text (not from the task's metadata)."""
    lengths = [len(re.findall(r"\d+", q.split(":")[-1])[0]) for q in _questions(ds)]
    return {d: lengths.count(d) / len(lengths) for d in set(lengths)}


def test_splits_that_are_different_mixtures_of_difficulty_are_warned_about_with_the_shares() -> None:
    # products of two 1- or 2-digit numbers: reasoning-gym draws the length per problem, half each, but there are
    # only 100 one-digit questions against 8,100 two-digit ones, so the distinct held-out questions take most of the
    # one-digit ones and the training split (which skips them) is almost all two-digit
    mixed = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}
    task = get_task("reasoning_gym", dataset="products", config=mixed, n_train=400, n_test=100)
    held_out, shares_test = task.test_dataset(), None
    shares_test = _digit_shares(held_out)
    with pytest.warns(UserWarning, match="num_digits") as caught:
        train = task.train_dataset()
    shares_train = _digit_shares(train)
    assert shares_test[1] - shares_train[1] > 0.2  # the independent count agrees that the mixtures differ
    message = str(caught[0].message)
    assert f"held-out 1: {shares_test[1]:.0%}" in message and f"training 1: {shares_train[1]:.0%}" in message
    assert "min_digits" in message or "same" in message  # says how to fix it
    # one length only: both splits are the same mixture, no warning
    same = {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_task("reasoning_gym", dataset="products", config=same, n_train=400, n_test=100).train_dataset()
