"""Training text for tokenizers: resolve `--input`s, check them, stream their text.

Accepts `.txt` (read as is, newlines kept) and `.jsonl` (the `text` field of each
line). Every file is checked up front, before any training or writing starts,
and a bad line is named `FILE:LINE`.

Memory stays bounded whatever the line length: text is read in blocks and
handed on in pieces of about CHUNK_CHARS characters (`split_pieces`), cut where
cutting cannot change how the text tokenizes (see `split_pieces`). Data prepare
cuts long documents with the same function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from ..common import (
    LmforgeError,
    check_text_file,
    expand_inputs,
    iter_jsonl,
    not_utf8_error,
    progress,
)

EXTENSIONS = (".txt", ".jsonl")

# Size of the text pieces handed to the trainers: big enough that per-call
# overhead vanishes, small enough that the Rust trainers can spread them over threads.
CHUNK_CHARS = 1 << 16
# Bytes read from a .txt file at a time (a line longer than this arrives in blocks).
READ_BYTES = 1 << 20
# A piece grows to at most this many times its limit while a cut point is looked
# for; past that (text without a space for megabytes) it is cut where it stands.
HARD_LIMIT_FACTOR = 4

# The whitespace characters a cut may come before (any whitespace would do; these
# are the ones text is made of). Only a space (U+0020) in `spaces_only` mode.
_CUT_CHARS = (" ", "\n", "\t", "\r")


def split_pieces(
    chunks: Iterable[str],
    max_chars: int,
    *,
    spaces_only: bool = False,
    can_cut: Callable[[str, int], bool] | None = None,
) -> Iterator[str]:
    """Re-cut a text that arrives as `chunks` into pieces of at most about `max_chars`.

    The pieces, joined, are the text exactly. A piece ends just before a
    whitespace character that follows a non-whitespace one (just before a space,
    U+0020, with `spaces_only`), the last such point within `max_chars` (else the
    first one after). There every lmforge pipeline has a token boundary: the GPT-2
    regex of byte-level BPE keeps the space with the next word, the word and char
    splitters drop or isolate whitespace, NFC never composes across whitespace, so
    encoding the pieces one by one gives the ids of the whole text. A tokenizer that
    prepends a `▁` to every input (unigram, Metaspace) must drop the leading space
    of every piece but the first, which its prefix then stands for (`spaces_only`
    makes sure that is there). `can_cut(buf, i)` may refuse a point (a unigram piece
    spanning a space). A text with no such point in HARD_LIMIT_FACTOR × `max_chars`
    is cut at `max_chars` (the only inexact cut: its ids may differ at that point).
    Yields nothing for an empty text.
    """
    buf, start = "", 0  # the text not yet handed on is buf[start:]
    for chunk in chunks:
        buf = buf[start:] + chunk if start < len(buf) else chunk
        start = 0
        while len(buf) - start > max_chars:
            cut = _find_cut(buf, start, max_chars, spaces_only, can_cut)
            if cut is None:
                if len(buf) - start < HARD_LIMIT_FACTOR * max_chars:
                    break  # wait for more text
                cut = start + max_chars
            yield buf[start:cut]
            start = cut
    if start < len(buf):
        yield buf[start:]


def _find_cut(
    buf: str,
    start: int,
    limit: int,
    spaces_only: bool,
    can_cut: Callable[[str, int], bool] | None,
) -> int | None:
    """The last cut point in buf[start + 1 : start + limit + 1], else the first one after."""
    chars = (" ",) if spaces_only else _CUT_CHARS

    def ok(i: int) -> bool:
        return not buf[i - 1].isspace() and (can_cut is None or can_cut(buf, i))

    hi = start + limit + 1
    while hi > start + 1:  # backwards from the limit
        i = max(buf.rfind(c, start + 1, hi) for c in chars)
        if i < start + 1:
            break
        if ok(i):
            return i
        hi = i
    lo = start + limit + 1
    while lo < len(buf):  # forwards past it
        found = [j for j in (buf.find(c, lo) for c in chars) if j != -1]
        if not found:
            return None
        i = min(found)
        if ok(i):
            return i
        lo = i + 1
    return None


def resolve_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand files, folders and globs, and check every file (UTF-8, not empty, not binary)."""
    files = expand_inputs(list(inputs), EXTENSIONS)
    if not files:
        raise LmforgeError("no input files: pass --input FILE, FOLDER or GLOB")
    for f in files:
        if not f.name.endswith(EXTENSIONS):
            raise LmforgeError(f"{f}: unsupported file type; use .txt or .jsonl (a `text` field)")
        check_text_file(f)
    return files


def iter_documents(files: Sequence[Path], *, drop_space: bool = False) -> Iterator[str]:
    """Yield the text of every input in pieces of about CHUNK_CHARS characters.

    A .txt file is streamed as one text, a .jsonl line's `text` field is one text;
    each is cut by `split_pieces`, so joined pieces give the text back exactly.
    With `drop_space` (for a pipeline that prepends `▁` to every input: unigram)
    pieces are cut only before a space, and that space is dropped from the piece
    after it. Raises LmforgeError naming the file (and line) on bad input.
    """
    total = sum(f.stat().st_size for f in files)
    with progress(total=total, desc="reading", unit="B") as bar:
        for f in files:
            texts = _jsonl_texts(f, bar) if f.name.endswith(".jsonl") else [_txt_blocks(f, bar)]
            for blocks in texts:
                pieces = split_pieces(blocks, CHUNK_CHARS, spaces_only=drop_space)
                for k, piece in enumerate(pieces):
                    yield piece[1:] if drop_space and k and piece[0] == " " else piece


def _txt_blocks(path: Path, bar) -> Iterator[str]:
    """The text of a .txt file in blocks of about READ_BYTES (decoded incrementally)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as fh:
        while True:
            raw = fh.read(READ_BYTES)
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as e:
                at = line + e.object.count(b"\n", 0, e.start)
                raise not_utf8_error(path, e.object, e.start, at) from None
            bar.update(len(raw))
            line += raw.count(b"\n")
            if text:
                yield text
            if not raw:
                return


def _jsonl_texts(path: Path, bar) -> Iterator[list[str]]:
    try:
        for lineno, obj in iter_jsonl(path):
            text = obj.get("text")
            if not isinstance(text, str):
                what = "has no" if text is None else "has a non-string"
                fields = ", ".join(map(str, obj)) or "none"
                raise LmforgeError(
                    f"{path}:{lineno}: {what} `text` field (fields: {fields}); each line needs "
                    f'{{"text": "..."}} to train a tokenizer'
                )
            bar.update(len(text.encode("utf-8")))
            yield [text]
    except UnicodeDecodeError as e:
        raise not_utf8_error(path, e.object, e.start) from None


def iter_lines(documents: Iterable[str]) -> Iterator[str]:
    """Split documents into their non-blank lines (sentencepiece trains on sentences)."""
    for doc in documents:
        # Only "\n" ends a line: str.splitlines would also cut at U+2028, \x0c and
        # others, which then would never be seen in training.
        for line in doc.split("\n"):
            if line.strip():
                yield line
