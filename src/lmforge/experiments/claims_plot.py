"""Plots the experiments share: lines over x and grouped bars, PNG only (Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4.2))


def _save(fig, ax, path: Path, title: str, legend: bool) -> str:
    import matplotlib.pyplot as plt

    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path.name


def line_plot(
    path: Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
) -> str:
    """One line per series (label -> (xs, ys)); returns the file name."""
    fig, ax = _figure()
    for label, (xs, ys) in series.items():
        ax.plot(list(xs), list(ys), marker="o", markersize=3, label=label)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _save(fig, ax, path, title, legend=len(series) > 1)


def bar_plot(
    path: Path,
    groups: Sequence[str],
    bars: Mapping[str, Sequence[float]],
    *,
    title: str,
    ylabel: str,
    errors: Mapping[str, Sequence[tuple[float, float]]] | None = None,
) -> str:
    """Grouped bars: one group per x label, one bar per series (label -> a value per group);
    `errors` gives (low, high) interval ends per bar, drawn as error bars."""
    fig, ax = _figure()
    n = max(len(bars), 1)
    width = 0.8 / n
    for i, (label, values) in enumerate(bars.items()):
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        yerr = None
        if errors and label in errors:
            lo_hi = errors[label]
            yerr = [
                [max(v - lo, 0.0) for v, (lo, _) in zip(values, lo_hi)],
                [max(hi - v, 0.0) for v, (_, hi) in zip(values, lo_hi)],
            ]
        ax.bar(xs, list(values), width, label=label, yerr=yerr, capsize=3 if yerr else 0)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(list(groups), fontsize=8, rotation=15 if len(groups) > 4 else 0)
    ax.set_ylabel(ylabel)
    return _save(fig, ax, path, title, legend=len(bars) > 1)
