"""`lmforge ngram info`: what a model holds -- counts per order, memory, discounts."""

from __future__ import annotations

from .model import NgramModel


def describe(model: NgramModel) -> list[str]:
    """Human-readable lines describing `model`."""
    meta = model.meta
    lines = [
        f"smoothing   {model.smoothing}",
        f"order       {model.order}",
        f"tokenizer   {model.tokenizer}",
        f"vocabulary  {model.vocab_size:,} words (with <unk>, <s>, </s>)",
    ]
    training = meta.get("training")
    if training:
        lines.append(
            f"trained on  {training['sentences']:,} sentences, {training['words']:,} words, "
            f"{training['types']:,} word types ({training['types_mapped_to_unk']:,} mapped to "
            f"<unk>) in {meta.get('seconds', 0):.2f} s"
        )
    if meta.get("source"):
        lines.append(f"read from   {meta['source']}")
    before = meta.get("ngrams_before_pruning")
    thresholds = meta.get("prune_thresholds") or [0] * model.order
    est = meta.get("estimator") or {}
    discounts = est.get("discounts")
    fallback = est.get("discount_fallback") or []
    lines.append("")
    header = f"{'order':>5}  {'n-grams':>12}  {'memory':>10}"
    if any(thresholds):
        header += f"  {'pruned':>10}  {'threshold':>9}"
    if discounts:
        header += f"  {'D1':>7} {'D2':>7} {'D3+':>7}"
    lines.append(header)
    for n in range(1, model.order + 1):
        nbytes = model.logp[n - 1].nbytes + (model.keys[n - 1].nbytes if n > 1 else 0)
        if n < model.order:
            nbytes += model.logbo[n - 1].nbytes
        row = f"{n:>5}  {len(model.logp[n - 1]):>12,}  {_size(nbytes):>10}"
        if any(thresholds):
            dropped = before[n - 1] - len(model.logp[n - 1]) if before else 0
            row += f"  {dropped:>10,}  {thresholds[n - 1]:>9}"
        if discounts:
            d = discounts[n - 1]
            row += f"  {d[0]:>7.4f} {d[1]:>7.4f} {d[2]:>7.4f}"
            if n - 1 < len(fallback) and fallback[n - 1]:
                row += "  (fallback: too few n-grams to estimate)"
        lines.append(row)
    lines.append(f"{'total':>5}  {sum(model.ngram_counts()):>12,}  {_size(model.nbytes()):>10}")
    if "alpha" in est:
        lines.append(f"\nstupid backoff alpha = {est['alpha']} (scores, not probabilities)")
    if "k" in est:
        lines.append(f"\nadd-k with k = {est['k']}, |V| = {est['predictable_vocab']:,}")
    if meta.get("inserted_ngrams") and any(meta["inserted_ngrams"]):
        lines.append(
            "\nadded to the ARPA's n-grams (missing contexts/suffixes, scored by backoff): "
            + ", ".join(f"{n}-grams {c:,}" for n, c in enumerate(meta["inserted_ngrams"], 1) if c)
        )
    return lines


def _size(nbytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024  # type: ignore[assignment]
    return f"{nbytes} B"
