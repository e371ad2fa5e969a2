"""Training text for tokenizers: resolve `--input`s, check them, stream their text.

Accepts `.txt` (read as is, newlines kept) and `.jsonl` (the `text` field of each
line). Every file is checked up front, before any training or writing starts,
and a bad line is named `FILE:LINE`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..common import LmforgeError, check_text_file, expand_inputs, iter_jsonl, progress

EXTENSIONS = (".txt", ".jsonl")

# Size of the text pieces handed to the trainers: big enough that per-call
# overhead vanishes, small enough that the Rust trainers can spread them over threads.
CHUNK_CHARS = 1 << 16


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


def iter_documents(files: Sequence[Path]) -> Iterator[str]:
    """Yield the text of every input: a .txt file in chunks of whole lines, a .jsonl line's `text`.

    Chunks of a .txt file break only before a non-blank line, so runs of
    newlines stay whole. Raises LmforgeError naming the file (and line) on bad input.
    """
    total = sum(f.stat().st_size for f in files)
    with progress(total=total, desc="reading", unit="B") as bar:
        for f in files:
            if f.name.endswith(".jsonl"):
                yield from _jsonl_texts(f, bar)
            else:
                yield from _txt_chunks(f, bar)


def _txt_chunks(path: Path, bar) -> Iterator[str]:
    buf: list[str] = []
    size = 0
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if size >= CHUNK_CHARS and line.strip():
                    text = "".join(buf)
                    bar.update(len(text.encode("utf-8")))
                    yield text
                    buf, size = [], 0
                buf.append(line)
                size += len(line)
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None
    if buf:
        text = "".join(buf)
        bar.update(len(text.encode("utf-8")))
        yield text


def _jsonl_texts(path: Path, bar) -> Iterator[str]:
    try:
        for lineno, obj in iter_jsonl(path):
            text = obj.get("text")
            if not isinstance(text, str):
                what = "has no" if text is None else "has a non-string"
                raise LmforgeError(
                    f"{path}:{lineno}: {what} `text` field; each line needs "
                    f'{{"text": "..."}} to train a tokenizer'
                )
            bar.update(len(text.encode("utf-8")))
            yield text
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None


def _not_utf8(path: Path, e: UnicodeDecodeError) -> LmforgeError:
    return LmforgeError(
        f"{path}: is not UTF-8 (invalid byte {e.object[e.start : e.start + 1]!r}); convert it, "
        f"e.g. `iconv -f cp1251 -t utf-8 {path} > {path.stem}.utf8{path.suffix}`"
    )


def iter_lines(documents: Iterable[str]) -> Iterator[str]:
    """Split documents into their non-blank lines (sentencepiece trains on sentences)."""
    for doc in documents:
        # Only "\n" ends a line: str.splitlines would also cut at U+2028, \x0c and
        # others, which then would never be seen in training.
        for line in doc.split("\n"):
            if line.strip():
                yield line
