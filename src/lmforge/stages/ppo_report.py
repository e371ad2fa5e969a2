"""report.md and plots of a PPO / GRPO run: the per-iteration table, reward and KL curves, samples."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..eval.report import md_table, result_rows, write_report
from ..runs.layout import PLOTS_DIR
from .ppo_rollout import ppo_dir, read_iterations

# (column title, row key, digits)
COLUMNS = (
    ("iteration", "iteration", 0),
    ("mean score", "mean_score", 3),
    ("KL (nats/answer)", "kl", 3),
    ("β", "beta", 4),
    ("entropy", "update_entropy", 3),
    ("clip frac", "update_clipfrac", 3),
    ("approx KL", "update_approx_kl", 4),
    ("value loss", "update_vf_loss", 4),
    ("explained var", "explained_variance", 3),
    ("length", "mean_length", 1),
    ("stopped", "stopped_fraction", 2),
    ("rollout s", "rollout_s", 2),
    ("update s", "update_s", 2),
    ("rollout tok/s", "rollout_tokens_per_s", 0),
    ("update tok/s", "update_tokens_per_s", 0),
    ("wall s", "wall_s", 1),
)


def _cell(v: Any, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{v:,.{digits}f}" if digits else f"{v:,.0f}"
    return str(v)


def iteration_table(rows: Sequence[dict[str, Any]]) -> str:
    """The per-iteration markdown table (the columns a row has)."""
    cols = [c for c in COLUMNS if any(c[1] in r for r in rows)]
    lines = ["| " + " | ".join(c[0] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c[1]), c[2]) for c in cols) + " |")
    return "\n".join(lines)


def plot_iterations(rows: Sequence[dict[str, Any]], out_dir: str | Path, title: str) -> list[Path]:
    """plots/reward_kl.png (mean score and KL against iterations) and plots/reward_time.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..train.plots import _save

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    it = [r["iteration"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(it, [r["mean_score"] for r in rows], "o-", color="tab:blue", label="mean score")
    ax.set_xlabel("iteration")
    ax.set_ylabel("mean score", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(it, [r["kl"] for r in rows], "s--", color="tab:red", label="KL to reference")
    ax2.set_ylabel("KL to the reference (nats per answer)", color="tab:red")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    paths = [out / "reward_kl.png"]
    _save(fig, paths[0])
    plt.close(fig)
    timed = [r for r in rows if r.get("wall_s") is not None]
    if timed:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([r["wall_s"] for r in timed], [r["mean_score"] for r in timed], "o-")
        ax.set_xlabel("wall time (s, rollout + update)")
        ax.set_ylabel("mean score")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        paths.append(out / "reward_time.png")
        _save(fig, paths[1])
        plt.close(fig)
    return paths


def read_samples(run_dir: str | Path, iteration: int) -> list[dict[str, Any]]:
    path = ppo_dir(run_dir) / "samples" / f"iter-{iteration}.jsonl"
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]


def _samples_block(samples: Sequence[dict[str, Any]], k: int) -> list[str]:
    out = []
    for s in samples[:k]:
        out += [
            f"**{s.get('source') or 'prompt'}** — score {s['score']:.3f} ({s['finish_reason']}, "
            f"{s['new_tokens']} tokens)",
            "",
            "```text",
            f"user: {s['prompt'].strip()}",
            f"answer: {s['text'].strip()}",
            "```",
            "",
        ]
    return out


def write_ppo_report(
    run_dir: str | Path,
    *,
    config: Any,
    arch: str,
    n_params: int,
    result: Any,
    reward: str,
    prompts_summary: str,
    parent: dict[str, Any] | None,
    wall_s: float,
    samples_shown: int = 3,
) -> Path:
    """Write RUN/report.md and RUN/plots/reward_*.png from the iterations on disk."""
    run = Path(run_dir)
    rows = read_iterations(run)
    name = config.algorithm.upper()
    res = dataclasses.asdict(result)
    if rows:
        plot_iterations(rows, run / PLOTS_DIR, f"{name}: {reward}")
    first, last = (rows[0], rows[-1]) if rows else ({}, {})
    lines = [
        f"# {name} report: {arch}",
        "",
        f"Policy from `{(parent or {}).get('run', '?')}` (step {(parent or {}).get('step', '?')}); "
        f"reward: {reward}.",
        "",
        "## Result",
        "",
        md_table(
            [
                *result_rows(res, n_params, wall_s, "actions trained", " (per action)"),
                ("iterations (rollouts)", len(rows)),
                (
                    "mean score, first → last iteration",
                    f"{first.get('mean_score', math.nan):.3f} → {last.get('mean_score', math.nan):.3f}",
                ),
                ("KL to the reference, last iteration (nats/answer)", last.get("kl", "n/a")),
                ("answers skipped (reward failed)", sum(r.get("skipped", 0) for r in rows)),
            ]
        ),  # fmt: skip
        "",
        "![reward and KL](plots/reward_kl.png)",
        "",
        "## Iterations",
        "",
        "Score: the reward of the answers sampled at that iteration (before the KL penalty). "
        "KL: Σ over an answer's tokens of log π − log π_ref, averaged over answers. Update "
        "columns (entropy, clip fraction, approximate KL to the rollout policy, value loss) "
        "are means over that iteration's update steps; explained variance compares the "
        "critic's values with the GAE returns at rollout time. Update tok/s counts prompt + "
        "answer tokens forward and backward over all epochs.",
        "",
        iteration_table(rows),
        "",
        "Per-iteration rows: `ppo/iterations.jsonl`; every answer: `ppo/samples/iter-<k>.jsonl`.",
        "",
    ]
    if rows:
        lines += ["## Samples at the start", ""]
        lines += _samples_block(read_samples(run, rows[0]["iteration"]), samples_shown)
        lines += ["## Samples at the end", ""]
        lines += _samples_block(read_samples(run, rows[-1]["iteration"]), samples_shown)
    lines += ["## Prompts", "", "```text", prompts_summary.strip(), "```", ""]
    return write_report(run, lines, config)


def plot_side_by_side(runs: dict[str, Sequence[dict[str, Any]]], path: str | Path) -> Path:
    """Mean score against wall time (left) and KL against wall time (right), one line per run:
    PPO and GRPO on the same prompts and budget. A 5-iteration moving mean is drawn over
    the per-iteration points (a rollout's mean score varies with which prompts it drew)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..train.plots import _save

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, rows in runs.items():
        t = [r["wall_s"] for r in rows]
        y = [r["mean_score"] for r in rows]
        k = [sum(y[max(0, i - 4) : i + 1]) / len(y[max(0, i - 4) : i + 1]) for i in range(len(y))]
        (line,) = ax.plot(t, k, label=name)
        ax.plot(t, y, ".", alpha=0.3, color=line.get_color())
        ax2.plot(t, [r["kl"] for r in rows], label=name, color=line.get_color())
    ax.set_xlabel("wall time (s, rollout + update)")
    ax.set_ylabel("mean score (5-iteration moving mean)")
    ax2.set_xlabel("wall time (s, rollout + update)")
    ax2.set_ylabel("KL to the reference (nats per answer)")
    for a in (ax, ax2):
        a.grid(alpha=0.3)
        a.legend()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, out)
    plt.close(fig)
    return out


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def side_by_side_table(runs: dict[str, Sequence[dict[str, Any]]], window: int = 5) -> str:
    """Markdown, a row per run: iterations, episodes, wall time and where it went, the mean
    score over the first and last `window` iterations and at its best `window`, the KL."""
    lines = [
        f"| run | iterations | episodes | wall s | rollout / update s | mean score, first {window}"
        f" → last {window} iterations | best {window} | KL, last {window} (nats/answer) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in runs.items():
        score = [r["mean_score"] for r in rows]
        best = max(_mean(score[i : i + window]) for i in range(max(1, len(score) - window + 1)))
        rollout = sum(r.get("rollout_s", 0.0) for r in rows)
        update = sum(r.get("update_s", 0.0) for r in rows)
        lines.append(
            f"| {name} | {len(rows)} | {sum(r.get('episodes', 0) for r in rows):,} | "
            f"{rows[-1].get('wall_s', math.nan):.0f} | {rollout:.0f} / {update:.0f} | "
            f"{_mean(score[:window]):.3f} → {_mean(score[-window:]):.3f} | {best:.3f} | "
            f"{_mean([r['kl'] for r in rows[-window:]]):.2f} |"
        )
    return "\n".join(lines) + "\n"


def load_runs(specs: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """``[NAME=]RUN`` specs -> {name: RUN/ppo/iterations.jsonl rows}; a folder without
    iterations is an error naming it."""
    from ..common import LmforgeError, named_folder

    runs: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        name, folder = named_folder(spec)
        rows = read_iterations(folder)
        if not rows:
            raise LmforgeError(
                f"{folder}: no {ppo_dir(folder).name}/iterations.jsonl (not a `lmforge ppo` or "
                "`lmforge grpo` run, or one that has not finished an iteration)"
            )
        if name in runs:
            raise LmforgeError(f"run name {name!r} given twice; name them NAME=RUN")
        runs[name] = rows
    return runs
