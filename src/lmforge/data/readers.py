"""Corpus readers: every pretraining format as one stream of normalised documents.

``iter_documents(inputs)`` turns the user's ``--input`` values into
:class:`Document` objects (text, source, line). Accepted inputs:

* files, folders (read recursively, by extension) and globs, through
  ``common.expand_inputs``:

  - ``.txt``: UTF-8 text. How a file splits into documents is ``txt_docs``:
    ``blank-line`` (default; a run of non-blank lines is one document, so a file
    without blank lines is one document), ``file`` (the whole file) or ``line``
    (every non-blank line). Line endings become ``\\n`` and a leading byte-order
    mark is dropped; a document keeps its inner newlines and indentation but not
    the blank lines around it.
  - ``.jsonl``: one JSON object per line with a string ``text`` field (the field
    name is ``text_field``).
  - ``.parquet``: a ``text`` column, streamed one row group at a time.
  - ``.arrow``: an Arrow IPC file or stream (the files inside a saved Hugging Face
    dataset) with a ``text`` column.

* a local Hugging Face dataset folder written by ``datasets.save_to_disk``: a
  ``Dataset`` folder (``state.json`` listing its ``.arrow`` files) or a
  ``DatasetDict`` folder (``dataset_dict.json``; its ``train`` split is read,
  another split is read by naming its subfolder). The ``datasets`` package is not
  needed: the Arrow files are read with pyarrow.

* ``hf:NAME[:CONFIG][@SPLIT]``: a dataset on the Hugging Face Hub, streamed through
  ``datasets.load_dataset`` (imported only then; split defaults to ``train``).
  This needs the optional ``datasets`` package and network access.

Every document is NFC-normalised; with ``strip_html`` its text is first parsed by
an HTML5 parser (selectolax/lexbor) and reduced to the visible text. Empty
documents are skipped by the caller (``prepare``), not here, so that it can count
them. Bad input raises ``LmforgeError`` naming the file and line.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..common import LmforgeError, check_text_file, expand_inputs, iter_jsonl, not_utf8_error
from .html_text import html_to_text

TXT_DOCS = ("blank-line", "file", "line")
FILE_EXTENSIONS = (".txt", ".jsonl", ".parquet", ".arrow")
HUB_PREFIX = "hf:"
_FORMATS_HINT = (
    "lmforge data reads .txt, .jsonl, .parquet, .arrow, a saved Hugging Face dataset folder "
    "or hf:NAME"
)
_BOM = "\ufeff"  # a byte-order mark that Windows editors put at the start of UTF-8 files
# Rows fetched per Arrow read: small enough to bound memory on huge row groups.
_ARROW_BATCH_ROWS = 4096
# Bytes of a .txt file read at a time: a longer line arrives in several blocks.
_READ_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Document:
    """One document: normalised text, where it came from, and its 1-based line or row.

    With ``iter_documents(split=...)`` a long document arrives as several of these,
    its pieces in order: ``part`` counts them from 0 and ``last`` marks the final one.
    """

    text: str
    source: str
    line: int
    part: int = 0
    last: bool = True


@dataclass(frozen=True, slots=True)
class Source:
    """One resolved input: a file or dataset folder (with its size) or a hub dataset name."""

    name: str
    kind: str  # txt | jsonl | parquet | arrow | hf-folder | hub
    size: int | None  # bytes on disk, None for hub datasets


def normalize(text: str) -> str:
    """Unicode NFC, so that visually equal strings tokenize (and deduplicate) equally."""
    if unicodedata.is_normalized("NFC", text):  # fast path for the usual case
        return text
    return unicodedata.normalize("NFC", text)


# ---------------------------------------------------------------------------
# Resolving --input values


def _is_hf_dataset_folder(p: Path) -> bool:
    return p.is_dir() and ((p / "state.json").is_file() or (p / "dataset_dict.json").is_file())


def _folder_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*.arrow") if f.is_file())


def resolve_sources(inputs: Iterable[str | Path]) -> list[Source]:
    """Expand `inputs` (files, folders, globs, saved datasets, hf:NAME) into ordered sources."""
    sources: list[Source] = []
    plain: list[str] = []

    def flush() -> None:
        if plain:
            for path in expand_inputs(plain, FILE_EXTENSIONS):
                sources.append(Source(str(path), _file_kind(path), path.stat().st_size))
            plain.clear()

    for item in inputs:
        s = str(item)
        if s.startswith(HUB_PREFIX):
            flush()
            if not s[len(HUB_PREFIX) :].strip():
                raise LmforgeError(
                    f"{s}: give a dataset name after hf:, e.g. hf:roneneldan/TinyStories"
                )
            sources.append(Source(s, "hub", None))
        elif _is_hf_dataset_folder(Path(s)):
            flush()
            sources.append(Source(s, "hf-folder", _folder_size(Path(s))))
        else:
            plain.append(s)
    flush()
    if not sources:
        raise LmforgeError(f"no inputs given; {_FORMATS_HINT}")
    return sources


def _file_kind(path: Path) -> str:
    for ext in FILE_EXTENSIONS:
        if path.name.endswith(ext):
            return ext[1:]
    raise LmforgeError(f"{path}: unsupported file type {path.suffix!r}; {_FORMATS_HINT}")


# ---------------------------------------------------------------------------
# Per-format readers (raw text, before normalisation)


def _read_txt(path: Path, mode: str) -> Iterator[tuple[int, str]]:
    """(line, text) per document of a UTF-8 text file, streamed line by line."""
    for line, chunks in _group(_txt_parts(path, mode)):
        yield line, "".join(chunks)


def _txt_lines(path: Path, whole: bool = False) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, ends the line) for a text file in blocks of at most _READ_BYTES.

    A line longer than _READ_BYTES arrives in several blocks, so no line is ever
    held whole. Line endings (``\n``, ``\r\n``) are dropped, a leading BOM too; a bad
    byte raises LmforgeError naming its line. A line loses all its trailing ``\r``;
    with `whole` (the file is one document) only the one of ``\r\n``.
    """
    import codecs

    check_text_file(path)
    decoder = codecs.getincrementaldecoder("utf-8")()
    lineno, carry, first = 1, "", True
    with open(path, "rb") as f:
        while raw := f.readline(_READ_BYTES):
            try:
                text = carry + decoder.decode(raw)
            except UnicodeDecodeError as e:
                raise not_utf8_error(path, e.object, e.start, lineno) from None
            if first and text:
                text, first = text.removeprefix(_BOM), False
            ends = raw.endswith(b"\n")
            if ends:
                text = text[:-1]
                text, carry = (text.removesuffix("\r") if whole else text.rstrip("\r")), ""
            else:  # a "\r" may be the first half of a "\r\n" cut between two blocks
                kept = text.rstrip("\r")
                text, carry = kept, text[len(kept) :]
            yield lineno, text, ends
            if ends:
                lineno += 1
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as e:
            raise not_utf8_error(path, e.object, e.start, lineno) from None
    if carry and whole:
        yield lineno, carry, False


