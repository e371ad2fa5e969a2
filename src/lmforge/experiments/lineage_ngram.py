"""Kneser-Ney n-grams over the neural models' token ids, scored on the very same windows.

The n-gram "words" are the tokenizer's ids (as strings), so an n-gram and a GPT
predict the same tokens. Training reads the train split as one sentence: no
n-gram is lost at an artificial line or chunk boundary, and the document's EOS
id is an ordinary word. Scoring does not use sentences at all: each predicted
token gets as context the tokens before it *inside its evaluation window*, the
history a neural model sees, so the loss at window position t means the same
thing for every model.

Near a window's start the history is shorter than n-1 tokens. A Kneser-Ney
model's lower orders are continuation counts, built to back off into, not to
predict from a cut history (after "q" they ask "how many words end in q u?",
not "how often does u follow q?"). So an n-gram of order N carries its own
orders 2..N-1 as separate models, and position t is predicted by the model of
order min(t + 2, N): the largest whose whole context lies inside the window.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..ngram.config import NgramConfig
from ..ngram.model import NgramModel
from ..ngram.sample import next_word_distribution
from ..ngram.text import Corpus
from ..ngram.train import train_from_corpus
from ..ngram.vocab import BOS_ID, EOS_ID, UNK_ID, Vocab

LN10 = math.log(10.0)
CHUNK = 1 << 18  # predictions scored per numpy batch: bounds memory


@dataclass
class TokenNgram:
    """An n-gram model plus the maps between tokenizer ids and its word ids.

    ``lower[k]`` is the model of order k + 2 (the top model excluded), for predictions
    with only k + 1 tokens of history."""

    model: NgramModel
    lower: list[NgramModel]
    to_word: np.ndarray  # (tokenizer vocab,) n-gram word id of each tokenizer id
    to_token: np.ndarray  # (n-gram vocab,) tokenizer id of each word id (-1 for specials)
    train_s: float

    @property
    def n_ngrams(self) -> int:
        """Stored n-grams of all orders: the count model's 'parameters'."""
        return int(sum(self.model.ngram_counts()))


def train_token_ngram(train_ids: np.ndarray, vocab_size: int, order: int) -> TokenNgram:
    """Interpolated modified Kneser-Ney of `order` on a token-id stream."""
    t0 = time.perf_counter()
    ids = np.asarray(train_ids, dtype=np.int64)
    counts = np.bincount(ids, minlength=vocab_size)
    vocab, _ = Vocab.from_counts({str(i): int(c) for i, c in enumerate(counts) if c > 0})
    to_word = np.full(vocab_size, UNK_ID, dtype=np.int32)
    to_token = np.full(len(vocab), -1, dtype=np.int64)
    for w in range(3, len(vocab)):
        tid = int(vocab.words[w])
        to_word[tid] = w
        to_token[w] = tid
    stream = np.concatenate([[BOS_ID], to_word[ids], [EOS_ID]]).astype(np.int32)
    corpus = Corpus(stream, np.asarray([0, len(stream)], dtype=np.int64))
    models = [
        train_from_corpus(corpus, vocab, NgramConfig(order=n, smoothing="mkn"))
        for n in range(2, order + 1)
    ]
    return TokenNgram(models[-1], models[:-1], to_word, to_token, time.perf_counter() - t0)


def window_targets(n_tokens: int, context: int) -> tuple[np.ndarray, np.ndarray]:
    """For the evaluation windows 0, T, 2T, ... of a split of `n_tokens` tokens (each reads
    T + 1 tokens, the last one what is left): the index of every predicted token and its
    position 0..T-1 in its window. Every token but the first is predicted exactly once."""
    targets = np.arange(1, n_tokens, dtype=np.int64)
    return targets, (targets - 1) % context


def score_windows(ng: TokenNgram, val_ids: np.ndarray, context: int) -> np.ndarray:
    """Loss in nats of every predicted token of `val_ids`, in `window_targets` order."""
    words = ng.to_word[np.asarray(val_ids, dtype=np.int64)].astype(np.int64)
    targets, pos = window_targets(len(words), context)
    out = np.empty(len(targets))
    for model in [*ng.lower, ng.model]:
        hist = model.order - 1
        # The top model takes every position with a full history; each lower one, the
        # position with exactly its history.
        sel = np.flatnonzero(pos >= hist - 1 if model is ng.model else pos == hist - 1)
        for lo in range(0, len(sel), CHUNK):
            idx = sel[lo : lo + CHUNK]
            tg = targets[idx]
            ctx = np.stack([words[tg - hist + c] for c in range(hist)], axis=1)  # (M, n-1)
            logp, _ = model.logprob(ctx, words[tg])
            out[idx] = -logp * LN10
    return out


def generate_tokens(
    ng: TokenNgram, start: int, n: int, temperature: float, seed: int
) -> tuple[list[int], float]:
    """`n` tokenizer ids sampled after the tokenizer id `start`, and tokens/s.

    The n-gram's own <s>, </s> and <unk> are never drawn: they are no tokens of the
    stream (an EOS document boundary is an ordinary word here)."""
    rng = np.random.default_rng(seed)
    history = [int(ng.to_word[start])]
    out: list[int] = []
    t0 = time.perf_counter()
    for _ in range(n):
        ctx = history[-(ng.model.order - 1) :] if ng.model.order > 1 else []
        if temperature == 0:
            logp = ng.model.log_distribution(ctx)
            logp[:3] = -np.inf
            w = int(np.argmax(logp))
        else:
            p = next_word_distribution(ng.model, ctx, temperature)
            p[EOS_ID] = 0.0
            cdf = np.cumsum(p)
            w = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
            w = min(w, ng.model.vocab_size - 1)
        history.append(w)
        out.append(int(ng.to_token[w]))
    dt = time.perf_counter() - t0
    return out, n / dt if dt > 0 else float("inf")
