"""The results of `prompting.cloze`: per item, per draw, and the summary by k, distance and kind.

`ClozeResult.summary()` gives, per k, each metric's mean ± std over the draws
(seeds) overall, by ``distance`` and by ``kind``; `paired_gain` the mean per-item
difference between two k over the same test items with its standard error
(`paired_difference`), which is what says whether shown examples help beyond noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .cloze_data import ClozeItem, ClozeSet
from .metrics import spread

if TYPE_CHECKING:  # the config is cloze's; the results do not need it at run time
    from .cloze import ClozeConfig

LOGPROB = "answer log-prob"  # the one metric that is not a share: mean nats per item


@dataclass
class ItemResult:
    """One test item after one set of shown examples."""

    response: str  # the continuation, cut at a newline
    prediction: str  # lambada: its first word; trivia: the whole (stripped) line
    correct: bool  # lambada: same word; trivia: exact match
    contains: bool | None = None  # trivia: an alias occurs in the response
    choice: str | None = None  # lambada with candidates: the best-scored candidate
    choice_correct: bool | None = None
    answer_logprob: float | None = None  # log p(the answer's tokens | prompt), nats


@dataclass
class ClozeEval:
    k: int
    seed: int
    demos: list[ClozeItem]
    results: list[ItemResult]
    prompt_tokens: float

    def metric(self, name: str, items: Sequence[int] | None = None) -> float | None:
        """Share of items (all, or the indices `items`) right by `name`."""
        rows = self.results if items is None else [self.results[i] for i in items]
        vals = [getattr(r, name) for r in rows]
        vals = [v for v in vals if v is not None]
        return sum(vals) / len(vals) if vals else None


METRICS = {
    "lambada": (
        ("correct", "accuracy"),
        ("choice_correct", "choice accuracy"),
        ("answer_logprob", LOGPROB),
    ),
    "trivia": (("correct", "exact match"), ("contains", "contains"), ("answer_logprob", LOGPROB)),
}


@dataclass
class ClozeResult:
    """Every (k, seed) draw of one set, and its summary by k, distance and kind."""

    set: ClozeSet
    format: str
    config: ClozeConfig
    evals: list[ClozeEval] = field(default_factory=list)

    @property
    def task(self) -> str:
        return self.set.task

    def metrics(self) -> list[tuple[str, str]]:
        """(ItemResult field, column name) of the metrics this result has."""
        return [
            (f, name)
            for f, name in METRICS[self.task]
            if any(e.metric(f) is not None for e in self.evals)
        ]

    def groups(self, by: str) -> dict[str, list[int]]:
        """Test item indices by ``distance`` (a label such as ``"3"``, ``"none"``) or ``kind``."""
        out: dict[str, list[int]] = {}
        for i, item in enumerate(self.set.test):
            if by == "distance":
                key = "not in passage" if item.distance is None else str(min(item.distance, 10))
                key = "10+" if key == "10" else key
            else:
                key = item.kind or "all"
            out.setdefault(key, []).append(i)

        def order(k: str) -> tuple[int, Any]:
            return (0, int(k)) if k.isdigit() else (1, k)

        return dict(sorted(out.items(), key=lambda kv: order(kv[0])))

    def summary(self) -> list[dict[str, Any]]:
        """One row per k: each metric's spread over seeds, overall and per distance/kind."""
        rows = []
        for k in dict.fromkeys(e.k for e in self.evals):
            group = [e for e in self.evals if e.k == k]
            row: dict[str, Any] = {
                "k": k,
                "seeds": len(group),
                "prompt_tokens": sum(e.prompt_tokens for e in group) / len(group),
            }
            for f, name in self.metrics():
                row[name] = spread([e.metric(f) for e in group])
                for by in ("distance", "kind"):
                    row[f"{name} by {by}"] = {
                        key: spread([e.metric(f, idx) for e in group])
                        for key, idx in self.groups(by).items()
                    }
            rows.append(row)
        return rows

    def paired_gain(self, field: str, k: int, base_k: int = 0) -> dict[str, float] | None:
        """`paired_difference` of the items' `field` after k shown examples and after `base_k`
        (each item's value averaged over the seeds of its k)."""
        a = [[getattr(r, field) for r in e.results] for e in self.evals if e.k == k]
        b = [[getattr(r, field) for r in e.results] for e in self.evals if e.k == base_k]
        if not a or not b:
            return None
        out = paired_difference(b, a)
        return None if out is None else {"k": k, "base_k": base_k, **out}

    def to_markdown(self) -> str:
        """Accuracy per k (mean ± std over seeds), then per distance (lambada) or kind."""
        names = [name for _, name in self.metrics()]
        summary = self.summary()
        with_lp = LOGPROB in names and any(r["k"] == 0 for r in summary)
        head = ["k", "seeds", "prompt tokens", *names]
        head += ["log-prob vs k=0 (paired, ± s.e.)"] if with_lp else []
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in summary:
            cells = [str(row["k"]), str(row["seeds"]), f"{row['prompt_tokens']:.0f}"]
            cells += [_cell(n, row[n]) for n in names]
            if with_lp:
                g = self.paired_gain("answer_logprob", row["k"]) if row["k"] else None
                cells.append("–" if g is None else f"{g['gain']:+.3f} ± {g['se']:.3f}")
            lines.append("| " + " | ".join(cells) + " |")
        by = "distance" if self.task == "lambada" else "kind"
        keys = list(self.groups(by))
        if len(keys) > 1:
            for name in names:
                counts = {key: len(idx) for key, idx in self.groups(by).items()}
                lines += ["", f"{name} by {by} (items):", ""]
                head = ["k", *(f"{key} ({counts[key]})" for key in keys)]
                lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                for row in summary:
                    per = row[f"{name} by {by}"]
                    lines.append(
                        "| "
                        + " | ".join([str(row["k"]), *(_cell(name, per[key]) for key in keys)])
                        + " |"
                    )
        return "\n".join(lines) + "\n"


def paired_difference(
    base: Sequence[Sequence[float | bool | None]], other: Sequence[Sequence[float | bool | None]]
) -> dict[str, float] | None:
    """Mean over items of other - base (each a list of draws, each draw a value per item,
    averaged over its draws), with the standard error of that paired difference; items
    with a missing value are left out. None when no item has both."""
    diffs, zero, few = [], [], []
    for i in range(len(base[0])):
        va, vb = [d[i] for d in other], [d[i] for d in base]
        if any(v is None for v in va + vb):
            continue
        fa, fb = sum(map(float, va)) / len(va), sum(map(float, vb)) / len(vb)
        diffs.append(fa - fb)
        zero.append(fb)
        few.append(fa)
    n = len(diffs)
    if n == 0:
        return None
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    return {
        "n": n,
        "zero": sum(zero) / n,
        "few": sum(few) / n,
        "gain": mean,
        "se": (var / n) ** 0.5,
    }


def _cell(name: str, s: dict[str, float]) -> str:
    """A table cell: a share in percent, the answer log-prob in nats; ± std over seeds."""
    if not s.get("n"):
        return "–"
    scale, digits = (1, 2) if name == LOGPROB else (100, 1)
    text = f"{scale * s['mean']:.{digits}f}"
    if s["n"] > 1 and s["std"] > 0:
        text += f" ± {scale * s['std']:.{digits}f}"
    return text
