"""`diagnose`: sample -> score -> (oracle) -> summarize, the steps of this package (see its docstring)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import group_credit
from .._causal_lm import eos_ids, has_adapter, model_name, render_prompt
from .._credit_fields import MIX_RANGE
from ..oracle import BOOTSTRAP_RESAMPLES, CONFIDENCE, PERMUTATIONS, check_positions, check_samples, step_boundaries
from ..tasks import boxed_span
from .model_credit import model_method_salience
from .oracle_sampling import sample_oracle, strict_reward
from .references import answer_tokens, reference_rows
from .results import CompletionRecord, DiagnoseResult, SignalSummary, num
from .sample import sample
from .score import grpo_advantages, scorable, score, score_groups
from .summarize import summarize, summarize_oracle
from .teacher import self_teacher_salience

__all__ = ["diagnose"]


def diagnose(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Any],
    *,
    k: int = 4,
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    top_p: float = 1.0,
    signals: Sequence[str] | None = None,
    power: float = 1.0,
    eps: float = 1e-8,
    min_salience: float = 0.0,
    mix: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = True,
    rewards: Callable[[int, str], float | None] | None = None,
    oracle_samples: int | None = None,
    oracle_batch_rows: int = 1024,
    oracle_positions: str = "adaptive",
    oracle_step_seeds: bool = False,
    group_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    answer_span: Callable[[str], Any] | None = None,
) -> DiagnoseResult:
    """Sample k completions per prompt and score every credit signal on them.

    Args:
        model: a causal LM, optionally a `peft.PeftModel` (or a transformers model with a loaded
            adapter); without an adapter, signals needing the adapter-off pass are reported absent.
        tokenizer: its tokenizer (left padding is set for generation and restored after).
        prompts: strings, or chat-message lists rendered with the tokenizer's chat template.
        k: completions per prompt. max_new_tokens, temperature, top_p: sampling (temperature 0 =
            greedy; log-probs and entropies then use temperature 1).
        signals: which registered signals to score (default: all, in registration order).
        power, eps, min_salience: how salience becomes weights (`credit.token_weights`; a run's
            are `ARCAGRPOConfig.token_weight_kwargs()`).
        mix: the `credit_mix` lambda applied to every signal's weights, `(1 - mix) / T + mix * w`
            (`credit.mix_weights`; 1 = the signals alone). Salience is reported raw.
        seed: sampling seed (the global RNG state is restored afterwards).
        batch_size: sequences per generate / forward call.
        progress: print a progress line per batch to stderr.
        rewards: optional `fn(prompt_index, completion_text) -> reward` stored on each completion.
        oracle_samples: K >= 1 turns on the Monte Carlo oracle (`arca_rl.oracle`): K continuations
            of every prefix of every completion, with the same policy and sampling settings, give
            each completion its token values (`CompletionRecord.oracle`) and every scored signal its
            oracle lift, Spearman vs |delta| and top match. Needs `rewards`; the rollouts are
            rewarded first, and a reward that raises or is not a finite number stops it there,
            before any continuation. Costs at most K x (prompts + sum of (T - 1)) sampled continuations.
        oracle_batch_rows: most continuations per batched sampling call (bounds memory).
        oracle_positions: which prefixes get sampled values: "adaptive" (the default: the two ends, then only
            where the value moves; linear in between, see `arca_rl.oracle`) or "all" (every prefix, the cost above).
        oracle_step_seeds: adaptive only: also sample, in its first round, the prefixes ending at a step boundary
            (a token with a newline or ending in ".", "="; `arca_rl.oracle.step_boundaries`). ValueError without
            `oracle_samples` or with `oracle_positions="all"`, where it would do nothing.
        group_kwargs: per group method, its hyper-parameters (`ARCAGRPOConfig.group_credit_kwargs`); the
            methods' defaults otherwise.
        answer_span: where a completion's answer sits (`arca_rl.tasks.Task.answer_span`, an `AnswerSpan`), for the
            methods that read the answer (grail, oar_g, answer_only; default: the last ``\\boxed{}``,
            `arca_rl.tasks.boxed_span`) and, with the oracle, the `answer_only` reference row (`references.py`).

    Group methods (ktae, tempo, gtpo, hicra, or registered ones) are scored whenever there is a reward: the k
    completions of a prompt are the group, A_i is GRPO's advantage of their rewards, and `mix` blends their
    token advantages with A_i as the trainer does. Every scored method also gets signed token advantages
    (`CompletionRecord.token_advantages`: A_i * w_it * T_i for a signal), which the oracle's signed measure
    scores. With k = 1 every A_i is 0, so the signed measure needs k >= 2: with k = 1 it is left out (None, and a
    note says why); the oracle's lift and rank measures need no group.

    Returns:
        DiagnoseResult with per-signal summaries, `absent` reasons, and per-completion records.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not prompts:
        raise ValueError("diagnose needs at least one prompt")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not MIX_RANGE.contains(mix):  # NaN fails too
        raise ValueError(f"mix (credit_mix) must be {MIX_RANGE.describe()} (1 = the signals alone), got {mix!r}")
    if oracle_samples is not None:
        check_samples(oracle_samples)
        if rewards is None:
            raise ValueError("oracle_samples needs rewards=fn(prompt_index, completion_text) -> reward")
        if oracle_batch_rows < 1:
            raise ValueError(f"oracle_batch_rows must be >= 1, got {oracle_batch_rows}")
        check_positions(oracle_positions)
        if not isinstance(oracle_step_seeds, bool):
            raise ValueError(f"oracle_step_seeds must be True or False, got {oracle_step_seeds!r}")
        if oracle_step_seeds and oracle_positions != "adaptive":
            raise ValueError("oracle_step_seeds: only with oracle_positions='adaptive' ('all' samples every prefix)")
    elif oracle_step_seeds:
        raise ValueError("oracle_step_seeds: only with oracle_samples (it picks prefixes the oracle samples)")
    registered = group_credit.registered_methods()
    names = list(registered if signals is None else signals)
    unknown = [s for s in names if s not in registered]
    if unknown:
        raise ValueError(f"unknown signals {unknown}; registered: {registered}")

    adapter = has_adapter(model)
    scored, absent = scorable(names, adapter)
    group_methods = [s for s in scored if group_credit.is_group_method(s)]
    if group_methods and rewards is None:  # the group's rewards are what these methods read
        for m in group_methods:
            absent[m] = (
                "a group method: it needs the completions' rewards, and there is no reward (pick a task with one)"
            )
        scored = [s for s in scored if s not in group_methods]
        group_methods = []
    token_signals = [s for s in scored if s not in group_methods]
    texts = [render_prompt(tokenizer, p) for p in prompts]
    t0 = time.time()

    def say(msg: str) -> None:
        if progress:
            print(f"[diagnose {time.time() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    was_training = model.training
    model.eval()
    try:
        samples = sample(
            model, tokenizer, texts, k=k, max_new_tokens=max_new_tokens, temperature=temperature,
            top_p=top_p, seed=seed, batch_size=batch_size, say=say,
        )  # fmt: skip
        # With the oracle the rollouts are rewarded now: a broken reward must stop it before the
        # (expensive) continuations are sampled.
        first_rewards: list[float] | None = None
        if oracle_samples is not None and rewards is not None:
            first_rewards = [
                strict_reward(rewards, s.prompt_index, tokenizer.decode(s.completion_ids, skip_special_tokens=True))
                for s in samples
            ]
        weight_kwargs = {"eps": eps, "power": power, "min_salience": min_salience}
        need_entropies = any("entropies" in group_credit.group_method_needs(m) for m in group_methods)
        scores = score(
            model, tokenizer, samples, token_signals, temperature=temperature, weight_kwargs=weight_kwargs,
            batch_size=batch_size, say=say, mix=mix, keep_entropies=need_entropies,
        )  # fmt: skip
        # every completion's reward (the group methods read them, and every method's token advantages A_i)
        seen_rewards: list[float | None] = []
        if rewards is not None:
            for s in samples:
                if first_rewards is not None:
                    seen_rewards.append(first_rewards[len(seen_rewards)])
                    continue
                try:
                    seen_rewards.append(
                        num(rewards(s.prompt_index, tokenizer.decode(s.completion_ids, skip_special_tokens=True)))
                    )
                except Exception:  # never let a scoring bug lose the diagnosis
                    seen_rewards.append(None)
        group_scores = None
        advantages: list[float | None] = [None] * len(samples)
        if seen_rewards and all(r is None for r in seen_rewards):
            for m in group_methods:
                absent[m] = "a group method: it needs the completions' rewards, and the reward gave none"
            group_methods = []
        elif seen_rewards:
            filled = _fill_rewards(seen_rewards, [s.prompt_index for s in samples])
            advantages = list(grpo_advantages(filled, [s.prompt_index for s in samples]))
            if group_methods:
                precomputed = {}
                if "self_teacher" in group_methods:  # reads the model: the policy shown a verified sibling
                    precomputed["self_teacher"] = self_teacher_salience(
                        model, tokenizer, prompts, samples, filled, temperature=temperature, batch_size=batch_size,
                        threshold=dict((group_kwargs or {}).get("self_teacher", {})).get("self_teacher_success"),
                    )  # fmt: skip
                model_methods = [m for m in group_methods if m in group_credit.MODEL_METHODS]
                if model_methods:  # read the model: the answer's gradient (grail, oar_g), the hidden state (delta)
                    precomputed.update(model_method_salience(
                        model, tokenizer, samples, model_methods, [float(a or 0.0) for a in advantages],
                        answer_span=answer_span or boxed_span,
                        temperature=temperature, batch_size=batch_size, method_kwargs=group_kwargs,
                    ))  # fmt: skip
                group_scores = score_groups(
                    samples, group_methods, rewards=filled, entropies=scores.entropies if need_entropies else None,
                    mix=mix, method_kwargs=group_kwargs, precomputed=precomputed,
                )  # fmt: skip
                absent.update(group_scores.failed)
        oracle_rows = None
        oracle_settings: dict[str, Any] = {}
        if oracle_samples is not None and first_rewards is not None and rewards is not None:
            t_oracle = time.time()
            seeds = None
            if oracle_step_seeds:  # adaptive (checked above)
                seeds = [
                    step_boundaries([tokenizer.decode([t], skip_special_tokens=False) for t in s.completion_ids])
                    for s in samples
                ]
            oracle_rows, sampled, worst = sample_oracle(
                model, tokenizer,
                [(s.prompt_index, s.prompt_ids, s.completion_ids, r) for s, r in zip(samples, first_rewards)],
                rewards, samples=oracle_samples, max_new_tokens=max_new_tokens, temperature=temperature,
                top_p=top_p, eos_ids=eos_ids(model, tokenizer), seed=seed + 1, batch_rows=oracle_batch_rows,
                progress=progress, say=say, positions=oracle_positions, seeds=seeds,
            )  # fmt: skip
            oracle_settings = {
                "oracle_samples": oracle_samples,
                "oracle_positions": oracle_positions,
                "oracle_step_seeds": oracle_step_seeds,
                "oracle_rollouts": sampled,  # continuations sampled
                "oracle_rollouts_worst": worst,  # what every prefix costs: K x (prompts + sum of (T - 1))
                "oracle_seconds": round(time.time() - t_oracle, 2),
                "oracle_zero_rows": sum(row.credit is None for row in oracle_rows),
                "oracle_no_signal_rows": sum(row.no_signal for row in oracle_rows),
                # adaptive rows with one measured interval: no signal, left out of every score
                "oracle_unresolved_rows": sum(not row.resolved for row in oracle_rows),
                "oracle_permutations": PERMUTATIONS,
                "oracle_intervals": f"{CONFIDENCE:.0%} percentile bootstrap over prompts, "
                f"{BOOTSTRAP_RESAMPLES} resamples",
            }
    finally:
        if was_training:
            model.train()
    absent.update(scores.failed)
    scored = [s for s in scored if s not in absent]
    if group_scores is not None:
        for b in range(len(samples)):
            scores.weights[b].update(group_scores.weights[b])
            scores.salience[b].update(group_scores.salience[b])

    records: list[CompletionRecord] = []
    for b, (s, weights, salience) in enumerate(zip(samples, scores.weights, scores.salience)):
        rec = CompletionRecord(
            prompt_index=s.prompt_index,
            sample_index=s.sample_index,
            prompt=texts[s.prompt_index],
            completion=tokenizer.decode(s.completion_ids, skip_special_tokens=True),
            tokens=[
                tokenizer.decode([t], skip_special_tokens=False, clean_up_tokenization_spaces=False)
                for t in s.completion_ids
            ],
            token_ids=list(s.completion_ids),
            finished=s.finished,
            weights=weights,
            salience=salience,
        )
        if seen_rewards:
            rec.reward = seen_rewards[b]
        a_i = rec.advantage = advantages[b]
        for name in scored:  # signed token advantages: a group method's own, A_i * w_it * T_i for a signal
            if group_scores is not None and name in group_scores.token_advantages[b]:
                rec.token_advantages[name] = group_scores.token_advantages[b][name]
            elif a_i is not None and name in weights:
                T = len(weights[name])
                rec.token_advantages[name] = [a_i * w * T for w in weights[name]]
        if oracle_rows is not None:
            rec.oracle = oracle_rows[len(records)].to_dict()
            if answer_span is not None:
                rec.answer_tokens = answer_tokens(tokenizer, s.completion_ids, _content(answer_span(rec.completion)))
        records.append(rec)

    summaries, notes = summarize(records, scored, max_new_tokens=max_new_tokens)
    references: dict[str, SignalSummary] = {}
    if oracle_samples is not None:
        notes += summarize_oracle(records, summaries, oracle_samples, k=k)
        references = reference_rows(records, scored, k=k)
        if answer_span is not None:
            missing = sum(rec.answer_tokens is None for rec in records)
            oracle_settings["answer_only_without_answer"] = missing
            if missing:
                notes.append(f"answer_only: {missing} of {len(records)} completions have no final answer; "
                             "they get uniform credit in that row")  # fmt: skip
        else:
            notes.append("answer_only: no answer extraction was given (answer_span), so that reference row is left "
                         "out")  # fmt: skip
    settings = {
        "model": model_name(model),
        "adapter": None,
        "n_prompts": len(texts),
        "k": k,
        "n_completions": len(records),
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "power": power,
        "eps": eps,
        "min_salience": min_salience,
        "mix": mix,
        "seed": seed,
        "signals": names,
        **oracle_settings,
        "seconds": round(time.time() - t0, 2),
    }
    return DiagnoseResult(
        signals=summaries, absent=absent, completions=records, settings=settings, has_adapter=adapter, notes=notes,
        references=references,
    )


def _fill_rewards(rewards: Sequence[float | None], groups: Sequence[int]) -> list[float]:
    """Rewards with a missing one (None) replaced by its prompt's mean (0 when the prompt has none): neither
    correct nor incorrect for the group methods."""
    by_group: dict[int, list[float]] = {}
    for r, g in zip(rewards, groups):
        if r is not None:
            by_group.setdefault(g, []).append(r)
    return [
        r if r is not None else (sum(by_group[g]) / len(by_group[g]) if by_group.get(g) else 0.0)
        for r, g in zip(rewards, groups)
    ]


def _content(span: Any) -> tuple[int, int] | None:
    """The answer's own characters [start, end) of a task's `AnswerSpan` (its content, without the markup), as the
    `answer_only` reference row spreads its credit; a plain (start, end) pair passes as it is."""
    if span is None:
        return None
    if hasattr(span, "content_start"):
        return int(span.content_start), int(span.content_end)
    start, end = span
    return int(start), int(end)
