"""Evaluation: the unbiased pass@k estimator by hand, and `evaluate` on a tiny random model (left padding, seeding)."""

from __future__ import annotations

import math

import pytest
from datasets import Dataset

from arca_rl._run.evaluation import EvalResult, evaluate, load_model_for_eval, pass_at_k


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k) with exact binomials."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_pass_at_k_hand_computed_values():
    # 4 samples, 1 correct, k = 2: 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    # 5 samples, 2 correct, k = 3: 1 - C(3,3)/C(5,3) = 1 - 1/10
    assert pass_at_k(5, 2, 3) == pytest.approx(0.9)
    # 4 samples, k = 4 (the paper's setting): any correct sample passes
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 1, 4) == 1.0
    # k = 1 is the plain success rate
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 5, 2), (4, -1, 2), (4, 1, 0), (4, 1, 5)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_eval_json_schema():
    result = EvalResult(greedy_accuracy=0.5, pass_at_k=0.75, k=4, samples_per_problem=4, n=2)
    assert result.to_json() == {
        "greedy_accuracy": 0.5, "greedy_score": None, "pass_at_k": 0.75, "k": 4, "samples_per_problem": 4, "n": 2
    }
    greedy_only = EvalResult(greedy_accuracy=0.5, pass_at_k=None, k=1, samples_per_problem=1, n=2, greedy_score=0.75,
                             n_skipped=3)  # fmt: skip
    assert greedy_only.to_json() == {"greedy_accuracy": 0.5, "greedy_score": 0.75, "n": 2, "n_skipped": 3}


class ParityTask:
    """Problems of different prompt lengths; a completion 'solves' one when its text length has the solution's
    parity."""

    def test_dataset(self, n=None):
        prompts = ["1+1=", "12+30+4=", "7=", "99+1+55+12=", "3+3=", "45+6="]
        data = Dataset.from_dict({"prompt": prompts, "solution": [str(i % 2) for i in range(len(prompts))]})
        return data if n is None else data.select(range(min(n, len(data))))

    def score(self, completion: str, solution: str) -> float:
        return float(len(completion) % 2 == int(solution))

    def truncate_prompts(self, dataset, tokenizer, max_tokens):  # pragma: no cover - not used here
        return dataset


@pytest.mark.slow
def test_evaluate_batched_left_padding_and_seeded_sampling(tiny_model_dir):
    model, tokenizer = load_model_for_eval(str(tiny_model_dir))
    task = ParityTask()
    kw = dict(n=6, k=2, samples_per_problem=3, max_new_tokens=6, progress=False, seed=5)
    batched = evaluate(model, tokenizer, task, batch_size=6, **kw)
    one_by_one = evaluate(model, tokenizer, task, batch_size=1, **kw)

    # Left padding: greedy completions do not depend on what else is in the batch.
    assert batched.greedy_completions == one_by_one.greedy_completions
    assert batched.n == 6 and len(batched.correct_samples) == 6
    # The reported figures are exactly the estimator over the per-problem counts.
    solutions = list(task.test_dataset()["solution"])
    expected_greedy = sum(task.score(c, s) for c, s in zip(batched.greedy_completions, solutions)) / 6
    assert batched.greedy_accuracy == pytest.approx(expected_greedy)
    assert batched.pass_at_k == pytest.approx(sum(pass_at_k(3, c, 2) for c in batched.correct_samples) / 6)
    # Sampling is seeded: the same seed gives the same counts, and the global RNG is left alone.
    import torch

    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    again = evaluate(model, tokenizer, task, batch_size=6, **kw)
    assert torch.rand(1) == before
    assert again.correct_samples == batched.correct_samples
    assert tokenizer.padding_side == "left" or tokenizer.padding_side == "right"
    with pytest.raises(ValueError, match="k <= samples_per_problem"):
        evaluate(model, tokenizer, task, k=4, samples_per_problem=3, progress=False)


class GradedTask(ParityTask):
    """ParityTask with partial credit: a wrong completion of even length scores 0.5 (a near miss), never correct."""

    def grade(self, completion: str, solution: str):
        from arca_rl.tasks._common import Grade

        ok = len(completion) % 2 == int(solution)
        return Grade(correct=ok, score=1.0 if ok else (0.5 if len(completion) % 2 == 0 else 0.0))

    def score(self, completion: str, solution: str) -> float:
        return self.grade(completion, solution).score


