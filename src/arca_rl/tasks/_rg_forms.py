"""What a reasoning-gym question is (its form), and whether two splits are one mixture of forms.

Private module of `arca_rl.tasks.reasoning_gym`.

`question_form` describes one item: for ``basic_arithmetic`` what the question looks like (the binary operators,
brackets and whether one is negated, negative terms, the numbers of terms and digits, the answer's sign, and the
operators and brackets together); for any other data set the scalar values of the metadata reasoning-gym returns
(``num_digits``, ``source_dataset`` of a composite, ...). Declared options are not enough: with two one-digit terms
every question has ``num_digits`` 1, yet a held-out split that kept the first distinct questions held 12% plain
divisions against 3% in training (issue 39).

`compare_splits` tests each feature with a chi-square test of homogeneity (the held-out and training counts of
each value; values too rare for the test, expected count < 5, are pooled), and reports its total variation
distance. `split_mismatch` words the features whose p-value, Bonferroni-corrected over the features compared, is
below `ALPHA`: splits drawn from one generator then warn about once in a thousand configurations, while a real
difference of a few points is found at a few hundred problems per split.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ALPHA", "FormDifference", "compare_splits", "question_form", "split_mismatch"]

#: Corrected p-value below which the splits are reported as different mixtures.
ALPHA = 1e-3
_MAX_VALUES = 50  # a feature with more values than this is not a "form" (an index, a free number): not compared
_MIN_EXPECTED = 5.0  # the chi-square test's usual condition on every cell's expected count

_BINARY = re.compile(r"(?<=[\d)])[-+*/]")  # an operator after a number or a closing bracket (spaces removed)
_NEGATED_BRACKET = re.compile(r"(?<![\d)])-\(")
_NEGATIVE_TERM = re.compile(r"(?<![\d)])-(?=\d)")


def _sign(answer: Any) -> str:
    try:
        value = float(str(answer).replace("\u2212", "-"))
    except ValueError:
        return "not a number"
    return "negative" if value < 0 else "zero" if value == 0 else "positive"


def _arithmetic_form(item: Mapping[str, Any]) -> dict[str, str]:
    metadata = item.get("metadata") or {}
    expression = str(metadata.get("expression") or item.get("question", ""))
    compact = expression.replace(" ", "")
    operators = "".join(sorted(set(_BINARY.findall(compact)))) or "none"
    brackets = "negated" if _NEGATED_BRACKET.search(compact) else "plain" if "(" in compact else "none"
    return {
        "operators": operators,
        "brackets": brackets,
        "operators and brackets": f"{operators} {brackets}",
        "negative terms": str(len(_NEGATIVE_TERM.findall(compact))),
        "terms": str(metadata.get("num_terms", "?")),
        "digits": str(metadata.get("num_digits", "?")),
        "answer sign": _sign(item.get("answer")),
    }


def question_form(item: Mapping[str, Any], dataset: str) -> dict[str, str]:
    """The features of one reasoning-gym item that say what kind of question it is (see the module docstring)."""
    metadata = item.get("metadata") or {}
    form: dict[str, str] = {}
    for key, value in metadata.items():
        if isinstance(value, int | str) and not isinstance(value, bool) and key != "source_index":
            form[key] = str(value)
    if dataset == "basic_arithmetic" or metadata.get("source_dataset") == "basic_arithmetic":
        for key in ("expression", "num_terms", "num_digits"):
            form.pop(key, None)
        form.update(_arithmetic_form(item))
    return form


@dataclass(frozen=True)
class FormDifference:
    """One feature of the question forms, compared between the held-out and the training split."""

    feature: str
    held_out: dict[str, float]
    """Each value's share of the held-out split."""
    training: dict[str, float]
    """Each value's share of the training split."""
    total_variation: float
    """Half the summed absolute difference of the shares: 0 for one mixture, 1 for disjoint ones."""
    p_value: float
    """Chi-square test of homogeneity (rare values pooled), not corrected for the number of features."""


def _counts(forms: Sequence[Mapping[str, str]], feature: str) -> collections.Counter[str]:
    return collections.Counter(form[feature] for form in forms if feature in form)


def compare_splits(
    held_out: Sequence[Mapping[str, Any]], training: Sequence[Mapping[str, Any]], dataset: str
) -> list[FormDifference]:
    """Every feature of `question_form` with at least two values, compared between the splits (items as
    reasoning-gym returns them)."""
    from scipy.stats import chi2_contingency

    test_forms = [question_form(item, dataset) for item in held_out]
    train_forms = [question_form(item, dataset) for item in training]
    features = sorted({key for form in test_forms for key in form} & {key for form in train_forms for key in form})
    out = []
    for feature in features:
        a, b = _counts(test_forms, feature), _counts(train_forms, feature)
        n_a, n_b = sum(a.values()), sum(b.values())
        values = sorted(set(a) | set(b), key=lambda v: (-(a[v] + b[v]), v))
        if not 1 < len(values) <= _MAX_VALUES or not n_a or not n_b:
            continue
        # pool the rarest values until every cell's expected count reaches _MIN_EXPECTED
        small = min(n_a, n_b) / (n_a + n_b)
        kept = [v for v in values if (a[v] + b[v]) * small >= _MIN_EXPECTED]
        rest = [v for v in values if v not in kept]
        columns = [[a[v], b[v]] for v in kept]
        pooled = [sum(a[v] for v in rest), sum(b[v] for v in rest)]
        if sum(pooled):
            if sum(pooled) * small >= _MIN_EXPECTED or not columns:
                columns.append(pooled)
            else:
                columns[-1] = [columns[-1][0] + pooled[0], columns[-1][1] + pooled[1]]
        if len(columns) < 2:
            continue
        table = [[c[0] for c in columns], [c[1] for c in columns]]
        p_value = float(chi2_contingency(table, correction=False)[1])
        share_a = {v: a[v] / n_a for v in values}
        share_b = {v: b[v] / n_b for v in values}
        distance = 0.5 * sum(abs(share_a[v] - share_b[v]) for v in values)
        out.append(FormDifference(feature, share_a, share_b, distance, p_value))
    return out


def split_mismatch(
    held_out: Sequence[Mapping[str, Any]], training: Sequence[Mapping[str, Any]], dataset: str, fix: str = ""
) -> str | None:
    """One line when the two splits are different mixtures of question forms beyond sampling error (a feature's
    chi-square p-value, Bonferroni-corrected over the features compared, below `ALPHA`), with the figures; else None.
    `fix` ends the line (what to change)."""
    compared = compare_splits(held_out, training, dataset)
    flagged = [d for d in compared if d.p_value * len(compared) < ALPHA]
    if not flagged:
        return None
    parts = []
    for d in sorted(flagged, key=lambda d: d.p_value)[:3]:
        values = sorted(d.held_out, key=lambda v: -abs(d.held_out[v] - d.training[v]))[:4]
        shares = ", ".join(f"{v} {d.held_out[v]:.1%} held-out vs {d.training[v]:.1%} training" for v in values)
        corrected = min(1.0, d.p_value * len(compared))
        parts.append(f"{d.feature} ({shares}; total variation {d.total_variation:.3f}, corrected p = {corrected:.1e})")
    return (
        f"reasoning-gym {dataset}: the held-out ({len(held_out)}) and training ({len(training)}) problems are different"
        f" mixtures of question forms, beyond sampling error: {'; '.join(parts)}; the held-out score then measures"
        f" another mix than the one trained on{'; ' + fix if fix else ''}"
    )
