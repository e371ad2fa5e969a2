"""Size-ladder outputs: the verdict per evaluation, the table, report.md and the two plots.

The verdict compares, at every rung, the few-shot score (the largest k) with the
zero-shot one on the same test items: the mean of the per-item differences and
its standard error (a paired comparison, recorded by the ladder as ``gains``;
for a rung recorded without them, two independent proportions,
``sqrt(p0(1-p0)/n + pk(1-pk)/n)``). A difference counts only beyond twice its
standard error; the claim "few-shot helps only from some size on" is
*supported* when the rungs below some size show no such gain and every rung
from it on does. Besides the accuracies, the answer's log-probability (nats) is
judged the same way: a continuous score that can show a gain that an
all-or-nothing accuracy at the floor cannot.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..common import atomic_write_text

LOGPROB = "answer log-prob"  # = prompting.cloze.LOGPROB (kept light: no import of it here)
# (evaluation, metric) pairs the table, the verdicts and the plots show, in order.
PANELS = (
    ("lambada", "accuracy"),
    ("lambada", "choice accuracy"),
    ("trivia", "exact match"),
    ("sentiment", "accuracy"),
    ("lambada", LOGPROB),
    ("trivia", LOGPROB),
    ("sentiment", LOGPROB),
)
CHANCE = {("sentiment", "accuracy"): 0.5, ("sentiment", LOGPROB): math.log(0.5)}


def panels(result: dict[str, Any], *, shares: bool | None = None) -> list[tuple[str, str]]:
    """The (evaluation, metric) pairs every rung has (only shares / only log-probs if asked)."""
    rungs = result["rungs"]
    out = [
        (ev, m)
        for ev, m in PANELS
        if rungs and all(m in r["evals"].get(ev, {}).get("metrics", []) for r in rungs)
    ]
    if shares is None:
        return out
    return [(ev, m) for ev, m in out if (m != LOGPROB) == shares]


def _row(rung: dict, ev: str, k: int) -> dict | None:
    return next((r for r in rung["evals"][ev]["rows"] if r["k"] == k), None)


def gain(rung: dict, ev: str, metric: str) -> dict[str, float] | None:
    """Zero-shot and few-shot (largest k) score, their difference and its standard error."""
    stored = rung["evals"][ev].get("gains", {}).get(metric)
    if stored:
        return stored
    ks = [r["k"] for r in rung["evals"][ev]["rows"]]
    if 0 not in ks or max(ks) == 0 or metric == LOGPROB:
        return None
    zero, few = _row(rung, ev, 0)[metric]["mean"], _row(rung, ev, max(ks))[metric]["mean"]
    n = rung["evals"][ev]["test"]
    se = math.sqrt((zero * (1 - zero) + few * (1 - few)) / n) if n else math.nan
    return {"k": max(ks), "zero": zero, "few": few, "gain": few - zero, "se": se}


def _status(g: dict[str, float]) -> str:
    if g["gain"] > 2 * g["se"] and g["gain"] > 0:
        return "helps"
    if g["gain"] < -2 * g["se"] and g["gain"] < 0:
        return "hurts"
    return "no clear change"


def verdicts(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per (evaluation, metric): each rung's status and one honest sentence."""
    out = {}
    rungs = result["rungs"]
    for ev, metric in panels(result):
        gains = [gain(r, ev, metric) for r in rungs]
        if any(g is None for g in gains):
            continue
        status = [_status(g) for g in gains]
        names = [r["name"] for r in rungs]
        helps = [i for i, s in enumerate(status) if s == "helps"]
        if not helps:
            hurt = [names[i] for i, s in enumerate(status) if s == "hurts"]
            text = "no rung gains from the shown examples beyond noise" + (
                f"; they hurt at {', '.join(hurt)}" if hurt else ""
            )
            supported = False
        elif helps == list(range(helps[0], len(rungs))) and helps[0] > 0:
            text = (
                f"supported at this scale: no clear gain below {names[helps[0]]}, a gain at "
                f"{names[helps[0]]} and every larger rung"
            )
            supported = True
        elif helps == list(range(len(rungs))):
            text = (
                "few-shot helps at every rung, the smallest included: no threshold in this ladder"
            )
            supported = False
        else:
            text = "mixed: " + ", ".join(f"{n} {s}" for n, s in zip(names, status))
            supported = False
        best = max(range(len(rungs)), key=lambda i: gains[i]["few"])
        if metric != LOGPROB:
            top = max(max(g["zero"], g["few"]) for g in gains)
            chance = CHANCE.get((ev, metric))
            if chance is not None and top < chance + 0.05:
                text += f" (every accuracy is within 5 points of chance, {100 * chance:.0f}%)"
            elif top < 0.05:
                text += " (every accuracy is below 5%: the rungs cannot do this task yet)"
        out[f"{ev}/{metric}"] = {
            "supported": supported,
            "status": dict(zip(names, status)),
            "gains": dict(zip(names, gains)),
            "best_few_shot": names[best],
            "text": text,
        }
    return out


