"""The reasoning_gym task: splits drawn from one generator (or the study's distinct ones), exact `correct` beside the
data set's graded score, answers from <answer> tags or the last number, clear errors for any option that cannot
build a data set; packaged configs by name."""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import threading
import warnings
from fractions import Fraction

import pytest
import reasoning_gym
import yaml

from arca_rl._config import ConfigError, config_path, load_config, packaged_configs
from arca_rl.cli import main
from arca_rl.self_teacher import choose_teachers
from arca_rl.tasks import get_task
from arca_rl.tasks import reasoning_gym as rg
from arca_rl.tasks._rg_build import build_checked, dump_entry, load_entry
from arca_rl.tasks.reasoning_gym import extract_answer, numbers_equal
from runfiles import one_error_line

# one-digit two-term chain sums: 10 x 10 x 2 = 200 questions, small enough that the splits collide
SMALL = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}


def _questions(ds) -> list[str]:
    return [json.loads(s)["question"] for s in ds["solution"]]


# ---------------------------------------------------------------------------------------------------------------
# splits


def test_iid_splits_are_the_generators_items_in_order_and_the_evaluation_knows_which_it_trained_on() -> None:
    task = get_task("reasoning_gym", dataset="chain_sum", config=SMALL, seed=2, n_train=120, n_test=300)
    train, test = _questions(task.train_dataset()), _questions(task.test_dataset())
    # independently: reasoning-gym's own items from the documented seed ranges, in order, nothing filtered
    held_out = reasoning_gym.create_dataset("chain_sum", seed=5 * 10**7, size=300, **SMALL)
    training = reasoning_gym.create_dataset("chain_sum", seed=4 * 10**7, size=120, **SMALL)
    assert test == [item["question"] for item in held_out]
    assert train == [item["question"] for item in training]
    assert len(set(test)) < len(test)  # a small space: an i.i.d. sample repeats frequent questions
    # the held-out problems a run trained on (every training prompt once), counted by hand from the questions
    seen = task.held_out_seen(task.train_dataset()["prompt"])
    assert seen == [i for i, q in enumerate(test) if q in set(train)] and seen
    assert task.held_out_seen(task.train_dataset(10)["prompt"], n=50) == [
        i for i, q in enumerate(test[:50]) if q in set(train[:10])
    ]


def test_distinct_splits_share_no_question_even_in_a_small_space() -> None:
    task = get_task("reasoning_gym", dataset="chain_sum", config=SMALL, n_train=120, n_test=40, split="distinct")
    train, test = _questions(task.train_dataset()), _questions(task.test_dataset())
    assert len(train) == 120 and len(test) == 40
    assert len(set(test)) == 40  # distinct held-out questions
    assert not set(train) & set(test)
    assert task.skipped_train > 0  # the space is small: the filter had work to do
    assert task.held_out_seen(task.train_dataset()["prompt"]) == []
    # the held-out split is reasoning-gym's own items from the documented seed range, first distinct ones, in order
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


