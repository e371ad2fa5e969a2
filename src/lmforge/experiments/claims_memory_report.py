"""C3's table, plot and notes from the lineage payload and the bucket numbers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .claims_memory_stats import Gain, binned_profile, log_bins
from .claims_plot import line_plot

WHY_SHAKESPEARE = (
    "Why this text: it is natural text whose speeches and scenes run over hundreds of "
    "characters (speaker names, words and rhymes recur within a window), so distant context "
    "carries information; the world's documents are ~230 characters, shorter than the "
    "window, so history beyond a document boundary is worth little to any model."
)
WHY_WORLD = (
    "Why this text: it is what every user has; its documents are ~230 characters, so most "
    "windows span a document boundary and the far buckets gain little for any model (Tiny "
    "Shakespeare in ../shared/data/corpora, when present, is used instead)."
)


def table(
    result: Mapping[str, Any],
    labels: Sequence[str],
    buckets: Mapping[str, Sequence[float]],
    far: Mapping[str, Gain],
    mid: Mapping[str, Gain],
) -> tuple[list[str], list[list[Any]]]:
    """One row per model: size, budget, steps, bpc, loss per bucket, mid and far gains."""
    g_far = f"gain {far[next(iter(far))].near} → {labels[-1]}"
    g_mid = f"gain {mid[next(iter(mid))].near} → {labels[-1]}"
    columns = ["model", "family", "params", "train s", "steps", "val bpc"]
    two = g_mid != g_far  # one gain column when the window has only three buckets
    columns += [f"loss {lab}" for lab in labels] + ([g_mid, g_far] if two else [g_far])
    rows = []
    for m in result["models"]:
        name = m["name"]
        if name not in buckets:
            continue
        ys = buckets[name]
        if name in far:
            gm = f"{mid[name].gain:+.3f} ± {mid[name].se:.3f}"
            gf = f"{far[name].gain:+.3f} ± {far[name].se:.3f}"
        else:  # an n-gram: scored elsewhere, bucket means only
            i_mid = labels.index(mid[next(iter(mid))].near)
            gm, gf = f"{ys[i_mid] - ys[-1]:+.3f}", f"{ys[-2] - ys[-1]:+.3f}"
        rows.append(
            [
                name,
                m["family"],
                f"{m['params']:,} {m['params_unit']}",
                f"{m['train_s']:.0f}",
                m.get("steps", "–"),
                f"{m['val_bpc']:.3f}",
                *[f"{y:.3f}" for y in ys],
                *([gm, gf] if two else [gf]),
            ]
        )
    return columns, rows


def plot_positions(path: Path, result: Mapping[str, Any], context: int, corpus: str) -> str:
    """Mean loss against tokens of history, log-spaced bins, one line per model."""
    bins = log_bins(context)
    series = {m["name"]: binned_profile(m["val_bits_by_position"], bins) for m in result["models"]}
    name = "Tiny Shakespeare" if "Shakespeare" in corpus else "world text"
    budget = result["config"]["budget_s"]
    return line_plot(
        path,
        series,
        title=f"C3 loss by position: {name}, T = {context} characters, {budget:g} s per model",
        xlabel="tokens of history (position + 1), log-spaced bins",
        ylabel="mean validation loss, bits per character",
        logx=True,
    )


def notes(
    corpus: str,
    result: Mapping[str, Any],
    labels: Sequence[str],
    windows: int,
    min_gain: float,
    z: float,
    quick: bool,
) -> list[str]:
    cfg, split = result["config"], result["split"]
    out = [
        f"Corpus: {corpus}; character tokenizer ({result['tokenizer']['vocab_size']} ids); "
        f"{split['train_tokens']:,} training characters, the last "
        f"{split['val_tokens']:,} held out.",
        WHY_SHAKESPEARE if "Shakespeare" in corpus else WHY_WORLD,
        f"Training: `lmforge eval lineage` (command in logs/lineage.log), {cfg['budget_s']:g} s "
        f"of wall time per neural model, batch {cfg['batch_size']} × {cfg['context']}, lr "
        f"{cfg['lr']:g} cosine, {cfg['threads']} torch thread(s); the LSTM and the LLaMA are "
        f"the `{cfg['preset']}` shapes (similar parameter counts, table). The batch is "
        "smaller than lineage's 16 because on a shared 2-core CPU the budget buys only a few "
        "hundred steps; more, smaller steps train further in the same time.",
        f"Scoring: {windows:,} non-overlapping validation windows of {cfg['context']} "
        "characters; each token is predicted from its window's earlier tokens only (the "
        "LSTM from a zero state), so position = history length for every model.",
        f"Rule: far gain = loss({labels[-2]}) - loss({labels[-1]}) per window, mean ± "
        f"standard error over windows; a gain counts when it exceeds both {min_gain} bits and "
        f"{z:g} standard errors; reproduced = transformer counts, LSTM does not, and their "
        "paired difference counts.",
        "The GPT is left out: at equal CPU time the LLaMA block learns clearly faster "
        "(docs/lineage.md), and a third model would halve each one's budget.",
        "Equal wall time is not equal steps: the LSTM takes more steps per second on a CPU "
        "(column steps); a transformer trained this briefly may not yet have learnt to look "
        "far back, which the far gain would show as ≈ 0.",
    ]
    if quick:
        out.append("--quick: seconds of training on a slice; it checks the pipeline only.")
    return out