@pytest.mark.slow
def test_accuracy_counts_correct_answers_and_the_graded_score_stands_beside_it(tiny_model_dir):
    """Issue 39: greedy accuracy is the share of correct answers (never partial credit); the graded score is
    `greedy_score`; `skip` leaves problems out by their held-out index, which stays their id; greedy only
    (`sampled=False`) has no pass@k; one record per problem."""
    model, tokenizer = load_model_for_eval(str(tiny_model_dir))
    task = GradedTask()
    result = evaluate(model, tokenizer, task, n=6, k=1, samples_per_problem=1, max_new_tokens=6, progress=False,
                      sampled=False, skip=[1, 3])  # fmt: skip
    kept = [0, 2, 4, 5]
    solutions = [task.test_dataset()["solution"][i] for i in kept]
    assert result.n == 4 and result.n_skipped == 2 and result.problem_ids == ["0", "2", "4", "5"]
    # by hand, from the greedy completions
    correct = [len(c) % 2 == int(s) for c, s in zip(result.greedy_completions, solutions)]
    scores = [1.0 if ok else (0.5 if len(c) % 2 == 0 else 0.0)
              for ok, c in zip(correct, result.greedy_completions)]  # fmt: skip
    assert result.greedy_accuracy == pytest.approx(sum(correct) / 4)
    assert result.greedy_score == pytest.approx(sum(scores) / 4)
    assert result.pass_at_k is None and result.correct_samples == []
    assert "pass_at_k" not in result.to_json() and result.to_json()["n_skipped"] == 2
    assert result.problem_records() == [
        {"id": i, "correct": ok, "score": sc} for i, ok, sc in zip(["0", "2", "4", "5"], correct, scores)
    ]
    # the same problems, unskipped: the kept ones are judged alike (greedy decoding does not depend on the others)
    full = evaluate(model, tokenizer, task, n=6, k=1, samples_per_problem=1, max_new_tokens=6, progress=False,
                    sampled=False)  # fmt: skip
    assert [full.greedy_completions[i] for i in kept] == result.greedy_completions


def _adapter_of(folder, model_dir, **model_kwargs):
    """A LoRA adapter (r=4 on q, v, up) of the tiny model built with `model_kwargs`, saved to `folder`, recording
    `model_dir` as its base model (None: no base recorded)."""
    from peft import get_peft_model

    from tiny import char_tokenizer, tiny_lora, tiny_model

    model = tiny_model(char_tokenizer(), **model_kwargs)
    model.name_or_path = str(model_dir) if model_dir is not None else ""
    get_peft_model(model, tiny_lora()).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("case", ["other model", "run's model", "own config"])
def test_an_adapter_that_does_not_fit_the_model_names_the_tensors_and_the_fix(tmp_path, tiny_model_dir, capsys, case):
    """Issue 28: an adapter of another model's shapes (or whose adapter_config.json no longer describes its weights)
    is one line naming the adapter, the model, the first tensor that differs with both shapes, how many differ, and
    the fix: the model it was trained on (adapter_config.json, else the run's config.yaml)."""
    import json

    import yaml

    from arca_rl.cli import main
    from runfiles import one_error_line
    from tiny import save_tiny

    big = save_tiny(tmp_path / "big", hidden=64)
    if case == "other model":
        adapter = _adapter_of(tmp_path / "adapter", big, hidden=64)
        want = [f"pass --model {big}", "12 tensors", "[4, 64] in the adapter, [4, 32] in the model"]
    elif case == "run's model":  # no base recorded in the adapter: the run folder's config.yaml says which
        run = tmp_path / "run"
        adapter = _adapter_of(run / "adapter", None, hidden=64)
        (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name_or_path": str(big)}}))
        want = [f"pass --model {big}", "12 tensors", "[4, 64] in the adapter, [4, 32] in the model"]
    else:  # trained on this very model, then adapter_config.json's r was edited: its weights are r=4
        adapter = _adapter_of(tmp_path / "adapter", tiny_model_dir)
        config = json.loads((adapter / "adapter_config.json").read_text())
        (adapter / "adapter_config.json").write_text(json.dumps({**config, "r": 8, "lora_alpha": 16}))
        want = ["adapter_config.json", "r=8", "[4, 32] in the adapter, [8, 32] in the model"]
    argv = ["eval", "--model", str(tiny_model_dir), "--adapter", str(adapter), "--task", "arithmetic", "--n", "2",
            "--k", "1", "--samples-per-problem", "1", "--max-new-tokens", "2", "--quiet"]
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"--adapter {adapter}" in line and str(tiny_model_dir) in line, line
    assert "model.layers.0.self_attn.q_proj.lora_A.weight" in line, line  # the first tensor, without PEFT's prefixes
    for text in want:
        assert text in line, (text, line)


@pytest.mark.parametrize(
    "layers, want",
    [(3, "6 of its LoRA tensors have no place in the model"), (1, "the model has 6 LoRA tensors the adapter lacks")],
)
def test_an_adapter_of_another_layer_count_is_refused_not_loaded_in_part(
    tmp_path, tiny_model_dir, capsys, layers, want
):
    """Issue 28: an adapter of a 3-layer model loaded onto the 2-layer one dropped layer 2's tensors without a word
    (1 layer: the model's second layer kept its fresh LoRA weights); both are one line naming the first tensor."""
    from arca_rl.cli import main
    from runfiles import one_error_line
    from tiny import save_tiny

    other = save_tiny(tmp_path / "other", layers=layers)
    adapter = _adapter_of(tmp_path / "adapter", other, layers=layers)
    argv = ["eval", "--model", str(tiny_model_dir), "--adapter", str(adapter), "--task", "arithmetic", "--n", "2",
            "--k", "1", "--samples-per-problem", "1", "--max-new-tokens", "2", "--quiet"]
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"--adapter {adapter}" in line and want in line and f"pass --model {other}" in line, line
    layer = 2 if layers == 3 else 1  # 3 projections x (A, B) of the layer only one side has; names sorted
    assert f"the first model.layers.{layer}.mlp.up_proj.lora_A.weight" in line, line
