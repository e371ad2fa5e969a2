"""Keyboard-style suggestions: the top-k next words for a context, and word completion.

Exact top-k without scoring the whole vocabulary. Let h_1 .. h_L be the suffixes of
the context (h_L the longest) and S_j the words listed after h_j; every n-gram's
suffix is listed too, so S_L ⊆ ... ⊆ S_1 ⊆ S_0 = the vocabulary. A word whose
deepest level is j (in S_j, not in S_{j+1}) has

    log p(w | h_L) = log p(h_j w) + sum of the backoff weights of h_{j+1} .. h_L,

a per-level constant plus a value stored in the slice of S_j. So each level offers
its k best words outside S_{j+1}: the model keeps every context's continuations
also in order of falling probability (and the unigrams by rank), so a level reads
its slice from the top and stops after k words that qualify. One small sort of
these candidates gives the answer -- the cost grows with k and the size of the
deeper sets, not with the vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .model import NgramModel
from .vocab import BOS_ID

N_SPECIALS = 3  # <unk>, <s>, </s> (ids 0..2) are never suggested


def context_ids(model: NgramModel, words: Sequence[str], sentence_start: bool = True) -> list[int]:
    """Word ids of the history to condition on: <s> (at a sentence start) + `words`."""
    ids = [BOS_ID] if sentence_start else []
    ids += [model.vocab.id(w) for w in words]
    return ids[-(model.order - 1) :] if model.order > 1 else []


def _in_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Membership of `values` in an ascending array."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[pos] == values


def _scan(
    words_of,
    logp_of,
    n: int,
    k: int,
    exclude: np.ndarray,
    allowed: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The first k entries of a probability-ordered list (entry i's word and log p are
    `words_of(a, b)` / `logp_of(a, b)` for a slice) that are not specials, not in
    `exclude` and in `allowed`. Reads chunks of doubling size, so it usually touches
    only the top of the list."""
    got_w, got_p, found, start, step = [], [], 0, 0, max(4 * k, 64)
    while start < n and found < k:
        stop = min(n, start + step)
        w = words_of(start, stop)
        keep = (w >= N_SPECIALS) & ~_in_sorted(w, exclude)
        if allowed is not None:
            keep &= _in_sorted(w, allowed)
        got_w.append(w[keep])
        got_p.append(logp_of(start, stop)[keep])
        found += int(keep.sum())
        start, step = stop, step * 2
    if not got_w:
        return np.empty(0, dtype=np.int64), np.empty(0)
    return np.concatenate(got_w)[:k], np.concatenate(got_p)[:k].astype(np.float64)


def top_k(
    model: NgramModel, ctx: list[int], k: int, allowed: np.ndarray | None = None
) -> list[tuple[str, float]]:
    """The k most probable words after history `ctx` (ids), optionally only `allowed` ids."""
    V = model.vocab_size
    allowed = None if allowed is None else np.sort(allowed)
    slices: list[tuple[int, int] | None] = []  # [lo, hi) of S_j in order j+1, per level j
    backoffs: list[float] = []
    if ctx:
        cidx = model.context_indices(np.asarray([ctx], dtype=np.int64))
        for j, c in enumerate(int(x[0]) for x in cidx):
            if c < 0:
                backoffs.append(model.unlisted_logbo)
                slices.append(None)
            else:
                backoffs.append(float(model.logbo[j][c]))
                slices.append(model.children(j + 1, c))
    # charged[j]: backoff weights above level j (j = 0: unigrams .. L: the full context).
    charged = np.concatenate([np.cumsum(backoffs[::-1])[::-1], [0.0]]) if backoffs else [0.0]

    cand_words, cand_scores = [], []
    deeper = np.empty(0, dtype=np.int64)  # S_{j+1} (within `allowed`), ascending word ids
    for j in range(len(slices), 0, -1):
        if slices[j - 1] is None:
            continue
        lo, hi = slices[j - 1]
        keys, logp = model.keys[j], model.logp[j]
        if allowed is None:
            by_prob = model.children_by_probability(j + 1)[lo:hi]
            w, s = _scan(
                lambda a, b, keys=keys, by_prob=by_prob: keys[by_prob[a:b]] % V,
                lambda a, b, logp=logp, by_prob=by_prob: logp[by_prob[a:b]],
                hi - lo,
                k,
                deeper,
                None,
            )
            deeper = keys[lo:hi] % V  # keys are sorted by word within a context
        elif hi == lo:
            w, s, deeper = np.empty(0, dtype=np.int64), np.empty(0), np.empty(0, dtype=np.int64)
        else:
            # Completion: look the allowed words up in this slice (|allowed| searches).
            query = (keys[lo] // V) * V + allowed
            pos = lo + np.searchsorted(keys[lo:hi], query)
            found = (pos < hi) & (keys[np.minimum(pos, hi - 1)] == query)
            listed, lp = allowed[found], logp[pos[found]]
            fresh = ~_in_sorted(listed, deeper)
            w, lp = listed[fresh], lp[fresh]
            best = np.lexsort((w, -lp))[:k]
            w, s = w[best], lp[best].astype(np.float64)
            deeper = listed  # ascending, as `allowed` is
        cand_words.append(w)
        cand_scores.append(s + charged[j])
    rank, logp1 = model.unigram_rank(), model.logp[0]
    if allowed is not None:
        rank = allowed[np.lexsort((allowed, -logp1[allowed]))]  # just the allowed words
    w, s = _scan(
        lambda a, b: rank[a:b], lambda a, b: logp1[rank[a:b]], len(rank), k, deeper, allowed
    )
    cand_words.append(w)
    cand_scores.append(s + charged[0])

    words = np.concatenate(cand_words)
    scores = np.concatenate(cand_scores)
    finite = np.isfinite(scores)
    words, scores = words[finite], scores[finite]
    order = np.lexsort((words, -scores))[:k]  # most probable first, ties by id (frequency)
    return [(model.vocab.words[int(words[i])], float(10.0 ** scores[i])) for i in order]


def suggest_next(
    model: NgramModel, context_words: Sequence[str], k: int = 5
) -> list[tuple[str, float]]:
    """The k most probable next words after `context_words` (the sentence so far).

    Returns (word, probability) pairs, most probable first; <unk>, <s>, </s> and
    words of probability 0 are never suggested. For stupid backoff the
    "probability" is its score.
    """
    return top_k(model, context_ids(model, context_words), k)


def complete(
    model: NgramModel, context_words: Sequence[str], prefix: str, k: int = 5
) -> list[tuple[str, float]]:
    """The k most probable words that start with `prefix`, after `context_words`."""
    if not prefix:
        return suggest_next(model, context_words, k)
    allowed = model.vocab.prefix_range(prefix)
    if len(allowed) == 0:
        return []
    return top_k(model, context_ids(model, context_words), k, allowed)
