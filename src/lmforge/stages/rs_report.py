"""report.md of a rejection-sampling run: the training result and, per iteration, the round."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..eval.report import fmt_value, md_table, result_rows, write_report
from .rs_batches import RS_DIR, iteration_dir


def read_summaries(run_dir: str | Path, upto: int | None = None) -> list[dict[str, Any]]:
    """Each sampled iteration's curve.json (summary and curve), in order, up to `upto`."""
    out = []
    k = 1
    while upto is None or k <= upto:
        path = iteration_dir(run_dir, k) / "curve.json"
        if not path.is_file():
            break
        out.append(json.loads(path.read_text(encoding="utf-8")))
        k += 1
    return out


def _num(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else fmt_value(v)


def iteration_table(summaries: list[dict[str, Any]]) -> str:
    """One row per iteration: samples, throughput, kept, rewards, the ends of the curve."""
    lines = [
        "| iteration | samples | samples/s (with scoring) | new tokens/s | kept | solved by "
        "all N | replayed | mean reward | mean best reward | E[max] at N | E[median] at N |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        end = s["curve"][-1] if s.get("curve") else {}
        lines.append(
            f"| {s['iteration']} | {s['samples']:,} | {_num(s.get('samples_per_s'), 1)} | "
            f"{_num(s.get('new_tokens_per_s'), 0)} | {s['kept']:,}/{s['prompts']:,} | "
            f"{_num(s.get('solved'), 0)}{' (left out)' if s.get('skip_solved') else ''} | "
            f"{_num(s.get('replayed', 0), 0)} | {_num(s.get('mean_reward'))} | {_num(s.get('mean_best_reward'))} | "
            f"{_num(end.get('max'))} | {_num(end.get('median'))} |"
        )
    return "\n".join(lines)


def write_rs_report(
    run_dir: str | Path,
    *,
    config: Any,
    arch: str,
    n_params: int,
    result: Any,
    steps_per_iteration: int,
    reward: str,
    min_reward: float | None,
    prompts_summary: str,
    parent: dict[str, Any] | None,
    wall_s: float,
) -> Path:
    """Write RUN/report.md (atomically) from the loop's result and the iterations on disk."""
    run = Path(run_dir)
    res = dataclasses.asdict(result)
    done = -(-res["step"] // steps_per_iteration) if steps_per_iteration else 0
    summaries = read_summaries(run, upto=done)
    lines = [
        f"# Rejection sampling report: {arch}",
        "",
        f"Policy from `{(parent or {}).get('run', '?')}` (step {(parent or {}).get('step', '?')}); "
        f"reward: {reward}; a prompt is trained on when its best sample scores at least "
        f"{'-inf (all)' if min_reward is None else f'{min_reward:g}'}"
        + (", unless every sample does (solved prompts are left out)" if config.skip_solved else "")
        + (
            f"; {config.replay_ratio:g} SFT conversations from --replay are trained on per kept "
            "answer"
            if config.replay
            else ""
        )
        + ".",
        "",
        "## Result",
        "",
        md_table(
            [
                *result_rows(res, n_params, wall_s, "assistant tokens trained", " (per token)"),
                ("iterations sampled", f"{len(summaries)} of {config.iterations}"),
                ("steps per iteration", steps_per_iteration),
                ("samples per prompt (N)", config.n),
                ("temperature", config.temperature),
                ("skipped non-finite steps", res.get("nan_skipped", 0)),
            ]
        ),
        "",
        "![loss](plots/loss.png)",
        "",
        "## Iterations",
        "",
        "Samples/s counts every sample of the round over its wall time, generation and "
        "scoring together. E[max] and E[median] at n are the expected max and median reward "
        "of n of a prompt's N samples (exact, over all n-subsets), averaged over prompts: "
        "LLaMA-2's Fig. 7.",
        "",
        iteration_table(summaries),
        "",
    ]
    for s in summaries:
        k = s["iteration"]
        lines += [
            f"### Iteration {k}",
            "",
            s.get("curve_says", ""),
            "",
            f"![best of n, iteration {k}]({RS_DIR}/iter-{k}/curve.png)",
            "",
            f"Every sample: `{RS_DIR}/iter-{k}/samples.jsonl`; kept: `{RS_DIR}/iter-{k}/best.jsonl`; "
            + (f"replayed: `{RS_DIR}/iter-{k}/replay.jsonl`; " if s.get("replayed") else "")
            + f"the curve as a table: `{RS_DIR}/iter-{k}/curve.md`.",
            "",
        ]
    lines += ["## Prompts", "", "```text", prompts_summary.strip(), "```", ""]
    return write_report(run, lines, config)
