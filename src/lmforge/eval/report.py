"""report.md of a training run: what was trained, how it went, what it writes."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from ..common import atomic_write_text
from ..config import to_dict

REPORT_FILE = "report.md"


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def md_table(rows: list[tuple[str, Any]]) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {fmt_value(v)} |" for k, v in rows]
    return "\n".join(lines)


def _flat(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flat(v, prefix + k + ".")
        elif v is not None and v != "":
            out.append((prefix + k, v if not isinstance(v, list) else ", ".join(map(str, v))))
    return out


def result_rows(
    res: dict[str, Any], n_params: int, wall_s: float, tokens: str, loss: str
) -> list[tuple[str, Any]]:
    """The rows every stage report's Result table starts with (`tokens`: what counts)."""
    val = res.get("val") or {}
    return [
        ("parameters", n_params),
        ("steps", res["step"]),
        (f"{tokens} (all steps)", res["tokens_seen"]),
        ("stopped by", res["stop_reason"]),
        (f"final train loss{loss}", res["train_loss"]),
        ("final validation loss", val.get("val_loss", "n/a")),
        ("best validation loss", res.get("best_val_loss") or "n/a"),
        ("training time (s)", res["elapsed_s"]),
        ("this session's wall time (s)", wall_s),
        (f"throughput ({tokens}/s, last window)", res.get("tok_per_s") or "n/a"),
    ]


def write_report(run: Path, lines: list[str], config: Any) -> Path:
    """Append the training-config table every report ends with; write RUN/report.md atomically."""
    lines = [*lines, "## Training config", "", md_table(_flat(to_dict(config))), ""]
    path = run / REPORT_FILE
    atomic_write_text(path, "\n".join(lines))
    return path


def write_pretrain_report(
    run_dir: str | Path,
    *,
    config: Any,
    arch: str,
    model_config: Any,
    n_params: int,
    result: Any,
    samples: list[str],
    data_meta: dict[str, Any],
    wall_s: float,
) -> Path:
    """Write RUN/report.md (atomically) and return its path."""
    run = Path(run_dir)
    res = dataclasses.asdict(result)
    val = res.get("val") or {}
    splits = data_meta.get("splits", {})
    lines = [
        f"# Pretraining report: {arch} `{getattr(config, 'preset', '')}`",
        "",
        "## Result",
        "",
        md_table(
            [
                *result_rows(res, n_params, wall_s, "tokens", ""),
                ("validation perplexity", val.get("val_ppl", "n/a")),
                ("validation bits per byte", val.get("val_bpb", "n/a")),
                ("skipped non-finite steps", res.get("nan_skipped", 0)),
            ]
        ),
        "",
        "![loss](plots/loss.png)",
        "",
        "## Samples",
        "",
        "Sampled from a document start (temperature 0.8, top-k 50).",
        "",
    ]
    for i, s in enumerate(samples, 1):
        text = s.strip() or "(empty)"
        lines += [f"**Sample {i}**", "", "```text", text, "```", ""]
    if not samples:
        lines += ["(none requested)", ""]
    lines += [
        "## Data",
        "",
        md_table(
            [
                ("vocabulary", data_meta.get("vocab_size")),
                ("tokenizer", data_meta.get("tokenizer_kind", "")),
                ("train tokens", splits.get("train", {}).get("tokens", "n/a")),
                ("validation tokens", splits.get("val", {}).get("tokens", "n/a")),
                ("validation bytes", splits.get("val", {}).get("bytes", "n/a")),
            ]
        ),
        "",
        "## Model",
        "",
        md_table([("arch", arch), *_flat(to_dict(model_config))]),
        "",
    ]
    return write_report(run, lines, config)


def _fine_tune_report(
    run: Path,
    title: str,
    parent: dict[str, Any] | None,
    results: list[tuple[str, Any]],
    data_rows: list[tuple[str, Any]],
    summary: str,
    config: Any,
) -> Path:
    """The report of a stage trained from a parent run: where from, result, data, reader summary."""
    lines = [
        title,
        "",
        f"Fine-tuned from `{(parent or {}).get('run', '?')}` "
        f"(step {(parent or {}).get('step', '?')}).",
        "",
        "## Result",
        "",
        md_table(results),
        "",
        "![loss](plots/loss.png)",
        "",
        "## Data",
        "",
        md_table(data_rows),
        "",
        "```text",
        summary.strip(),
        "```",
        "",
    ]
    return write_report(run, lines, config)


def write_sft_report(
    run_dir: str | Path,
    *,
    config: Any,
    arch: str,
    n_params: int,
    result: Any,
    stats: Any,
    val_stats: Any,
    rows_per_epoch: int,
    seq_len: int,
    data_summary: str,
    parent: dict[str, Any] | None,
    wall_s: float,
) -> Path:
    """Write RUN/report.md for an SFT run (atomically): what was trained on, and how far."""
    run = Path(run_dir)
    res = dataclasses.asdict(result)
    packed = rows_per_epoch * seq_len
    results = [
        *result_rows(res, n_params, wall_s, "assistant tokens trained", " (per token)"),
        ("skipped non-finite steps", res.get("nan_skipped", 0)),
    ]
    data_rows = [
        ("conversations given", stats.conversations),
        ("kept", stats.kept),
        ("truncated (oldest turns dropped to fit)", stats.truncated),
        ("dropped (last exchange longer than the context)", stats.dropped),
        ("without an assistant turn (skipped)", stats.no_target),
        ("tokens per epoch", stats.tokens),
        ("assistant tokens per epoch (trained)", stats.targets),
        ("packed rows per epoch", rows_per_epoch),
        ("row length", seq_len),
        ("row fill (tokens / row capacity)", stats.tokens / packed if packed else "n/a"),
        ("validation conversations", val_stats.kept if val_stats else 0),
    ]
    return _fine_tune_report(
        run, f"# SFT report: {arch}", parent, results, data_rows, data_summary, config
    )


STAGE_TITLES = {"reward": "Reward model", "dpo": "DPO"}


def write_pairwise_report(
    run_dir: str | Path,
    *,
    stage: str,
    config: Any,
    arch: str,
    n_params: int,
    result: Any,
    stats: Any,
    val_stats: Any,
    summary: str,
    parent: dict[str, Any] | None,
    wall_s: float,
    rows: list[tuple[str, Any]] = (),
) -> Path:
    """Write RUN/report.md for a preference stage (reward train, dpo): pairs, loss, accuracy."""
    run = Path(run_dir)
    res = dataclasses.asdict(result)
    val = res.get("val") or {}
    results = [
        *result_rows(res, n_params, wall_s, "pairs trained", " (per pair)"),
        ("final validation pairwise accuracy", val.get("val_acc", "n/a")),
        ("skipped non-finite steps", res.get("nan_skipped", 0)),
        *rows,
    ]
    data_rows = [
        ("pairs given", stats.pairs),
        ("kept", stats.kept),
        ("truncated (prompt shortened to fit)", stats.truncated),
        ("dropped (an answer longer than the row)", stats.dropped),
        ("validation pairs", val_stats.kept if val_stats else 0),
    ]
    title = f"# {STAGE_TITLES.get(stage, stage)} report: {arch}"
    return _fine_tune_report(run, title, parent, results, data_rows, summary, config)
