"""`lmforge eval reward`: how well a reward model ranks held-out preference pairs.

For every pair the model scores chosen and rejected (`reward_scores`); a pair is
ranked right when r_chosen > r_rejected. The evaluation reports:

* pairwise accuracy overall and **by margin bucket** — the pair's rating when it
  has one (LLaMA-2's four levels, in their order), else its margin — with 95%
  Wilson intervals: Touvron et al. (2023, Table 8) find accuracy higher for
  clearly-better pairs, and so should a working reward model;
* the same by the records' other labels when present (task family, rejection kind);
* the reward distributions of chosen and rejected answers (``rewards.png``,
  histograms; their means and spread in the table);
* calibration: the model's confidence in the order it gives, max(σ(r_c − r_r),
  1 − σ(r_c − r_r)), binned, against the share of pairs it ranked right in each
  bin (``calibration.png``, a reliability table, and the expected calibration
  error).

It writes ``scores.jsonl`` (one line per pair: where, labels, both rewards),
``results.json`` (marked ``"kind": "lmforge eval reward"``), ``results.md`` and the
two PNGs into ``--out`` (default ``RUN/eval-reward``), complete or not at all.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common import LmforgeError
from .tasks_stats import Accuracy

RESULTS_KIND = "lmforge eval reward"
RATING_ORDER = ("significantly_better", "better", "slightly_better", "negligibly_better")
LABEL_FIELDS = {"task": "task family", "rejected_kind": "rejected answer"}
CALIBRATION_BINS = 10


@dataclass
class PairScore:
    where: str
    chosen: float
    rejected: float
    bucket: str  # rating, or "margin X"
    labels: dict[str, str]

    @property
    def right(self) -> bool:
        return self.chosen > self.rejected

    @property
    def p_chosen(self) -> float:
        """σ(r_c − r_r): the probability the model gives to chosen being better."""
        d = self.chosen - self.rejected
        return 1 / (1 + math.exp(-d)) if d > -700 else 0.0

    @property
    def confidence(self) -> float:
        """How sure the model is of the order it gives: max(p, 1 − p) in [0.5, 1]."""
        return max(self.p_chosen, 1 - self.p_chosen)

    def to_dict(self) -> dict[str, Any]:
        return {"where": self.where, "bucket": self.bucket, **self.labels,
                "reward_chosen": self.chosen, "reward_rejected": self.rejected}  # fmt: skip


def bucket_of(pair: Any) -> str:
    """A pair's margin bucket: its rating when it has one, else its margin value."""
    if pair.rating:
        return str(pair.rating)
    return f"margin {pair.margin:g}"


def bucket_order(buckets: Sequence[str]) -> list[str]:
    """LLaMA-2's ratings first (largest gap first), then margins from largest down."""

    def key(b: str):
        if b in RATING_ORDER:
            return (0, RATING_ORDER.index(b), 0.0)
        if b.startswith("margin "):
            return (1, 0, -float(b.split()[1]))
        return (2, 0, 0.0)

    return sorted(set(buckets), key=key)


def score_pairs(
    model: Any, tok: Any, pairs: Sequence[Any], batch_size: int = 32, likelihood: bool = False
) -> list[PairScore]:
    """Both sides of every pair scored by the reward model (with `likelihood`: by the
    answer's log-probability under a language model)."""
    from .reward_scores import score_responses

    items = [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs]
    scores = score_responses(model, tok, items, batch_size=batch_size, likelihood=likelihood)
    n = len(pairs)
    out = []
    for p, c, r in zip(pairs, scores[:n], scores[n:]):
        labels = {k: str(p.meta[k]) for k in LABEL_FIELDS if p.meta.get(k) is not None}
        out.append(PairScore(p.where, c, r, bucket_of(p), labels))
    return out


