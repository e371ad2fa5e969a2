"""Sampling sentences from an n-gram model, with temperature; and turning tokens back into text."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..common import LmforgeError
from .model import NgramModel
from .vocab import BOS_ID, EOS_ID, UNK_ID

LN10 = float(np.log(10.0))


def next_word_distribution(
    model: NgramModel, ctx: list[int], temperature: float, allow_unk: bool = False
) -> np.ndarray:
    """p(w | ctx) ** (1 / temperature), renormalised over the vocabulary (<s> excluded)."""
    logp = model.log_distribution(ctx)
    logp[BOS_ID] = -np.inf
    if not allow_unk:
        logp[UNK_ID] = -np.inf
    scaled = logp * (LN10 / temperature)
    top = scaled.max()
    if not np.isfinite(top):
        # Nothing can follow (e.g. MLE after a context seen only before <unk>): end here.
        out = np.zeros(model.vocab_size)
        out[EOS_ID] = 1.0
        return out
    p = np.exp(scaled - top)
    return p / p.sum()


def sample_sentence(
    model: NgramModel,
    rng: np.random.Generator,
    temperature: float = 1.0,
    max_tokens: int = 50,
    prefix: Sequence[str] = (),
    allow_unk: bool = False,
) -> list[str]:
    """Sample words after `prefix` until </s> or `max_tokens` words.

    temperature 1 samples the model's distribution, below 1 sharpens it, above 1
    flattens it, and 0 picks the most probable word each time (greedy). <unk> is
    not sampled unless `allow_unk`.
    """
    if temperature < 0:
        raise LmforgeError(f"temperature: must be >= 0, got {temperature}")
    words = list(prefix)
    history = [BOS_ID] + [model.vocab.id(w) for w in words]
    out: list[str] = []
    for _ in range(max_tokens):
        ctx = history[-(model.order - 1) :] if model.order > 1 else []
        if temperature == 0:
            logp = model.log_distribution(ctx)
            logp[BOS_ID] = -np.inf
            if not allow_unk:
                logp[UNK_ID] = -np.inf
            w = int(np.argmax(logp))
        else:
            p = next_word_distribution(model, ctx, temperature, allow_unk)
            # Inverse-CDF draw: one uniform number per word, reproducible per seed.
            w = int(np.searchsorted(np.cumsum(p), rng.random() * p.sum(), side="right"))
            w = min(w, model.vocab_size - 1)
        if w == EOS_ID:
            break
        out.append(model.vocab.words[w])
        history.append(w)
    return out


_NO_SPACE_BEFORE = re.compile(r"^[.,;:!?)\]}»…%]+$")
_NO_SPACE_AFTER = re.compile(r"^[(\[{«]+$")
_JOINER = re.compile(r"^['’-]$")  # apostrophe or hyphen between two words: "i'm", "well-known"


def detokenize(tokens: Sequence[str], tokenizer: str = "default") -> str:
    """Join tokens into readable text: for word tokenizers, no space before closing
    punctuation or after an opening bracket; a tokenizer folder decodes its tokens."""
    if tokenizer not in ("default", "whitespace"):
        from ..tokenizers.base import Tokenizer

        tok = Tokenizer.load(tokenizer)
        ids = [tok.token_to_id(t) for t in tokens]
        return tok.decode([i for i in ids if i is not None])
    out = ""
    glue = True
    for i, t in enumerate(tokens):
        joins = bool(_JOINER.match(t)) and 0 < i < len(tokens) - 1
        if not glue and not joins and not _NO_SPACE_BEFORE.match(t):
            out += " "
        out += t
        glue = joins or bool(_NO_SPACE_AFTER.match(t))
    return out


def sample_text(model: NgramModel, n: int, seed: int, **kwargs) -> list[str]:
    """`n` sampled sentences as text (see `sample_sentence` for the options)."""
    rng = np.random.default_rng(seed)
    prefix = list(kwargs.pop("prefix", ()))
    texts = []
    for _ in range(n):
        words = sample_sentence(model, rng, prefix=prefix, **kwargs)
        texts.append(detokenize([*prefix, *words], model.tokenizer))
    return texts
