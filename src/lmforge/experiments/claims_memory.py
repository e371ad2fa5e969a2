"""C3: RNNs forget distant context, transformers use it — loss by position in the window.

The lineage benchmark (`lmforge eval lineage`, the user's own verb) trains an LSTM and a
LLaMA of about the same size for the same wall-clock budget on one character-level
corpus, and a Kneser-Ney 5-gram as a floor that sees 4 characters. Every model predicts
the same validation windows of T characters, each token from the tokens before it in its
window only, so "loss at position t" means the same for all: the loss with t + 1
characters of history. Positions are grouped into buckets (0-8, 8-32, 32-128, 128-256);
the test is the *far gain*, loss(32-128) - loss(128-256) in bits per character: what the
most distant history is worth. The neural models are re-scored in-process on the same
windows to get each window's gain, hence standard errors and a paired difference.

`verdict` calls the claim reproduced when the transformer's far gain is clearly above zero,
the LSTM's is not, and the difference is clearly positive (each "clearly": at least
`MIN_GAIN` bits and `Z` standard errors).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..common import LmforgeError
from .claims import NOT_REPRODUCED, PARTLY, REPRODUCED, ClaimContext, ClaimResult, Verdict
from .claims_inputs import find_shakespeare, own_world
from .claims_memory_stats import Gain

MIN_GAIN = 0.02  # bits per character: a smaller far gain counts as flat
Z = 2.0  # standard errors a gain or a difference must clear
RNN, TRANSFORMERS, FLOOR = "lstm", ("llama", "gpt"), "ngram5"
FULL = {
    "budget_s": 170, "context": 256, "batch_size": 8, "eval_every": 100, "eval_batches": 2,
    "gen_tokens": 100, "models": [FLOOR, RNN, "llama"],
}  # fmt: skip
QUICK = {
    "budget_s": 2, "context": 64, "batch_size": 8, "eval_every": 20, "eval_batches": 1,
    "gen_tokens": 16, "models": [FLOOR, RNN, "llama"], "chars": 40_000,
}  # fmt: skip


def verdict(
    rnn: Gain,
    transformer: Gain,
    diff_se: float,
    budget_s: float,
    bpc: Mapping[str, float] | None = None,
) -> Verdict:
    """Reproduced when the transformer gains clearly from the far bucket and the RNN does not.

    `rnn` and `transformer` are their far gains (bits per token, with standard errors);
    `diff_se` is the paired standard error of transformer.gain - rnn.gain; `bpc` (validation
    bits per character by model name, the n-gram `FLOOR` among them) only sharpens the
    reason when the transformer is flat: still above the n-gram floor means undertrained."""
    t, r = transformer, rnn
    diff = t.gain - r.gain
    t_uses = t.gain > max(MIN_GAIN, Z * t.se)
    r_uses = r.gain > max(MIN_GAIN, Z * r.se)
    d_clear = diff > max(MIN_GAIN, Z * diff_se)
    said = (
        f"from {t.near} to {t.far} tokens of history the {t.name}'s loss falls by "
        f"{t.gain:+.3f} ± {t.se:.3f} bits/token and the {r.name}'s by {r.gain:+.3f} ± "
        f"{r.se:.3f} (difference {diff:+.3f} ± {diff_se:.3f})"
    )
    if t_uses and d_clear and not r_uses:
        return Verdict(
            REPRODUCED,
            f"{said}: the transformer still uses the distant context, the RNN's loss is flat",
        )
    if t_uses and d_clear:
        return Verdict(
            PARTLY, f"{said}: the transformer gains more, but the RNN does not forget yet"
        )
    if t_uses and not r_uses:
        return Verdict(
            PARTLY,
            f"{said}: the transformer gains and the RNN is flat, but the difference is within "
            f"{Z:g} standard errors",
        )
    if t_uses:
        return Verdict(
            NOT_REPRODUCED,
            f"{said}: the RNN gains as much as the transformer, so at this window length it "
            "does not forget",
        )
    why = (
        f"the transformer's loss is flat too: after {budget_s:g} s of CPU training it has not "
        "learnt to use distant context (a briefly trained model uses mostly the last few "
        "tokens)"
    )
    if r_uses:
        why += ", while the RNN already does"
    if bpc and FLOOR in bpc and t.name in bpc and bpc[t.name] > bpc[FLOOR]:
        why += (
            f"; at {bpc[t.name]:.3f} bits/char it is still above the {FLOOR}'s "
            f"{bpc[FLOOR]:.3f}: undertrained"
        )
    return Verdict(NOT_REPRODUCED, f"{said}: {why}")


def _corpus(ctx: ClaimContext) -> tuple[Path, str]:
    """(text file, how it was chosen): Tiny Shakespeare if present, else the built-in world's
    pretraining text; --quick takes the first `chars` characters of it."""
    found = find_shakespeare()
    if found is not None:
        path, what = found, f"Tiny Shakespeare ({found})"
    else:
        path = own_world(ctx) / "pretrain" / "train.txt"
        what = "the built-in world's pretraining text (Tiny Shakespeare not found in ../shared)"
    if not ctx.quick:
        return path, what
    text = path.read_text(encoding="utf-8")[: QUICK["chars"]]
    small = ctx.out / "corpus_quick.txt"
    small.write_text(text[: text.rfind("\n") + 1] or text, encoding="utf-8")
    return small, f"the first {len(text):,} characters of {what}"


def _rescore(lineage: Path, names: list[str], context: int) -> dict[str, Any]:
    """Per-window bucket losses of each neural model, from its run folder, on the val windows."""
    from ..data.shards import TokenShards
    from ..runs import load_run
    from .claims_memory_stats import bucket_edges, bucket_means, window_matrix
    from .lineage_neural import score_windows

    val = TokenShards(lineage / "data", "val")
    ids = val.window(0, len(val))
    edges = bucket_edges(context)
    out = {}
    for name in names:
        model = load_run(lineage / "runs" / name, need="decoder").model
        out[name] = bucket_means(window_matrix(score_windows(model, ids, context), context), edges)
    return out


def run(ctx: ClaimContext) -> ClaimResult:
    import torch

    from .claims_memory_report import notes, plot_positions, table
    from .claims_memory_stats import (
        bucket_edges,
        bucket_labels,
        gain,
        paired_difference_se,
        profile_buckets,
    )  # fmt: skip

    p = QUICK if ctx.quick else FULL
    torch.set_num_threads(ctx.threads or 1)
    corpus, what = _corpus(ctx)
    lineage = ctx.out / "lineage"
    argv = [
        "eval", "lineage", "--corpus", str(corpus), "--out", str(lineage),
        "--models", *p["models"], "--budget-s", str(p["budget_s"]),
        "--context", str(p["context"]), "--batch-size", str(p["batch_size"]),
        "--eval-every", str(p["eval_every"]), "--eval-batches", str(p["eval_batches"]),
        "--gen-tokens", str(p["gen_tokens"]), "--seed", str(ctx.seed), *ctx.thread_flags(),
    ]  # fmt: skip
    ctx.verb(argv, "lineage")
    result = json.loads((lineage / "lineage.json").read_text(encoding="utf-8"))
    models = {m["name"]: m for m in result["models"]}
    transformers = [n for n in TRANSFORMERS if n in models]
    if RNN not in models or not transformers:
        raise LmforgeError(f"{lineage}: lineage.json lacks the {RNN} or a transformer")
    context = int(result["config"]["context"])
    edges = bucket_edges(context)
    labels = bucket_labels(edges)
    near, far = len(labels) - 2, len(labels) - 1
    neural = [RNN, *transformers]
    per_window = _rescore(lineage, neural, context)
    gains = {n: gain(n, per_window[n], labels, near, far) for n in neural}
    mid = {n: gain(n, per_window[n], labels, 1, far) for n in neural} if near > 1 else gains
    buckets = {n: [float(x) for x in per_window[n].mean(axis=0)] for n in neural}
    if FLOOR in models:
        buckets[FLOOR] = profile_buckets(models[FLOOR]["val_bits_by_position"], edges)
    best = max(transformers, key=lambda n: gains[n].gain)  # the claim's best case
    diff_se = paired_difference_se(per_window[best], per_window[RNN], near, far)
    bpc = {n: float(m["val_bpc"]) for n, m in models.items()}
    v = verdict(gains[RNN], gains[best], diff_se, float(p["budget_s"]), bpc)
    columns, rows = table(result, labels, buckets, gains, mid)
    plot = plot_positions(ctx.out / "loss_by_position.png", result, context, what)
    windows = gains[RNN].windows
    return ClaimResult(
        verdict=v,
        columns=columns,
        rows=rows,
        plots=[plot],
        numbers={
            "corpus": what,
            "context": context,
            "budget_s": p["budget_s"],
            "buckets": labels,
            "loss_by_bucket": {n: [round(x, 4) for x in ys] for n, ys in buckets.items()},
            "far_gain": {n: g.to_dict() for n, g in gains.items()},
            "mid_gain": {n: g.to_dict() for n, g in mid.items()},
            "transformer": best,
            "diff": gains[best].gain - gains[RNN].gain,
            "diff_se": diff_se,
            "windows": windows,
            "val_bpc": bpc,
            "steps": {n: models[n].get("steps") for n in neural},
            "min_gain": MIN_GAIN,
            "z": Z,
            "bits_note": "bits per token = bits per character (character tokenizer)",
        },
        notes=notes(what, result, labels, windows, MIN_GAIN, Z, ctx.quick),
    )
