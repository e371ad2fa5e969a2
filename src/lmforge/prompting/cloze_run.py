"""`lmforge eval cloze` as a function: open the sets and a run, evaluate, write the folder.

`run_cloze_verb(run, cfg, tasks=..., world=..., lambada=..., trivia=...)` opens
every set first (a bad file fails before the model is read), checks ``--out``
against lmforge's output policy, loads the run (`load_run(need="decoder")`),
runs `cloze.run_cloze` per set and, with ``out``, writes (complete or not at
all: a temporary folder, then renamed):

* ``predictions.jsonl``: one line per (task, k, seed, test item): the item's
  ``where``, answer, the response, the prediction and whether it is right;
* ``results.json``: ``"kind": "lmforge eval cloze"`` (what marks the folder as
  this verb's), the run, each set (source, shown-example pool, counts), the
  config and each task's summary per k (overall, by distance, by kind) and
  every draw's shown examples;
* ``results.md``: the tables the verb prints;
* ``lambada.png``: accuracy against distance, one line per k (choice accuracy
  dashed); ``trivia.png``: exact match and contains per k.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..common import LmforgeError, pick_device, replace_folder
from ..config import to_dict
from .cloze import (
    LOGPROB,
    ClozeConfig,
    ClozeResult,
    baselines,
    check_plan,
    recency_guess,
    run_cloze,
)
from .cloze_data import TASKS, ClozeSet, load_cloze_set

RESULTS_KIND = "lmforge eval cloze"
RESULTS_FILE, PREDICTIONS_FILE, TABLE_FILE = "results.json", "predictions.jsonl", "results.md"


def is_cloze_folder(path: Path) -> bool:
    """Does `path` hold an evaluation this verb wrote (results.json of its kind)?"""
    from ..outputs import has_results_of_kind

    return has_results_of_kind(path, RESULTS_KIND, RESULTS_FILE)


def open_sets(
    tasks: Sequence[str],
    *,
    world: str | Path | None = None,
    files: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> list[ClozeSet]:
    """The sets of `tasks`: ``files[task] = (test, train)`` where given, else the world's."""
    files = files or {}
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise LmforgeError(f"--tasks: unknown {unknown[0]!r}; known: {', '.join(TASKS)}")
    out = []
    for task in dict.fromkeys(tasks):
        test, train = files.get(task, (None, None))
        if train is not None and test is None:
            raise LmforgeError(f"--{task}-train needs --{task} (the test file) as well")
        out.append(load_cloze_set(task, world=world, test=test, train=train))
    return out


def run_cloze_verb(
    run: str | Path,
    cfg: ClozeConfig | None = None,
    *,
    tasks: Sequence[str] = TASKS,
    world: str | Path | None = None,
    files: Mapping[str, tuple[str | None, str | None]] | None = None,
    step: int | None = None,
    out: str | Path | None = None,
    force: bool = False,
    device: str = "auto",
) -> tuple[list[ClozeResult], dict[str, Any]]:
    """Evaluate RUN's model on each set (module doc); returns the results and ``about``."""
    from ..outputs import check_out
    from ..runs import load_run

    cfg = cfg or ClozeConfig()
    sets = open_sets(tasks, world=world, files=files)
    for cset in sets:
        check_plan(cset, cfg)
    if out is not None:
        inputs = [("run", run), ("world", world)]
        for test, train in (files or {}).values():
            inputs += [("data file", test), ("data file", train)]
        check_out(
            out, force=force, made_here=is_cloze_folder, what="cloze evaluation",
            inputs=[(n, p) for n, p in inputs if p is not None],
        )  # fmt: skip
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    opened = load_run(run, step, device=pick_device(device), need="decoder")
    results = [run_cloze(opened.model, opened.tokenizer, cset, cfg) for cset in sets]
    about = {
        "name": f"{Path(run).resolve().name}@{opened.step}",
        "run": {
            "path": str(Path(run).resolve()),
            "step": opened.step,
            "stage": opened.stage,
            "arch": opened.arch,
        },
    }
    if out is not None:
        write_cloze(out, results, about=about)
    return results, about


# ---------------------------------------------------------------------------
# Tables and files


def describe(result: ClozeResult) -> str:
    """One paragraph: what was scored, with which prompts and shown examples."""
    s, cfg = result.set, result.config
    how = {
        "lambada": "greedy first word = the passage's last word"
        + (" (choice: the best-scored candidate of the answer's kind)" if s.candidates else ""),
        "trivia": "greedy answer line; exact match and contains against the aliases "
        "(TriviaQA normalisation)",
    }[result.task]
    text = (
        f"`{s.name}`: {len(s.test)} test items from `{s.source}`, format `{result.format}`, "
        f"{how}; shown examples drawn from {s.train_source} ({len(s.train)} items), "
        f"{cfg.seeds} seeds per k > 0; mean ± std (population) over seeds."
    )
    base = baselines(s)
    if base:
        text += (
            f" No-model baselines of the choice: chance {100 * base['chance']:.1f}%, the "
            f"candidate mentioned last {100 * base['recency']:.1f}%."
        )
    return text


