"""Held-out evaluation: greedy accuracy and unbiased pass@k, with batched HF `generate`.

    result = evaluate(model, tokenizer, task, n=200, k=4, samples_per_problem=4)
    result.to_json()  # {"greedy_accuracy", "greedy_score", "pass_at_k", "k", "samples_per_problem", "n", ...}
    result.problem_records()  # one {"id", "correct", "score"} per problem: eval_problems.jsonl

Prompts are tokenized exactly as TRL tokenizes plain-text prompts during training (the
tokenizer's default special tokens), left-padded, and decoded without special tokens before the
task's `grade`. Accuracy counts correct answers (`task.correct`: never partial credit); the task's graded
score (reasoning-gym's `score_answer`, partial credit for near misses) is reported beside it as
`greedy_score`, never in its place. pass@k uses the unbiased estimator of Chen et al. (2021):
`1 - C(s - c, k) / C(s, k)` per problem with s samples of which c are correct, averaged over
problems; `sampled=False` skips the sampled pass (greedy only: no pass@k).

`skip` leaves held-out problems out by their index in the held-out split (`Task.held_out_seen`: the questions
the run trained on, when both splits are drawn from one generator); the records keep each problem's index in
the held-out split as its id, so two runs of one task seed are paired problem by problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _causal_lm
from .._causal_lm import eos_ids, pad_id, seeded
from .._config import check_model_folder
from ..errors import ConfigError
from ..models import resolve_model
from ..rundir import CONFIG_FILE, read_adapter_config, resolve_adapter

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["EvalResult", "evaluate", "generate_completions", "load_model_for_eval", "pass_at_k", "write_eval_json"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem: n samples, c of them correct: `1 - C(n-c, k) / C(n, k)`.

    Computed as a product (no huge binomials). Requires 0 <= c <= n and 1 <= k <= n.
    """
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


@dataclass
class EvalResult:
    """Evaluation figures plus the per-problem detail behind them."""

    greedy_accuracy: float
    """Share of the n problems whose greedy completion is correct (`task.correct`)."""
    pass_at_k: float | None
    """Mean unbiased pass@k over the n problems (a sample counts when correct); None without the sampled pass."""
    k: int
    samples_per_problem: int
    n: int
    """Number of problems evaluated."""
    greedy_score: float | None = None
    """Mean graded score of the greedy completion (`task.score`: partial credit where the task gives it)."""
    n_skipped: int = 0
    """Held-out problems left out (`skip`: the questions the run trained on)."""
    greedy_scores: list[float] = field(default_factory=list, repr=False)
    """Per problem: the greedy completion's graded score."""
    greedy_correct: list[bool] = field(default_factory=list, repr=False)
    """Per problem: is the greedy completion correct."""
    problem_ids: list[str] = field(default_factory=list, repr=False)
    """Per problem: its id (the dataset's `id` column, else its index in the held-out split)."""
    correct_samples: list[int] = field(default_factory=list, repr=False)
    """Per problem: how many of the sampled completions were correct."""
    greedy_completions: list[str] = field(default_factory=list, repr=False)
    """Per problem: the greedy completion text."""

    def to_json(self) -> dict[str, Any]:
        """The eval.json object (`pass_at_k` and its k only when the sampled pass ran)."""
        out: dict[str, Any] = {"greedy_accuracy": self.greedy_accuracy, "greedy_score": self.greedy_score}
        if self.pass_at_k is not None:
            out.update(pass_at_k=self.pass_at_k, k=self.k, samples_per_problem=self.samples_per_problem)
        out["n"] = self.n
        if self.n_skipped:
            out["n_skipped"] = self.n_skipped
        return out

    def problem_records(self) -> list[dict[str, Any]]:
        """One compact record per problem (`eval_problems.jsonl`): its id, correct or not, the graded score."""
        return [
            {"id": pid, "correct": bool(ok), "score": float(score)}
            for pid, ok, score in zip(self.problem_ids, self.greedy_correct, self.greedy_scores)
        ]


