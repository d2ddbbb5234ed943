"""Tasks: option checking, the arithmetic generator, data loading, and the answer checkers."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import datasets
import pytest

from arca_rl.tasks import TASKS, Task, get_task, gsm8k, last_boxed
from arca_rl.tasks import arithmetic as arith
from arca_rl.tasks import math as mathtask

# ---------------------------------------------------------------------------------------------
# get_task and options


def test_task_names_and_types() -> None:
    assert TASKS == ("arithmetic", "math", "gsm8k", "addition", "reasoning_gym")
    for name in TASKS:
        task = get_task(name)  # building a task loads nothing
        assert isinstance(task, Task)
        assert task.name == name


@pytest.mark.parametrize(
    ("name", "options", "named"),
    [
        ("arithmetic", {"sed": 1}, "sed"),
        ("arithmetic", {"seed": "1"}, "seed"),
        ("arithmetic", {"seed": True}, "seed"),
        ("arithmetic", {"n_train": 0}, "n_train"),
        ("arithmetic", {"n_test": 10**9}, "n_test"),
        ("math", {"sorce": "x"}, "sorce"),
        ("math", {"source": ""}, "source"),
        ("math", {"split": 3}, "split"),
        ("math", {"template": "no placeholder"}, "template"),
        ("math", {"max_prompt_tokens": 0}, "max_prompt_tokens"),
        ("math", {"tokenizer": 5}, "tokenizer"),
        ("gsm8k", {"require_boxed": "yes"}, "require_boxed"),
        ("gsm8k", {"template": "{problem}"}, "template"),
    ],
)
def test_bad_options_name_the_option(name: str, options: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        get_task(name, **options)


@pytest.mark.parametrize("name", TASKS)
def test_every_task_takes_an_exact_reward_and_only_reasoning_gym_a_graded_one(name: str) -> None:
    assert get_task(name, reward="exact").reward_kind == "exact"
    if name == "reasoning_gym":
        assert get_task(name, reward="graded").reward_kind == "graded"
    else:
        with pytest.raises(ValueError, match=f"option 'reward': task '{name}' has no graded score"):
            get_task(name, reward="graded")
    with pytest.raises(ValueError, match="option 'reward' must be one of exact, graded"):
        get_task(name, reward="partial")


def test_correct_is_a_bool_and_the_reward_follows_it_for_every_generated_task() -> None:
    for name, right, wrong in (("arithmetic", "\\boxed{{{}}}", "\\boxed{{{}1}}"),
                               ("addition", "\\boxed{{{}}}", "\\boxed{{{}1}}"),
                               ("reasoning_gym", "<answer>{}</answer>", "<answer>{}1</answer>")):
        task = get_task(name, n_train=2, n_test=3)
        for row in task.test_dataset():
            if name == "arithmetic":
                answer = row["solution"].rsplit("{", 1)[1].rstrip("}")
            elif name == "addition":
                answer = row["solution"]
            else:
                answer = json.loads(row["solution"])["answer"]
            completions = [right.format(answer), wrong.format(answer)]
            judged = [task.correct(c, row["solution"]) for c in completions]
            assert judged == [True, False] and all(type(j) is bool for j in judged)
            assert task.reward(completions, [row["solution"]] * 2) == [1.0, 0.0]
        if name != "reasoning_gym":  # disjoint splits by construction: nothing held out was trained on
            assert task.held_out_seen(task.train_dataset(300)["prompt"]) == []


def test_unknown_task() -> None:
    with pytest.raises(ValueError, match="unknown task 'mth'"):
        get_task("mth")


# ---------------------------------------------------------------------------------------------
# arithmetic


def test_arithmetic_is_deterministic_and_splits_are_disjoint() -> None:
    task = get_task("arithmetic", n_train=3000, n_test=400)
    again = get_task("arithmetic", n_train=3000, n_test=400)
    train, test = task.train_dataset(), task.test_dataset()
    assert train.column_names == ["prompt", "solution"] == test.column_names
    assert (len(train), len(test)) == (3000, 400)
    assert train["prompt"] == again.train_dataset()["prompt"]
    assert test["prompt"] == again.test_dataset()["prompt"]
    assert len(set(train["prompt"])) == 3000 and len(set(test["prompt"])) == 400
    assert not set(train["prompt"]) & set(test["prompt"])
    # Another seed reorders and redraws problems, but the split never moves.
    other = get_task("arithmetic", seed=1, n_train=3000, n_test=400)
    assert other.train_dataset()["prompt"] != train["prompt"]
    assert not set(other.train_dataset()["prompt"]) & set(test["prompt"])
    assert not set(other.test_dataset()["prompt"]) & set(train["prompt"])
    # Prefix stability, also beyond the default size.
    assert task.train_dataset(10)["prompt"] == train["prompt"][:10]
    assert task.test_dataset(500)["prompt"][:400] == test["prompt"]


def test_arithmetic_rows() -> None:
    row = get_task("arithmetic").test_dataset(1)[0]
    terms = tuple(int(t) for t in row["prompt"].removeprefix("Q: ").removesuffix("=?\nA: ").split("+"))
    assert len(terms) == 3 and all(10 <= t <= 99 for t in terms)
    assert row["prompt"] == arith.prompt_text(terms)
    assert arith.is_test_problem(terms)
    total = sum(terms)
    assert row["solution"].endswith(f"\\boxed{{{total}}}")
    assert arith.steps_completion((80, 33, 95)) == "80+33=113. 113+95=208. \\boxed{208}"
    assert arith.direct_completion((80, 33, 95)) == "\\boxed{208}"


def test_arithmetic_reward_and_strategy() -> None:
    task = get_task("arithmetic")
    solution = arith.solution_text((80, 33, 95))
    completions = [
        "\\boxed{208}",
        "80+33=113. 113+95=208. \\boxed{208}",
        "\\boxed{207}",
        "80+33=113. 113+95=208.",  # no answer
        "\\boxed{208.0}",
    ]
    # TRL passes every dataset column as a keyword argument.
    rewards = task.reward(completions, solution=[solution] * 5, prompt=["p"] * 5, completion_ids=[[1]] * 5)
    assert rewards == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert [arith.strategy(c) for c in completions] == ["direct", "steps", "direct", "steps", "direct"]
    assert arith.strategy("  \\boxed{1}") == "direct"
    assert arith.DECISIVE_TOKEN_INDEX == 0
    # Conversational completions (a list of messages) are scored on the last message.
    assert task.reward([[{"role": "assistant", "content": "\\boxed{208}"}]], [solution]) == [1.0]
    with pytest.raises(ValueError):
        task.reward(["a", "b"], [solution])


def test_sft_mixture() -> None:
    data = arith.sft_dataset(2000, direct_fraction=0.65, seed=0)
    assert data.column_names == ["prompt", "completion"]
    direct = sum(arith.strategy(c) == "direct" for c in data["completion"]) / len(data)
    assert 0.6 < direct < 0.7
    test_prompts = set(get_task("arithmetic", n_test=2000).test_dataset()["prompt"])
    assert not set(data["prompt"]) & test_prompts
    assert data["completion"] == arith.sft_dataset(2000, direct_fraction=0.65, seed=0)["completion"]
    assert arith.TINY_MODEL_PATH.name == "tiny" and arith.TINY_MODEL_PATH.parent.name == "assets"


# ---------------------------------------------------------------------------------------------
# last_boxed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("\\boxed{1} and then \\boxed{2}", "2"),
        ("\\boxed{1} then a cut-off \\boxed{2", "1"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("\\fbox{7}", "7"),
        ("$\\boxed 5$", "5"),
        ("\\boxed {3}", "3"),
        ("no box", None),
        ("\\boxed{", None),
        ("\\boxed{" + "1" * 2000 + "}", None),
        ("\\boxed{" + "{" * 40 + "}" * 40 + "}", None),
    ],
)
def test_last_boxed(text: str, expected: str | None) -> None:
    assert last_boxed(text) == expected


# ---------------------------------------------------------------------------------------------
# math.score


@pytest.mark.parametrize(
    ("completion", "solution"),
    [
        ("\\boxed{0.5}", "so the answer is $\\boxed{\\frac12}$."),
        ("\\boxed{\\frac{1}{2}}", "\\boxed{0.5}"),
        ("\\boxed{\\dfrac{1}{2}}", "\\boxed{\\frac12}"),
        ("\\boxed{x=3}", "\\boxed{3}"),
        ("\\boxed{\\frac{\\sqrt2}{2}}", "\\boxed{\\sqrt{2}/2}"),
        ("\\boxed{\\text{(C)}}", "\\boxed{C}"),
        ("\\boxed{(x+1)^2}", "\\boxed{x^2+2x+1}"),
        ("first \\boxed{3}, finally \\boxed{4}", "\\boxed{4}"),
        ("\\boxed{42}", "42"),  # a bare reference answer
    ],
)
def test_score_equal(completion: str, solution: str, monkeypatch) -> None:
    # equality, not the time limit (tested below): a loaded machine can take over 3 s to expand (x+1)^2
    monkeypatch.setattr(mathtask, "VERIFY_TIMEOUT_S", 60.0)
    assert mathtask.score(completion, solution) == 1.0


@pytest.mark.parametrize(
    ("completion", "solution"),
    [
        ("\\boxed{0.6}", "\\boxed{\\frac12}"),
        ("\\boxed{4}, no wait \\boxed{3}", "\\boxed{4}"),
        ("the answer is 4", "\\boxed{4}"),
        ("\\boxed{}", "\\boxed{4}"),
        ("\\boxed{4", "\\boxed{4}"),
        ("\\boxed{4}", "no answer in this reference\n at all"),
        (None, "\\boxed{4}"),
        ("\\boxed{4}", None),
        (17, 17),
    ],
)
def test_score_not_equal(completion: Any, solution: Any) -> None:
    assert mathtask.score(completion, solution) == 0.0


HOSTILE = [
    "\\boxed{" + "{" * 100_000 + "1" + "}" * 100_000 + "}",  # deep nesting
    "\\boxed{" * 300_000,  # a million unclosed boxes
    "x" * 3_000_000 + "\\boxed{2}",  # megabytes, then an answer
    "}" * 1_000_000 + "{" * 1_000_000,
    "\\boxed{" + "1+" * 50_000 + "1}",  # a huge expression
    "\\boxed{9^{9^{9^{9}}}}",  # sympy would compute this forever
    "\\boxed{\\frac{" * 30 + "}}" * 30 + "}",
    "\\boxed{\x00\udc80\\\\\\}",
]


def test_score_hostile_inputs_are_bounded() -> None:
    # Every one comes back with a score (no exception, no hang). How long each takes is not asserted: the time bound
    # is the kill of a child that does not answer (test_score_kills_a_comparison_that_never_answers).
    for text in HOSTILE:
        assert mathtask.score(text, "\\boxed{2}") in (0.0, 1.0), text[:40]
    assert mathtask.score(HOSTILE[2], "\\boxed{2}") == 1.0
    assert mathtask.score("\\boxed{2}", HOSTILE[0]) == 0.0  # hostile references too


def test_score_from_worker_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # equality from threads, not the time limit: a loaded machine can take over 3 s for one comparison
    monkeypatch.setattr(mathtask, "VERIFY_TIMEOUT_S", 60.0)
    cases = [
        ("\\boxed{0.25}", "\\boxed{\\frac14}", 1.0),
        ("\\boxed{9^{9^{9^{9}}}}", "\\boxed{3}", 0.0),
        ("\\boxed{\\sqrt{4}}", "\\boxed{2}", 1.0),
        ("\\boxed{y}", "\\boxed{2}", 0.0),
        (HOSTILE[0], "\\boxed{2}", 0.0),
        ("\\boxed{2^{10}}", "\\boxed{1024}", 1.0),
    ] * 2
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda case: mathtask.score(case[0], case[1]), cases))
    assert results == [expected for _, _, expected in cases]


# Stands in for the math-verify child: says "ready", reads the one request the parent sends, then waits for a second
# line the parent never writes. It never answers, however fast or loaded the machine is.
NEVER_ANSWERS = """
import os, sys
with open({pid_file!r}, "w") as f:
    f.write(str(os.getpid()))
