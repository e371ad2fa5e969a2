"""Tables and plots of the sensitivity sweeps (`lmforge.prompting.sensitivity`), and their folder.

* `sweeps_markdown(sweeps)`: one table per sweep and task (accuracy mean ± std
  [min–max] per variant; the probes: the share of the probed label beside its
  base rate), the skipped points with their reasons, a headline line each;
* plots, one file per sweep, one panel per task, uncalibrated and calibrated side
  by side as in "Calibrate Before Use" (Figures 1 and 6): ``k.png`` (box and strip
  of accuracy across seeds per k), ``permutations.png`` (across the orders of every
  draw, per k), ``formats.png`` (across formats and seeds, points per format),
  ``recency.png`` and ``majority.png`` (bars: the share of predictions equal to the
  last / majority label per order, a black tick at that label's base rate);
* `write_sweeps(out, sweeps, about=, config=)`: ``results.json`` (``"kind":
  "lmforge fewshot"``, ``"mode": "sweep"``: every sweep's headline, summary, skips
  and trials), ``results.md`` and the plots, complete or not at all.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .sensitivity import Sweep

RESULTS_KIND = "lmforge fewshot"  # the same marker as fewshot_run: --force replaces either
RESULTS_FILE, TABLE_FILE = "results.json", "results.md"
SWEEP_TITLES = {
    "k": "Accuracy against k",
    "permutations": "Spread across permutations of the same examples",
    "formats": "Spread across prompt formats",
    "recency": "Recency probe: share of predictions equal to the last example's label",
    "majority": "Majority probe: share of predictions equal to the majority label",
}
TAGS = {"uncalibrated": "", "calibrated": " (cal)", "affine": " (affine)"}


def short_names(labels: Sequence[str]) -> dict[str, str]:
    """The shortest distinct prefix of each label (``negative`` -> ``n``) for compact orders."""
    out = {}
    for label in labels:
        for n in range(1, len(label) + 1):
            pre = label[:n]
            if sum(x.startswith(pre) for x in labels) == 1 or n == len(label):
                out[label] = pre
                break
    return out


def order_text(order: Sequence[str], labels: Sequence[str]) -> str:
    names = short_names(labels)
    sep = "" if all(len(names[x]) == 1 for x in order) else ","
    return sep.join(names.get(x, x) for x in order)


def _pct(x: float) -> str:
    return "–" if x != x else f"{100 * x:.1f}"


def _acc_cells(acc: Mapping[str, Any], variants: Sequence[str]) -> list[str]:
    cells = []
    for v in variants:
        a = acc[v]
        cells += [f"{_pct(a['mean'])} ± {_pct(a['std'])}", f"{_pct(a['min'])}–{_pct(a['max'])}"]
    return cells


def _acc_head(variants: Sequence[str]) -> list[str]:
    return [h for v in variants for h in (f"accuracy{TAGS[v]}", f"min–max{TAGS[v]}")]


def _top(shares: Mapping[str, float]) -> str:
    """The most predicted label and its share: ``food 100.0``."""
    label = max(shares, key=lambda c: shares[c])
    return f"{label} {_pct(shares[label])}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def sweep_table(sweep: Sweep) -> list[str]:
    """The Markdown lines of one sweep's table (no heading)."""
    vs = sweep.variants()
    rows = sweep.summary()
    if sweep.name == "k":
        head = ["k", "draws", "prompt tokens", *_acc_head(vs)]
        head += [f"most predicted{TAGS[v]}" for v in vs]
        body = [[str(r["k"]), str(r["n"]), f"{r['prompt_tokens']:.0f}",
                 *_acc_cells(r["accuracy"], vs),
                 *[_top(r["predicted_share"][v]) for v in vs]] for r in rows]  # fmt: skip
    elif sweep.name == "permutations":
        head = ["k", "seed", "orders", *_acc_head(vs)]
        body = [[str(r["k"]), str(r["seed"]), str(r["n"]), *_acc_cells(r["accuracy"], vs)]
                for r in rows]  # fmt: skip
    elif sweep.name == "formats":
        head = ["k", "format", "trials", "prompt tokens", *_acc_head(vs)]
        body = [[str(r["k"]), str(r["fmt"]), str(r["n"]), f"{r['prompt_tokens']:.0f}",
                 *_acc_cells(r["accuracy"], vs)] for r in rows]  # fmt: skip
    else:
        what = "last" if sweep.name == "recency" else "majority"
        head = ["order", f"{what} label", "base rate"]
        head += [f"share{TAGS[v]}" for v in vs] + [f"mean p{TAGS[v]}" for v in vs]
        head += [f"accuracy{TAGS[v]}" for v in vs]
        body = []
        for r in rows:
            cells = [order_text(r["order"], sweep.labels), r["label"], _pct(r["base_rate"])]
            cells += [f"{_pct(r['share'][v]['mean'])} ± {_pct(r['share'][v]['std'])}" for v in vs]
            cells += [_pct(r.get("prob", {}).get(v, float("nan"))) for v in vs]
            cells += [_pct(r["accuracy"][v]["mean"]) for v in vs]
            body.append(cells)
    return _table(head, body)


