"""`arca diagnose`: the shape of every credit signal on one model + adapter, from one set of rollouts.

`diagnose(model, tokenizer, prompts, k=4)` samples k completions per prompt, then runs

    adapter-on forward  (no grad)  ->  log pi(y_t), entropy H_t, last hidden state h_t
    adapter-off forward (no grad)  ->  log pi_ref(y_t), base hidden state h_base_t   [PEFT models only]

and scores every registered salience signal on the same tokens (`credit.salience` ->
`credit.token_weights`). Every per-token quantity is aligned as in SPEC.md: the values for
completion token y_t come from the position whose logits score y_t (for t = 0, the last prompt
position). The "hidden state" is the input of the LM head (the final-norm output), captured by a
forward pre-hook on the output embeddings. Log-probabilities and entropies are taken at the sampling
temperature (logits / temperature), as TRL does; top-p only shapes which tokens get sampled.

The completion mask covers the generated tokens up to and including the first EOS. Everything is
float32, and every figure that would be NaN is None.

Without a PEFT adapter the adapter-off pass does not exist, so the signals that need it (`arca`,
`divergence`, or any registered signal reading `ref_logps` / `base_hidden`) are reported under
`absent` with the reason; the others are still scored.

Public entry point: `arca_rl.diagnose(model, tokenizer, prompts)`; this module is private.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import credit, diagnostics, rundir
from .rundir import resolve_adapter

__all__ = [
    "CompletionRecord",
    "DiagnoseResult",
    "SignalSummary",
    "completion_tokens",
    "diagnose",
    "run_diagnose",
    "spearman",
]


# -----------------------------------------------------------------------------
# result objects


@dataclass
class SignalSummary:
    """Batch figures of one signal's weights over all sampled completions with T >= 2.

    gini, effective_token_ratio, top10_mass: means over completions (SPEC's batch figures);
    regime: "uniform" | "middle" | "sparse" (`arca_rl.diagnostics` thresholds);
    first_token_mass: mean weight of the first completion token (the decisive token of the embedded
    arithmetic task); spearman_vs_arca: mean per-completion Spearman rank correlation between this
    signal's salience and arca's (average ranks for ties), over the completions where both rows
    vary (`spearman_n` of them); None when arca is absent or no completion qualifies;
    salience_mean / salience_max: raw salience over all real tokens (for arca: the mean and max
    adapter residual norm).
    """

    name: str
    gini: float | None
    effective_token_ratio: float | None
    top10_mass: float | None
    regime: str | None
    n_rows: int
    first_token_mass: float | None = None
    spearman_vs_arca: float | None = None
    spearman_n: int = 0
    salience_mean: float | None = None
    salience_max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CompletionRecord:
    """One sampled completion with every signal's per-token weights and raw salience."""

    prompt_index: int
    sample_index: int
    prompt: str
    completion: str
    tokens: list[str]
    token_ids: list[int]
    finished: bool  # ended with EOS (False: cut at max_new_tokens)
    weights: dict[str, list[float]] = field(default_factory=dict)
    salience: dict[str, list[float]] = field(default_factory=dict)
    gini: dict[str, float | None] = field(default_factory=dict)
    effective_token_ratio: dict[str, float | None] = field(default_factory=dict)
    spearman_vs_arca: dict[str, float | None] = field(default_factory=dict)
    reward: float | None = None

    @property
    def length(self) -> int:
        return len(self.token_ids)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["length"] = self.length
        return d


@dataclass
class DiagnoseResult:
    """Everything `diagnose` measured. `signals` keeps the registration order."""

    signals: dict[str, SignalSummary]
    absent: dict[str, str]
    completions: list[CompletionRecord]
    settings: dict[str, Any]
    has_adapter: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self, *, completions: bool = True) -> dict[str, Any]:
        """JSON-ready dict: {"signals": {name: {...}}, "absent", "notes", "settings", "completions"}.

        For convenience every signal object is also a top-level key (unless its name collides with
        one of the fixed keys), so `d["arca"]["gini"]` and `d["signals"]["arca"]["gini"]` both work.
        """
        sig = {name: s.to_dict() for name, s in self.signals.items()}
        d: dict[str, Any] = {
            "signals": sig,
            "absent": dict(self.absent),
            "notes": list(self.notes),
            "has_adapter": self.has_adapter,
            "settings": dict(self.settings),
        }
        if completions:
            d["completions"] = [c.to_dict() for c in self.completions]
        for name, obj in sig.items():
            if name not in d:
                d[name] = obj
        return _clean(d)

    def to_json(
        self, path: str | Path | None = None, *, indent: int | None = 2, completions: bool = True
    ) -> str:
        """The `to_dict()` as JSON text (strict: no NaN); written to `path` too when given."""
        text = json.dumps(self.to_dict(completions=completions), indent=indent, allow_nan=False)
        if path is not None:
            p = Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text + "\n", encoding="utf-8")
        return text

    def table(self) -> str:
        """The per-signal summary as an aligned plain-text table (what `arca diagnose` prints)."""
        head = ["signal", "gini", "EffN/T", "top10%", "first tok", "regime", "rho vs arca", "rows"]
        rows = [head]
        for s in self.signals.values():
            rows.append(
                [
                    s.name,
                    _f3(s.gini),
                    _f3(s.effective_token_ratio),
                    _f3(s.top10_mass),
                    _f3(s.first_token_mass),
                    s.regime or "-",
                    _f3(s.spearman_vs_arca),
                    str(s.n_rows),
                ]
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [
            "  ".join(
                c.ljust(w) if i == 0 or i == 5 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))
            )
            for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        for name, why in self.absent.items():
            lines.append(f"{name}: absent ({why})")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)

    def write(
        self, out_dir: str | Path, *, title: str | None = None, max_html_completions: int = 64
    ) -> dict[str, Path]:
        """Write `diagnose.json`, `report.html` and the PNG histograms into `out_dir`."""
        from .report.html import Completion, Section, SummaryRow, write_page
        from .report.plots import plot_weight_histograms

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}
        files["diagnose.json"] = out / "diagnose.json"
        self.to_json(files["diagnose.json"])

        rel: dict[str, list[float]] = {name: [] for name in self.signals}
        for c in self.completions:
            for name, w in c.weights.items():
                total = sum(w)
                rel[name].extend((x / total) * len(w) if total > 0 else 0.0 for x in w)
        for p in plot_weight_histograms(rel, out):
            files[p.name] = p

        summary = [
            SummaryRow(
                signal=s.name,
                gini=s.gini,
                effective_token_ratio=s.effective_token_ratio,
                top10_mass=s.top10_mass,
                regime=s.regime,
                spearman_vs_arca=s.spearman_vs_arca,
                first_token_mass=s.first_token_mass,
                n_rows=s.n_rows,
            )
            for s in self.signals.values()
        ]
        cards = []
        for c in self.completions[:max_html_completions]:
            meta: dict[str, Any] = {"reward": c.reward}
            if not c.finished:
                meta["cut"] = "no EOS (max_new_tokens)"
            cards.append(
                Completion(
                    tokens=c.tokens,
                    weights=c.weights,
                    salience=c.salience,
                    title=f"prompt {c.prompt_index} · sample {c.sample_index}",
                    prompt=c.prompt,
                    meta=meta,
                )
            )
        st = self.settings
        sub = (
            f"model {st.get('model', '?')}"
            + (
                f", adapter {st.get('adapter')}"
                if st.get("adapter")
                else (", with a PEFT adapter" if self.has_adapter else ", no adapter")
            )
            + f"; {st.get('n_prompts')} prompts x k={st.get('k')}, temperature {st.get('temperature')}, "
            f"top-p {st.get('top_p')}, power p={st.get('power')}, seed {st.get('seed')}"
        )
        notes = list(self.notes)
        if len(self.completions) > max_html_completions:
            notes.append(f"showing the first {max_html_completions} of {len(self.completions)} completions")
        section = Section(
            title="Credit signals on the same rollouts",
            subtitle=sub,
            completions=cards,
            summary=summary,
            absent=self.absent,
            notes=notes,
            signals=list(self.signals),
        )
        files["report.html"] = write_page(
            out / "report.html",
            title or "arca diagnose",
            [section],
            subtitle="Every registered credit signal scored on the same sampled completions "
            "(one adapter-on and one adapter-off forward pass).",
        )
        return files