def calibration(scores: Sequence[PairScore], bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Reliability of the model's confidence in its ranking.

    A pair's preference probability p = σ(r_c − r_r) ranks it right exactly when
    p > 0.5, so binning p itself says nothing; the model's *confidence* in the order
    it gives is c = max(p, 1 − p) in [0.5, 1]. Per confidence bin: the mean
    confidence and the share of pairs ranked right (a calibrated model is right 70%
    of the time when 70% sure). The ECE is the pair-weighted mean gap between the two.
    """
    rows: list[dict[str, Any]] = []
    ece = 0.0
    width = 0.5 / bins
    for b in range(bins):
        lo, hi = 0.5 + b * width, 0.5 + (b + 1) * width
        last = b == bins - 1
        inside = [s for s in scores if lo <= s.confidence < hi or (last and s.confidence >= hi)]
        if not inside:
            continue
        conf = sum(s.confidence for s in inside) / len(inside)
        acc = sum(s.right for s in inside) / len(inside)
        ece += len(inside) / len(scores) * abs(conf - acc)
        rows.append({"bin": [lo, hi], "n": len(inside), "confidence": conf, "share_right": acc})
    return {"bins": rows, "ece": ece}


def summarize(scores: Sequence[PairScore]) -> dict[str, Any]:
    """Accuracy overall, by bucket and by label; reward statistics; calibration."""
    if not scores:
        raise LmforgeError("no pairs to evaluate")

    def acc(items: Sequence[PairScore]) -> dict[str, Any]:
        return Accuracy(sum(s.right for s in items), len(items)).to_dict()

    groups: dict[str, dict[str, list[PairScore]]] = defaultdict(lambda: defaultdict(list))
    for s in scores:
        groups["bucket"][s.bucket].append(s)
        for k, v in s.labels.items():
            groups[k][v].append(s)
    by = {
        "bucket": {b: acc(groups["bucket"][b]) for b in bucket_order(list(groups["bucket"]))},
        **{k: {v: acc(items) for v, items in sorted(groups[k].items())}
           for k in LABEL_FIELDS if k in groups},
    }  # fmt: skip

    def stats(xs: list[float]) -> dict[str, float]:
        m = sum(xs) / len(xs)
        return {"mean": m, "std": math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs)),
                "min": min(xs), "max": max(xs)}  # fmt: skip

    return {
        "pairs": len(scores),
        "accuracy": acc(scores),
        "by": by,
        "rewards": {"chosen": stats([s.chosen for s in scores]),
                    "rejected": stats([s.rejected for s in scores])},
        "calibration": calibration(scores),
    }  # fmt: skip


def results_markdown(res: dict[str, Any], about: dict[str, Any]) -> str:
    """results.md: the accuracy tables, the reward statistics and the reliability table."""

    def cell(a: dict[str, Any]) -> str:
        return Accuracy(a["correct"], a["n"]).cell()

    lines = [
        "# Reward model evaluation",
        "",
        f"Run `{about.get('run', '?')}` on {', '.join(about.get('data', []))}: "
        f"{res['pairs']:,} pairs, pairwise accuracy {cell(res['accuracy'])}.",
        "",
    ]
    if about.get("score") == "log-likelihood":
        lines[0] = "# Pairwise ranking by a language model's likelihood"
        lines[-1:] = ["", "Each answer's reward is its summed log-probability under the run "
                      "(`--likelihood`): σ of the difference is the calibration's confidence.",
                      ""]  # fmt: skip
    titles = {"bucket": "margin bucket", **LABEL_FIELDS}
    for group, rows in res["by"].items():
        lines += [f"| {titles[group]} | accuracy (right/n) [95% CI] |", "| --- | --- |"]
        lines += [f"| {label.replace('_', ' ')} | {cell(a)} |" for label, a in rows.items()]
        lines.append("")
    r = res["rewards"]
    lines += ["| reward | mean | std | min | max |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {k} | {v['mean']:.3f} | {v['std']:.3f} | {v['min']:.3f} | {v['max']:.3f} |"
              for k, v in r.items()]  # fmt: skip
    cal = res["calibration"]
    lines += ["", f"Calibration: expected calibration error {cal['ece']:.3f}.", "",
              "| confidence bin | pairs | mean confidence | share ranked right |",
              "| --- | --- | --- | --- |"]  # fmt: skip
    lines += [f"| {b['bin'][0]:.2f}–{b['bin'][1]:.2f} | {b['n']} | {b['confidence']:.3f} | "
              f"{b['share_right']:.3f} |" for b in cal["bins"]]  # fmt: skip
    lines += ["", "![rewards](rewards.png) ![calibration](calibration.png)", ""]
    return "\n".join(lines)


def plot_rewards(scores: Sequence[PairScore], path: Path) -> None:
    """Histograms of chosen and rejected rewards on shared bins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    allr = [s.chosen for s in scores] + [s.rejected for s in scores]
    lo, hi = min(allr), max(allr)
    bins = [lo + (hi - lo) * i / 40 for i in range(41)] if hi > lo else 10
    ax.hist([s.chosen for s in scores], bins=bins, alpha=0.6, label="chosen")
    ax.hist([s.rejected for s in scores], bins=bins, alpha=0.6, label="rejected")
    ax.set_xlabel("reward")
    ax.set_ylabel("answers")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_calibration(cal: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0.5, 1], [0.5, 1], "--", color="grey", label="calibrated")
    xs = [b["confidence"] for b in cal["bins"]]
    ys = [b["share_right"] for b in cal["bins"]]
    ax.plot(xs, ys, "o-", label=f"model (ECE {cal['ece']:.3f})")
    ax.set_xlabel("confidence max(σ(r_c − r_r), 1 − σ(r_c − r_r))")
    ax.set_ylabel("share ranked right")
    ax.set_xlim(0.5, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def is_reward_eval_folder(path: Path) -> bool:
    from ..outputs import has_results_of_kind

    return has_results_of_kind(path, RESULTS_KIND, "results.json")


def write_reward_eval(out: Path, scores: Sequence[PairScore], about: dict[str, Any]) -> dict:
    """Write the evaluation folder (see the module doc) atomically; returns results.json's dict."""
    from ..common import replace_folder

    res = summarize(scores)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with open(tmp / "scores.jsonl", "w", encoding="utf-8") as f:
            for s in scores:
                f.write(json.dumps(s.to_dict(), ensure_ascii=False) + "\n")
        doc = {"kind": RESULTS_KIND, "version": 1, **about, **res}
        (tmp / "results.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        (tmp / "results.md").write_text(results_markdown(res, about), encoding="utf-8")
        plot_rewards(scores, tmp / "rewards.png")
        plot_calibration(res["calibration"], tmp / "calibration.png")
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return doc
