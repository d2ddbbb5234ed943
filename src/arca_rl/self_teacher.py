"""The self-teacher (`credit: self_teacher`): token credit from the model itself, shown a verified solution from
its own group (SC-GRPO, arXiv 2606.18810; the teacher context as in SDPO, arXiv 2601.20802).

For completion y_i of a prompt, a *teacher* is a sibling y_j of the same group (j != i) whose reward reaches the
success threshold (`choose_teachers`). The teacher context is the prompt with y_j shown as the model's own earlier
answer to it, then the same prompt again (`teacher_messages`), followed by y_i's own tokens. The current policy
(adapter on) reads y_i twice, once after its own prompt (the student, pi_S) and once after the teacher context
(the teacher, pi_T), and each token is credited by how much the two next-token distributions disagree there:

    d_it = KL(pi_S(. | x, y_<t) || pi_T(. | x_teacher, y_<t))      (`teacher_kl`, over the whole vocabulary)

SC-GRPO uses this per-token KL as a multiplicative weight on the GRPO gradient; here it is the salience of a
`"weights"` group method, so `credit.token_weights` makes it w_it = d_it / sum_k d_ik and the trainer
A_it = A_i * w_it * T_i (the sequence's total advantage is kept, only its spread over the tokens changes).
A completion with no teacher gets salience 0, hence uniform weights: exactly A_i. The choices the paper's
abstract leaves open (KL direction, normalisation, which sibling, the context's wording) are ours and are named
in docs/group-credit.md.

Pure functions here (tensors, token ids, any causal LM); the trainer's per-batch pass is `trainer/teacher.py`,
`arca diagnose` calls the same functions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from ._causal_lm import aligned_forward

__all__ = [
    "TEACHER_MARKER",
    "choose_teachers",
    "cut_solution",
    "teacher_kl",
    "teacher_messages",
    "teacher_prompt_ids",
]

# The solution's place in a rendered teacher context: split there, so the solution can be cut from its left in
# token space (`cut_solution`) without re-rendering the chat template.
TEACHER_MARKER = "\u2063ARCA_SOLUTION\u2063"


def choose_teachers(rewards: Sequence[float], groups: Sequence[int], threshold: float | None = None) -> list[int]:
    """For each row, the row of its teacher (-1: none).

    A row's teacher is the first other row of its group whose reward is >= the threshold, never the row itself
    (as SDPO's `dont_reprompt_on_self_success`). `threshold` None: the group's maximum reward, when it is above
    the group's mean (a group whose rewards are all equal has no success, so no teacher).

    A success must be a correct answer. With the tasks' exact reward (the default, `Task.reward`: 1.0 for a correct
    answer, else 0.0) the None rule picks exactly the correct siblings of a group that also has a wrong answer.
    With a graded reward (reasoning-gym's partial credit) it would not: for the answer -3, "-30" scores 0.667 and
    would be shown to "3" and "7" as the solution; the config check therefore asks for threshold 1.0 there.
    """
    if len(rewards) != len(groups):
        raise ValueError(f"choose_teachers: {len(rewards)} rewards for {len(groups)} group ids")
    members: dict[int, list[int]] = {}
    for b, g in enumerate(groups):
        members.setdefault(int(g), []).append(b)
    success: dict[int, list[int]] = {}
    for g, rows in members.items():
        r = [float(rewards[b]) for b in rows]
        if threshold is None:
            top, mean = max(r), sum(r) / len(r)
            success[g] = [b for b, x in zip(rows, r) if x == top] if top > mean else []
        else:
            success[g] = [b for b, x in zip(rows, r) if x >= threshold]
    return [next((j for j in success[int(g)] if j != b), -1) for b, g in enumerate(groups)]


def teacher_messages(prompt: Any, solution: str) -> Any:
    """The teacher's prompt: `prompt` (a string, or chat messages) with `solution` shown as the model's own earlier
    answer to it, then the same prompt again, so that the completion continues exactly the text it continued.

    Plain text: `prompt + solution + "\\n\\n" + prompt`. Chat: the messages up to the last user turn, an assistant
    turn holding the solution, then the last user turn again (chat formatting is kept: the template renders it).
    """
    if isinstance(prompt, str):
        return f"{prompt}{solution}\n\n{prompt}"
    messages = list(prompt)
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last is None:
        raise ValueError("self_teacher: a chat prompt needs a user turn to show the solution after")
    return [*messages[: last + 1], {"role": "assistant", "content": solution}, *messages[last:]]


def cut_solution(
    before: list[int], solution: list[int], after: list[int], completion_len: int, max_len: int | None
) -> tuple[list[int], int] | None:
    """(the teacher prompt's ids `before + solution + after`, how many solution tokens were cut), or None when the
    teacher context cannot hold a single token of the solution.

    When the teacher context (prompt + completion) is longer than `max_len` (the model's positions), tokens are cut
    from the left of the shown solution (its end, nearest the question, is kept). When not even one solution token
    fits beside the question and the completion (a completion near `max_len`, or a long prompt), there is no teacher
    to show: None, and the trainer gives that completion no teacher (salience 0, uniform weights, exactly A_i),
    counted in `credit/teacher_unfit`."""
    ids = [*before, *solution, *after]
    if max_len is None or len(ids) + completion_len <= max_len:
        return ids, 0
    over = len(ids) + completion_len - max_len
    if over < len(solution):
        return [*before, *solution[over:], *after], over
    return None


def teacher_prompt_ids(
    tokenizer: Any,
    prompt: Any,
    solution: str,
    completion_len: int,
    max_len: int | None,
    chat_template_kwargs: Any = None,
) -> tuple[list[int], int] | None:
    """(the teacher prompt's token ids, solution tokens cut): `teacher_messages(prompt, solution)` tokenized as TRL
    tokenizes prompts (chat: the template with the generation prompt; plain text: with special tokens), the
    solution as its own tokens, cut from its left to fit `max_len` with the completion (`cut_solution`); None when
    no solution token fits (no teacher for this completion)."""
    shown = teacher_messages(prompt, TEACHER_MARKER)
    chat = not isinstance(prompt, str)
    text = (
        tokenizer.apply_chat_template(shown, add_generation_prompt=True, tokenize=False, **(chat_template_kwargs or {}))
        if chat
        else shown
    )
    if text.count(TEACHER_MARKER) != 1:
        raise ValueError(
            "credit='self_teacher': the chat template does not render an assistant turn verbatim, so the shown "
            "solution cannot be placed; use a task with plain-text prompts or another credit method."
        )
    before, after = text.split(TEACHER_MARKER)
    return cut_solution(
        list(tokenizer(before, add_special_tokens=not chat)["input_ids"]),
        list(tokenizer(solution, add_special_tokens=False)["input_ids"]),
        list(tokenizer(after, add_special_tokens=False)["input_ids"]),
        completion_len,
        max_len,
    )


@contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Every module of `model` in eval mode (no dropout) inside, each one's own mode put back after."""
    modules = list(model.modules()) if isinstance(model, torch.nn.Module) else []
    modes = [m.training for m in modules]
    for m in modules:
        m.training = False
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.training = mode


def teacher_kl(
    model: Any,
    student_ids: Tensor,
    student_mask: Tensor,
    teacher_ids: Tensor,
    teacher_mask: Tensor,
    width: int,
    completion_mask: Tensor,
    *,
    temperature: float = 1.0,
    rows: int = 8,
) -> tuple[Tensor, Tensor]:
    """(d [B, width], log pi_T(y_t) [B, width]): the per-token KL(pi_S || pi_T) over the vocabulary and the teacher's
    log-probability of each completion token, float32, 0 off `completion_mask`. No gradient.

    `student_ids` / `teacher_ids` [B, P + width] / [B, P' + width]: each row's (left-padded) prompt, resp. teacher
    prompt, then the same `width` completion columns; the masks are their attention masks. Both forwards run the
    current `model` (adapter as it is), `rows` rows at a time, logits divided by `temperature` as TRL scores, with
    dropout off (every module in eval mode for the pass, each put back as it was after), as SDPO's teacher runs: in
    train mode LoRA's dropout alone would make two identical contexts disagree.
    """
    B = student_ids.shape[0]
    kl = torch.zeros(B, width, dtype=torch.float32, device=student_ids.device)
    teacher_logps = torch.zeros_like(kl)
    targets = student_ids[:, student_ids.shape[1] - width :]
    real = completion_mask.bool()
    with torch.no_grad(), _eval_mode(model):
        for s in range(0, B, max(1, rows)):
            chunk = slice(s, s + max(1, rows))
            z_s, _ = aligned_forward(
                model, student_ids[chunk], student_mask[chunk], student_ids.shape[1] - width, width, False
            )
            z_t, _ = aligned_forward(
                model, teacher_ids[chunk], teacher_mask[chunk], teacher_ids.shape[1] - width, width, False
            )
            log_s = torch.log_softmax(z_s.float() / temperature, dim=-1)
            log_t = torch.log_softmax(z_t.float() / temperature, dim=-1)
            del z_s, z_t
            # KL(pi_S || pi_T) = sum_v pi_S(v) (log pi_S(v) - log pi_T(v)) >= 0; clamp the rounding below 0
            kl[chunk] = (log_s.exp() * (log_s - log_t)).sum(-1).clamp_min(0.0)
            teacher_logps[chunk] = log_t.gather(-1, targets[chunk].unsqueeze(-1)).squeeze(-1)
    kl = torch.nan_to_num(kl, nan=0.0)  # NaN never reaches the loss (+inf: token_weights falls back to uniform)
    return torch.where(real, kl, 0.0), torch.where(real, teacher_logps, 0.0)
