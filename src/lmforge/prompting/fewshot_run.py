"""`lmforge fewshot` as a function: open a run and a task, evaluate, write the folder.

`run_fewshot_verb(run, task, cfg, out=...)` checks ``--out`` against lmforge's
output policy and opens the task (so bad input fails before the model is read),
loads the run (`load_run(need="decoder")`), runs `evaluate.run_fewshot` and, with
``out``, writes (complete or not at all: a temporary folder, then renamed):

* ``predictions.jsonl``: one line per (k, seed, test example): gold label,
  predictions (uncalibrated, calibrated, affine), label log-scores and
  probabilities, or the generated answer;
* ``results.json``: ``"kind": "lmforge fewshot"`` (what marks the folder as this
  verb's), the run, the task and format, the config, the summary per k and every
  draw's shown examples (file:line), ``p_cf`` and metrics (confusion counts too);
* ``results.md``: the table the verb prints;
* ``accuracy.png``: accuracy against k (mean, std bars, min-max band) per
  variant; ``labels.png``: the predicted-label shares per k (majority-label bias).

`run_sweeps_verb(run, tasks, cfg, out=...)` is the verb with ``--sweep``: the
sensitivity experiments (`lmforge.prompting.sensitivity`) on one or more tasks
with the one loaded model, written by `sensitivity_report.write_sweeps`
(results.json with ``"mode": "sweep"``, results.md, one plot per sweep) under
the same output policy.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..common import LmforgeError, pick_device, replace_folder
from ..config import to_dict
from .evaluate import DemoEval, FewShotConfig, FewShotResult, check_plan, run_fewshot

RESULTS_KIND = "lmforge fewshot"
RESULTS_FILE, PREDICTIONS_FILE, TABLE_FILE = "results.json", "predictions.jsonl", "results.md"
ACCURACY_PLOT, LABELS_PLOT = "accuracy.png", "labels.png"


def is_fewshot_folder(path: Path) -> bool:
    """Does `path` hold a few-shot evaluation this verb wrote (results.json of its kind)?"""
    from ..outputs import has_results_of_kind

    return has_results_of_kind(path, RESULTS_KIND, RESULTS_FILE)


def run_fewshot_verb(
    run: str | Path,
    task: str,
    cfg: FewShotConfig | None = None,
    *,
    world: str | Path | None = None,
    data_dir: str | Path | None = None,
    step: int | None = None,
    out: str | Path | None = None,
    force: bool = False,
    device: str = "auto",
) -> tuple[FewShotResult, dict[str, Any]]:
    """Evaluate RUN's model on `task` (see the module doc); returns the result and ``about``."""
    from ..outputs import check_out
    from ..runs import load_run
    from .builder import PromptBuilder
    from .tasks import load_task

    cfg = cfg or FewShotConfig()
    opened_task = load_task(task, world=world, fmt=cfg.fmt, data_dir=data_dir)
    check_plan(opened_task, cfg)
    if out is not None:
        inputs = [("run", run), ("world", world), ("data folder", data_dir)]
        inputs += [("task file", f) for f in task_files_of(opened_task, task)]
        check_out(
            out, force=force, made_here=is_fewshot_folder, what="few-shot evaluation",
            inputs=[(n, p) for n, p in inputs if p is not None],
        )  # fmt: skip
    opened = load_run(run, step, device=pick_device(device), need="decoder")
    builder = PromptBuilder(opened_task, opened.tokenizer, start=cfg.start)
    result = run_fewshot(opened.model, builder, cfg)
    about = {
        "name": f"{Path(run).resolve().name}@{opened.step}",
        "run": {
            "path": str(Path(run).resolve()),
            "step": opened.step,
            "stage": opened.stage,
            "arch": opened.arch,
        },
        "task": {
            "name": opened_task.name,
            "format": opened_task.format.name,
            "formats": [f.name for f in opened_task.formats],
            "labels": opened_task.labels,
            "label_words": opened_task.label_words,
            "source": opened_task.source,
            "train": len(opened_task.train),
            "test": len(opened_task.test),
        },
    }
    if out is not None:
        write_fewshot(out, result, about=about)
    return result, about


def _check_out(out, force: bool, run, world, data_dir, tasks: list[tuple[str, Any]]) -> None:
    from ..outputs import check_out

    inputs = [("run", run), ("world", world), ("data folder", data_dir)]
    for name, opened in tasks:
        inputs += [("task file", f) for f in task_files_of(opened, name)]
    check_out(
        out, force=force, made_here=is_fewshot_folder, what="few-shot evaluation",
        inputs=[(n, p) for n, p in inputs if p is not None],
    )  # fmt: skip