def write_eval_json(result: EvalResult, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return path


def generate_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    num_return_sequences: int = 1,
    do_sample: bool = False,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[str]]:
    """Generate completions for plain-text prompts; returns, per prompt, `num_return_sequences` texts.

    Left padding, batches of `batch_size` prompts, special tokens stripped from the decoded text.
    Sampling uses the global torch RNG (seed it for reproducible samples).
    """
    import torch
    from transformers import GenerationConfig


    _causal_lm.contiguous_head_input(model)  # a frozen head copies its weight per row otherwise (bf16: seconds)
    eos = eos_ids(model, tokenizer)
    gen_kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "num_return_sequences": num_return_sequences,
        "pad_token_id": pad_id(tokenizer, eos),
        "eos_token_id": eos or None,
        "bos_token_id": tokenizer.bos_token_id,
    }
    if do_sample:
        gen_kwargs.update(temperature=temperature, top_p=top_p, top_k=top_k)
    gen_config = GenerationConfig(**gen_kwargs)
    device = next(model.parameters()).device
    was_training = model.training
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    model.eval()
    out: list[list[str]] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(prompts), batch_size):
                chunk = list(prompts[start : start + batch_size])
                enc = tokenizer(text=chunk, return_tensors="pt", padding=True)
                enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
                seqs: torch.Tensor = model.generate(**enc, generation_config=gen_config)
                new = seqs[:, enc["input_ids"].shape[1] :]
                texts = tokenizer.batch_decode(new, skip_special_tokens=True)
                for i in range(len(chunk)):
                    out.append(texts[i * num_return_sequences : (i + 1) * num_return_sequences])
                if on_batch is not None:
                    on_batch(len(chunk))
    finally:
        tokenizer.padding_side = old_side
        if was_training:
            model.train()
    return out


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Any,
    *,
    n: int | None = 200,
    k: int = 4,
    samples_per_problem: int = 4,
    batch_size: int = 64,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    max_prompt_tokens: int | None = None,
    dataset: Any = None,
    progress: bool = True,
    sampled: bool = True,
    skip: Sequence[int] = (),
) -> EvalResult:
    """Greedy accuracy and unbiased pass@k of `model` on `task`'s held-out split.

    `task` is an `arca_rl.tasks` Task (its `test_dataset(n)` and `grade(completion, solution)`, or only
    `score` for a task without `grade`: correct then means a score of 1);
    pass `dataset` (with "prompt" and "solution" columns) to evaluate other problems. Sampling (temperature,
    top_p, top_k as in TRL's GRPO rollouts) is seeded with `seed`; the greedy pass needs no seed.
    `sampled=False`: greedy only (no pass@k). `skip`: indices of held-out problems to leave out. A task that
    has not been given a tokenizer (`Task.use_tokenizer`) is given `tokenizer`, so chat prompts are in the model's
    chat template.
    """
    from tqdm.auto import tqdm


    if not 1 <= k <= samples_per_problem:
        raise ValueError(f"need 1 <= k <= samples_per_problem, got k={k}, samples_per_problem={samples_per_problem}")
    if dataset is None:
        if getattr(task, "chat_tokenizer", False) is None:  # an arca task not yet given one
            task.use_tokenizer(tokenizer)
        try:
            dataset = task.test_dataset(n=n)
        except ValueError as exc:  # the task's own data checks (missing columns, empty prompts)
            raise ConfigError(f"task: {exc}") from exc
    elif n is not None and len(dataset) > n:
        dataset = dataset.select(range(n))
    ids = [str(x) for x in dataset["id"]] if "id" in dataset.column_names else [str(i) for i in range(len(dataset))]
    left_out = sorted({int(i) for i in skip if 0 <= int(i) < len(dataset)})
    if left_out:
        keep = sorted(set(range(len(dataset))) - set(left_out))
        dataset = dataset.select(keep)
        ids = [ids[i] for i in keep]
    if max_prompt_tokens is not None:
        dataset = task.truncate_prompts(dataset, tokenizer, max_prompt_tokens)
    prompts = list(dataset["prompt"])
    solutions = list(dataset["solution"])
    if not prompts:
        raise ValueError("evaluation set is empty")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    desc = "eval (greedy + sampled)" if sampled else "eval (greedy)"
    with tqdm(total=(1 + sampled) * len(prompts), desc=desc, unit="prompt", disable=not progress) as bar:
        greedy = generate_completions(
            model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, on_batch=bar.update
        )
        greedy_texts = [g[0] for g in greedy]
        grades = [_grade(task, c, s) for c, s in zip(greedy_texts, solutions)]
        n_problems = len(prompts)
        result = EvalResult(
            greedy_accuracy=sum(ok for ok, _ in grades) / n_problems,
            pass_at_k=None,
            k=k,
            samples_per_problem=samples_per_problem,
            n=n_problems,
            greedy_score=sum(score for _, score in grades) / n_problems,
            n_skipped=len(left_out),
            greedy_scores=[score for _, score in grades],
            greedy_correct=[ok for ok, _ in grades],
            problem_ids=ids,
            greedy_completions=greedy_texts,
        )
        if not sampled:
            return result
        with seeded(model, seed):
            samples = generate_completions(
                model,
                tokenizer,
                prompts,
                num_return_sequences=samples_per_problem,
                do_sample=True,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                top_k=top_k,
                batch_size=batch_size,
                on_batch=bar.update,
            )
    correct = [sum(_grade(task, c, s)[0] for c in group) for group, s in zip(samples, solutions)]
    result.correct_samples = correct
    result.pass_at_k = sum(pass_at_k(samples_per_problem, c, k) for c in correct) / n_problems
    return result


