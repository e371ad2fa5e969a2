"""Count-threshold pruning per order, and compaction of a key trie after entries are dropped.

Semantics follow KenLM's ``lmplz --prune``: thresholds are per order and
non-decreasing; an n-gram of order n >= 2 whose raw count is <= threshold[n-1] is
dropped; unigrams are never pruned. Because a context or a suffix occurs at least as
often as any n-gram containing it, a kept n-gram always keeps its context and suffix.
"""

from __future__ import annotations

import numpy as np

from .counts import NgramCounts


def expand_thresholds(thresholds: list[int], order: int) -> list[int]:
    """Pad to `order` values by repeating the last one (KenLM's rule); [] means no pruning."""
    if not thresholds:
        return [0] * order
    out = list(thresholds[:order])
    out += [out[-1]] * (order - len(out))
    return out


def prune_masks(counts: NgramCounts, thresholds: list[int]) -> list[np.ndarray | None]:
    """Per order, a boolean keep-mask (None: keep everything)."""
    masks: list[np.ndarray | None] = [None]
    for n, t in enumerate(expand_thresholds(thresholds, counts.order)[1:], start=2):
        masks.append(counts.counts[n - 1] > t if t > 0 else None)
    return masks


def compact_keys(
    keys: list[np.ndarray], vocab_size: int, keep: list[np.ndarray | None]
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Drop entries not kept and renumber parents; returns new keys and old->new index maps.

    The renumbering is monotone, so the new keys stay sorted.
    """
    new_keys = [keys[0]]
    remaps: list[np.ndarray | None] = [None]
    remap_prev: np.ndarray | None = None
    for n in range(2, len(keys) + 1):
        k = keys[n - 1]
        mask = keep[n - 1] if n - 1 < len(keep) else None
        if mask is not None:
            k = k[mask]
        if remap_prev is not None:
            k = remap_prev[k // vocab_size] * vocab_size + k % vocab_size
        new_keys.append(k)
        # Indices of this order change only if entries of this order were dropped.
        remap_cur = None if mask is None else np.cumsum(mask) - 1
        remaps.append(remap_cur)
        remap_prev = remap_cur
    return new_keys, remaps


def compact_counts(counts: NgramCounts, keep: list[np.ndarray | None]) -> NgramCounts:
    """`counts` without the pruned n-grams (for estimators that prune before estimating)."""
    keys, remaps = compact_keys(counts.keys, counts.vocab_size, keep)
    new_counts, new_suffix = [counts.counts[0]], [None]
    for n in range(2, counts.order + 1):
        mask = keep[n - 1]
        c, s = counts.counts[n - 1], counts.suffix[n - 1]
        if mask is not None:
            c, s = c[mask], s[mask]
        below = remaps[n - 2]
        if below is not None:
            s = below[s]
        new_counts.append(c)
        new_suffix.append(s)
    return NgramCounts(counts.vocab_size, keys, new_counts, new_suffix, counts.n_sentences)
