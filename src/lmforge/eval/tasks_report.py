"""Tables, plots and files of task evaluations: one model, or several side by side.

`compare_results({"base": r1, "sft": r2})` is the table with one column per model
(`make demo` prints base vs SFT with it); a single evaluation is the same table
with one column. `write_task_eval(out, result, ...)` writes an evaluation's
folder: ``predictions.jsonl`` (one line per record), ``results.json``
(accuracies with counts and intervals, the config, what was evaluated),
``results.md`` (the table) and ``accuracy.png`` (bars with 95% intervals).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common import LmforgeError, replace_folder
from .tasks import TaskEvalResult
from .tasks_stats import GROUP_TITLES, GROUPS, Accuracy, PairedChange, order_labels, paired_changes

RESULTS_KIND = "lmforge eval tasks"  # results.json's "kind": marks a folder this verb made
RESULTS_FILE, PREDICTIONS_FILE, TABLE_FILE, PLOT_FILE = (
    "results.json",
    "predictions.jsonl",
    "results.md",
    "accuracy.png",
)
_SPLIT_NAMES = {
    "seen": "seen templates",
    "heldout_templates": "held-out templates",
    "heldout_task": "held-out tasks",
}


def label_name(group: str, label: str) -> str:
    """How a label reads in a table or plot."""
    if group == "split":
        return _SPLIT_NAMES.get(label, label)
    if group == "difficulty":
        return f"level {label}"
    if group == "mode":
        return "chain of thought" if label == "cot" else "direct"
    return label


@dataclass(frozen=True)
class ComparisonRow:
    group: str  # one of tasks_stats.GROUPS
    label: str
    cells: tuple[Accuracy | None, ...]  # one per model; None: that model has no such records


@dataclass(frozen=True)
class Comparison:
    """Accuracy of each model (columns) in every group and label (rows)."""

    models: tuple[str, ...]
    rows: tuple[ComparisonRow, ...]

    def to_markdown(self) -> str:
        head = "| group | " + " | ".join(self.models) + " |"
        rule = "|---|" + "---|" * len(self.models)
        lines = [head, rule]
        for row in self.rows:
            name = _row_name(row.group, row.label)
            cells = [c.cell() if c is not None else "—" for c in row.cells]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": list(self.models),
            "rows": [
                {
                    "group": r.group,
                    "label": r.label,
                    "cells": [None if c is None else c.to_dict() for c in r.cells],
                }
                for r in self.rows
            ],
        }


def compare_results(
    named_results: Mapping[str, TaskEvalResult] | Sequence[tuple[str, TaskEvalResult]],
) -> Comparison:
    """One column per model, one row per group label any of them has (in `GROUPS` order)."""
    items = list(named_results.items() if isinstance(named_results, Mapping) else named_results)
    if not items:
        raise LmforgeError("compare_results: give at least one (name, result)")
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise LmforgeError(f"compare_results: model names repeat: {', '.join(names)}")
    rows = []
    for g in GROUPS:
        labels = order_labels(g, (label for _, r in items for label in r.groups.get(g, {})))
        for label in labels:
            cells = tuple(r.groups.get(g, {}).get(label) for _, r in items)
            rows.append(ComparisonRow(g, label, cells))
    return Comparison(tuple(names), tuple(rows))


def _row_name(group: str, label: str) -> str:
    if group == "overall":
        return "**overall**"
    return f"{GROUP_TITLES[group]}: {label_name(group, label)}"


def _record_key(where: str) -> str:
    """``dir/test.jsonl:12`` -> ``test.jsonl:12``."""
    path, sep, line = where.rpartition(":")
    return f"{Path(path).name}{sep}{line}" if sep else where


def paired_table(
    named_results: Mapping[str, TaskEvalResult] | Sequence[tuple[str, TaskEvalResult]],
) -> str:
    """Markdown: each model after the first against the first, on the records both scored
    (matched by file name and line), as records gained / lost and McNemar's z per group; "" when
    there is no second model or no record in common."""
    items = list(named_results.items() if isinstance(named_results, Mapping) else named_results)
    if len(items) < 2:
        return ""

    def triples(result: TaskEvalResult):
        # Keyed by file name and line: the same file reached by another path still matches.
        return [(_record_key(p.where), p.labels, p.correct) for p in result.predictions]

    base_name, base = items[0]
    changes = [(name, paired_changes(triples(base), triples(r))) for name, r in items[1:]]
    changes = [(name, c) for name, c in changes if c]
    if not changes:
        return ""
    lines = [
        f"| against {base_name}: gained / lost, z | " + " | ".join(n for n, _ in changes) + " |",
        "|---|" + "---|" * len(changes),
    ]
    for g in GROUPS:
        labels = order_labels(g, (label for _, c in changes for label in c.get(g, {})))
        for label in labels:
            cells: list[PairedChange | None] = [c.get(g, {}).get(label) for _, c in changes]
            shown = [x.cell() if x is not None else "—" for x in cells]
            lines.append(f"| {_row_name(g, label)} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Plot


def plot_comparison(
    named_results: Mapping[str, TaskEvalResult] | Sequence[tuple[str, TaskEvalResult]],
    path: str | Path,
) -> Path:
    """A PNG of accuracy bars (one colour per model, 95% intervals) per group; returns path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = compare_results(named_results)
    panels = [g for g in GROUPS if any(r.group == g for r in table.rows)]
    widths = [max(1, sum(r.group == g for r in table.rows)) for g in panels]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(2.2 + 0.7 * sum(widths) * max(1, len(table.models)) ** 0.5, 4),
        sharey=True, gridspec_kw={"width_ratios": widths}, squeeze=False,
    )  # fmt: skip
    k = len(table.models)
    bar = 0.8 / k
    for ax, g in zip(axes[0], panels):
        rows = [r for r in table.rows if r.group == g]
        for m, name in enumerate(table.models):
            xs, ys, lo, hi = [], [], [], []
            for x, r in enumerate(rows):
                c = r.cells[m]
                if c is None:
                    continue
                low, high = c.interval
                xs.append(x - 0.4 + bar * (m + 0.5))
                ys.append(100 * c.accuracy)
                lo.append(100 * (c.accuracy - low))
                hi.append(100 * (high - c.accuracy))
            ax.bar(xs, ys, bar, yerr=[lo, hi], capsize=2, label=name, color=f"C{m}")
        ax.set_xticks(range(len(rows)))
        tilt = len(rows) > 1  # side-by-side names would run into each other
        ax.set_xticklabels(
            [label_name(g, r.label) for r in rows], rotation=35 if tilt else 0,
            ha="right" if tilt else "center", fontsize=8,
        )  # fmt: skip
        ax.set_title(GROUP_TITLES[g], fontsize=10)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%), 95% interval")
    if k > 1:
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, loc="upper center", ncol=k, fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, 1.06))  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed: a viewer never sees half a PNG.
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------
# The output folder