def test_every_seed_up_to_the_limit_works_on_numpy_seeded_data_sets_and_larger_ones_are_refused() -> None:
    # pool_matrix seeds numpy with the item seed, which must be below 2**32
    limit = (2**32 // 10**7 - 2) // 2  # both seed ranges of ten million below 2**32, by hand
    assert rg.MAX_SEED == limit == 213
    task = get_task("reasoning_gym", dataset="pool_matrix", seed=limit, n_train=3, n_test=3)
    assert len(task.train_dataset()) == 3 and len(task.test_dataset()) == 3
    with pytest.raises(ValueError, match=r"option 'seed' must be between 0 and 213, got 215.*2\*\*32"):
        get_task("reasoning_gym", dataset="pool_matrix", seed=215)


# ---------------------------------------------------------------------------------------------------------------
# correct, score, reward


def test_minus_seven_for_seven_is_wrong_under_exact_and_half_under_graded() -> None:
    exact = get_task("reasoning_gym", dataset="basic_arithmetic")
    graded = get_task("reasoning_gym", dataset="basic_arithmetic", reward="graded")
    completions = ["<answer>-7</answer>", "<answer>7</answer>", "<answer>17</answer>", "<answer>7.0</answer>"]
    # reasoning-gym's string rule, by hand: equal -> 1, the reference inside the answer -> len(ref) / len(answer)
    by_hand = [1 / 2, 1.0, 1 / 2, 1 / 3]
    assert exact.reward(completions, solution=["7"] * 4) == [0.0, 1.0, 0.0, 1.0]  # "7.0" is the number 7
    assert graded.reward(completions, solution=["7"] * 4) == pytest.approx(by_hand)
    for task in (exact, graded):
        assert [task.score(c, "7") for c in completions] == pytest.approx(by_hand)
        judged = [task.correct(c, "7") for c in completions]
        assert judged == [False, True, False, True] and all(type(j) is bool for j in judged)


def test_correct_is_never_partial_on_generated_problems() -> None:
    task = get_task("reasoning_gym", dataset="basic_arithmetic", n_train=4, n_test=40, reward="graded")
    for solution in task.test_dataset()["solution"]:
        reference = json.loads(solution)["answer"]
        for answer in (reference, f"-{reference}", f"{reference}0", f"{reference}.0", "x"):
            grade = task.grade(f"<answer>{answer}</answer>", solution)
            assert type(grade.correct) is bool
            # correct exactly when the numbers are equal (computed here with Fraction), whatever the graded score
            try:
                same = Fraction(answer) == Fraction(reference)
            except ValueError:
                same = False
            assert grade.correct == same, (answer, reference, grade)
            assert grade.score == reasoning_gym.create_dataset("basic_arithmetic", seed=0, size=1).score_answer(
                answer, json.loads(solution)
            )


def test_graded_reward_is_the_datasets_own_score_answer() -> None:
    task = get_task("reasoning_gym", dataset="chain_sum", n_train=8, n_test=8, reward="graded")
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
    assert got == expected
    # a solution given as plain text (outside the process that generated it) scores on the answer alone
    assert task.score(f"<answer>{right}</answer>", right) == 1.0


def test_a_graded_reward_would_show_a_wrong_answer_as_the_teacher_and_the_exact_one_does_not() -> None:
    # issue 39: for the answer -3, "-3.0", "3", "-30", "7" score 0.5, 0, 0.667, 0 under reasoning-gym's rule
    completions = ["<answer>-3.0</answer>", "<answer>3</answer>", "<answer>-30</answer>", "<answer>7</answer>"]
    graded_task = get_task("reasoning_gym", dataset="basic_arithmetic", reward="graded")
    graded = graded_task.reward(completions, solution=["-3"] * 4)
    exact = get_task("reasoning_gym", dataset="basic_arithmetic").reward(completions, solution=["-3"] * 4)
    assert graded == pytest.approx([2 / 4, 0.0, 2 / 3, 0.0])
    assert exact == [1.0, 0.0, 0.0, 0.0]  # -3.0 is the number -3; -30 is wrong
    groups = [0, 0, 0, 0]
    assert choose_teachers(graded, groups) == [2, 2, -1, 2]  # "-30" shown as the solution
    assert choose_teachers(exact, groups) == [-1, 0, 0, 0]  # only the correct answer is shown


@pytest.mark.parametrize(
    ("answer", "reference", "equal"),
    [("7.0", "7", True), ("-7", "7", False), ("1e3", "1000", True), (".5", "0.5", True), ("3/4", "0.75", True),
     ("\u22125", "-5", True), ("+5", "5", True), ("07", "7", True), ("7", "seven", False), ("1,000", "1000", False),
     (None, "7", False), ("1e999999", "1", False), ("3/0", "1", False)],
)
def test_numbers_equal(answer, reference, equal) -> None:
    assert numbers_equal(answer, reference) is equal


def test_answer_modes() -> None:
    assert extract_answer("a <answer> 5 </answer> b <answer>7</answer>") == "7"
    assert extract_answer("no tags\n12\n") is None
    assert extract_answer("no tags\n12\n\n", "last_line") == "12"
    assert extract_answer("so 1,200 - 3 = -1197.", "last_number") == "-1197"
    assert extract_answer("<answer>4</answer> then 5", "last_number") == "4"  # tags win when present
    lenient = get_task("reasoning_gym", dataset="chain_sum", answer="last_line", n_train=4, n_test=4)
    sol = lenient.test_dataset()[0]["solution"]
    assert lenient.score("so the sum is\n" + json.loads(sol)["answer"], sol) == 1.0


@pytest.mark.parametrize(
    ("text", "number"),
    [("the answer is 3/4", "3/4"), ("so 1e3", "1e3"), ("it is .5", ".5"), ("x = \u22125", "-5"), ("5-3", "3"),
     ("it is 7.", "7"), ("-2 * 4 = -8", "-8"), ("a list 1,2", "2"), ("total 12,345", "12345"), ("+4", "4")],
)
def test_last_number_reads_the_whole_number(text, number) -> None:
    assert extract_answer(text, "last_number") == number


def test_chat_and_plain_prompts() -> None:
    chat = get_task("reasoning_gym", dataset="chain_sum", n_train=2, n_test=2)
    prompt = chat.train_dataset()[0]["prompt"]
    assert prompt.startswith("<|im_start|>system\nGiven a problem") and prompt.endswith("<|im_start|>assistant\n")
    assert "<answer>" in prompt  # the system prompt asks for the tags the scorer reads
    plain = get_task("reasoning_gym", dataset="chain_sum", chat=False, system="direct", n_train=2, n_test=2)
    text = plain.train_dataset()[0]["prompt"]
    assert "<|im_start|>" not in text and text.startswith("Answer the question directly")


@pytest.mark.parametrize("dataset", ["rearc", "arc_agi"])
def test_a_fresh_task_scores_the_exact_reference_of_a_board_task(dataset) -> None:
    """arc_agi / rearc compare boards as tuples of tuples, which a plain JSON round trip turned into lists (0.05)."""
    task = get_task("reasoning_gym", dataset=dataset, n_train=2, n_test=2)
    solution = task.test_dataset()[0]["solution"]
    fresh = get_task("reasoning_gym", dataset=dataset, n_train=2, n_test=2)  # knows nothing of the generated items
    item = reasoning_gym.create_dataset(dataset, seed=10**7, size=1)[0]  # the same item, from its seed
    entry = {"answer": item["answer"], "question": item["question"], "metadata": item["metadata"]}
    assert load_entry(solution) == entry
    assert fresh.score(f"<answer>{item['answer']}</answer>", solution) == 1.0
    assert fresh.correct(f"<answer>{item['answer']}</answer>", solution)


def test_entries_keep_tuples_sets_and_other_keys_through_json() -> None:
    entry = {"answer": "x", "metadata": {"board": ((1, 2), (3, 4)), "s": {1, 2}, "k": {(1, 2): "a", 3: [4]},
                                         "odd": {"__tuple__": 5}}}
    assert load_entry(dump_entry(entry)) == entry


# ---------------------------------------------------------------------------------------------------------------
# options


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
        ({"dataset": "chain_sum", "reward": "partial"}, "option 'reward' must be one of exact, graded"),
        ({"dataset": "chain_sum", "split": "unique"}, "option 'split' must be one of iid, distinct"),
        ({"dataset": "basic_arithmetic", "config": {"min_terms": 2.5}},
         "basic_arithmetic's min_terms must be an integer, got 2.5"),
        ({"dataset": "calendar_arithmetic", "config": {"tasks": [1]}},
         "calendar_arithmetic's tasks must be a list of strings"),
        ({"dataset": "composite", "config": {"datasets": [{"nme": "chain_sum"}]}}, r"datasets\[0\]'.*name"),
        ({"dataset": "composite", "config": {"datasets": [{"name": "chain_sum", "weight": 0}]}},
         "weight must be a number > 0"),
        ({"dataset": "composite", "config": {"datasets": [{"name": "chain_sum", "config": {"x": 1}}]}},
         r"datasets\[0\].config': chain_sum has no option 'x'"),
    ],
)
def test_bad_options_name_what_exists(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        get_task("reasoning_gym", **options)
    assert "\n" not in str(caught.value)


def test_too_small_a_space_for_distinct_splits_is_refused_with_the_numbers() -> None:
    task = get_task("reasoning_gym", dataset="chain_sum", config=SMALL, n_train=500, n_test=10, split="distinct")
    with pytest.raises(ValueError, match="only .* distinct questions .* too small"):
        task.train_dataset()


def test_a_yaml_number_reads_as_the_integer_option_it_spells() -> None:
    task = get_task("reasoning_gym", dataset="count_primes", config={"max_n": "1e3"}, n_train=2, n_test=2)
    assert task.config == {"max_n": "1e3"}  # as written; built as 1000
    ends = [json.loads(s)["metadata"]["end"] for s in task.test_dataset()["solution"]]
    assert all(1 <= end <= 1000 for end in ends)


def test_composite_of_mappings_builds_and_scores(tmp_path, capsys) -> None:
    datasets = [{"name": "chain_sum"}, {"name": "basic_arithmetic", "weight": 2, "config": SMALL}]
    task = get_task("reasoning_gym", dataset="composite", config={"datasets": datasets}, n_train=4, n_test=30)
    sources = collections.Counter(json.loads(s)["metadata"]["source_dataset"] for s in task.test_dataset()["solution"])
    assert set(sources) == {"chain_sum", "basic_arithmetic"}
    solution = task.test_dataset()[0]["solution"]
    fresh = get_task("reasoning_gym", dataset="composite", config={"datasets": datasets})
    assert fresh.correct(f"<answer>{json.loads(solution)['answer']}</answer>", solution)
    # and from a YAML config, the only way to write it there
    path = tmp_path / "composite.yaml"
    path.write_text(yaml.safe_dump({"training": {"max_steps": 1}, "task": {
        "name": "reasoning_gym", "dataset": "composite", "config": {"datasets": [{"name": "chain_sum"}]}}}))
    assert main(["train", "--config", str(path), "--dry-run"]) == 0
    capsys.readouterr()


def test_a_build_that_never_ends_is_stopped_at_the_time_bound(monkeypatch) -> None:
    """Slow by construction: the data set's constructor blocks forever, so any bound stops it."""
    from reasoning_gym.factory import DATASETS

    _, config_cls = DATASETS["chain_sum"]

    class Blocking:
        def __init__(self, config) -> None:
            threading.Event().wait()

    monkeypatch.setitem(DATASETS, "never_builds", (Blocking, config_cls))
    with pytest.raises(ValueError, match=r"building reasoning-gym never_builds .* took more than 1 s \(stopped\)"):
        build_checked("never_builds", {}, seconds=1)


@pytest.mark.parametrize("where", ["build", "item"])
def test_any_exception_of_a_data_set_is_one_line(monkeypatch, where) -> None:
    from reasoning_gym.factory import DATASETS

    chain_sum, config_cls = DATASETS["chain_sum"]

    class Failing(chain_sum):
        def __init__(self, config) -> None:
            if where == "build":
                raise RuntimeError("no such table\nsecond line")
            super().__init__(config)

        def __getitem__(self, idx):
            raise AttributeError("'dict' object has no attribute 'name'")

    monkeypatch.setitem(DATASETS, "failing", (Failing, config_cls))
    message = "refused {}: RuntimeError: no such table second line" if where == "build" else (
        "fails to generate a problem: AttributeError")
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        get_task("reasoning_gym", dataset="failing")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("option 'config': ")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="the memory cap is Linux's")
def test_a_build_that_needs_too_much_memory_is_one_line() -> None:
    # count_primes sieves up to max_n when the data set is made: a list of a billion booleans (8 GB of pointers)
    with pytest.raises(ValueError, match="count_primes .* needs more than 4 GiB of memory"):
        get_task("reasoning_gym", dataset="count_primes", config={"max_n": "1e9"})