def _grade(task: Any, completion: str, solution: Any) -> tuple[bool, float]:
    """(correct, graded score) of one completion: the task's `grade` when it has one, else its `score` (correct
    when the score is 1: the tasks without partial credit)."""
    if hasattr(task, "grade"):
        judged = task.grade(completion, solution)
        return bool(judged.correct), float(judged.score)
    score = float(task.score(completion, solution))
    return score >= 1.0, score


def load_model_for_eval(
    model_path: str,
    adapter: str | Path | None = None,
    *,
    dtype: str = "float32",
    device: str | torch.device | None = None,
    **from_pretrained: Any,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM (and a PEFT adapter on top) plus its tokenizer, ready for `evaluate`.

    The tokenizer comes from the adapter folder when it holds one (`arca train` saves it there),
    else from the model. `adapter` may also be a run folder written by `arca train`.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer


    model_path = resolve_model(model_path)  # a short name (smollm2-135m-instruct) -> its folder
    adapter_dir = resolve_adapter(adapter)[0] if adapter is not None else None
    check_model_folder(model_path)
    torch_dtype: Any = dtype if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype, **from_pretrained)
    tok_source = (
        adapter_dir if adapter_dir is not None and (adapter_dir / "tokenizer_config.json").exists() else model_path
    )
    tokenizer = AutoTokenizer.from_pretrained(str(tok_source))
    if adapter_dir is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter_dir))
        except (RuntimeError, ValueError) as exc:  # torch's "size mismatch", PEFT's "target modules not found"
            problem = adapter_misfit(str(exc), adapter_dir, model_path)
            if problem is None:
                raise
            raise ConfigError(problem) from None
        check_adapter_fit(model, adapter_dir, model_path)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    model.eval()
    return model, tokenizer


_SIZE_MISMATCH = re.compile(
    r"size mismatch for (\S+): copying a param with shape torch\.Size\(\[([^\]]*)\]\) from checkpoint, "
    r"the shape in current model is torch\.Size\(\[([^\]]*)\]\)"
)


def _trained_on(adapter_dir: Path) -> str | None:
    """The model an adapter was trained on: its adapter_config.json's base_model_name_or_path, else the
    model.name_or_path of the run folder's config.yaml it sits in; None when neither records one."""
    base = read_adapter_config(adapter_dir).get("base_model_name_or_path")
    if base:
        return str(base)
    run = resolve_adapter(adapter_dir)[1]
    if run is None:
        return None
    import yaml

    try:
        raw = yaml.safe_load((run / CONFIG_FILE).read_text())
        name = raw["model"]["name_or_path"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, TypeError, KeyError):
        return None
    return str(name) if name else None


def _same_model(base: str, model_path: str) -> bool:
    """Do two model names (short names, hub ids, folders) name the same model?"""
    try:
        return base == model_path or Path(resolve_model(base)).resolve() == Path(model_path).resolve()
    except OSError:  # a short name that is not installed
        return False


