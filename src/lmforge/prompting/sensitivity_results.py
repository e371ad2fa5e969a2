"""The results of the sensitivity sweeps (`lmforge.prompting.sensitivity`): plain data.

`Trial` is one evaluated prompt (its k, seed, format, shown labels in order, and per
variant accuracy, macro-F1, predicted-label shares and mean probabilities); `Skip` a
point a sweep did not run and why; `Sweep` a whole sweep, with its table rows
(`summary`), headline numbers (`headline`, `gap`) and a JSON round trip
(`to_dict` / `from_dict`), so tables and plots are made without the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .metrics import spread
from .tasks import Example

VARIANTS = ("uncalibrated", "calibrated", "affine")


@dataclass
class Trial:
    """One evaluated prompt: where it sits in the sweep and what it scored, per variant."""

    k: int
    seed: int
    fmt: str
    order: list[str]  # the shown examples' labels, in order
    demos: list[str]  # the shown examples' file:line, in order
    accuracy: dict[str, float]  # variant -> accuracy
    macro_f1: dict[str, float]
    predicted_share: dict[str, dict[str, float]]  # variant -> label -> share of predictions
    # variant -> label -> mean probability (normalised over the labels): moves even when one
    # label wins every argmax
    mean_prob: dict[str, dict[str, float]] = field(default_factory=dict)
    preds: dict[str, list[str | None]] = field(repr=False, default_factory=dict)
    perm: int = -1  # permutations sweep: which order of the draw (0 = as drawn)
    p_cf: list[float] | None = None
    prompt_tokens: float = 0.0
    probe: str = ""  # probes: "majority=<label>@<minority position>" or "last=<label>"

    @property
    def last_label(self) -> str | None:
        return self.order[-1] if self.order else None

    def share(self, label: str, variant: str = "uncalibrated", of: str = "pred") -> float:
        """Share of this trial's predictions that are `label` (``of="prob"``: its mean
        probability instead)."""
        table = self.predicted_share if of == "pred" else self.mean_prob
        return table.get(variant, {}).get(label, float("nan") if of == "prob" else 0.0)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("preds")
        return d


@dataclass
class Skip:
    """A point of a sweep that was not evaluated, and why."""

    k: int
    fmt: str
    reason: str


@dataclass
class Sweep:
    """One experiment on one task: its trials, what it skipped, the test set's base rates."""

    name: str  # one of evaluate.SWEEPS
    task: str
    labels: list[str]
    base_rate: dict[str, float]  # label -> share of the test examples' gold labels
    n_test: int
    trials: list[Trial] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)

    def variants(self) -> list[str]:
        have = {v for t in self.trials for v in t.accuracy}
        return [v for v in VARIANTS if v in have]

    # -- tables ----------------------------------------------------------------------

    def summary(self) -> list[dict[str, Any]]:
        """The rows of this sweep's table (see the module doc), in sweep order."""
        return {
            "k": self._by_k,
            "permutations": self._by_draw,
            "formats": self._by_format,
            "recency": self._by_order,
            "majority": self._by_order,
        }[self.name]()

    def _acc(self, trials: Sequence[Trial]) -> dict[str, dict[str, float]]:
        return {v: spread([t.accuracy[v] for t in trials]) for v in self.variants()}

    def _group(self, key: Callable[[Trial], Any]) -> dict[Any, list[Trial]]:
        out: dict[Any, list[Trial]] = {}
        for t in self.trials:
            out.setdefault(key(t), []).append(t)
        return out

    def _by_k(self) -> list[dict[str, Any]]:
        rows = []
        for k, group in self._group(lambda t: t.k).items():
            rows.append({"k": k, "n": len(group), "prompt_tokens": _mean_tokens(group),
                         "accuracy": self._acc(group),
                         "predicted_share": self._shares(group)})  # fmt: skip
        return rows

    def _shares(self, trials: Sequence[Trial]) -> dict[str, dict[str, float]]:
        """variant -> label -> mean share of predictions over `trials`."""
        return {
            v: {c: _mean([t.share(c, v) for t in trials]) for c in self.labels}
            for v in self.variants()
        }

    def _by_draw(self) -> list[dict[str, Any]]:
        """Per (k, seed): the spread across orders; then per k, every order of every seed."""
        rows = []
        for (k, seed), group in self._group(lambda t: (t.k, t.seed)).items():
            rows.append({"k": k, "seed": seed, "n": len(group), "accuracy": self._acc(group)})
        draws = self._group(lambda t: (t.k, t.seed))
        for k, group in self._group(lambda t: t.k).items():
            mine = [g for (k2, _), g in draws.items() if k2 == k]
            within = {
                v: _mean([spread([t.accuracy[v] for t in g])["std"] for g in mine])
                for v in self.variants()
            }
            rows.append({"k": k, "seed": "all", "n": len(group), "accuracy": self._acc(group),
                         "mean_std_within_draw": within})  # fmt: skip
        return rows

    def _by_format(self) -> list[dict[str, Any]]:
        """Per k: per format the spread across seeds, then every (format, seed) pooled."""
        rows = []
        for k, trials in self._group(lambda t: t.k).items():
            groups: dict[str, list[Trial]] = {}
            for t in trials:
                groups.setdefault(t.fmt, []).append(t)
            rows += [
                {"k": k, "fmt": f, "n": len(g), "prompt_tokens": _mean_tokens(g),
                 "accuracy": self._acc(g)}
                for f, g in groups.items()
            ]  # fmt: skip
            across = {
                v: spread([spread([t.accuracy[v] for t in g])["mean"] for g in groups.values()])
                for v in self.variants()
            }
            rows.append({"k": k, "fmt": "all", "n": len(trials),
                         "prompt_tokens": _mean_tokens(trials), "accuracy": self._acc(trials),
                         "format_means": across})  # fmt: skip
        return rows

    def _by_order(self) -> list[dict[str, Any]]:
        """Per probe order: the share of its probed label (last / majority) per variant."""
        rows = []
        for (probe, order), group in self._group(lambda t: (t.probe, tuple(t.order))).items():
            label = probe_label(probe)
            rows.append({
                "probe": probe, "order": list(order), "label": label, "n": len(group),
                "base_rate": self.base_rate.get(label, 0.0),
                "share": {v: spread([t.share(label, v) for t in group]) for v in self.variants()},
                # the same label's share when another label is last / the majority
                "share_off": {v: self._share_off(label, v) for v in self.variants()},
                "prob": {v: _mean([t.share(label, v, "prob") for t in group])
                         for v in self.variants()},
                "prob_off": {v: self._share_off(label, v, "prob") for v in self.variants()},
                "accuracy": self._acc(group),
            })  # fmt: skip
        return rows

    def headline(self) -> dict[str, Any]:
        """The numbers a reader wants first (see the module doc), per variant."""
        vs = self.variants()
        if not self.trials:
            return {}
        if self.name in ("recency", "majority"):
            rows = self.summary()
            return {
                v: {
                    "share": _mean([r["share"][v]["mean"] for r in rows]),
                    "base_rate": _mean([r["base_rate"] for r in rows]),
                    "gap": self.gap(v),
                    "prob_gap": self.gap(v, "prob"),
                    "accuracy": _mean([t.accuracy[v] for t in self.trials]),
                }
                for v in vs
            }
        if self.name == "k":  # mean accuracy at each k
            return {
                v: {str(k): _mean([t.accuracy[v] for t in g])
                    for k, g in self._group(lambda t: t.k).items()}
                for v in vs
            }  # fmt: skip
        # permutations, formats: the largest k evaluated (the sweeps usually have one)
        k = max(t.k for t in self.trials)
        mine = [t for t in self.trials if t.k == k]
        out: dict[str, Any] = {}
        for v in vs:
            acc = spread([t.accuracy[v] for t in mine])
            h = {"k": k, "accuracy": acc["mean"], "std": acc["std"], "min": acc["min"],
                 "max": acc["max"]}  # fmt: skip
            if self.name == "permutations":
                draws: dict[int, list[float]] = {}
                for t in mine:
                    draws.setdefault(t.seed, []).append(t.accuracy[v])
                h["mean_std_within_draw"] = _mean([spread(a)["std"] for a in draws.values()])
            if self.name == "formats":
                last = [r for r in self.summary() if r["k"] == k and r["fmt"] == "all"][0]
                h["std_of_format_means"] = last["format_means"][v]["std"]
            out[v] = h
        return out

    def _share_off(self, label: str, variant: str, of: str = "pred") -> float:
        """Mean share (or probability) of `label` over the probe trials about another label."""
        return _mean([t.share(label, variant, of) for t in self.trials
                      if probe_label(t.probe) != label])  # fmt: skip

    def gap(self, variant: str = "uncalibrated", of: str = "pred") -> float:
        """Probes: mean over labels L of share(L | L probed) - share(L | another label probed).

        Probed = last (recency) or the majority (majority). 0 when the position or
        the count of a label's examples does not change how often it is predicted.
        ``of="prob"``: the same with L's mean probability, which shows a bias even when
        another label wins every argmax.
        """
        gaps = []
        for label in self.labels:
            on = [t.share(label, variant, of) for t in self.trials
                  if probe_label(t.probe) == label]  # fmt: skip
            off = self._share_off(label, variant, of)
            if on and off == off:  # off is NaN when no trial is about another label
                gaps.append(_mean(on) - off)
        return _mean(gaps)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sweep:
        """A sweep back from `to_dict` (results.json), to redraw its table and plots; the
        per-example predictions are not stored, so ``Trial.preds`` is empty."""
        trials = [Trial(**{k: v for k, v in t.items() if k in _TRIAL_FIELDS}) for t in d["trials"]]
        return cls(
            name=d["sweep"], task=d["task"], labels=list(d["labels"]),
            base_rate=dict(d["base_rate"]), n_test=int(d["n_test"]), trials=trials,
            skipped=[Skip(**x) for x in d["skipped"]],
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "sweep": self.name,
            "task": self.task,
            "labels": self.labels,
            "n_test": self.n_test,
            "base_rate": self.base_rate,
            "headline": self.headline(),
            "summary": self.summary(),
            "skipped": [dataclasses.asdict(s) for s in self.skipped],
            "trials": [t.to_dict() for t in self.trials],
        }


_TRIAL_FIELDS = {f.name for f in dataclasses.fields(Trial)}


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _mean_tokens(trials: Sequence[Trial]) -> float:
    return _mean([t.prompt_tokens for t in trials])


def probe_label(probe: str) -> str:
    """The label a probe trial is about: ``last=neg`` -> ``neg``, ``majority=pos@0`` -> ``pos``."""
    return probe.split("=", 1)[1].rsplit("@", 1)[0] if "=" in probe else ""


def base_rates(test: Sequence[Example], labels: Sequence[str]) -> dict[str, float]:
    """Each label's share of the gold labels of `test`."""
    n = len(test)
    return {c: (sum(ex.label == c for ex in test) / n if n else 0.0) for c in labels}