def _about(run, opened, tasks: list[Any]) -> dict[str, Any]:
    return {
        "name": f"{Path(run).resolve().name}@{opened.step}",
        "run": {
            "path": str(Path(run).resolve()),
            "step": opened.step,
            "stage": opened.stage,
            "arch": opened.arch,
        },  # fmt: skip
        "tasks": [
            {
                "name": t.name,
                "formats": [f.name for f in t.formats],
                "labels": t.labels,
                "source": t.source,
                "train": len(t.train),
                "test": len(t.test),
            }
            for t in tasks
        ],  # fmt: skip
    }


def run_sweeps_verb(
    run: str | Path,
    tasks: list[str],
    cfg: FewShotConfig,
    *,
    world: str | Path | None = None,
    data_dir: str | Path | None = None,
    step: int | None = None,
    out: str | Path | None = None,
    force: bool = False,
    device: str = "auto",
    show_progress: bool = True,
) -> tuple[list, dict[str, Any]]:
    """``cfg.sweep`` on every task of `tasks` with RUN's model; returns (sweeps, about)."""
    from ..runs import load_run
    from .builder import PromptBuilder
    from .sensitivity import format_list, run_sweeps
    from .sensitivity_report import write_sweeps
    from .tasks import load_task

    if not tasks:
        raise LmforgeError("task: name at least one task")
    names = cfg.format_names()
    first = 0 if names is None or names == ["all"] else names[0]
    opened_tasks = []
    for name in tasks:
        t = load_task(name, world=world, fmt=cfg.fmt if names is None else first,
                      data_dir=data_dir)  # fmt: skip
        if "formats" in cfg.sweep:
            format_list(t, cfg.fmt)  # a format it does not have fails here, before the model
        opened_tasks.append(t)
    if out is not None:
        _check_out(out, force, run, world, data_dir, list(zip(tasks, opened_tasks)))
    opened = load_run(run, step, device=pick_device(device), need="decoder")
    sweeps = []
    for t in opened_tasks:
        builder = PromptBuilder(t, opened.tokenizer, start=cfg.start)
        sweeps += run_sweeps(opened.model, builder, cfg, show_progress=show_progress)
    # The order a reader wants: by sweep, then by task.
    sweeps.sort(key=lambda s: cfg.sweep.index(s.name))
    about = _about(run, opened, opened_tasks)
    if out is not None:
        about["files"] = write_sweeps(out, sweeps, about=about, config=cfg)
    return sweeps, about


def task_files_of(task, name: str) -> list[str]:
    """The files a task was read from (its spec and the files its examples name)."""
    files = {ex.where.rsplit(":", 1)[0] for ex in (*task.train, *task.test) if ex.where}
    if Path(name).suffix:
        files.add(name)
    return sorted(files)


# ---------------------------------------------------------------------------
# Files


def _probs_dict(labels: list[str], row) -> dict[str, float]:
    return {label: round(float(x), 6) for label, x in zip(labels, row.tolist())}


def prediction_rows(result: FewShotResult):
    """The lines of predictions.jsonl (dicts), in evaluation order."""
    labels = result.labels
    for e in result.evals:
        for i, ex in enumerate(e.test):
            row: dict[str, Any] = {
                "k": e.k,
                "seed": e.seed,
                "index": i,
                "where": ex.where,
                "label": ex.label,
                "pred": e.preds[i],
                "correct": e.preds[i] == ex.label,
            }
            if e.scores is not None:
                row["scores"] = _probs_dict(labels, e.scores.scores[i])
                row["probs"] = _probs_dict(labels, e.scores.probs[i])
            if e.answers is not None:
                a = e.answers[i]
                row.update({"response": a.text, "answer": a.answer})
            if e.calibrated is not None:
                row["pred_calibrated"] = e.calibrated.preds[i]
                row["probs_calibrated"] = _probs_dict(labels, e.calibrated.probs[i])
            if e.affine is not None:
                row["pred_affine"] = e.affine.preds[i]
            yield row


def _eval_record(e: DemoEval) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "k": e.k,
        "seed": e.seed,
        "demos": [{"where": d.where, "label": d.label} for d in e.demos],
        "prompt_tokens": e.prompt_tokens,
        "uncalibrated": e.metrics.to_dict(),
        "last_label_share": e.last_label_share(),
    }
    if e.p_cf is not None:
        rec["p_cf"] = [float(x) for x in e.p_cf.tolist()]
    if e.calibrated is not None:
        rec["calibrated"] = e.calibrated.metrics.to_dict()
        rec["last_label_share_calibrated"] = e.last_label_share("calibrated")
    if e.affine is not None:
        rec["affine"] = e.affine.metrics.to_dict()
    return rec


def results_document(result: FewShotResult, about: Mapping[str, Any] | None = None) -> dict:
    """What results.json holds (see the module doc)."""
    return {
        "kind": RESULTS_KIND,
        "version": 1,
        **dict(about or {}),
        "config": to_dict(result.config),
        "summary": result.summary(),
        "evals": [_eval_record(e) for e in result.evals],
    }


