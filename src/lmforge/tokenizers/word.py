"""Word-level tokenizer, CountVectorizer style, with optional base forms.

Pipeline: [Lowercase] -> [stop-word Replace] -> split into runs of word
characters and single other characters (whitespace dropped) -> [Digits] ->
WordLevel model (unseen words -> <|unk|>).

Everything, stop-word removal included, lives in tokenizer.json, so Hugging
Face loads and encodes it identically. Base forms (`--base-form stem|lemma`)
are there too: the vocabulary maps every surface form seen in training to the
id of its base form (`running`, `runs`, `ran` -> one id). The trade-off: a
form never seen in training is <|unk|> even when its base form is known,
because stemming at encode time could not be written in tokenizer.json.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .base import SPECIAL_TOKENS, UNK, Tokenizer
from .pipeline import digits_step, normalizer_sequence, pre_tokenizer_sequence

if TYPE_CHECKING:
    from .train import TokenizerConfig

# A token is a run of word characters or any single other non-space character.
WORD_PATTERN = r"\w+|[^\w\s]"


def stop_word_pattern(words: list[str]) -> str:
    """A regex matching any of `words` as a whole word, case-insensitively.

    Longest words first so that e.g. `it's` wins over `it`; the look-arounds give
    the same word boundaries as WORD_PATTERN.
    """
    alternatives = "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))
    return rf"(?i)(?<!\w)(?:{alternatives})(?!\w)"


def word_pipeline(cfg: TokenizerConfig, stop_words: list[str]) -> tuple[Any, Any]:
    """The (normalizer, pre-tokenizer) of a word tokenizer for `cfg`."""
    from tokenizers import Regex, normalizers, pre_tokenizers

    norm_steps: list[Any] = []
    if cfg.lowercase_on:
        norm_steps.append(normalizers.Lowercase())
    if stop_words:
        # Replaced by a space, not removed, so the words around it stay apart.
        norm_steps.append(normalizers.Replace(Regex(stop_word_pattern(stop_words)), " "))
    pre_steps: list[Any] = [
        pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="removed", invert=True)
    ]
    if cfg.split_digits:
        pre_steps.append(digits_step())
    return normalizer_sequence(norm_steps), pre_tokenizer_sequence(pre_steps)


def count_words(documents: Iterable[str], normalizer: Any, pre_tokenizer: Any) -> Counter[str]:
    """How often each token occurs, cut exactly as the saved pipeline will cut it."""
    counts: Counter[str] = Counter()
    for doc in documents:
        text = normalizer.normalize_str(doc) if normalizer is not None else doc
        counts.update(w for w, _ in pre_tokenizer.pre_tokenize_str(text))
    return counts


def choose_vocab(
    counts: Counter[str], size: int, min_frequency: int, reduce=None
) -> tuple[dict[str, int], list[str] | None]:
    """Pick the vocabulary: (string -> id, canonical string per id or None when no aliases).

    Without `reduce`: the `size - len(SPECIAL_TOKENS)` most frequent words seen at
    least `min_frequency` times. With `reduce` (words -> base forms): the same over
    base forms (a base form's count sums its surface forms), and every seen
    surface form of a kept base form maps to its id.
    """
    surfaces = sorted(counts)
    bases = reduce(surfaces) if reduce is not None else surfaces
    base_counts: Counter[str] = Counter()
    forms: dict[str, list[str]] = {}
    for s, b in zip(surfaces, bases):
        base_counts[b] += counts[s]
        forms.setdefault(b, []).append(s)
    ranked = sorted(base_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = [b for b, c in ranked if c >= min_frequency and b not in SPECIAL_TOKENS]
    kept = kept[: size - len(SPECIAL_TOKENS)]
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    ids = {b: len(SPECIAL_TOKENS) + k for k, b in enumerate(kept)}
    if reduce is None:
        vocab.update(ids)
        return vocab, None
    for b, i in ids.items():
        for s in forms[b]:
            vocab.setdefault(s, i)
    for b, i in ids.items():
        # The base form itself (a stem like `happi` may never occur) encodes as its own id,
        # unless that string is a surface form of another base.
        vocab.setdefault(b, i)
    canonical = list(SPECIAL_TOKENS)
    for b in kept:
        if vocab[b] == ids[b]:
            canonical.append(b)
        else:
            canonical.append(max(forms[b], key=lambda s: (counts[s], s)))
    return vocab, canonical


def train_word(cfg: TokenizerConfig, documents: Iterable[str]) -> Tokenizer:
    """Count words in `documents` and keep the most frequent ones (or their base forms)."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models

    from .pipeline import special_added_tokens
    from .stopwords import load_stop_words
    from .wordforms import base_form_reducer

    normalizer, pre_tokenizer = word_pipeline(cfg, load_stop_words(cfg.stop_words))
    counts = count_words(documents, normalizer, pre_tokenizer)
    reduce = base_form_reducer(cfg.base_form, cfg.language)
    vocab, canonical = choose_vocab(counts, cfg.vocab_size, cfg.min_frequency, reduce)
    engine = HFTokenizer(models.WordLevel(vocab, unk_token=UNK))
    engine.normalizer = normalizer
    engine.pre_tokenizer = pre_tokenizer
    engine.add_special_tokens(special_added_tokens())
    return Tokenizer(engine, "word", canonical=canonical)