# ---------------------------------------------------------------------------------------------------------------
# one mixture


def _shares(questions: list[str], pattern: str) -> float:
    return sum(bool(re.search(pattern, q)) for q in questions) / len(questions)


def test_the_rg2_configs_warn_that_their_splits_are_different_mixtures_with_the_figures() -> None:
    cfg = load_config("smollm2-rg2/uniform")
    task = get_task(cfg.task.name, **cfg.task.options)
    assert task.n_train == cfg.task.n_train == 1000  # the config's n_train reaches the task
    with pytest.warns(UserWarning, match="different mixtures of question forms") as caught:
        train = task.train_dataset(cfg.task.n_train)
    test = _questions(task.test_dataset())
    # plain divisions ("Calculate a / b."), counted here from the question text
    plain_division = r"^Calculate -?\d / -?\d\.$"
    held_out, training = _shares(test, plain_division), _shares(_questions(train), plain_division)
    assert held_out - training > 0.05  # the independent count agrees that the mixtures differ
    message = str(caught[0].message)
    assert f"/ none {held_out:.1%} held-out vs {training:.1%} training" in message
    assert "split: iid" in message  # says how to fix it


def test_the_rg3_configs_split_into_one_mixture_with_1000_exact_held_out_problems() -> None:
    for method in ("uniform", "tempo", "surprisal", "arca"):
        cfg = load_config(f"smollm2-rg3/{method}")
        assert cfg.eval.n >= 1000 and cfg.task.options["reward"] == "exact" and cfg.eval.every_steps is None
    task = get_task(cfg.task.name, **cfg.task.options)
    assert task.reward_kind == "exact" and task.split == "iid"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train = task.train_dataset(cfg.task.n_train)
    assert len(train) == 80 and len(task.test_dataset(cfg.eval.n)) == 1000
    # the held-out split against a larger, independent sample of the generator (another seed range): within
    # sampling error for the share of plain divisions (a 4-sigma band of a binomial share)
    config = cfg.task.options["config"]
    reference = reasoning_gym.create_dataset("basic_arithmetic", seed=123 * 10**7, size=4000, **config)
    p = _shares([item["question"] for item in reference], r"^Calculate -?\d / -?\d\.$")
    held_out = _shares(_questions(task.test_dataset()), r"^Calculate -?\d / -?\d\.$")
    assert abs(held_out - p) < 4 * (p * (1 - p) * (1 / 1000 + 1 / 4000)) ** 0.5


