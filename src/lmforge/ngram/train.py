"""Training: text files -> sentences -> counts -> (pruning) -> estimator -> NgramModel."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..config import to_dict
from .config import NgramConfig
from .counts import NgramCounts, count_ngrams
from .estimators import PRUNE_INSIDE, estimate
from .model import FORMAT, NgramModel
from .prune import compact_counts, compact_keys, expand_thresholds, prune_masks
from .text import Corpus, input_files, make_tokenizer, read_training_corpus
from .vocab import Vocab


def train_ngram(cfg: NgramConfig, inputs: Iterable[str | Path]) -> NgramModel:
    """Train an n-gram model on plain-text files (one sentence per line)."""
    t0 = time.perf_counter()
    files = input_files(inputs)
    tokenizer = cfg.tokenizer
    if tokenizer not in ("default", "whitespace"):
        tokenizer = str(Path(tokenizer).resolve())
    tokenize = make_tokenizer(tokenizer)
    corpus, vocab, stats = read_training_corpus(files, tokenize, cfg.min_count, cfg.max_vocab)
    model = train_from_corpus(corpus, vocab, cfg)
    model.meta["tokenizer"] = tokenizer
    model.meta["training"] = {"files": [str(f) for f in files], **stats}
    model.meta["seconds"] = round(time.perf_counter() - t0, 3)
    return model


def train_from_corpus(corpus: Corpus, vocab: Vocab, cfg: NgramConfig) -> NgramModel:
    """Count, prune and estimate on an already encoded corpus."""
    counts = count_ngrams(corpus, cfg.order, len(vocab))
    return model_from_counts(counts, vocab, cfg)


def model_from_counts(counts: NgramCounts, vocab: Vocab, cfg: NgramConfig) -> NgramModel:
    """Apply pruning and the configured estimator to `counts`."""
    keep = prune_masks(counts, cfg.prune)
    pruning = any(m is not None for m in keep)
    inside = cfg.smoothing in PRUNE_INSIDE
    source = compact_counts(counts, keep) if pruning and not inside else counts
    est = estimate(
        cfg.smoothing,
        source,
        keep if inside else [None] * counts.order,
        k=cfg.k,
        alpha=cfg.alpha,
    )
    keys, logp, logbo = source.keys, est.logp, est.logbo
    if pruning and inside:
        keys, _ = compact_keys(counts.keys, counts.vocab_size, keep)
        logp = [p if m is None else p[m] for p, m in zip(logp, keep)]
        logbo = [b if m is None else b[m] for b, m in zip(logbo, keep)]
    # Stored as float32, as KenLM stores them: half the memory, and an ARPA file holds
    # exactly the values lmforge scores with, so KenLM and lmforge agree to rounding.
    logp = [np.asarray(p, dtype=np.float32) for p in logp]
    logbo = [np.asarray(b, dtype=np.float32) for b in logbo]
    meta = {
        "format": FORMAT,
        "order": cfg.order,
        "smoothing": cfg.smoothing,
        "tokenizer": cfg.tokenizer,
        "config": to_dict(dataclasses.replace(cfg)),
        "prune_thresholds": expand_thresholds(cfg.prune, cfg.order),
        "ngrams_before_pruning": [len(k) for k in counts.keys],
        "estimator": est.info,
    }
    return NgramModel(vocab, keys, logp, logbo, meta, est.unlisted_logbo)
