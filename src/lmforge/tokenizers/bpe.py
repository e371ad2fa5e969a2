"""Byte-level BPE (GPT-2 style): no <|unk|> ever, exact round trip of any Unicode text.

Pipeline: [Lowercase] -> [Digits] + ByteLevel pre-tokenizer (GPT-2 regex, each
byte shown as a printable character) -> BPE model -> ByteLevel decoder. All 256
bytes are in the initial alphabet, so every string encodes without <|unk|>.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .base import Tokenizer
from .pipeline import (
    digits_step,
    normalizer_sequence,
    pre_tokenizer_sequence,
    show_rust_progress,
    special_added_tokens,
)

if TYPE_CHECKING:
    from .train import TokenizerConfig


def bpe_pipeline(cfg: TokenizerConfig):
    """An untrained `tokenizers.Tokenizer` with the byte-level BPE pipeline for `cfg`."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, normalizers, pre_tokenizers

    engine = HFTokenizer(models.BPE())
    engine.normalizer = normalizer_sequence([normalizers.Lowercase()] if cfg.lowercase_on else [])
    steps = [digits_step()] if cfg.split_digits else []
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    engine.pre_tokenizer = pre_tokenizer_sequence(steps)
    engine.decoder = decoders.ByteLevel()
    return engine


def bpe_trainer(cfg: TokenizerConfig):
    """The BpeTrainer for `cfg`: SPECIAL_TOKENS first (ids 0..N-1), then all 256 bytes."""
    from tokenizers import pre_tokenizers, trainers

    return trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        show_progress=show_rust_progress(),
        special_tokens=special_added_tokens(),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )


def train_bpe(cfg: TokenizerConfig, documents: Iterable[str]) -> Tokenizer:
    """Learn byte-level BPE merges on `documents`."""
    engine = bpe_pipeline(cfg)
    engine.train_from_iterator(documents, trainer=bpe_trainer(cfg))
    return Tokenizer(engine, "bpe")