def test_distinct_splits_of_a_per_problem_difficulty_warn_naming_it() -> None:
    # products of two 1- or 2-digit numbers: reasoning-gym draws the length per problem, half each, but there are
    # only 100 one-digit questions against 8,100 two-digit ones, so the distinct held-out questions take most of the
    # one-digit ones and the training split (which skips them) is almost all two-digit
    mixed = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}
    task = get_task("reasoning_gym", dataset="products", config=mixed, n_train=400, n_test=100, split="distinct")
    with pytest.warns(UserWarning, match="num_digits") as caught:
        task.train_dataset()
    assert "1 " in str(caught[0].message) and "split: iid" in str(caught[0].message)
    # the same options drawn i.i.d.: one mixture, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_task("reasoning_gym", dataset="products", config=mixed, n_train=400, n_test=100).train_dataset()


# ---------------------------------------------------------------------------------------------------------------
# configs


def test_the_config_n_train_reaches_the_task(tmp_path) -> None:
    # 200 questions: distinct splits of 40 + 120 fit, the task's default 2,000 training questions do not
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump({"training": {"max_steps": 1}, "task": {
        "name": "reasoning_gym", "dataset": "chain_sum", "config": SMALL, "split": "distinct", "n_train": 120,
        "n_test": 40}, "eval": {"n": 40}}))
    cfg = load_config(path)
    task = get_task(cfg.task.name, **cfg.task.options)
    assert task.n_train == 120 and len(task.train_dataset(cfg.task.n_train)) == 120