def _txt_parts(path: Path, mode: str) -> Iterator[tuple[int, str, bool]]:
    """(first line, text, ends the document) parts of the documents of a text file.

    Parts of one document follow each other; the one that ends it has the flag
    set (its text may be empty). A line counts as blank only once all of it has
    been read; the whitespace at its start is held until then.
    """
    lines = _txt_lines(path, whole=mode == "file")
    if mode == "file":
        held: list[str] = []  # the file's start while it is all whitespace
        for _, text, ends in lines:
            held.append(text + ("\n" if ends else ""))
            if text.strip():
                yield 1, "".join(held), False
                break
        else:
            return  # only whitespace: no document
        for _, text, ends in lines:
            yield 1, text + ("\n" if ends else ""), False
        yield 1, "", True
        return
    open_doc = False  # a document has started and not ended
    start = 0
    held = []  # the start of the current line while it is all whitespace
    non_blank = False  # the current line has shown a non-whitespace character
    for lineno, text, ends in lines:
        out = text
        if not non_blank:
            held.append(text)
            out = ""
            if text.strip():
                non_blank = True
                out = "".join(held)
                held = []
                if open_doc:
                    out = "\n" + out  # the next line of the same block
                else:
                    open_doc, start = True, lineno
        if out:
            yield start, out, False
        if ends:
            if not non_blank:  # a blank line ends a block
                held = []
                if open_doc:
                    yield start, "", True
                    open_doc = False
            elif mode == "line":
                yield start, "", True
                open_doc = False
            non_blank = False
    if open_doc:
        yield start, "", True


def _group(parts: Iterator[tuple[int, str, bool]]) -> Iterator[tuple[int, Iterator[str]]]:
    """(line, its texts) per document out of `_txt_parts`; consume each before the next."""
    it = iter(parts)
    for line, text, ends in it:

        def texts(first: str = text, done: bool = ends) -> Iterator[str]:
            if first:
                yield first
            if done:
                return
            for _, t, e in it:
                if t:
                    yield t
                if e:
                    return

        yield line, texts()