def _f3(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{0.0 if abs(x) < 5e-4 else x:.3f}"  # no "-0.000"


def _clean(x: Any) -> Any:
    """Replace non-finite floats by None, recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def _num(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


# -----------------------------------------------------------------------------
# rank correlation


def _average_ranks(x: Sequence[float]) -> list[float]:
    """Ranks 1..n with ties given their average rank."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1
        for m in range(i, j + 1):
            ranks[order[m]] = avg
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman rank correlation (Pearson correlation of average ranks); None if either side is
    constant, the lengths differ, or there are fewer than 2 values."""
    if len(a) != len(b) or len(a) < 2:
        return None
    ra, rb = _average_ranks(a), _average_ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    va = sum((r - ma) ** 2 for r in ra)
    vb = sum((r - mb) ** 2 for r in rb)
    if va <= 0 or vb <= 0:
        return None
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    return max(-1.0, min(1.0, cov / math.sqrt(va * vb)))


# -----------------------------------------------------------------------------
# model plumbing


def _is_peft(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, PeftModel)


def _has_adapter(model: Any) -> bool:
    """A PEFT model, or a transformers model with a PEFT adapter loaded into it."""
    return _is_peft(model) or bool(getattr(model, "_hf_peft_config_loaded", False))


@contextlib.contextmanager
def _adapter_disabled(model: Any) -> Iterator[None]:
    if _is_peft(model):
        with model.disable_adapter():
            yield
        return
    model.disable_adapters()
    try:
        yield
    finally:
        model.enable_adapters()


def _render_prompt(tokenizer: Any, prompt: Any) -> str:
    """A prompt as text: strings as is; chat messages through the tokenizer's chat template."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence) and all(isinstance(m, Mapping) for m in prompt):
        return tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
    raise TypeError(f"prompts must be strings or lists of chat messages, got {type(prompt).__name__}")


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    gc = getattr(model, "generation_config", None)
    for src in (getattr(gc, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if src is None:
            continue
        for i in src if isinstance(src, list | tuple) else [src]:
            if isinstance(i, int) and i not in ids:
                ids.append(i)
    return ids


def completion_tokens(generated: Sequence[int], eos_ids: Sequence[int]) -> tuple[list[int], bool]:
    """(the completion's tokens up to and including the first EOS, whether there was one).

    Without an EOS the row ran to max_new_tokens (`generate` stops early only when every row has
    ended), so all generated tokens are real; after an EOS come padding or junk, which are dropped.
    """
    eos = set(eos_ids)
    for t, tok in enumerate(generated):
        if tok in eos:
            return list(generated[: t + 1]), True
    return list(generated), False


def _device_of(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover
        return torch.device("cpu")


def _forward(
    model: Any, input_ids: Tensor, attention_mask: Tensor, prompt_width: int, width: int, want_hidden: bool
) -> tuple[Tensor, Tensor | None]:
    """One no-grad forward; returns (logits [B, C, V], last hidden [B, C, D] or None) for the C = `width`
    completion columns, aligned so that column t holds the values of the position scoring y_t."""
    captured: list[Tensor] = []
    handle = None
    head = model.get_output_embeddings() if want_hidden and hasattr(model, "get_output_embeddings") else None
    if head is not None:
        handle = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach()))
    # numbered as `generate` numbers left-padded rows
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
    base: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    # most specific call first; older or exotic forwards may not take logits_to_keep / position_ids
    tries = [
        {"position_ids": position_ids, "logits_to_keep": width + 1},
        {"position_ids": position_ids},
        {},
    ]
    try:
        with torch.no_grad():
            for i, extra in enumerate(tries):
                try:
                    out = model(**base, **extra)
                    kwargs = {**base, **extra}
                    break
                except TypeError:
                    if i == len(tries) - 1:
                        raise
                    captured.clear()
            if want_hidden and not captured:  # the head was not called as a module: ask for hidden states
                kwargs.pop("logits_to_keep", None)
                out = model(**kwargs, output_hidden_states=True)
                captured.append(out.hidden_states[-1])
    finally:
        if handle is not None:
            handle.remove()
    logits = out.logits
    S = input_ids.shape[1]

    def cols(x: Tensor) -> Tensor:
        # kept positions end at S - 1; the ones we need are prompt_width - 1 .. prompt_width + width - 2
        start = x.shape[1] - S + prompt_width - 1
        if start < 0:
            raise RuntimeError(f"model returned {x.shape[1]} positions, need >= {S - prompt_width + 1}")
        return x[:, start : start + width]

    hidden = cols(captured[-1]) if want_hidden and captured else None
    return cols(logits), hidden


def _logps_entropies(logits: Tensor, targets: Tensor, mask: Tensor, temperature: float, need_entropy: bool):
    """log pi(y_t) and entropy H_t at temperature, float32, row by row to bound memory."""
    B, C, _ = logits.shape
    logps = torch.zeros(B, C, dtype=torch.float32, device=logits.device)
    ents = torch.zeros(B, C, dtype=torch.float32, device=logits.device) if need_entropy else None
    for b in range(B):
        z = logits[b].to(torch.float32) / temperature
        logps[b] = z.gather(-1, targets[b].unsqueeze(-1)).squeeze(-1) - torch.logsumexp(z, dim=-1)
        if ents is not None:
            ents[b] = credit.token_entropy(z.unsqueeze(0), mask[b : b + 1])[0]
    return torch.where(mask, logps, 0.0), ents


# -----------------------------------------------------------------------------
# the diagnosis


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
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = True,
    rewards: Callable[[int, str], float | None] | None = None,
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
        power, eps: `credit.token_weights` parameters (SPEC's p and eps).
        seed: sampling seed (the global RNG state is restored afterwards).
        batch_size: sequences per generate / forward call.
        progress: print a progress line per batch to stderr.
        rewards: optional `fn(prompt_index, completion_text) -> reward` stored on each completion.

    Returns:
        DiagnoseResult with per-signal summaries, `absent` reasons, and per-completion records.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not prompts:
        raise ValueError("diagnose needs at least one prompt")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    registered = credit.registered_signals()
    names = list(registered if signals is None else signals)
    unknown = [s for s in names if s not in registered]
    if unknown:
        raise ValueError(f"unknown signals {unknown}; registered: {registered}")

    adapter = _has_adapter(model)
    absent: dict[str, str] = {}
    scored: list[str] = []
    for s in names:
        if credit.needs_base(s) and not adapter:
            missing = sorted(credit.signal_needs(s) & credit.BASE_INPUTS)
            absent[s] = (
                f"needs the adapter-off pass ({', '.join(missing)}), but the model has no PEFT adapter "
                "(pass an adapter, e.g. --adapter runs/<name>)"
            )
        else:
            scored.append(s)
    needs: set[str] = set()
    for s in scored:
        needs |= credit.signal_needs(s)
    want_hidden = "hidden" in needs or "base_hidden" in needs
    need_ref = adapter and any(credit.needs_base(s) for s in scored)
    scale_t = temperature if temperature > 0 else 1.0

    texts = [_render_prompt(tokenizer, p) for p in prompts]
    eos = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos[0] if eos else 0)
    device = _device_of(model)
    was_training = model.training
    model.eval()
    old_side = getattr(tokenizer, "padding_side", "right")
    tokenizer.padding_side = "left"
    t0 = time.time()

    def say(msg: str) -> None:
        if progress:
            print(f"[diagnose {time.time() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    # ---- 1. sample -------------------------------------------------------------------------
    # (prompt index, sample index, prompt ids, completion ids, ended with EOS)
    samples: list[tuple[int, int, list[int], list[int], bool]] = []
    per_call = max(1, batch_size // k)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for start in range(0, len(texts), per_call):
                chunk = texts[start : start + per_call]
                enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
                gen_kwargs: dict[str, Any] = {
                    "max_new_tokens": max_new_tokens,
                    "num_return_sequences": k,
                    "pad_token_id": pad_id,
                    "eos_token_id": eos or None,
                }
                if temperature > 0:
                    gen_kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
                else:
                    gen_kwargs.update(do_sample=False)
                with torch.no_grad():
                    seqs = model.generate(**enc, **gen_kwargs)
                width = enc["input_ids"].shape[1]
                for row in range(seqs.shape[0]):
                    i = start + row // k
                    am = enc["attention_mask"][row // k]
                    p_ids = enc["input_ids"][row // k][am.bool()].tolist()
                    c_ids, finished = completion_tokens(seqs[row, width:].tolist(), eos)
                    samples.append((i, row % k, p_ids, c_ids, finished))
                say(f"sampled {min(start + per_call, len(texts))}/{len(texts)} prompts x {k}")
    finally:
        tokenizer.padding_side = old_side

    # ---- 2. score ------------------------------------------------------------------------------
    records: list[CompletionRecord] = []
    all_w: dict[str, list[list[float]]] = {s: [] for s in scored}
    all_a: dict[str, list[list[float]]] = {s: [] for s in scored}
    failed: dict[str, str] = {}
    for start in range(0, len(samples), batch_size):
        batch = samples[start : start + batch_size]
        B = len(batch)
        P = max(len(s[2]) for s in batch)
        C = max(1, max(len(s[3]) for s in batch))
        ids = torch.full((B, P + C), pad_id, dtype=torch.long)
        att = torch.zeros((B, P + C), dtype=torch.long)
        mask = torch.zeros((B, C), dtype=torch.bool)
        for b, (_, _, p_ids, c_ids, _) in enumerate(batch):
            ids[b, P - len(p_ids) : P] = torch.tensor(p_ids, dtype=torch.long)
            att[b, P - len(p_ids) : P] = 1
            if c_ids:
                ids[b, P : P + len(c_ids)] = torch.tensor(c_ids, dtype=torch.long)
                att[b, P : P + len(c_ids)] = 1
                mask[b, : len(c_ids)] = True
        ids, att, mask = ids.to(device), att.to(device), mask.to(device)
        targets = ids[:, P:]

        logits, hidden = _forward(model, ids, att, P, C, want_hidden)
        logps, ents = _logps_entropies(logits, targets, mask, scale_t, "entropies" in needs)
        del logits
        ref_logps = base_hidden = None
        if need_ref:
            with _adapter_disabled(model):
                ref_logits, base_hidden = _forward(model, ids, att, P, C, want_hidden)
            ref_logps, _ = _logps_entropies(ref_logits, targets, mask, scale_t, False)
            del ref_logits
        inputs = {
            "logps": logps,
            "entropies": ents,
            "ref_logps": ref_logps,
            "hidden": hidden.float() if hidden is not None else None,
            "base_hidden": base_hidden.float() if base_hidden is not None else None,
        }
        sal_b: dict[str, Tensor] = {}
        w_b: dict[str, Tensor] = {}
        for s in scored:
            if s in failed:
                continue
            try:
                a = credit.salience(s, mask=mask, **{key: inputs[key] for key in credit.signal_needs(s)})
                w = credit.token_weights(a, mask, eps=eps, power=power)
            except Exception as exc:  # a user-registered signal may fail; report it, keep the others
                failed[s] = f"scoring failed: {type(exc).__name__}: {exc}"
                continue
            sal_b[s], w_b[s] = a.cpu(), w.cpu()

        for b, (i, j, _p_ids, c_ids, finished) in enumerate(batch):
            n = len(c_ids)
            rec = CompletionRecord(
                prompt_index=i,
                sample_index=j,
                prompt=texts[i],
                completion=tokenizer.decode(c_ids, skip_special_tokens=True),
                tokens=[
                    tokenizer.decode([t], skip_special_tokens=False, clean_up_tokenization_spaces=False)
                    for t in c_ids
                ],
                token_ids=list(c_ids),
                finished=finished,
            )
            for s in sal_b:
                rec.weights[s] = [float(x) for x in w_b[s][b, :n]]
                rec.salience[s] = [float(x) for x in sal_b[s][b, :n]]
                all_w[s].append(rec.weights[s])
                all_a[s].append(rec.salience[s])
            records.append(rec)
        say(f"scored {min(start + batch_size, len(samples))}/{len(samples)} completions")

    if was_training:
        model.train()
    for s, why in failed.items():
        absent[s] = why
        all_w.pop(s, None)
        all_a.pop(s, None)
    scored = [s for s in scored if s not in failed]

    # ---- 3. summarize ----------------------------------------------------------------------------
    if rewards is not None:
        for rec in records:
            try:
                rec.reward = _num(rewards(rec.prompt_index, rec.completion))
            except Exception:  # never let a scoring bug lose the diagnosis
                rec.reward = None

    summaries: dict[str, SignalSummary] = {}
    for s in scored:
        summaries[s] = _summarize_signal(s, all_w[s], all_a[s])
        for rec in records:
            w = rec.weights[s]
            if len(w) >= 2:
                wt = torch.tensor([w], dtype=torch.float32)
                m = torch.ones_like(wt, dtype=torch.bool)
                rec.gini[s] = _num(diagnostics.gini(wt, m)[0])
                rec.effective_token_ratio[s] = _num(diagnostics.effective_token_ratio(wt, m)[0])
            else:
                rec.gini[s] = rec.effective_token_ratio[s] = None
    notes: list[str] = []
    if "arca" in summaries:
        for s, summ in summaries.items():
            vals = []
            for rec in records:
                rho = spearman(rec.salience[s], rec.salience["arca"]) if len(rec.salience[s]) >= 2 else None
                rec.spearman_vs_arca[s] = rho
                if rho is not None:
                    vals.append(rho)
            summ.spearman_vs_arca = sum(vals) / len(vals) if vals else None
            summ.spearman_n = len(vals)
        if summaries["arca"].salience_max is not None and summaries["arca"].salience_max == 0.0:
            notes.append(
                "arca salience is 0 on every token: the adapter does not change the last hidden state "
                "(a freshly initialised LoRA has B = 0), so arca's weights are uniform"
            )
    if any(not r.finished for r in records):
        n_cut = sum(not r.finished for r in records)
        notes.append(f"{n_cut} of {len(records)} completions hit max_new_tokens={max_new_tokens} without EOS")

    settings = {
        "model": _model_name(model),
        "adapter": None,
        "n_prompts": len(texts),
        "k": k,
        "n_completions": len(records),
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "power": power,
        "eps": eps,
        "seed": seed,
        "signals": names,
        "seconds": round(time.time() - t0, 2),
    }
    return DiagnoseResult(
        signals=summaries,
        absent=absent,
        completions=records,
        settings=settings,
        has_adapter=adapter,
        notes=notes,
    )


def _summarize_signal(name: str, weights: list[list[float]], saliences: list[list[float]]) -> SignalSummary:
    N = len(weights)
    L = max((len(w) for w in weights), default=0)
    W = torch.zeros(N, max(L, 1), dtype=torch.float32)
    M = torch.zeros(N, max(L, 1), dtype=torch.bool)
    for r, w in enumerate(weights):
        if w:
            W[r, : len(w)] = torch.tensor(w, dtype=torch.float32)
            M[r, : len(w)] = True
    summ = (
        diagnostics.summarize(W, M)
        if N
        else {"gini": None, "effective_token_ratio": None, "top10_mass": None, "n_rows": 0, "regime": None}
    )
    rows = [w for w in weights if len(w) >= 2]
    first = sum(w[0] / (sum(w) or 1.0) for w in rows) / len(rows) if rows else None
    flat = [x for a in saliences for x in a]
    return SignalSummary(
        name=name,
        gini=_num(summ.get("gini")),
        effective_token_ratio=_num(summ.get("effective_token_ratio")),
        top10_mass=_num(summ.get("top10_mass")),
        regime=summ.get("regime") if isinstance(summ.get("regime"), str) else None,
        n_rows=int(summ.get("n_rows") or 0),
        first_token_mass=_num(first),
        salience_mean=_num(sum(flat) / len(flat)) if flat else None,
        salience_max=_num(max(flat)) if flat else None,
    )


def _model_name(model: Any) -> str:
    base = model.get_base_model() if _is_peft(model) else model
    cfg = getattr(base, "config", None)
    return str(getattr(cfg, "_name_or_path", "") or type(base).__name__)


# -----------------------------------------------------------------------------
# loading for the CLI


def _default_model_path() -> str:
    from .config import default_model_path

    path = default_model_path()
    if not Path(path).is_dir():
        raise FileNotFoundError(
            f"the embedded tiny model is not built ({path}); run `make tiny-model` or pass --model"
        )
    return path


def _config_model(cfg: Mapping[str, Any] | None) -> str | None:
    m = (cfg or {}).get("model")
    if isinstance(m, str):
        return m
    if isinstance(m, Mapping) and isinstance(m.get("name_or_path"), str):
        return m["name_or_path"]
    return None


def _config_task(cfg: Mapping[str, Any] | None) -> tuple[str | None, dict[str, Any], int | None]:
    """(task name, task options, max_prompt_tokens) from a run's config.yaml `task` section."""
    t = (cfg or {}).get("task")
    if isinstance(t, str):
        return t, {}, None
    if isinstance(t, Mapping) and isinstance(t.get("name"), str):
        opts = {k: v for k, v in t.items() if k not in ("name", "max_prompt_tokens", "n_train")}
        mpt = t.get("max_prompt_tokens")
        return t["name"], opts, mpt if isinstance(mpt, int) and not isinstance(mpt, bool) else None
    return None, {}, None


def run_diagnose(
    *,
    task: str | None = None,
    task_options: Mapping[str, Any] | None = None,
    model: str | None = None,
    adapter: str | Path | None = None,
    n: int = 32,
    k: int = 4,
    out: str | Path | None = None,
    max_new_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    power: float | None = None,
    eps: float = 1e-8,
    seed: int = 0,
    batch_size: int = 16,
    signals: Sequence[str] | None = None,
    device: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> tuple[DiagnoseResult, dict[str, Path]]:
    """What `arca diagnose` does: load model (+ adapter) and task, `diagnose`, write the outputs.

    With `adapter` a run folder of `arca train`, defaults come from its config.yaml: model, task
    (and its options and prompt truncation), credit power, temperature, top-p and completion
    length. Otherwise: the adapter's recorded base model or the embedded tiny model, temperature 1,
    top-p 1, power 1, 128 new tokens. The model runs in float32. `out` defaults to
    `diagnose/<name>`, <name> being the run's name, the adapter folder's name or the model's.
    Returns the result and the written files.
    """
    from .config import ConfigError
    from .evaluation import adapter_base_model, load_model_for_eval
    from .tasks import get_task

    say = log or (lambda _m: None)
    run_cfg: dict[str, Any] | None = None
    adapter_dir: Path | None = None
    if adapter is not None:
        adapter_dir, run_dir = resolve_adapter(adapter)
        run_cfg = rundir.read_raw_config(run_dir) if run_dir is not None else None
    training = (run_cfg or {}).get("training")
    training = training if isinstance(training, Mapping) else {}
    model_path = model or _config_model(run_cfg)
    if model_path is None and adapter_dir is not None:
        model_path = adapter_base_model(adapter_dir)
    model_path = model_path or _default_model_path()
    cfg_task, cfg_opts, max_prompt_tokens = _config_task(run_cfg)
    task_name = task or cfg_task
    if not task_name:
        raise ConfigError(
            "task: name a task (--task arithmetic|math|gsm8k); there is no run config to take it from"
        )
    opts = dict(cfg_opts) if task_name == cfg_task else {}
    opts.update(task_options or {})
    if power is None:
        power = float(training.get("credit_power") or 1.0)
    if temperature is None:
        temperature = float(training["temperature"]) if training.get("temperature") is not None else 1.0
    if top_p is None:
        top_p = float(training["top_p"]) if training.get("top_p") is not None else 1.0
    if max_new_tokens is None:
        max_new_tokens = int(training.get("max_completion_length") or 128)

    try:
        task_obj = get_task(task_name, **opts)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"task: {exc}") from exc
    say(f"loading {model_path}" + (f" + adapter {adapter_dir}" if adapter_dir else " (no adapter)"))
    lm, tok = load_model_for_eval(str(model_path), adapter_dir, dtype="float32", device=device)
    data = task_obj.test_dataset(n)
    if max_prompt_tokens is not None:
        data = task_obj.truncate_prompts(data, tok, max_prompt_tokens)
    prompts = list(data["prompt"])[:n]
    solutions = list(data["solution"])[: len(prompts)] if "solution" in data.column_names else None

    def reward(i: int, text: str) -> float | None:
        return None if solutions is None else task_obj.score(text, solutions[i])

    result = diagnose(
        lm,
        tok,
        prompts,
        k=k,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        signals=signals,
        power=power,
        eps=eps,
        seed=seed,
        batch_size=batch_size,
        progress=progress,
        rewards=reward,
    )
    result.settings.update(
        model=str(model_path), adapter=str(adapter_dir) if adapter_dir else None, task=task_name
    )
    if out is None:
        if run_cfg is not None and run_cfg.get("name"):
            name = str(run_cfg["name"])
        elif adapter_dir is not None:
            name = (adapter_dir.parent if adapter_dir.name == "adapter" else adapter_dir).name
        else:
            name = Path(str(model_path)).name or "model"
        out = Path("diagnose") / name
    title = f"arca diagnose: {Path(str(model_path)).name}" + (f" + {adapter}" if adapter else " (no adapter)")
    files = result.write(out, title=title)
    say(result.table())
    seen = [r.reward for r in result.completions if r.reward is not None]
    if seen:
        say(f"mean reward of the {len(seen)} sampled completions: {sum(seen) / len(seen):.3f}")
    say(f"wrote {', '.join(sorted(files))} to {out}/")
    return result, files