print("ready", flush=True)
sys.stdin.readline()
sys.stdin.readline()
"""


def test_score_kills_a_comparison_that_never_answers(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    # The child is killed, the answer counts as wrong and is not cached; the next comparison starts a fresh child.
    script = tmp_path / "never_answers.py"
    script.write_text(NEVER_ANSWERS.format(pid_file=str(tmp_path / "pid")))
    killed: list[int] = []
    kill = mathtask._Worker.kill

    def recording_kill(worker) -> None:
        killed.append(worker.proc.pid)
        kill(worker)

    monkeypatch.setattr(mathtask._Worker, "kill", recording_kill)
    monkeypatch.setattr(mathtask, "_POOL", None)  # a pool of this test's own (the module's is put back after)
    real_script = mathtask._WORKER_SCRIPT
    monkeypatch.setattr(mathtask, "_WORKER_SCRIPT", script)
    monkeypatch.setattr(mathtask, "VERIFY_TIMEOUT_S", 1.0)  # any limit: the child never answers
    assert mathtask.score("\\boxed{\\frac{3}{6}}", "\\boxed{0.5}") == 0.0
    pool = mathtask._pool()
    try:
        assert killed == [int((tmp_path / "pid").read_text())]  # the child that hung, and only it
        assert pool._count == 0 and not pool._idle
        monkeypatch.setattr(mathtask, "_WORKER_SCRIPT", real_script)
        monkeypatch.setattr(mathtask, "VERIFY_TIMEOUT_S", 60.0)  # equality now, not the limit
        assert mathtask.score("\\boxed{\\frac{3}{6}}", "\\boxed{0.5}") == 1.0  # not cached as wrong
        assert mathtask._pool() is pool and pool._count == 1 and len(killed) == 1  # a fresh child answered
    finally:
        pool.close()


# ---------------------------------------------------------------------------------------------
# math: loading


def _write_jsonl(path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


MATH_ROWS = [
    {"problem": "What is $1+1$?", "solution": "It is $\\boxed{2}$.", "level": "Level 1", "type": "Algebra"},
    {"problem": "Half of one?", "solution": "$\\boxed{\\frac{1}{2}}$", "level": "Level 2", "type": "Algebra"},
]


def test_math_local_jsonl_and_parquet(tmp_path) -> None:
    _write_jsonl(tmp_path / "train.jsonl", MATH_ROWS)
    datasets.Dataset.from_list(MATH_ROWS[::-1]).to_parquet(str(tmp_path / "test.parquet"))

    task = get_task("math", source=str(tmp_path / "train.jsonl"), test_source=str(tmp_path / "test.parquet"))
    train, test = task.train_dataset(), task.test_dataset()
    assert train["prompt"][0] == (
        "Solve this math problem step by step. Put your final answer in \\boxed{}.\n\nWhat is $1+1$?\n\n"
    )
    assert train["solution"] == [r["solution"] for r in MATH_ROWS]
    assert test["solution"][0] == MATH_ROWS[1]["solution"]
    assert len(task.train_dataset(1)) == 1
    assert task.reward(["\\boxed{2}", "\\boxed{0.5}"], train["solution"], level=train["level"]) == [1.0, 1.0]


def test_math_local_folder_splits(tmp_path) -> None:
    _write_jsonl(tmp_path / "train.jsonl", MATH_ROWS)
    _write_jsonl(tmp_path / "test.jsonl", MATH_ROWS[:1])
    task = get_task("math", source=str(tmp_path), template="Problem: {problem}\nAnswer in \\boxed{}:")
    assert len(task.train_dataset()) == 2 and len(task.test_dataset()) == 1
    assert task.test_dataset()["prompt"] == ["Problem: What is $1+1$?\nAnswer in \\boxed{}:"]


def test_math_missing_column_names_the_source(tmp_path) -> None:
    _write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(ValueError, match="source"):
        get_task("math", source=str(tmp_path / "bad.jsonl")).train_dataset()


def test_math_hub_name_is_passed_through(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_load_dataset(*args: Any, **kwargs: Any) -> datasets.Dataset:
        calls.append((args, kwargs))
        return datasets.Dataset.from_list(MATH_ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    task = get_task("math")
    assert len(task.test_dataset()) == 2
    assert len(task.train_dataset()) == 2
    assert calls == [
        (("DigitalLearningGmbH/MATH-lighteval",), {"split": "test"}),
        (("DigitalLearningGmbH/MATH-lighteval",), {"split": "train"}),
    ]
    get_task("gsm8k").test_dataset  # noqa: B018 - building loads nothing
    assert len(calls) == 2


class CharTokenizer:
    """A stand-in tokenizer: one token per character."""

    def __call__(self, texts: list[str], add_special_tokens: bool = False) -> dict[str, list[list[int]]]:
        return {"input_ids": [[ord(c) for c in text] for text in texts]}

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return "".join(chr(i) for i in ids)


def test_prompt_truncation(tmp_path) -> None:
    rows = [{"problem": "x" * 100, "solution": "\\boxed{1}"}, {"problem": "short", "solution": "\\boxed{2}"}]
    _write_jsonl(tmp_path / "train.jsonl", rows)
    task = get_task("math", source=str(tmp_path / "train.jsonl"), template="{problem}=", max_prompt_tokens=10)
    full = task.train_dataset()
    assert full["prompt"][0] == "x" * 100 + "="  # no tokenizer given: untouched
    cut = task.truncate_prompts(full, CharTokenizer())
    assert cut["prompt"] == ["x" * 9 + "=", "short="]  # left truncation keeps the end
    assert task.truncate_prompts(full, CharTokenizer(), 3)["prompt"] == ["xx=", "rt="]
    with_tokenizer = get_task(
        "math",
        source=str(tmp_path / "train.jsonl"),
        template="{problem}=",
        max_prompt_tokens=10,
        tokenizer=CharTokenizer(),
    )
    assert with_tokenizer.train_dataset()["prompt"] == cut["prompt"]
    assert get_task("arithmetic").truncate_prompts(full, CharTokenizer())["prompt"] == full["prompt"]


# ---------------------------------------------------------------------------------------------
# gsm8k

GSM_ROWS = [
    {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=<<3+4=7>>7\n#### 7"},
    {"question": "A car costs $1,200 more than 800.", "answer": "800+1200=2000\n#### 2,000"},
]


@pytest.mark.parametrize(
    ("completion", "solution", "expected"),
    [
        ("so \\boxed{7}", "#### 7", 1.0),
        ("\\boxed{7.0}", "#### 7", 1.0),
        ("\\boxed{\\$2,000}", "#### 2,000", 1.0),
        ("\\boxed{2000 \\text{ dollars}}", "#### 2000", 1.0),
        ("$2,000.00 in total", "#### 2000", 1.0),  # no box: the last number
        ("7 apples, wait, 8", "#### 7", 0.0),
        ("\\boxed{8} although 7", "#### 7", 0.0),  # the box wins over later numbers
        ("\\boxed{\\frac{1}{2}}", "#### 0.5", 1.0),
        ("\\boxed{-3}", "#### -3", 1.0),
        ("nothing", "#### 7", 0.0),
        ("\\boxed{7}", "no reference number", 0.0),
        ("9" * 1_000_000, "#### 9", 0.0),
        (None, "#### 7", 0.0),
    ],
)
def test_gsm8k_score(completion: Any, solution: str, expected: float) -> None:
    assert gsm8k.score(completion, solution) == expected


def test_gsm8k_require_boxed_and_local_files(tmp_path) -> None:
    _write_jsonl(tmp_path / "train.jsonl", GSM_ROWS)
    _write_jsonl(tmp_path / "test.jsonl", GSM_ROWS[:1])
    task = get_task("gsm8k", source=str(tmp_path))
    train = task.train_dataset()
    assert train["prompt"][0].endswith("Tom has 3 apples and buys 4. How many?\n\n")
    assert "\\boxed{}" in train["prompt"][0]
    assert task.reward(["It is 7", "\\boxed{2000}"], train["solution"]) == [1.0, 1.0]
    strict = get_task("gsm8k", source=str(tmp_path), require_boxed=True)
    assert strict.reward(["It is 7", "\\boxed{2000}"], train["solution"]) == [0.0, 1.0]
    assert len(task.test_dataset()) == 1


def test_gsm8k_hub_name_and_config(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_load_dataset(*args: Any, **kwargs: Any) -> datasets.Dataset:
        calls.append((args, kwargs))
        return datasets.Dataset.from_list(GSM_ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    get_task("gsm8k").train_dataset()
    get_task("gsm8k", source="someone/gsm8k-copy", test_split="validation").test_dataset()
    assert calls == [
        (("openai/gsm8k", "main"), {"split": "train"}),
        (("someone/gsm8k-copy",), {"split": "validation"}),
    ]


# --- chat prompts in the model's own chat template (issue 38: `chat: true` hard-coded ChatML) -------------------

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _question_of(task, i: int = 0) -> str:
    return task.test_items()[i]["question"]


def test_chat_prompts_use_the_embedded_models_template() -> None:
    """The embedded model's template is `{system}\\n` + `Q: {user}\\n` + `A: ` (its chat_template.jinja); with its
    tokenizer given, `addition` and `reasoning_gym` (chat: true) render their prompts in it, not in ChatML."""
    from transformers import AutoTokenizer

    from arca_rl.tasks import TINY_MODEL_PATH
    from arca_rl.tasks.addition import DEFAULT_SYSTEM, problems, question

    tok = AutoTokenizer.from_pretrained(TINY_MODEL_PATH)
    addition = get_task("addition", n_test=3)
    assert addition.test_dataset(1)["prompt"][0].startswith("<|im_start|>system\n")  # no tokenizer yet: ChatML
    addition.use_tokenizer(tok)
    first = problems("test", 1, 0)[0]
    assert addition.test_dataset(1)["prompt"][0] == f"{DEFAULT_SYSTEM}\nQ: {question(first)}\nA: "

    pytest.importorskip("reasoning_gym")
    from reasoning_gym.utils import SYSTEM_PROMPTS

    rg = get_task("reasoning_gym", dataset="basic_arithmetic", n_train=4, n_test=3)
    rg.use_tokenizer(tok)
    prompt = rg.test_dataset(1)["prompt"][0]
    assert prompt == f"{SYSTEM_PROMPTS['default']}\nQ: {_question_of(rg)}\nA: "
    assert "<|im_start|>" not in prompt and len(tok(prompt)["input_ids"]) < len(
        tok(get_task("reasoning_gym", dataset="basic_arithmetic", n_train=4, n_test=3).test_dataset(1)["prompt"][0])[
            "input_ids"
        ]
    )  # the ChatML markers are gone
    plain = get_task("reasoning_gym", dataset="basic_arithmetic", n_train=4, n_test=3, chat=False)
    plain.use_tokenizer(tok)  # chat: false stays plain text
    assert plain.test_dataset(1)["prompt"][0] == f"{SYSTEM_PROMPTS['default']}\n{_question_of(plain)}\n"


def test_chat_prompts_with_a_chatml_template_a_template_without_system_and_none() -> None:
    from arca_rl.tasks.addition import render_chat
    from tiny import char_tokenizer

    chatml = "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi?<|im_end|>\n<|im_start|>assistant\n"
    assert render_chat("hi?", "be brief") == chatml  # no tokenizer
    tok = char_tokenizer()
    assert tok.chat_template is None
    assert render_chat("hi?", "be brief", tok) == chatml  # a tokenizer without a template: ChatML as before
    tok.chat_template = CHATML
    assert render_chat("hi?", "be brief", tok) == chatml  # a ChatML template renders the same text
    assert render_chat("hi?", None, tok) == "<|im_start|>user\nhi?<|im_end|>\n<|im_start|>assistant\n"
    # a template that refuses a system role: the system text opens the user turn
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "{{ '[' + m['role'] + '] ' + m['content'] + '\\n' }}{% endfor %}{% if add_generation_prompt %}> {% endif %}"
    )
    assert render_chat("hi?", "be brief", tok) == "[user] be brief\n\nhi?\n> "


def test_a_bos_the_tokenizer_adds_itself_is_not_rendered_twice() -> None:
    from tokenizers import processors

    from arca_rl.tasks.addition import render_chat
    from tiny import char_tokenizer

    tok = char_tokenizer()
    tok.bos_token = "<unk>"
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<unk> $A", special_tokens=[("<unk>", tok.convert_tokens_to_ids("<unk>"))]
    )
    tok.chat_template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}="
    assert tok("x")["input_ids"][0] == tok.bos_token_id
    text = render_chat("1+2", None, tok)
    assert text == "1+2="
    assert tok(text)["input_ids"].count(tok.bos_token_id) == 1  # once, as the tokenizer encodes the prompt


@pytest.mark.slow
def test_arca_train_renders_chat_prompts_in_the_models_template(tmp_path, tiny_run_config, monkeypatch) -> None:
    """The prompts a run trains and evaluates on are in its model's chat template (the embedded model here)."""
    from arca_rl._config import parse_config
    from arca_rl._run import training as run_module
    from arca_rl.tasks import TINY_MODEL_PATH
    from arca_rl.tasks.addition import DEFAULT_SYSTEM

    seen: dict[str, list[str]] = {}
    real_build_task = run_module.build_task

    class Recording:
        def __init__(self, task) -> None:
            self._task = task

        def __getattr__(self, name):
            return getattr(self._task, name)

        def train_dataset(self, n=None):
            data = self._task.train_dataset(n)
            seen["train"] = list(data["prompt"])
            return data

        def test_dataset(self, n=None):
            data = self._task.test_dataset(n)
            seen["test"] = list(data["prompt"])
            return data

    monkeypatch.setattr(run_module, "build_task", lambda cfg: Recording(real_build_task(cfg)))
    raw = tiny_run_config
    raw["model"] = {"name_or_path": str(TINY_MODEL_PATH)}
    raw["task"] = {"name": "addition", "n_train": 8, "n_test": 4}
    raw["training"].update(max_steps=1, save_strategy="no", credit="uniform")
    raw["eval"].update(n=2, k=1, samples_per_problem=1)
    run_module.train(parse_config(raw), run_dir=tmp_path / "run", progress=False)
    for split in ("train", "test"):
        assert seen[split] and all(p.startswith(f"{DEFAULT_SYSTEM}\nQ: What is ") and p.endswith("\nA: ")
                                   for p in seen[split]), seen[split][:1]
