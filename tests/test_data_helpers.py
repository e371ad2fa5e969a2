"""Helpers for the data tests: fixture tokenizers, corpus writers, synthetic shard folders.

Built here rather than with lmforge's tokenizer trainers so that the data tests
depend only on `lmforge.tokenizers.Tokenizer` (the shared wrapper type).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lmforge.data.shards import FORMAT_VERSION, ShardWriter
from lmforge.tokenizers import SPECIAL_TOKENS, Tokenizer

CORPUS = [
    "The cat sat on the mat.",
    "A dog barked at the moon, twice.",
    "Numbers: 12, 345 and 6789.",
    "Привет, мир! Café crème.",
    "She sells sea shells by the sea shore.",
    "Line one\nline two of the same document.",
    "Whitespace   inside is kept.",
    "The quick brown fox jumps over the lazy dog.",
]


def make_bpe_tokenizer(
    folder: Path, vocab_size: int = 400, docs: list[str] | None = None
) -> Tokenizer:
    """A byte-level BPE (exact decode) trained on `docs` (default CORPUS), special tokens
    at ids 0.."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    engine = HFTokenizer(models.BPE())
    engine.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    engine.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    engine.train_from_iterator(CORPUS * 4 if docs is None else docs, trainer)
    tok = Tokenizer(engine, "bpe")
    tok.save(folder)
    return tok


def make_big_word_tokenizer(folder: Path, size: int = 70_000) -> Tokenizer:
    """A word-level tokenizer with more than 65,536 ids (forces uint32 shards)."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for i in range(size - len(vocab)):
        vocab[f"w{i}"] = len(vocab)
    engine = HFTokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS[3]))
    engine.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    engine.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok = Tokenizer(engine, "word")
    tok.save(folder)
    return tok


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def make_position_folder(folder: Path, splits: dict[str, int], shard_tokens: int = 1 << 20) -> Path:
    """A data folder whose token at stream position i is i (uint32): windows identify themselves."""
    folder.mkdir(parents=True, exist_ok=True)
    meta_splits = {}
    for split, n in splits.items():
        writer = ShardWriter(folder, split, "uint32", shard_tokens)
        writer.write(np.arange(n, dtype=np.int64))
        meta_splits[split] = {"tokens": n, "documents": 1, "shards": writer.close()}
    meta = {
        "format_version": FORMAT_VERSION,
        "dtype": "uint32",
        "vocab_size": 1 << 32,
        "tokenizer_hash": "positions",
        "splits": meta_splits,
    }
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder
