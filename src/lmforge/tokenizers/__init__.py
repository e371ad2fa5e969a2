"""Tokenizers: word, char, byte-level BPE, SentencePiece-style Unigram (see base.Tokenizer).

Train with `train_tokenizer(TokenizerConfig(kind=...), inputs)` and save with
`save_tokenizer_dir(tok, out)`; load with `Tokenizer.load(folder)`.
"""

from .base import SPECIAL_TOKENS, Tokenizer
from .train import KINDS, TokenizerConfig, save_tokenizer_dir, train_tokenizer

__all__ = [
    "KINDS",
    "SPECIAL_TOKENS",
    "Tokenizer",
    "TokenizerConfig",
    "save_tokenizer_dir",
    "train_tokenizer",
]