def headline_text(sweep: Sweep) -> str:
    """One line: the sweep's headline numbers per variant."""
    h = sweep.headline()
    if not h:
        return "nothing evaluated."
    parts = []
    for v, x in h.items():
        if sweep.name == "k":
            parts.append(f"{v}: " + ", ".join(f"k={k} {_pct(a)}" for k, a in x.items()))
        elif sweep.name in ("recency", "majority"):
            parts.append(
                f"{v}: share {_pct(x['share'])}% vs base rate {_pct(x['base_rate'])}%, "
                f"gap {100 * x['gap']:+.1f} points (in mean probability "
                f"{100 * x.get('prob_gap', float('nan')):+.1f})"
            )
        else:
            extra = ""
            if "mean_std_within_draw" in x:
                extra = f", mean std within a draw {_pct(x['mean_std_within_draw'])}"
            if "std_of_format_means" in x:
                extra = f", std of the format means {_pct(x['std_of_format_means'])}"
            parts.append(
                f"{v} (k={x['k']}): {_pct(x['accuracy'])} ± {_pct(x['std'])} "
                f"[{_pct(x['min'])}–{_pct(x['max'])}]{extra}"
            )
    return "; ".join(parts) + "."


def skip_text(sweep: Sweep, skip: Any) -> str:
    """One skipped point as a line: ``skipped (format answer): k=16, seed 0: ...``."""
    where = f" (format {skip.fmt})" if sweep.name == "formats" and skip.fmt else ""
    return f"skipped{where}: {skip.reason}"


