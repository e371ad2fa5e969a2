"""Lineage outputs: lineage.json, the two plots and report.md, from `run_lineage`'s payload."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..common import atomic_write_text

HEADERS = ["model", "family", "size", "train s", "val bpc", "gen tok/s"]


def table_rows(result: dict[str, Any]) -> list[list[Any]]:
    """One row per model: name, family, size, training seconds, bits/char, tokens/s."""
    rows = []
    for m in result["models"]:
        size = f"{m['params']:,} {m['params_unit']}"
        rows.append([m["name"], m["family"], size, m["train_s"], m["val_bpc"], m["gen_tok_per_s"]])
    return rows


def best_ratio(result: dict[str, Any]) -> tuple[str, float] | None:
    """('best neural bpc / best n-gram bpc', value), or None without both kinds."""
    neural = [m["val_bpc"] for m in result["models"] if m["params_unit"] == "parameters"]
    ngram = [m["val_bpc"] for m in result["models"] if m["params_unit"] == "n-grams"]
    if not neural or not ngram:
        return None
    return "best neural bpc / best n-gram bpc", min(neural) / min(ngram)


def markdown_table(result: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table_rows(result)]
    ratio = best_ratio(result)
    if ratio is not None:
        lines.append(f"| {ratio[0]} | | | | {ratio[1]:.3f} | |")
    return "\n".join(lines)


def tokens_per_char(result: dict[str, Any]) -> float:
    """Predicted validation tokens per validation character (turns nats/token into bpc)."""
    split = result["split"]
    return split["val_predicted"] / split["val_chars"]


def plot_curves(result: dict[str, Any], path: Path, title: str) -> Path:
    """Validation bits/char against training seconds; n-grams as flat lines at their bpc."""
    scale = tokens_per_char(result) / math.log(2)
    fig, ax = _figure()
    for m in result["models"]:
        if m["curve"]:
            xs = [p["elapsed_s"] for p in m["curve"]]
            ys = [p["val_loss"] * scale for p in m["curve"]]
            (line,) = ax.plot(xs, ys, marker=".", label=m["name"])
            ax.plot([xs[-1]], [m["val_bpc"]], marker="*", ms=10, color=line.get_color())
        else:
            ax.axhline(m["val_bpc"], ls="--", lw=1, color="gray")
            # x in axes coordinates (left edge), y in data: the label stays on the plot
            # whatever the time axis spans.
            ax.annotate(
                f"{m['name']} ({m['train_s']:.1f} s to build)",
                (0.01, m["val_bpc"]),
                xycoords=ax.get_yaxis_transform(),
                xytext=(3, 3),
                textcoords="offset points",
                fontsize=8,
                color="dimgray",
            )
    ax.set_xlabel("training wall time, s (evaluation time included)")
    ax.set_ylabel("validation bits per character")
    return _finish(fig, ax, title, path)


def plot_positions(result: dict[str, Any], path: Path, title: str) -> Path:
    """Mean validation loss (bits per token) at each position of the context window."""
    fig, ax = _figure()
    for m in result["models"]:
        ys = m["val_bits_by_position"]
        style = "--" if m["params_unit"] == "n-grams" else "-"
        ax.plot(range(len(ys)), ys, style, lw=1.2, label=m["name"])
    ax.set_xscale("symlog", linthresh=8)
    ax.set_xlabel("position in the window (tokens of history)")
    ax.set_ylabel("mean validation loss, bits per token")
    return _finish(fig, ax, title, path)


def _figure():
    """A new figure and axes on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4.2))


def _finish(fig, ax, title: str, path: Path) -> Path:
    """Title, grid and legend, then write the PNG and free the figure."""
    import matplotlib.pyplot as plt

    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def write_outputs(result: dict[str, Any], out: Path) -> None:
    """lineage.json, plots/val_curve.png, plots/loss_by_position.png and report.md in `out`."""
    name = Path(result["corpus"]).name
    atomic_write_text(out / "lineage.json", json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    curve = plot_curves(result, out / "plots" / "val_curve.png", f"{name}: validation vs time")
    pos = plot_positions(
        result, out / "plots" / "loss_by_position.png", f"{name}: loss by position"
    )
    samples = "\n\n".join(
        f"**{m['name']}**\n\n```text\n{m['sample']}\n```" for m in result["models"]
    )
    report = (
        f"# Lineage: {name}\n\n"
        f"Tokenizer {result['tokenizer']['kind']} ({result['tokenizer']['vocab_size']} ids); "
        f"{result['split']['train_tokens']:,} training tokens; validation "
        f"{result['split']['val_predicted']:,} predicted tokens, "
        f"{result['split']['val_chars']:,} characters; torch threads {result['threads']}.\n\n"
        f"{markdown_table(result)}\n\n"
        f"![validation vs time]({curve.relative_to(out)})\n\n"
        f"![loss by position]({pos.relative_to(out)})\n\n"
        f"## Samples\n\n{samples}\n"
    )
    atomic_write_text(out / "report.md", report)
