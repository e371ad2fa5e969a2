"""PNG training curves (matplotlib, headless Agg backend)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if isinstance(v, (int, float)):
            xs.append(int(r["step"]))
            ys.append(float(v))
    return xs, ys


def _save(fig, path: Path) -> None:
    # Written under a temporary name and renamed: a viewer never sees half a PNG.
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)


def plot_training_curves(records: Sequence[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """plots/loss.png (train and validation loss by step) and plots/lr.png; returns paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    fig, ax = plt.subplots(figsize=(7, 4))
    xs, ys = _series(records, "loss")
    if xs:
        ax.plot(xs, ys, label="train", linewidth=1.2)
    vx, vy = _series(records, "val_loss")
    if vx:
        ax.plot(vx, vy, "o-", label="validation", linewidth=1.5, markersize=4)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats / token)")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    if xs or vx:
        ax.legend()
    _save(fig, out / "loss.png")
    plt.close(fig)
    written.append(out / "loss.png")

    lx, ly = _series(records, "lr")
    if lx:
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.plot(lx, ly)
        ax.set_xlabel("step")
        ax.set_ylabel("learning rate")
        ax.grid(alpha=0.3)
        _save(fig, out / "lr.png")
        plt.close(fig)
        written.append(out / "lr.png")
    return written