def sweeps_markdown(sweeps: Sequence[Sweep], about: Mapping[str, Any] | None = None,
                    config: Any = None) -> str:  # fmt: skip
    """results.md of a sweep run: what was evaluated, then one section per sweep and task."""
    about = about or {}
    lines = ["# Few-shot sensitivity sweeps", ""]
    run = about.get("run")
    if isinstance(run, Mapping):
        lines.append(f"Run `{run.get('path')}` step {run.get('step')} ({run.get('stage')}).")
    if config is not None:
        lines.append(
            f"Seeds {config.first_seed}..{config.first_seed + config.seeds - 1}, "
            f"{config.limit or 'all'} test examples per task (a fixed subset), label scoring "
            f"({config.normalize}); calibrated: contextual calibration with content-free "
            f"inputs {', '.join(repr(s) for s in config.content_free)}. Accuracy in %, "
            "mean ± std (population) [min–max]; probes: share of predictions in %."
        )
    for s in sweeps:
        lines += ["", f"## {SWEEP_TITLES[s.name]}: {s.task}", ""]
        if s.trials:
            lines += sweep_table(s)
            lines += ["", headline_text(s)]
        for sk in s.skipped:
            lines.append(f"- {skip_text(s, sk)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Plots


def _figure(n_panels: int, width: float = 4.2, height: float = 3.4,
            widths: Sequence[float] | None = None):  # fmt: skip
    """A row of `n_panels` axes, `width` inches each (or `widths`, one per panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = list(widths) if widths else [width] * n_panels
    fig, axes = plt.subplots(
        1, n_panels, figsize=(sum(widths), height), squeeze=False, layout="constrained",
        gridspec_kw={"width_ratios": widths},
    )  # fmt: skip
    return plt, fig, list(axes[0])


def _save(plt, fig, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _boxes(ax, groups: list[list[list[float]]], variants: Sequence[str],
           colors: list[list[list[Any]]] | None = None) -> None:  # fmt: skip
    """Per x group, one box + jittered points per variant (values in [0, 1]); `colors`:
    a colour per point ([group][variant][point]), else the variant's colour."""
    import random

    rng = random.Random(0)
    width = 0.8 / max(1, len(variants))
    for g, per_variant in enumerate(groups):
        for m, values in enumerate(per_variant):
            if not values:
                continue
            x = g - 0.4 + width * (m + 0.5)
            ys = [100 * y for y in values]
            ax.boxplot([ys], positions=[x], widths=width * 0.8, showfliers=False,
                       patch_artist=True, boxprops={"facecolor": f"C{m}", "alpha": 0.3},
                       medianprops={"color": f"C{m}"})  # fmt: skip
            jit = [x + (rng.random() - 0.5) * width * 0.5 for _ in ys]
            if colors:  # one colour per point (the formats sweep: a colour per format)
                ax.scatter(jit, ys, s=12, c=colors[g][m], zorder=3, edgecolors="black",
                           linewidths=0.3)  # fmt: skip
            else:
                ax.scatter(jit, ys, s=10, color=f"C{m}", zorder=3, alpha=0.8)


def _finish(ax, sweep: Sweep, xlabels: list[str], xlabel: str, note: str = "") -> None:
    ax.axhline(100 / max(1, len(sweep.labels)), color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(xlabels)))
    ax.set_xticklabels(xlabels, fontsize=8)
    ax.set_xlim(-0.6, len(xlabels) - 0.4)
    ax.set_ylim(0, 100)
    ax.set_xlabel(xlabel + (f"\n{note}" if note else ""), fontsize=8)
    ax.set_title(sweep.task, fontsize=10)
    ax.grid(alpha=0.3, axis="y")


