"""Scoring text: log10 probability per token, per sentence, and perplexity -- all in log space.

Counted as KenLM's ``query`` counts: every word and each sentence's </s> is
predicted (never <s>); an out-of-vocabulary word is scored as <unk> and included
in the perplexity (a second figure excludes OOVs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..common import progress
from .model import NgramModel
from .text import Corpus, encode_sentences, input_files, iter_sentences, make_tokenizer
from .vocab import BOS_ID, UNK_ID

CHUNK = 1 << 18  # rows scored per numpy batch: bounds memory on big files


@dataclass
class Scores:
    """Per predicted token: log10 p, the n-gram order used, the word id and its sentence."""

    logp: np.ndarray
    order: np.ndarray
    word: np.ndarray
    sentence: np.ndarray
    n_sentences: int

    @property
    def n_tokens(self) -> int:
        return len(self.logp)

    @property
    def oov(self) -> np.ndarray:
        return self.word == UNK_ID

    @property
    def total(self) -> float:
        """log10 probability of the whole text."""
        return float(self.logp.sum())

    @property
    def perplexity(self) -> float:
        """10 ** (-total / tokens), OOVs included (KenLM's 'Perplexity including OOVs')."""
        return float(10.0 ** (-self.total / max(self.n_tokens, 1)))

    @property
    def perplexity_without_oov(self) -> float:
        keep = ~self.oov
        return float(10.0 ** (-self.logp[keep].sum() / max(int(keep.sum()), 1)))

    def sentence_totals(self) -> np.ndarray:
        """log10 probability of each sentence."""
        return np.bincount(self.sentence, weights=self.logp, minlength=self.n_sentences)


def context_rows(corpus: Corpus, positions: np.ndarray, length: int) -> np.ndarray:
    """(len(positions), length) contexts of the tokens at `positions`: the previous
    `length` tokens of the same sentence, right-aligned, -1 before the sentence start."""
    sent_start = np.repeat(corpus.starts[:-1], np.diff(corpus.starts))[positions]
    ctx = np.full((len(positions), length), -1, dtype=np.int64)
    for c in range(length):
        src = positions - length + c
        ok = src >= sent_start
        ctx[ok, c] = corpus.stream[src[ok]]
    return ctx


def score_corpus(model: NgramModel, corpus: Corpus) -> Scores:
    """Score every predicted token of `corpus` (vectorised, in chunks)."""
    positions = np.flatnonzero(corpus.stream != BOS_ID)
    # A <s> can only be a sentence's first token, so this keeps every word and </s>.
    logp = np.empty(len(positions))
    order = np.empty(len(positions), dtype=np.int64)
    with progress(total=len(positions), desc="scoring", unit="tok") as bar:
        for lo in range(0, len(positions), CHUNK):
            pos = positions[lo : lo + CHUNK]
            ctx = context_rows(corpus, pos, model.order - 1)
            logp[lo : lo + CHUNK], order[lo : lo + CHUNK] = model.logprob(ctx, corpus.stream[pos])
            bar.update(len(pos))
    sentence = np.repeat(np.arange(corpus.n_sentences), np.diff(corpus.starts))[positions]
    return Scores(
        logp, order, corpus.stream[positions].astype(np.int64), sentence, corpus.n_sentences
    )


def score_sentences(model: NgramModel, sentences: Iterable[list[str]]) -> Scores:
    """Score tokenized sentences."""
    return score_corpus(model, encode_sentences(sentences, model.vocab))


def sentence_logprob(model: NgramModel, tokens: list[str]) -> float:
    """log10 p(<s> tokens </s>) of one tokenized sentence (</s> included, as KenLM's score)."""
    return score_sentences(model, [tokens]).total


def read_eval_sentences(
    model: NgramModel, inputs: Iterable[str | Path], tokenizer: str | None = None
) -> list[list[str]]:
    """Tokenize evaluation files with the model's tokenizer (or `tokenizer`)."""
    tokenize = make_tokenizer(tokenizer or model.tokenizer)
    return list(iter_sentences(input_files(inputs), tokenize, desc="reading"))


def evaluate_files(
    model: NgramModel, inputs: Iterable[str | Path], tokenizer: str | None = None
) -> tuple[Scores, list[list[str]]]:
    """Score text files (one sentence per line); returns the scores and the sentences."""
    sentences = read_eval_sentences(model, inputs, tokenizer)
    return score_sentences(model, sentences), sentences


# ---------------------------------------------------------------------------
# --verbose: the per-token breakdown and why log space matters


def token_breakdown(model: NgramModel, scores: Scores, sentences: list[list[str]]) -> Iterator[str]:
    """One line per predicted token: sentence, word, p, log10 p, n-gram order used."""
    yield f"{'sent':>5}  {'token':<20} {'p':>12} {'log10 p':>10}  order"
    words = (w for s in sentences for w in [*s, "</s>"])
    for i, w in enumerate(words):
        lp = scores.logp[i]
        mark = "  (OOV -> <unk>)" if scores.word[i] == UNK_ID and w != "<unk>" else ""
        yield (
            f"{scores.sentence[i] + 1:>5}  {w[:20]:<20} {10.0**lp:>12.4e} {lp:>10.4f}  "
            f"{scores.order[i]}-gram{mark}"
        )


def underflow_demo(scores: Scores) -> list[str]:
    """Lines showing that the raw product of the probabilities underflows, the log sum not."""
    probs = 10.0**scores.logp
    product = np.cumprod(probs)  # float64, like any naive implementation
    zero_at = np.flatnonzero(product == 0.0)
    total = scores.total
    lines = [
        f"log10 sum of {scores.n_tokens:,} token probabilities: {total:.4f} "
        f"(perplexity 10^({-total:.2f}/{scores.n_tokens:,}) = {scores.perplexity:.2f})"
    ]
    if len(zero_at):
        first = int(zero_at[0]) + 1
        lines.append(
            f"raw product in float64: {float(product[-1])!r} -- underflowed to 0 at token {first:,}, "
            f"where the true value is 10^{scores.logp[:first].sum():.1f}; the smallest positive "
            "float64 is 4.9e-324 (10^-323.3), so multiplying probabilities fails on long "
            "texts and summing log-probabilities does not"
        )
    else:
        lines.append(
            f"raw product in float64: {product[-1]:.4e} (no underflow yet: it needs a text "
            f"whose log10 probability is below -323.3; summing logs never underflows)"
        )
    return lines