def training_note(result: dict[str, Any]) -> str:
    """Whether a larger rung is a better language model here (validation loss by size)."""
    rungs = [r for r in result["rungs"] if r["train"].get("val_loss") is not None]
    if len(rungs) < 2:
        return ""
    by_size = sorted(rungs, key=lambda r: r["params"])
    best = min(by_size, key=lambda r: r["train"]["val_loss"])
    losses = ", ".join(f"{r['name']} {r['train']['val_loss']:.3f}" for r in by_size)
    small, large = by_size[0], by_size[-1]
    if best is large:
        return (
            f"Validation loss falls with size ({losses}): the larger rungs are the better "
            "language models under this budget."
        )
    return (
        f"Validation loss does not fall with size ({losses}; best: {best['name']}): under the "
        f"equal-time budget the largest rung saw {large['train']['tokens_seen']:,} tokens "
        f"against the smallest's {small['train']['tokens_seen']:,}, so here a larger rung is a "
        "less trained model, and the ladder measures size at equal compute time, not the "
        "capability of well-trained models that the claim is about."
    )


def fmt(metric: str, x: float, *, signed: bool = False) -> str:
    """A share in percent (points for a difference), a log-prob in nats."""
    if metric == LOGPROB:
        return f"{x:+.3f}" if signed else f"{x:.2f}"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def markdown_table(result: dict[str, Any]) -> str:
    """One row per rung: size, training, and zero → few-shot score of each panel."""
    rungs = result["rungs"]
    ps = panels(result)
    head = ["size", "params", "steps", "tokens seen", "val loss"]
    for ev, m in ps:
        g0 = gain(rungs[0], ev, m) if rungs else None
        unit = " (nats)" if m == LOGPROB else " (%)"
        head.append(f"{ev} {m}{unit}: k=0 → k={g0['k']}" if g0 else f"{ev} {m}{unit}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rungs:
        t = r["train"]
        val = "–" if t.get("val_loss") is None else f"{t['val_loss']:.3f}"
        cells = [r["name"], f"{r['params'] / 1e6:.2f}M", str(t["steps"]),
                 f"{t['tokens_seen'] / 1e6:.2f}M", val]  # fmt: skip
        for ev, m in ps:
            g = gain(r, ev, m)
            if g is None:  # no zero-shot or no few-shot row: the first k's score alone
                cells.append(fmt(m, r["evals"][ev]["rows"][0][m]["mean"]))
                continue
            mark = {"helps": " ✓", "hurts": " ✗", "no clear change": ""}[_status(g)]
            cells.append(
                f"{fmt(m, g['zero'])} → {fmt(m, g['few'])} ({fmt(m, g['gain'], signed=True)}{mark})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def k_table(result: dict[str, Any], ev: str, metric: str) -> str:
    """Score per rung and k (mean ± std over seeds) for one panel."""
    rungs = result["rungs"]
    ks = [row["k"] for row in rungs[0]["evals"][ev]["rows"]]
    head = ["size", *(f"k={k}" for k in ks)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rungs:
        cells = [r["name"]]
        for k in ks:
            s = _row(r, ev, k)[metric]
            cells.append(
                fmt(metric, s["mean"]) + (f" ± {fmt(metric, s['std'])}" if s["std"] else "")
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_ladder(result: dict[str, Any], path: Path) -> Path:
    """Score against parameters (log), one line per k, a panel per evaluation and metric."""
    plt = _plt()
    ps = panels(result)
    rungs = result["rungs"]
    cols = 2 if len(ps) > 1 else 1
    rows = math.ceil(len(ps) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(5.2 * cols, 3.4 * rows), squeeze=False, layout="constrained"
    )
    xs = [r["params"] for r in rungs]
    for ax, (ev, m) in zip(axes.flat, ps):
        scale = 1 if m == LOGPROB else 100
        ks = [row["k"] for row in rungs[0]["evals"][ev]["rows"]]
        for j, k in enumerate(ks):
            ys = [scale * _row(r, ev, k)[m]["mean"] for r in rungs]
            err = [scale * _row(r, ev, k)[m]["std"] for r in rungs]
            style = "--" if k == 0 else "-"
            ax.errorbar(xs, ys, yerr=err, fmt=style, marker="o", capsize=3, label=f"k={k}",
                        color=f"C{j}")  # fmt: skip
        if (ev, m) in CHANCE:
            ax.axhline(scale * CHANCE[(ev, m)], color="grey", lw=0.8, ls=":", label="chance")
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel(f"{m} (nats)" if m == LOGPROB else f"{m} (%)")
        if m != LOGPROB:
            ax.set_ylim(0, 100)
        ax.set_title(f"{ev}: {m}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(ps) :]:
        ax.axis("off")
    fig.suptitle("zero- vs few-shot by model size", fontsize=11)
    return _save(plt, fig, path)


def plot_gain(result: dict[str, Any], path: Path) -> Path:
    """Few-shot minus zero-shot against parameters, ±2 standard errors: accuracies (points)
    on the left, answer log-probs (nats) on the right."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    rungs = result["rungs"]
    xs = [r["params"] for r in rungs]
    for ax, shares in zip(axes, (True, False)):
        scale = 100 if shares else 1
        for j, (ev, m) in enumerate(panels(result, shares=shares)):
            gs = [gain(r, ev, m) for r in rungs]
            if any(g is None for g in gs):
                continue
            ax.errorbar(
                xs, [scale * g["gain"] for g in gs], yerr=[2 * scale * g["se"] for g in gs],
                marker="o", capsize=3, label=f"{ev} {m} (k={gs[0]['k']})", color=f"C{j}",
            )  # fmt: skip
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("few-shot − zero-shot " + ("(points)" if shares else "(nats)"))
        ax.set_title("accuracy gain" if shares else "answer log-prob gain", fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("few-shot gain by model size (bars: ±2 standard errors)", fontsize=11)
    return _save(plt, fig, path)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def write_outputs(result: dict[str, Any], out: Path) -> None:
    """ladder.json, plots/ladder.png, plots/gain.png and report.md in `out`."""
    result["training_note"] = training_note(result)
    atomic_write_text(out / "ladder.json", json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    if not panels(result):
        atomic_write_text(out / "report.md", "# Size ladder\n\nNo evaluation to report.\n")
        return
    acc = plot_ladder(result, out / "plots" / "ladder.png")
    gp = plot_gain(result, out / "plots" / "gain.png")
    parts = [
        "# Size ladder: few-shot vs zero-shot by model size",
        "",
        f"World `{result['world']}`; budget rule: {result['budget_rule']}.",
        "",
        markdown_table(result),
        "",
        "Cells: zero-shot → few-shot score (accuracies in %, the answer's log-probability in "
        "nats), the difference; ✓ / ✗: beyond two standard errors of the paired difference.",
        "",
        "## Verdicts",
        "",
    ]
    parts += [f"- **{key}**: {v['text']}." for key, v in result["verdicts"].items()]
    if result["training_note"]:
        parts += ["", result["training_note"]]
    parts += ["", f"![scores]({acc.relative_to(out)})", "", f"![gain]({gp.relative_to(out)})"]
    for ev, m in panels(result):
        parts += ["", f"## {ev}: {m} per k", "", k_table(result, ev, m)]
    atomic_write_text(out / "report.md", "\n".join(parts) + "\n")
