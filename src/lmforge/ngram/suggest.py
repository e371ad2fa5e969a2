"""Keyboard-style suggestions: the top-k next words for a context, and word completion.

Exact top-k without scoring the whole vocabulary. Let h_1 .. h_L be the suffixes of
the context (h_L the longest) and S_j the words listed after h_j; every n-gram's
suffix is listed too, so S_L ⊆ ... ⊆ S_1 ⊆ S_0 = the vocabulary. A word whose
deepest level is j (in S_j, not in S_{j+1}) has

    log p(w | h_L) = log p(h_j w) + sum of the backoff weights of h_{j+1} .. h_L,

a per-level constant plus a value stored in the slice of S_j. So each level offers
its k best words outside S_{j+1}, read straight from its slice; the unigram level
offers the best words by unigram rank (precomputed) outside S_1. One small sort of
these few candidates gives the answer -- no per-candidate trie walk.
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


def _best(words: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The entries scoring at least the k-th best score (ties kept, so ids break them later)."""
    if len(scores) <= k:
        return words, scores
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    keep = scores >= kth
    return words[keep], scores[keep]


def _in_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Membership of `values` in an ascending array."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[pos] == values


def top_k(
    model: NgramModel, ctx: list[int], k: int, allowed: np.ndarray | None = None
) -> list[tuple[str, float]]:
    """The k most probable words after history `ctx` (ids), optionally only `allowed` ids."""
    V = model.vocab_size
    allowed_sorted = None if allowed is None else np.sort(allowed)
    levels: list[tuple[np.ndarray, np.ndarray]] = []  # (S_j words ascending, log p(h_j w))
    backoffs: list[float] = []
    if ctx:
        cidx = model.context_indices(np.asarray([ctx], dtype=np.int64))
        for j, c in enumerate(int(x[0]) for x in cidx):
            if c < 0:
                backoffs.append(model.unlisted_logbo)
                levels.append((np.empty(0, dtype=np.int64), np.empty(0)))
                continue
            backoffs.append(float(model.logbo[j][c]))
            lo, hi = model.children(j + 1, c)
            levels.append((model.keys[j + 1][lo:hi] % V, model.logp[j + 1][lo:hi]))
    # charged[j]: backoff weights above level j (j = 0: unigrams .. L: the full context).
    charged = np.concatenate([np.cumsum(backoffs[::-1])[::-1], [0.0]]) if backoffs else [0.0]

    cand_words, cand_scores = [], []
    deeper = np.empty(0, dtype=np.int64)
    for j in range(len(levels), 0, -1):
        words, logp = levels[j - 1]
        keep = (words >= N_SPECIALS) & ~_in_sorted(words, deeper)
        if allowed_sorted is not None:
            keep &= _in_sorted(words, allowed_sorted)
        w, s = _best(words[keep], logp[keep].astype(np.float64) + charged[j], k)
        cand_words.append(w)
        cand_scores.append(s)
        if len(words):
            deeper = words
    # Unigram level: the best-ranked words outside S_1 (and inside `allowed`).
    need = k + len(deeper) + N_SPECIALS
    if allowed_sorted is None:
        head = model.unigram_rank()[:need]
    else:
        pos = model.unigram_position()[allowed_sorted]
        if len(pos) > need:
            pos = np.partition(pos, need - 1)[:need]
        head = model.unigram_rank()[np.sort(pos)]
    head = head[(head >= N_SPECIALS) & ~_in_sorted(head, deeper)][:k]
    cand_words.append(head)
    cand_scores.append(model.logp[0][head].astype(np.float64) + charged[0])

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
