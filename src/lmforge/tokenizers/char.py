"""Character-level tokenizer: every character (code point) is a token.

Pipeline: [Lowercase] -> split after every character -> WordLevel model over
characters (rarer than --min-frequency or beyond --vocab-size -> <|unk|>) ->
Fuse decoder (characters joined back with nothing in between).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .base import SPECIAL_TOKENS, UNK, Tokenizer
from .pipeline import normalizer_sequence, special_added_tokens

if TYPE_CHECKING:
    from .train import TokenizerConfig


def train_char(cfg: TokenizerConfig, documents: Iterable[str]) -> Tokenizer:
    """Count characters in `documents` and keep the most frequent ones.

    --split-digits changes nothing here: every digit already is its own token.
    """
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    normalizer = normalizer_sequence([normalizers.Lowercase()] if cfg.lowercase_on else [])
    counts: Counter[str] = Counter()
    for doc in documents:
        counts.update(normalizer.normalize_str(doc) if normalizer is not None else doc)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    chars = [c for c, n in ranked if n >= cfg.min_frequency and c not in SPECIAL_TOKENS]
    chars = chars[: cfg.vocab_size - len(SPECIAL_TOKENS)]
    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *chars])}
    engine = HFTokenizer(models.WordLevel(vocab, unk_token=UNK))
    engine.normalizer = normalizer
    # [\s\S] is any one code point, newline included.
    engine.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    engine.decoder = decoders.Fuse()
    engine.add_special_tokens(special_added_tokens())
    return Tokenizer(engine, "char")