def markdown_report(results: Sequence[ClozeResult], about: Mapping[str, Any] | None) -> str:
    lines = ["# Cloze and closed-book QA evaluation", ""]
    run = (about or {}).get("run")
    if isinstance(run, Mapping):
        lines += [f"Run `{run.get('path')}` step {run.get('step')} ({run.get('stage')}).", ""]
    for r in results:
        lines += [f"## {r.set.name}", "", describe(r), "", r.to_markdown()]
    return "\n".join(lines)


def prediction_rows(result: ClozeResult):
    for e in result.evals:
        for item, res in zip(result.set.test, e.results):
            row: dict[str, Any] = {
                "task": result.task,
                "k": e.k,
                "seed": e.seed,
                "where": item.where,
                "answer": item.answer,
                "response": res.response,
                "prediction": res.prediction,
                "correct": res.correct,
            }
            if item.kind:
                row["kind"] = item.kind
            if item.distance is not None:
                row["distance"] = item.distance
            if res.contains is not None:
                row["contains"] = res.contains
            if res.choice is not None:
                row.update({"choice": res.choice, "choice_correct": res.choice_correct})
            if res.answer_logprob is not None:
                row["answer_logprob"] = round(res.answer_logprob, 5)
            yield row


def result_record(result: ClozeResult) -> dict[str, Any]:
    s = result.set
    return {
        "task": result.task,
        "format": result.format,
        "source": s.source,
        "train_source": s.train_source,
        "train": len(s.train),
        "test": len(s.test),
        "candidates": {k: len(v) for k, v in s.candidates.items()},
        "baselines": baselines(s),
        "summary": result.summary(),
        "gains_vs_k0": {
            str(k): {name: result.paired_gain(f, k) for f, name in result.metrics()}
            for k in dict.fromkeys(e.k for e in result.evals)
            if k
        },
        "draws": [
            {
                "k": e.k,
                "seed": e.seed,
                "demos": [d.where for d in e.demos],
                "prompt_tokens": e.prompt_tokens,
            }
            for e in result.evals
        ],  # fmt: skip
    }


def write_cloze(
    out: str | Path, results: Sequence[ClozeResult], *, about: Mapping[str, Any] | None = None
) -> Path:
    """Write the evaluation folder `out` (module doc), complete or not at all."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with open(tmp / PREDICTIONS_FILE, "w", encoding="utf-8") as f:
            for r in results:
                for row in prediction_rows(r):
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        (tmp / TABLE_FILE).write_text(markdown_report(results, about), encoding="utf-8")
        for r in results:
            plot_result(r, tmp / f"{r.task}.png")
        doc = {
            "kind": RESULTS_KIND,
            "version": 1,
            **dict(about or {}),
            "config": to_dict(results[0].config) if results else {},
            "tasks": {r.set.name: result_record(r) for r in results},
        }
        (tmp / RESULTS_FILE).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# ---------------------------------------------------------------------------
# Plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_result(result: ClozeResult, path: str | Path) -> Path:
    """lambada: accuracy (%) by distance, a line per k; trivia: metrics per k as bars."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    rows = result.summary()
    names = [name for _, name in result.metrics() if name != LOGPROB]  # the shares only
    if result.task == "lambada":
        keys = list(result.groups("distance"))
        xs = list(range(len(keys)))
        for m, row in enumerate(rows):
            for name, style in zip(names, ("-", "--")):
                per = row[f"{name} by distance"]
                ys = [100 * per[key]["mean"] if per[key]["n"] else float("nan") for key in keys]
                ax.plot(
                    xs, ys, style, marker="o", color=f"C{m}",
                    label=f"k={row['k']}" + ("" if name == "accuracy" else f" ({name})"),
                )  # fmt: skip
        if result.set.candidates:  # the no-model baseline of the choice, per distance
            groups = result.groups("distance")
            cands = result.set.candidates
            ys = []
            for key in keys:
                items = [result.set.test[i] for i in groups[key]]
                items = [x for x in items if x.kind in cands]
                hits = [recency_guess(x, cands[x.kind]) == x.answer for x in items]
                ys.append(100 * sum(hits) / len(hits) if hits else float("nan"))
            ax.plot(xs, ys, ":", color="grey", label="baseline: the candidate named last")
        ax.set_xticks(xs)
        ax.set_xticklabels(keys)
        ax.set_xlabel("distance: sentences between the answer's mention and the blank")
    else:
        width = 0.8 / max(1, len(names))
        for j, name in enumerate(names):
            xs = [i - 0.4 + width * (j + 0.5) for i in range(len(rows))]
            ax.bar(
                xs, [100 * r[name]["mean"] for r in rows], width * 0.95,
                yerr=[100 * r[name]["std"] for r in rows], capsize=3, label=name, color=f"C{j}",
            )  # fmt: skip
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([str(r["k"]) for r in rows])
        ax.set_xlabel("shown examples (k)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{result.set.name} ({result.format}), {len(result.set.test)} items", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