def markdown_report(result: FewShotResult, about: Mapping[str, Any] | None = None) -> str:
    """results.md: what was evaluated, then the table."""
    about = about or {}
    cfg = result.config
    lines = ["# Few-shot evaluation", ""]
    run = about.get("run")
    if isinstance(run, Mapping):
        lines.append(f"Run `{run.get('path')}` step {run.get('step')} ({run.get('stage')}).")
    n_test = len(result.evals[0].test) if result.evals else 0
    how = (
        f"label scoring ({cfg.normalize} of log-probabilities)"
        if cfg.scoring == "labels"
        else f"generated answers (greedy, at most {cfg.max_new_tokens} tokens)"
    )
    lines.append(
        f"Task `{result.task}`, format `{result.format}`, {n_test} test examples, {how}; "
        f"examples drawn {cfg.selection}, order {cfg.order}; accuracy mean ± std (population) "
        "over seeds, with min–max."
    )
    if "calibrated" in result.variants():
        cf = ", ".join(repr(s) for s in cfg.content_free)
        lines.append(f"Calibrated: contextual calibration with content-free inputs {cf}.")
    if "affine" in result.variants():
        lines.append(f"Affine: W, b fitted on {cfg.affine} labelled train examples per seed.")
    return "\n".join(lines) + "\n\n" + result.to_markdown()


def write_fewshot(
    out: str | Path, result: FewShotResult, *, about: Mapping[str, Any] | None = None
) -> Path:
    """Write the evaluation folder `out` (module doc), complete or not at all."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        with open(tmp / PREDICTIONS_FILE, "w", encoding="utf-8") as f:
            for row in prediction_rows(result):
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        (tmp / TABLE_FILE).write_text(markdown_report(result, about), encoding="utf-8")
        plot_accuracy(result, tmp / ACCURACY_PLOT)
        plot_labels(result, tmp / LABELS_PLOT)
        doc = results_document(result, about)
        (tmp / RESULTS_FILE).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# ---------------------------------------------------------------------------
# Plots


def _figure(width: float = 6.0, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(width, height))


def _save(plt, fig, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_accuracy(result: FewShotResult, path: str | Path) -> Path:
    """Accuracy (%) against k: mean with std bars and a min-max band, one line per variant."""
    plt, fig, ax = _figure()
    rows = result.summary()
    xs = list(range(len(rows)))
    for m, v in enumerate(result.variants()):
        acc = [r[v]["accuracy"] for r in rows]
        mean = [100 * a["mean"] for a in acc]
        ax.errorbar(
            xs, mean, yerr=[100 * a["std"] for a in acc], marker="o", capsize=3, label=v,
            color=f"C{m}",
        )  # fmt: skip
        ax.fill_between(
            xs, [100 * a["min"] for a in acc], [100 * a["max"] for a in acc], alpha=0.15,
            color=f"C{m}",
        )  # fmt: skip
    ax.axhline(100 / max(1, len(result.labels)), color="grey", lw=0.8, ls="--", label="chance")
    ax.set_xticks(xs)
    ax.set_xticklabels([str(r["k"]) for r in rows])
    ax.set_xlabel("shown examples (k)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{result.task} ({result.format})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, Path(path))


def plot_labels(result: FewShotResult, path: str | Path) -> Path:
    """Share of each predicted label per k (stacked), uncalibrated and calibrated side by side."""
    rows = result.summary()
    variants = [v for v in result.variants() if v != "affine"]
    plt, fig, ax = _figure(max(4.0, 1.2 + 0.9 * len(rows) * len(variants)))
    width = 0.8 / len(variants)
    labels = list(result.labels)
    extra = sorted(
        {x for r in rows for v in variants for x in r[v]["predicted_share"]} - set(labels)
    )
    labels += extra
    for m, v in enumerate(variants):
        bottom = [0.0] * len(rows)
        for c, label in enumerate(labels):
            share = [100 * r[v]["predicted_share"].get(label, 0.0) for r in rows]
            xs = [i - 0.4 + width * (m + 0.5) for i in range(len(rows))]
            ax.bar(
                xs, share, width * 0.95, bottom=bottom, color=f"C{c}",
                label=label if m == 0 else None, hatch="//" if m else None, edgecolor="white",
            )  # fmt: skip
            bottom = [b + s for b, s in zip(bottom, share)]
    ax.set_xticks(range(len(rows)))
    names = " / ".join(variants)
    ax.set_xticklabels([str(r["k"]) for r in rows])
    ax.set_xlabel(
        f"shown examples (k); bars: {names}" + (" (hatched)" if len(variants) > 1 else "")
    )
    ax.set_ylabel("predicted label (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{result.task}: predicted labels", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(plt, fig, Path(path))
