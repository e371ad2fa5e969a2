"""Classification metrics: accuracy, macro-F1, the predicted-label distribution, confusion counts.

`classification_metrics(gold, pred, labels)` scores one set of predictions; a
prediction may be ``None`` (a generated answer that names no label): it counts as
wrong and is tallied as ``NO_LABEL``. Macro-F1 averages per-label F1 over the
labels that occur among the gold labels or the predictions (as scikit-learn does
by default), a label's F1 being 0 when it is never predicted correctly.
`spread(values)` is what a table reports across seeds: mean, std (population,
as "Calibrate Before Use" reports it), min, max.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

NO_LABEL = "(none)"


@dataclass
class ClassificationMetrics:
    n: int
    accuracy: float
    macro_f1: float
    per_label: dict[str, dict[str, float]]  # label -> precision, recall, f1, support
    predicted: dict[str, int]  # label -> how often it was predicted (every task label listed)
    confusion: dict[str, dict[str, int]]  # gold -> predicted -> count

    def predicted_share(self) -> dict[str, float]:
        return {k: (v / self.n if self.n else 0.0) for k, v in self.predicted.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_label": self.per_label,
            "predicted": self.predicted,
            "confusion": self.confusion,
        }


def classification_metrics(
    gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]
) -> ClassificationMetrics:
    """Metrics of predictions `pred` against `gold` over the label set `labels`."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    p = [NO_LABEL if x is None else x for x in pred]
    n = len(gold)
    cols = list(labels) + ([NO_LABEL] if NO_LABEL in p else [])
    extra = sorted({x for x in p if x not in cols})
    cols += extra
    confusion = {g: {c: 0 for c in cols} for g in labels}
    for g, x in zip(gold, p):
        confusion.setdefault(g, {c: 0 for c in cols})[x] += 1
    predicted = {c: sum(1 for x in p if x == c) for c in cols}
    correct = sum(1 for g, x in zip(gold, p) if g == x)
    per_label: dict[str, dict[str, float]] = {}
    present = [c for c in labels if c in set(gold) or predicted.get(c, 0)]
    for c in labels:
        tp = confusion.get(c, {}).get(c, 0)
        support = sum(1 for g in gold if g == c)
        npred = predicted.get(c, 0)
        precision = tp / npred if npred else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[c] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    macro = sum(per_label[c]["f1"] for c in present) / len(present) if present else 0.0
    return ClassificationMetrics(
        n=n,
        accuracy=correct / n if n else 0.0,
        macro_f1=macro,
        per_label=per_label,
        predicted=predicted,
        confusion=confusion,
    )


def spread(values: Sequence[float]) -> dict[str, float]:
    """mean, std (population), min, max and n of `values`."""
    v = list(values)
    if not v:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    mean = sum(v) / len(v)
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / len(v))
    return {"mean": mean, "std": std, "min": min(v), "max": max(v), "n": len(v)}