def adapter_misfit(error: str, adapter_dir: Path, model_path: str) -> str | None:
    """One line for PEFT's error when the adapter in `adapter_dir` does not fit the model at `model_path`
    (torch's "size mismatch", PEFT's "target modules not found"), naming the first tensor that differs with
    both shapes, how many differ, and the fix; None for any other error."""
    mismatches = _SIZE_MISMATCH.findall(error)
    if not mismatches and "not found in the base model" not in error:
        return None
    if mismatches:
        key, in_adapter, in_model = mismatches[0]
        # PEFT's parameter name as the adapter file has it: no `base_model.model.` prefix, no adapter name
        name = re.sub(r"\.default(?=\.|$)", "", key.removeprefix("base_model.model."))
        n = len(mismatches)
        what = (
            f"{n} tensor{'s' if n != 1 else ''} of it differ in shape from the model {model_path}, the first "
            f"{name}: [{in_adapter}] in the adapter, [{in_model}] in the model"
        )
    else:
        what = f"its target modules are not in the model {model_path}"
    return _misfit_line(what, adapter_dir, model_path)


_LORA_TENSOR = re.compile(r"\.lora_(A|B|embedding_A|embedding_B)(\.|$)")


def check_adapter_fit(model: Any, adapter_dir: Path, model_path: str) -> None:
    """After PEFT loaded a LoRA adapter without an error: every LoRA tensor of adapter_model.safetensors found its
    place in `model` (a PeftModel) and every LoRA tensor of the model came from the file. PEFT drops the tensors of
    layers the model lacks without a word, and leaves fresh weights where the file lacks a layer (another layer
    count). Raises ConfigError naming the first tensor and the fix."""
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file() or read_adapter_config(adapter_dir).get("peft_type") != "LORA":
        return
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        names = handle.keys()
    saved = {k.removeprefix("base_model.model.") for k in names if _LORA_TENSOR.search(k)}
    # the model's names as the file has them: no `base_model.model.` prefix, no adapter name
    held = {
        re.sub(r"\.default(?=\.|$)", "", n.removeprefix("base_model.model."))
        for n, _ in model.named_parameters()
        if _LORA_TENSOR.search(n)
    }
    extra, missing = sorted(saved - held, key=_natural), sorted(held - saved, key=_natural)
    if extra:
        what = f"{len(extra)} of its LoRA tensors have no place in the model {model_path}, the first {extra[0]}"
    elif missing:
        what = (
            f"the model has {len(missing)} LoRA tensors the adapter lacks, the first {missing[0]} (model {model_path})"
        )
    else:
        return
    raise ConfigError(_misfit_line(what, adapter_dir, model_path))


def _natural(name: str) -> list[Any]:
    """Sort key putting layers.2 before layers.10."""
    return [int(part) if part.isdigit() else part for part in name.split(".")]


def _misfit_line(what: str, adapter_dir: Path, model_path: str) -> str:
    """`--adapter DIR: <what>; <the fix>`: the model it was trained on, else what to restore."""
    base = _trained_on(adapter_dir)
    if base is not None and _same_model(base, model_path):  # the right model: its own config no longer fits its weights
        config = read_adapter_config(adapter_dir)
        return (
            f"--adapter {adapter_dir}: {what}; it was trained on this model, so its adapter_config.json "
            f"(r={config.get('r')}, lora_alpha={config.get('lora_alpha')}) does not describe its "
            "adapter_model.safetensors; "
            "restore the adapter_config.json saved with it (a run's checkpoint-N/ holds a copy) or train again"
        )
    if base is None:
        return (
            f"--adapter {adapter_dir}: {what}; it records no base model (no base_model_name_or_path in its "
            "adapter_config.json): pass --model with the model it was trained on, or an adapter trained on "
            f"{model_path}"
        )
    return (
        f"--adapter {adapter_dir}: {what}; it was trained on {base}: pass --model {base}, or an adapter trained on "
        f"{model_path}"
    )


def adapter_base_model(adapter: str | Path) -> str | None:
    """The base model an adapter was trained on (its adapter_config.json), if recorded."""
    value = read_adapter_config(resolve_adapter(adapter)[0]).get("base_model_name_or_path")
    return str(value) if value else None