def _read_jsonl(path: Path, field: str) -> Iterator[tuple[int, str]]:
    for lineno, obj in iter_jsonl(path):
        if field not in obj:
            fields = ", ".join(f'"{k}"' for k in obj) or "none"
            raise LmforgeError(
                f'{path}:{lineno}: no "{field}" field (this record has: {fields}); '
                f"name the field that holds the text with --text-field, "
                f'or give each line a "{field}" field'
            )
        text = obj[field]
        if text is None:
            continue
        if not isinstance(text, str):
            raise LmforgeError(
                f'{path}:{lineno}: field "{field}" must be a string, got {type(text).__name__}'
            )
        yield lineno, text


def _column_texts(batch, where: str, field: str, first_row: int) -> Iterator[tuple[int, str]]:
    """(row, text) from one Arrow record batch; rows are 1-based across the whole file."""
    import pyarrow as pa

    names = batch.schema.names
    if field not in names:
        raise LmforgeError(
            f"{where}: no {field!r} column (columns: {', '.join(names) or 'none'}); "
            f"choose one with --text-field"
        )
    column = batch.column(names.index(field))
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise LmforgeError(f"{where}: column {field!r} has type {column.type}, expected strings")
    for i, text in enumerate(column.to_pylist()):
        if text is not None:
            yield first_row + i, text


