"""What a tokenizer does to text: fertility, <|unk|> share, longest tokens, top merges.

Fertility is tokens per word (words: whitespace-separated) and tokens per
character; it says how long sequences get and so how much context a model sees.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .base import SPECIAL_TOKENS, Tokenizer
from .corpus import iter_documents, resolve_inputs

BATCH_DOCUMENTS = 64


@dataclass
class TextStats:
    """Counts of one input encoded by one tokenizer."""

    input: str
    chars: int
    words: int
    tokens: int
    unk: int

    @property
    def tokens_per_word(self) -> float:
        return self.tokens / self.words if self.words else 0.0

    @property
    def tokens_per_char(self) -> float:
        return self.tokens / self.chars if self.chars else 0.0

    @property
    def unk_share(self) -> float:
        return self.unk / self.tokens if self.tokens else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            tokens_per_word=self.tokens_per_word,
            tokens_per_char=self.tokens_per_char,
            unk_share=self.unk_share,
        )
        return d


def text_stats(tok: Tokenizer, documents: Iterable[str], name: str) -> TextStats:
    """Encode `documents` (in parallel batches) and count chars, words, tokens and <|unk|>."""
    unk_id = tok.unk_id
    chars = words = tokens = unk = 0
    batch: list[str] = []

    def flush() -> None:
        nonlocal tokens, unk
        for ids in tok.encode_batch(batch):
            tokens += len(ids)
            if unk_id is not None:
                unk += ids.count(unk_id)
        batch.clear()

    for doc in documents:
        chars += len(doc)
        words += len(doc.split())
        batch.append(doc)
        if len(batch) >= BATCH_DOCUMENTS:
            flush()
    flush()
    return TextStats(name, chars, words, tokens, unk)


def file_stats(tok: Tokenizer, inputs: Iterable[str | Path]) -> list[TextStats]:
    """TextStats for every input file (files, folders, globs of .txt/.jsonl)."""
    return [text_stats(tok, iter_documents([f]), str(f)) for f in resolve_inputs(inputs)]


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable character -> byte table (the ByteLevel pre-tokenizer's alphabet)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {}
    extra = 0
    for b in range(256):
        if b in printable:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def display_token(tok: Tokenizer, token: str) -> str:
    """A token as the text it stands for: byte-level BPE tokens are decoded to characters,
    with bytes that are only part of a character shown as `\\xNN`."""
    if tok.kind == "bpe":
        table = _byte_decoder()
        if all(ch in table for ch in token):
            return bytes(table[ch] for ch in token).decode("utf-8", errors="backslashreplace")
    return token


def vocabulary_summary(tok: Tokenizer, top: int = 10) -> dict[str, Any]:
    """Vocab size, the longest tokens, and the first merges (bpe) / best pieces (unigram)
    / most frequent tokens (word, char)."""
    n_special = len(SPECIAL_TOKENS)
    ids = range(n_special, tok.vocab_size)
    raw = {i: tok.id_to_token(i) or "" for i in ids}
    shown = {i: display_token(tok, t) for i, t in raw.items()}
    # Length in the model's own units: bytes for bpe, characters otherwise.
    longest = sorted(raw, key=lambda i: (-len(raw[i]), i))[:top]
    out: dict[str, Any] = {
        "kind": tok.kind,
        "vocab_size": tok.vocab_size,
        "longest_tokens": [shown[i] for i in longest],
    }
    model = json.loads(tok.engine.to_str())["model"]
    if tok.kind == "bpe":
        merges = model.get("merges", [])[:top]
        pairs = [m.split(" ", 1) if isinstance(m, str) else m for m in merges]
        out["top_merges"] = [[display_token(tok, a), display_token(tok, b)] for a, b in pairs]
    elif tok.kind == "unigram":
        pieces = [(p, s) for p, s in model["vocab"][n_special:] if not _is_byte_piece(p)]
        out["top_pieces"] = [p for p, _ in sorted(pieces, key=lambda ps: -ps[1])[:top]]
    else:
        # Word and char ids are assigned by falling frequency.
        out["most_frequent"] = [shown[i] for i in list(ids)[:top]]
    return out


def _is_byte_piece(piece: str) -> bool:
    return len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">")


def format_stats(summary: dict[str, Any], rows: list[TextStats]) -> str:
    """The human-readable report of `lmforge tokenizer stats`."""
    lines = [f"kind: {summary['kind']}    vocab size: {summary['vocab_size']:,}", ""]
    header = ["input", "chars", "words", "tokens", "tokens/word", "tokens/char", "unk share"]
    table = [
        [
            r.input,
            f"{r.chars:,}",
            f"{r.words:,}",
            f"{r.tokens:,}",
            f"{r.tokens_per_word:.3f}",
            f"{r.tokens_per_char:.3f}",
            f"{r.unk_share:.2%}",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in table]
    lines.append("")

    def show(tokens: list[str]) -> str:
        return "  ".join(_quote(t) for t in tokens)

    lines.append(f"longest tokens: {show(summary['longest_tokens'])}")
    if "top_merges" in summary:
        merges = [f"{_quote(a)}+{_quote(b)}" for a, b in summary["top_merges"]]
        lines.append(f"top merges: {'  '.join(merges)}")
    if "top_pieces" in summary:
        lines.append(f"top pieces: {show(summary['top_pieces'])}")
    if "most_frequent" in summary:
        lines.append(f"most frequent: {show(summary['most_frequent'])}")
    return "\n".join(lines)


def _quote(token: str) -> str:
    """A token in double quotes with control characters escaped (\\xNN byte marks kept as is)."""
    return json.dumps(token, ensure_ascii=False).replace("\\\\", "\\")
