"""Counting n-grams of orders 1..N into sorted integer tables (a trie stored as flat arrays).

An n-gram of order n >= 2 is the int64 key ``parent * V + w``, where ``parent`` is the
index of its first n-1 words in the order n-1 table and ``w`` its last word; unigrams
are the word ids themselves. Each order's keys are sorted, so the children of one
context are one contiguous slice and any n-gram is found with a few
``np.searchsorted`` calls. Counting is one ``np.unique`` per order over shifted id
arrays -- no Python object per n-gram.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..common import progress
from .text import Corpus


@dataclass
class NgramCounts:
    """Raw counts of every n-gram of orders 1..N seen within sentences of a corpus.

    ``keys[n-1]``, ``counts[n-1]`` and ``suffix[n-1]`` describe order n:
    ``suffix[n-1][i]`` is the index, in order n-1, of n-gram i without its first word
    (``None`` for unigrams). Sentences are padded with one ``<s>`` and one ``</s>``; no
    n-gram crosses a sentence boundary.
    """

    vocab_size: int
    keys: list[np.ndarray]
    counts: list[np.ndarray]
    suffix: list[np.ndarray | None]
    n_sentences: int

    @property
    def order(self) -> int:
        return len(self.keys)

    def parents(self, n: int) -> np.ndarray:
        """Index in order n-1 of each order-n n-gram's context (its first n-1 words)."""
        return self.keys[n - 1] // self.vocab_size

    def last_words(self, n: int) -> np.ndarray:
        return self.keys[n - 1] % self.vocab_size

    def first_words(self, n: int) -> np.ndarray:
        """The first word of each order-n n-gram (found by walking the parents down)."""
        first = np.arange(self.vocab_size, dtype=np.int64)
        for m in range(2, n + 1):
            first = first[self.parents(m)]
        return first

    def rows(self, n: int) -> np.ndarray:
        """(count, n) array of word ids of every order-n n-gram, in table order."""
        return trie_rows(self.keys, self.vocab_size, n)


def trie_rows(keys: list[np.ndarray], vocab_size: int, n: int) -> np.ndarray:
    """(count, n) word ids of every order-n entry of a key trie (see the module docstring)."""
    if n == 1:
        return keys[0][:, None].copy()
    cols = [keys[n - 1] % vocab_size]
    idx = keys[n - 1] // vocab_size  # index in order n-1
    for m in range(n - 1, 1, -1):
        cols.append(keys[m - 1][idx] % vocab_size)
        idx = keys[m - 1][idx] // vocab_size
    cols.append(idx)  # an order-1 index is the word id
    return np.stack(cols[::-1], axis=1)


def count_ngrams(corpus: Corpus, order: int, vocab_size: int) -> NgramCounts:
    """Count all n-grams of orders 1..`order` of `corpus` (see NgramCounts)."""
    stream = corpus.stream
    total = len(stream)
    remaining = corpus.remaining().astype(np.int32)
    keys = [np.arange(vocab_size, dtype=np.int64)]
    counts = [np.bincount(stream, minlength=vocab_size).astype(np.int64)]
    suffix: list[np.ndarray | None] = [None]
    # index_prev[p]: index (in the previous order's table) of the n-gram starting at p.
    # Positions, indices, counts and suffixes are int32 (only keys need int64): half
    # the memory on the large arrays.
    index_prev = stream
    with progress(total=order, desc="counting", unit="order") as bar:
        bar.update(1)
        for n in range(2, order + 1):
            pos = np.flatnonzero(remaining >= n - 1).astype(np.int32)  # n tokens fit here
            key = index_prev[pos].astype(np.int64) * vocab_size + stream[pos + n - 1]
            uniq, first, inverse, cnt = _group(key)
            del key
            keys.append(uniq)
            counts.append(cnt.astype(np.int32))
            # The n-gram without its first word starts one position later.
            suffix.append(index_prev[pos[first] + 1].astype(np.int32))
            index_cur = np.full(total, -1, dtype=np.int32)
            index_cur[pos] = inverse.reshape(-1)
            del inverse, first, pos
            index_prev = index_cur
            bar.update(1)
    return NgramCounts(vocab_size, keys, counts, suffix, corpus.n_sentences)


def _group(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Like np.unique(key, return_index, return_inverse, return_counts), ~3x faster:
    an unstable argsort suffices because any occurrence serves as `first`."""
    perm = np.argsort(key)
    ordered = key[perm]
    starts_flag = np.empty(len(ordered), dtype=bool)
    starts_flag[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts_flag[1:])
    starts = np.flatnonzero(starts_flag)
    counts = np.diff(np.append(starts, len(ordered)))
    inverse = np.empty(len(ordered), dtype=np.int32)
    inverse[perm] = np.cumsum(starts_flag, dtype=np.int32) - 1
    return ordered[starts], perm[starts], inverse, counts


def continuation_counts(counts: NgramCounts, n: int) -> np.ndarray:
    """N1+(. g): for each order-n n-gram g, how many distinct words precede it (n < N)."""
    return np.bincount(counts.suffix[n], minlength=len(counts.keys[n - 1])).astype(np.int64)
