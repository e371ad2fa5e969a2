"""Accuracies with counts and 95% Wilson intervals, overall and per group of records.

The groups every task evaluation reports (`GROUPS`): ``overall``; ``task`` (the
family: arithmetic, facts, ...); ``difficulty``; ``split`` (seen templates,
held-out templates, held-out tasks); ``mode`` (chain-of-thought or direct).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile

GROUPS = ("overall", "task", "difficulty", "split", "mode")
GROUP_TITLES = {
    "overall": "overall",
    "task": "task family",
    "difficulty": "difficulty",
    "split": "split",
    "mode": "answer mode",
}
# Labels shown in this order first (the rest sorted after them).
_FIRST = {"split": ("seen", "heldout_templates", "heldout_task"), "mode": ("direct", "cot")}


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `correct / n` ((0, 1) when n is 0).

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or
    n successes, which small eval sets hit often.
    """
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At 0 or n successes the bound is exactly 0 or 1 (rounding would miss it by an ulp).
    low = 0.0 if correct <= 0 else max(0.0, centre - half)
    high = 1.0 if correct >= n else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class Accuracy:
    """`correct` of `n` records right, with its 95% Wilson interval."""

    correct: int
    n: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "accuracy": self.accuracy,
            "correct": self.correct,
            "n": self.n,
            "ci95": [low, high],
        }

    def cell(self) -> str:
        """``62.0% (31/50) [48.2, 74.1]``: accuracy, counts, interval in percent."""
        low, high = self.interval
        return (
            f"{100 * self.accuracy:.1f}% ({self.correct}/{self.n}) "
            f"[{100 * low:.1f}, {100 * high:.1f}]"
        )


def group_labels(meta: Mapping[str, Any], split: str) -> dict[str, str]:
    """The label of one record in each group (task, difficulty, split, mode)."""
    difficulty = meta.get("difficulty")
    return {
        "overall": "all",
        "task": str(meta.get("task") or "unknown"),
        "difficulty": "-" if difficulty is None else str(difficulty),
        "split": split,
        "mode": "cot" if meta.get("cot") else "direct",
    }


def order_labels(group: str, labels: Iterable[str]) -> list[str]:
    first = _FIRST.get(group, ())

    def key(label: str):
        if label in first:
            return (0, first.index(label), 0.0, label)
        try:  # difficulties sort as numbers
            return (1, 0, float(label), label)
        except ValueError:
            return (2, 0, 0.0, label)

    return sorted(set(labels), key=key)


def aggregate(rows: Iterable[tuple[dict[str, str], bool]]) -> dict[str, dict[str, Accuracy]]:
    """``{group: {label: Accuracy}}`` from (labels of a record, correct) pairs, labels ordered."""
    counts: dict[str, dict[str, list[int]]] = {g: {} for g in GROUPS}
    for labels, correct in rows:
        for g in GROUPS:
            c = counts[g].setdefault(labels[g], [0, 0])
            c[0] += int(bool(correct))
            c[1] += 1
    return {
        g: {label: Accuracy(*counts[g][label]) for label in order_labels(g, counts[g])}
        for g in GROUPS
    }


@dataclass(frozen=True)
class PairedChange:
    """How one model's answers changed against a baseline's on the same records.

    ``gained``: right now, wrong in the baseline; ``lost``: the reverse; ``n``: records both
    scored. ``z`` is McNemar's statistic, (gained - lost) / sqrt(gained + lost): the
    records both get right or both get wrong say nothing about which model is better, so a
    difference of two accuracies is judged by the discordant records alone (|z| > 1.96:
    significant at 5%, two-sided). Much tighter than comparing two Wilson intervals when
    the models agree on most records, as a fine-tuned model and its parent do.
    """

    gained: int
    lost: int
    n: int

    @property
    def z(self) -> float:
        d = self.gained + self.lost
        return (self.gained - self.lost) / math.sqrt(d) if d else 0.0

    def cell(self) -> str:
        """``+12 / −5 of 450, z 1.70``."""
        return f"+{self.gained} / −{self.lost} of {self.n}, z {self.z:.2f}"


def paired_changes(
    base: Iterable[tuple[str, dict[str, str], bool]],
    other: Iterable[tuple[str, dict[str, str], bool]],
) -> dict[str, dict[str, PairedChange]]:
    """``{group: {label: PairedChange}}`` of `other` against `base`, from (record key, labels,
    correct) triples; only records both scored count (matched by key), labels from `other`."""
    before = {key: correct for key, _, correct in base}
    counts: dict[str, dict[str, list[int]]] = {g: {} for g in GROUPS}
    for key, labels, correct in other:
        if key not in before:
            continue
        for g in GROUPS:
            c = counts[g].setdefault(labels[g], [0, 0, 0])
            c[0] += correct and not before[key]
            c[1] += before[key] and not correct
            c[2] += 1
    return {
        g: {label: PairedChange(*counts[g][label]) for label in order_labels(g, counts[g])}
        for g in GROUPS
        if counts[g]
    }