def test_a_config_selects_the_task_and_packaged_configs_load_by_name(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no configs/ folder here, as for a pip-installed user
    assert "demo" in packaged_configs() and "smollm2-rg3/uniform" in packaged_configs()
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


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("task.config.min_terms=2.5", "task.config: .*min_terms must be an integer, got 2.5"),
        ("eval.n=1001", "eval.n: 1001 held-out problems .* task.n_test = 1000"),
        ("eval.every_steps=10", "eval.curve_n"),
        ("task.seed=215", "task.seed: .*between 0 and 213"),
        ("task.reward=partial", "task.reward: .*exact, graded"),
    ],
)
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "train"])
def test_bad_task_settings_are_one_line_before_any_model(override, named, dry_run, tmp_path, capsys) -> None:
    extra = ["--set", "eval.curve_n=1001"] if override.startswith("eval.every_steps") else []
    empty = tmp_path / "not-a-model"  # were a value let through, loading would fail at once
    empty.mkdir()
    argv = ["train", "-c", "smollm2-rg3/uniform", "--output-dir", str(tmp_path / "run"), "--set",
            f"model.name_or_path={empty}", "--set", override, *extra]
    assert main([*argv, "--dry-run"] if dry_run else argv) == 2
    assert re.search(named, one_error_line(capsys.readouterr().err))
    assert not (tmp_path / "run").exists()


def test_the_rg3_study_config_evaluates_1000_problems_of_one_mixture_leaving_out_what_a_run_trains_on() -> None:
    """Issue 39: `smollm2-rg3/uniform` evaluates >= 1,000 held-out problems, greedy only, on splits drawn from one
    generator; a run leaves out the held-out questions in its training split, the same ones for every method of a
    task seed (checked here against a plain set intersection)."""
    from arca_rl._config import load_config
    from arca_rl._run.training import build_task, held_out_skip

    cfg = load_config("smollm2-rg3/uniform")
    args = cfg.eval_arguments()
    assert args["n"] >= 1000 and args.get("sampled") is False
    assert cfg.task.options["split"] == "iid" and cfg.task.options["reward"] == "exact"
    task = build_task(cfg)
    trained = list(task.train_dataset(n=cfg.task.n_train)["prompt"])
    held_out = list(task.test_dataset(n=args["n"])["prompt"])
    skip = held_out_skip(task, trained, args["n"])
    assert skip == [i for i, p in enumerate(held_out) if p in set(trained)]
    assert 0 < len(skip) < 0.2 * len(held_out)  # i.i.d. splits share some frequent questions, not most
    other = build_task(load_config("smollm2-rg3/tempo"))
    assert held_out_skip(other, trained, args["n"]) == skip  # paired: the same problems left out