def _legend(axes, variants: Sequence[str], extra: Sequence[Any] = ()) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=f"C{m}", alpha=0.6, label=v) for m, v in enumerate(variants)]
    handles.append(Patch(color="grey", alpha=0.5, label="chance (dashed)"))
    handles += list(extra)
    axes[-1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _skip_note(sweep: Sweep) -> str:
    """The skipped k of a panel, once each: ``k=16 skipped (context)``."""
    notes = [
        f"k={s.k} skipped" + (" (context)" if "context" in s.reason else "") for s in sweep.skipped
    ]
    return "; ".join(dict.fromkeys(notes))


def plot_spread(sweeps: Sequence[Sweep], path: str | Path) -> Path:
    """k, permutations or formats: accuracy boxes per group (k) and variant, a panel per task;
    the formats sweep colours its points by format."""
    name = sweeps[0].name
    plt, fig, axes = _figure(len(sweeps))
    variants = sweeps[0].variants()
    fmts = list(dict.fromkeys(t.fmt for s in sweeps for t in s.trials))
    cmap = plt.get_cmap("tab10")

    def fmt_color(f: str):
        return cmap((2 + fmts.index(f)) % 10)  # C0, C1 are the variants

    for ax, s in zip(axes, sweeps):
        vs = s.variants()
        ks = list(dict.fromkeys(t.k for t in s.trials))
        groups = [[[t.accuracy[v] for t in s.trials if t.k == k] for v in vs] for k in ks]
        colors = None
        if name == "formats":
            colors = [[[fmt_color(t.fmt) for t in s.trials if t.k == k] for _ in vs] for k in ks]
        _boxes(ax, groups, vs, colors)
        _finish(ax, s, [str(k) for k in ks], "shown examples (k)", _skip_note(s))
        ax.set_ylabel("accuracy (%)")
    extra = []
    if name == "formats":
        from matplotlib.lines import Line2D

        extra = [
            Line2D([0], [0], marker="o", ls="", color=fmt_color(f), markeredgecolor="black",
                   markeredgewidth=0.3, label=f"format {f}")
            for f in fmts
        ]  # fmt: skip
    fig.suptitle(SWEEP_TITLES[name], fontsize=10)
    _legend(axes, variants, extra)
    return _save(plt, fig, Path(path))


def plot_probe(sweeps: Sequence[Sweep], path: str | Path) -> Path:
    """Recency or majority: bars of the probed label's share per order and variant, base rate."""
    name = sweeps[0].name
    widths = [max(3.6, 0.55 * max(1, len(s.summary())) + 1.4) for s in sweeps]
    plt, fig, axes = _figure(len(sweeps), widths=widths)
    variants = sweeps[0].variants()
    for ax, s in zip(axes, sweeps):
        rows = s.summary()
        vs = s.variants()
        width = 0.8 / max(1, len(vs))
        for m, v in enumerate(vs):
            xs = [i - 0.4 + width * (m + 0.5) for i in range(len(rows))]
            ax.bar(xs, [100 * r["share"][v]["mean"] for r in rows], width * 0.95,
                   yerr=[100 * r["share"][v]["std"] for r in rows], capsize=2,
                   color=f"C{m}", alpha=0.8)  # fmt: skip
            ax.scatter(xs, [100 * r["share_off"][v] for r in rows], marker="x", color="black",
                       s=18, zorder=3)  # fmt: skip
        for i, r in enumerate(rows):
            ax.hlines(100 * r["base_rate"], i - 0.45, i + 0.45, color="black", lw=1.5)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([order_text(r["order"], s.labels) for r in rows], fontsize=7,
                           rotation=45 if len(rows) > 6 else 0)  # fmt: skip
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylim(0, 100)
        what = "last" if name == "recency" else "majority"
        ax.set_ylabel(f"predictions = {what} label (%)")
        names = short_names(s.labels)
        key = ", ".join(f"{v}={k}" for k, v in names.items())
        ax.set_xlabel(f"order of the shown examples\n({key})", fontsize=7)
        note = "" if not s.skipped else " (skipped: " + s.skipped[0].reason[:40] + "…)"
        ax.set_title(s.task + note, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=f"C{m}", alpha=0.8, label=v) for m, v in enumerate(variants)]
    handles.append(Line2D([0], [0], color="black", lw=1.5, label="base rate of that label"))
    what = "last" if name == "recency" else "the majority"
    handles.append(Line2D([0], [0], color="black", marker="x", ls="",
                          label=f"that label's share when\nanother label is {what}"))  # fmt: skip
    axes[-1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(SWEEP_TITLES[name], fontsize=10)
    return _save(plt, fig, Path(path))


def plot_sweeps(sweeps: Sequence[Sweep], folder: str | Path) -> list[Path]:
    """One plot per sweep name (``<name>.png``), a panel per task; sweeps with no trials
    are left out of it (their skips are in results.md)."""
    folder = Path(folder)
    out = []
    for name in dict.fromkeys(s.name for s in sweeps):
        group = [s for s in sweeps if s.name == name and s.trials]
        if not group:
            continue
        fn = plot_probe if name in ("recency", "majority") else plot_spread
        out.append(fn(group, folder / f"{name}.png"))
    return out


# ---------------------------------------------------------------------------
# The folder


def sweeps_document(sweeps: Sequence[Sweep], about: Mapping[str, Any] | None = None,
                    config: Any = None) -> dict[str, Any]:  # fmt: skip
    """What results.json holds in sweep mode."""
    from ..config import to_dict

    return {
        "kind": RESULTS_KIND,
        "mode": "sweep",
        "version": 1,
        **dict(about or {}),
        "config": to_dict(config) if config is not None else None,
        "sweeps": [s.to_dict() for s in sweeps],
    }


def write_sweeps(out: str | Path, sweeps: Sequence[Sweep], *,
                 about: Mapping[str, Any] | None = None, config: Any = None) -> list[str]:  # fmt: skip
    """Write results.json, results.md and the plots into `out` (complete or not at all);
    returns the names written."""
    from ..common import replace_folder

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        (tmp / TABLE_FILE).write_text(sweeps_markdown(sweeps, about, config), encoding="utf-8")
        plots = plot_sweeps(sweeps, tmp)
        doc = sweeps_document(sweeps, about, config)
        (tmp / RESULTS_FILE).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [RESULTS_FILE, TABLE_FILE, *(p.name for p in plots)]