def _read_parquet(path: Path, field: str) -> Iterator[tuple[int, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise LmforgeError(f"{path}: file is empty")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise LmforgeError(f"{path}: not a valid Parquet file ({_one_line(e)})") from None
    if field not in pf.schema_arrow.names:
        cols = ", ".join(pf.schema_arrow.names) or "none"
        raise LmforgeError(
            f"{path}: no {field!r} column (columns: {cols}); choose one with --text-field"
        )
    row = 1
    for group in range(pf.num_row_groups):
        table = pf.read_row_group(group, columns=[field])
        for batch in table.to_batches(max_chunksize=_ARROW_BATCH_ROWS):
            yield from _column_texts(batch, str(path), field, row)
            row += batch.num_rows


def _arrow_batches(path: Path):
    """Record batches of an Arrow IPC stream (what `datasets` writes) or IPC file."""
    import pyarrow as pa

    if path.stat().st_size == 0:
        raise LmforgeError(f"{path}: file is empty")
    source = pa.memory_map(str(path))
    try:
        try:
            reader = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            source.seek(0)
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)
            return
        yield from reader
    except pa.ArrowInvalid as e:
        raise LmforgeError(f"{path}: not a valid Arrow file ({_one_line(e)})") from None
    finally:
        source.close()


def _read_arrow(path: Path, field: str, first_row: int = 1) -> Iterator[tuple[int, str]]:
    """(row, text) of an Arrow file; returns the row number after its last row."""
    row = first_row
    for batch in _arrow_batches(path):
        for start in range(0, batch.num_rows, _ARROW_BATCH_ROWS):
            piece = batch.slice(start, _ARROW_BATCH_ROWS)
            yield from _column_texts(piece, str(path), field, row)
            row += piece.num_rows
    return row


def _read_hf_folder(folder: Path, field: str) -> Iterator[tuple[int, str]]:
    """(row, text) of a saved dataset; rows are numbered across its Arrow files."""
    row = 1
    for path in hf_folder_files(folder):
        row = yield from _read_arrow(path, field, row)


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LmforgeError(f"{path}: malformed JSON ({_one_line(e)})") from None
    if not isinstance(data, dict):
        raise LmforgeError(f"{path}: expected a JSON object")
    return data


def hf_folder_files(folder: Path) -> list[Path]:
    """The Arrow files of a `save_to_disk` folder, in order (train split of a DatasetDict)."""
    if (folder / "dataset_dict.json").is_file():
        splits = _load_json(folder / "dataset_dict.json").get("splits") or []
        if "train" not in splits:
            raise LmforgeError(
                f"{folder}: dataset has no 'train' split (splits: {', '.join(splits) or 'none'}); "
                f"pass the split's folder, e.g. {folder / (splits[0] if splits else 'SPLIT')}"
            )
        folder = folder / "train"
        if not (folder / "state.json").is_file():
            raise LmforgeError(f"{folder}: missing state.json; save the dataset again")
    state = _load_json(folder / "state.json")
    entries = state.get("_data_files")
    if not isinstance(entries, list) or not entries:
        raise LmforgeError(f"{folder / 'state.json'}: lists no data files; save the dataset again")
    files = []
    for entry in entries:
        name = entry.get("filename") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            raise LmforgeError(f"{folder / 'state.json'}: malformed _data_files entry {entry!r}")
        path = folder / name
        if not path.is_file():
            raise LmforgeError(f"{path}: listed in state.json but missing; save the dataset again")
        files.append(path)
    return files


def _read_hub(spec: str, field: str) -> Iterator[tuple[int, str]]:
    """Stream a Hub dataset `hf:NAME[:CONFIG][@SPLIT]` (needs `datasets` and network)."""
    body = spec[len(HUB_PREFIX) :]
    body, _, split = body.partition("@")
    name, _, config = body.partition(":")
    try:
        import datasets
    except ImportError:
        raise LmforgeError(
            f"{spec}: reading Hub datasets needs the `datasets` package: pip install datasets "
            f"(or save the dataset with save_to_disk and pass its folder)"
        ) from None
    import logging

    # The Hub client logs every retry on stderr; the error below says it in one line.
    quiet = [logging.getLogger(n) for n in ("huggingface_hub", "datasets", "fsspec")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        ds = datasets.load_dataset(name, config or None, split=split or "train", streaming=True)
    except Exception as e:  # network, missing dataset, bad config: all user-facing
        raise LmforgeError(f"{spec}: could not load the dataset ({_one_line(e)})") from None
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    for row, example in enumerate(ds, start=1):
        if field not in example:
            cols = ", ".join(example) or "none"
            raise LmforgeError(f"{spec}: no {field!r} column (columns: {cols}); use --text-field")
        text = example[field]
        if isinstance(text, str):
            yield row, text


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def read_source(source: Source, *, txt_docs: str, text_field: str) -> Iterator[tuple[int, str]]:
    """(line or row, raw text) for every document of one source."""
    path = Path(source.name)
    if source.kind == "txt":
        return _read_txt(path, txt_docs)
    if source.kind == "jsonl":
        return _read_jsonl(path, text_field)
    if source.kind == "parquet":
        return _read_parquet(path, text_field)
    if source.kind == "arrow":
        return _read_arrow(path, text_field)
    if source.kind == "hf-folder":
        return _read_hf_folder(path, text_field)
    if source.kind == "hub":
        return _read_hub(source.name, text_field)
    raise LmforgeError(f"{source.name}: unsupported input kind {source.kind!r}")


def iter_documents(
    inputs: Iterable[str | Path] | list[Source],
    *,
    strip_html: bool = False,
    txt_docs: str = "blank-line",
    text_field: str = "text",
    split: Callable[[Iterable[str]], Iterable[str]] | None = None,
) -> Iterator[Document]:
    """Yield every document of `inputs` in order, NFC-normalised (HTML stripped on request).

    With `split` (a function that re-cuts a text given in blocks into pieces, such as
    ``tokenizers.corpus.split_pieces`` with its options bound) every document is
    handed on in its pieces, one Document each (``part``, ``last``), and a .txt
    document is read in blocks: no document is ever held whole, however long its
    lines. NFC is applied per piece, which is exact where pieces are cut before
    whitespace (nothing composes across it). `strip_html` parses a document whole.
    """
    if txt_docs not in TXT_DOCS:
        raise LmforgeError(f"txt_docs: got {txt_docs!r}; allowed: {', '.join(TXT_DOCS)}")
    items = list(inputs)
    sources = items if items and isinstance(items[0], Source) else resolve_sources(items)
    for source in sources:
        if split is None:
            for line, raw in read_source(source, txt_docs=txt_docs, text_field=text_field):
                text = html_to_text(raw) if strip_html else raw
                yield Document(normalize(text), source.name, line)
            continue
        if source.kind == "txt":
            docs = _group(_txt_parts(Path(source.name), txt_docs))
        else:
            docs = (
                (line, [raw])
                for line, raw in read_source(source, txt_docs=txt_docs, text_field=text_field)
            )
        for line, texts in docs:
            if strip_html:
                texts = [html_to_text("".join(texts))]
            previous: str | None = None
            part = 0
            for piece in split(texts):
                if previous is not None:
                    yield Document(normalize(previous), source.name, line, part, False)
                    part += 1
                previous = piece
            yield Document(normalize(previous or ""), source.name, line, part, True)