def is_task_eval_folder(path: Path) -> bool:
    """Does `path` hold an evaluation this verb wrote (results.json of its kind)?"""
    from ..outputs import has_results_of_kind

    return has_results_of_kind(path, RESULTS_KIND, RESULTS_FILE)


def check_out_folder(
    out: str | Path, *, force: bool, inputs: Sequence[tuple[str, str | Path]] = ()
) -> Path:
    """lmforge's output policy (`lmforge.outputs.check_out`) for an evaluation folder."""
    from ..outputs import check_out

    return check_out(
        out, force=force, made_here=is_task_eval_folder, what="task evaluation", inputs=inputs
    )


def results_document(result: TaskEvalResult, about: Mapping[str, Any] | None = None) -> dict:
    """What results.json holds: the kind marker, `about` (run, data files), the result."""
    return {"kind": RESULTS_KIND, "version": 1, **dict(about or {}), **result.to_dict()}


def write_task_eval(
    out: str | Path,
    result: TaskEvalResult,
    *,
    about: Mapping[str, Any] | None = None,
    name: str = "model",
) -> Path:
    """Write the evaluation folder `out` (see the module doc), complete or not at all.

    The files go to a temporary folder beside `out`, which then replaces `out` (check
    it first with `check_out_folder`). `about` (the run, the data files) goes into
    results.json; `name` heads the table's column.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        with open(tmp / PREDICTIONS_FILE, "w", encoding="utf-8") as f:
            for p in result.predictions:
                f.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
        table = compare_results({name: result}).to_markdown()
        (tmp / TABLE_FILE).write_text(
            f"# Task evaluation\n\n{_summary(result, about)}\n\n{table}", encoding="utf-8"
        )
        plot_comparison({name: result}, tmp / PLOT_FILE)
        doc = results_document(result, about)
        (tmp / RESULTS_FILE).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        replace_folder(tmp, out)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _summary(result: TaskEvalResult, about: Mapping[str, Any] | None) -> str:
    about = about or {}
    cfg = result.config
    parts = []
    run = about.get("run")
    if isinstance(run, Mapping):
        parts.append(f"Run `{run.get('path')}` step {run.get('step')} ({run.get('stage')}).")
    for d in about.get("data", []):
        parts.append(f"Data `{d['path']}` ({_SPLIT_NAMES.get(d['split'], d['split'])}).")
    prompt = "chat template" if cfg.template else "plain prompts (no chat template)"
    decoding = "greedy" if cfg.temperature == 0 else f"temperature {cfg.temperature}"
    parts.append(
        f"{len(result.predictions)} records, {prompt}, {decoding}, at most "
        f"{cfg.max_new_tokens} new tokens; cells: accuracy (correct/n) [95% Wilson interval]."
    )
    if result.too_long:
        parts.append(f"{result.too_long} prompts longer than the context ({cfg.too_long}).")
    return "\n".join(parts)


def load_task_eval(folder: str | Path) -> TaskEvalResult:
    """An evaluation folder written by `write_task_eval`, read back (results + predictions)."""
    path = Path(folder)
    if not is_task_eval_folder(path):
        raise LmforgeError(
            f"{path}: not a folder written by `lmforge eval tasks --out` (no {RESULTS_FILE} of "
            "that kind)"
        )
    doc = json.loads((path / RESULTS_FILE).read_text(encoding="utf-8"))
    preds = [
        json.loads(line)
        for line in (path / PREDICTIONS_FILE).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return TaskEvalResult.from_dict(doc, preds)
