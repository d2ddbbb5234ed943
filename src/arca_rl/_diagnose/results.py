"""What `diagnose` measured: per-signal summaries, per-completion records, and their JSON / text forms."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._report.diagnose_page import write_diagnose_page

__all__ = ["CompletionRecord", "DiagnoseResult", "SignalSummary", "num"]


@dataclass
class SignalSummary:
    """Batch figures of one signal's weights over all sampled completions with T >= 2.

    gini, effective_token_ratio, top10_mass: means over completions (the paper's batch figures);
    regime: "uniform" | "middle" | "sparse" (`arca_rl.diagnostics` thresholds);
    first_token_mass: mean weight of the first completion token (the decisive token of the embedded
    arithmetic task); spearman_vs_arca: mean per-completion Spearman rank correlation between this
    signal's salience and arca's (average ranks for ties), over the completions where both rows
    vary (`spearman_n` of them); None when arca is absent or no completion qualifies;
    salience_mean / salience_max: raw salience over all real tokens (for arca: the mean and max
    adapter residual norm).

    With the oracle (`oracle_samples=K`; see `arca_rl.oracle`): oracle_lift {"mean", "ci_low",
    "ci_high", "n"} (T * sum_t w_t o_t, mean and 95% t interval over the completions whose oracle
    deltas are not all 0), oracle_spearman (mean per-completion Spearman of salience vs |delta|, over
    oracle_spearman_n completions where neither is constant), oracle_top_match (share of completions
    whose largest-weight token is the largest-|delta| token, ties split). None without the oracle.
    oracle_signed {"mean", "ci_low", "ci_high", "n", "zero_rows"}: the signed measure, the mean per-completion
    cosine between the method's token advantages and the oracle's deltas.
    A group method's weights are its credit shares |A_it| / sum |A_ik|.

    Every oracle figure is measured at the resolution the oracle measured (`arca_rl.oracle.placement`: per token on
    exhaustive rows, per estimated interval on adaptive ones, rows with a single interval left out) and its
    interval is a 95% percentile bootstrap over prompts. oracle_shuffled {measure: {"mean", "ci_low", "ci_high",
    "n"}}: the same measures of the method's weights permuted within each completion (same shape, random place);
    oracle_placement {measure: ...}: measure minus shuffled control, per row, with its interval (measures: lift,
    spearman, top_match and, with k >= 2, signed). oracle_rows: the rows scored.
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
    oracle_lift: dict[str, Any] | None = None
    oracle_spearman: float | None = None
    oracle_spearman_n: int = 0
    oracle_top_match: float | None = None
    oracle_signed: dict[str, Any] | None = None
    oracle_spearman_ci: list[float | None] | None = None
    oracle_top_match_ci: list[float | None] | None = None
    oracle_shuffled: dict[str, Any] | None = None
    oracle_placement: dict[str, Any] | None = None
    oracle_rows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CompletionRecord:
    """One sampled completion with every signal's per-token weights and raw salience; with the
    oracle, `oracle` = {"values", "delta", "stderr", "samples", "credit", "no_signal"}
    (`arca_rl.oracle.OracleRow.to_dict`)."""

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
    oracle: dict[str, Any] | None = None
    advantage: float | None = None  # GRPO's A_i of the reward within the prompt's k completions
    token_advantages: dict[str, list[float]] = field(default_factory=dict)  # per method, signed A_it
    answer_tokens: list[int] | None = None  # [start, end): the final answer's tokens (the task's answer extraction)

    @property
    def length(self) -> int:
        return len(self.token_ids)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["length"] = self.length
        return d


@dataclass
class DiagnoseResult:
    """Everything `diagnose` measured. `signals` keeps the registration order. `references`: with the oracle, the
    reference rows scored like the methods (`answer_only`: credit spread evenly over the final answer's tokens;
    `inverted:<method>`: the method's weights reversed in rank)."""

    signals: dict[str, SignalSummary]
    absent: dict[str, str]
    completions: list[CompletionRecord]
    settings: dict[str, Any]
    has_adapter: bool
    notes: list[str] = field(default_factory=list)
    references: dict[str, SignalSummary] = field(default_factory=dict)

    def to_dict(self, *, completions: bool = True) -> dict[str, Any]:
        """JSON-ready dict: {"signals": {name: {...}}, "absent", "notes", "settings", "completions"}.

        For convenience every signal object is also a top-level key (unless its name collides with
        one of the fixed keys), so `d["arca"]["gini"]` and `d["signals"]["arca"]["gini"]` both work.
        """
        sig = {name: s.to_dict() for name, s in self.signals.items()}
        d: dict[str, Any] = {
            "signals": sig,
            "references": {name: s.to_dict() for name, s in self.references.items()},
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
        """The per-signal summary as aligned plain-text tables (what `arca diagnose` prints): the credit's shape, then,
        with the oracle, each method's oracle scores beside its shuffled control and the reference rows."""
        head = ["signal", "gini", "EffN/T", "top10%", "first tok", "regime", "rho vs arca", "rows"]
        rows = [head]
        for s in self.signals.values():
            rows.append([
                s.name, _f3(s.gini), _f3(s.effective_token_ratio), _f3(s.top10_mass), _f3(s.first_token_mass),
                s.regime or "-", _f3(s.spearman_vs_arca), str(s.n_rows),
            ])  # fmt: skip
        lines = _aligned(rows, left=(0, 5))
        if any(s.oracle_lift is not None for s in self.signals.values()):
            lines += ["", *self._oracle_table()]
        mix = self.settings.get("mix", 1.0)
        lines.append(
            f"credit mix in force: lambda = {mix:g} (weights = (1 - lambda) / T + lambda * signal weights"
            + ("; the signals alone)" if mix == 1 else ")")
        )
        if self.settings.get("credit_settings_from"):
            lines.append(f"credit settings: {self.settings.get('credit_settings', '-')} "
                         f"(from {self.settings['credit_settings_from']})")  # fmt: skip
        for name, why in self.absent.items():
            lines.append(f"{name}: absent ({why})")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)

    def _oracle_table(self) -> list[str]:
        head = [
            "method", "oracle lift", "95% CI", "rho vs |delta|", "top match", "shuffled", "signed cos", "95% CI",
            "shuffled", "placement", "95% CI",
        ]  # fmt: skip
        rows = [head]
        named = [*self.signals.values(), *self.references.values()]
        for s in named:
            lift = s.oracle_lift or {}
            signed = s.oracle_signed or {}
            shuffled = s.oracle_shuffled or {}
            place = (s.oracle_placement or {}).get("signed") or {}
            rows.append([
                s.name, _f3(lift.get("mean")), _ci(lift), _f3(s.oracle_spearman), _f3(s.oracle_top_match),
                _f3((shuffled.get("top_match") or {}).get("mean")), _f3(signed.get("mean")), _ci(signed),
                _f3((shuffled.get("signed") or {}).get("mean")), _f3(place.get("mean")), _ci(place),
            ])  # fmt: skip
        lines = _aligned(rows, left=(0,))
        if self.references:
            lines.insert(2 + len(self.signals), lines[1])  # the reference rows below a rule
        lines.append(
            "oracle: shuffled = the same weights permuted within each completion (same shape, random place); "
            "placement = signed cos - its shuffled control; 95% CI: percentile bootstrap over prompts"
        )
        return lines

    def write(
        self, out_dir: str | Path, *, title: str | None = None, max_html_completions: int = 64
    ) -> dict[str, Path]:
        """Write `diagnose.json`, `report.html` and the PNG histograms into `out_dir`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {"diagnose.json": out / "diagnose.json"}
        self.to_json(files["diagnose.json"])
        # the page is drawn from the same JSON form
        files.update(write_diagnose_page(self.to_dict(), out, title=title, max_html_completions=max_html_completions))
        return files


def _aligned(rows: list[list[str]], *, left: tuple[int, ...]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _ci(d: dict[str, Any]) -> str:
    return "-" if d.get("ci_low") is None else f"[{_f3(d['ci_low'])}, {_f3(d.get('ci_high'))}]"


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


def num(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
