"""Tokenizers: word, char, byte-level BPE, SentencePiece-style Unigram (see base.Tokenizer)."""

from .base import SPECIAL_TOKENS, Tokenizer

__all__ = ["SPECIAL_TOKENS", "Tokenizer"]
