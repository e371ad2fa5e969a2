"""`lmforge data prepare`: corpus files → deduplicated, tokenized, split, memory-mappable shards.

Pipeline (``prepare(cfg)``):

1. **Read** every input through ``readers.iter_documents`` (NFC, optional HTML
   stripping). Empty documents are dropped and counted.
2. **Deduplicate**: a document whose normalised text has the same 128-bit BLAKE2b
   hash as an earlier one is dropped and counted (``duplicates_dropped``).
3. **Tokenize** in batches of ~1 MiB of text with the tokenizer's Rust
   ``encode_batch_fast`` on all cores (``--workers`` limits the threads). Worker
   processes do not pay off: on 2 cores a 2-process pool took 2.3 s where the
   Rust threads took 1.1 s for the same 3.7 MB. Each document becomes its ids
   followed by ``eos_id``: the stream is ``doc₁ EOS doc₂ EOS …``, so a model
   learns where documents end, and sampling a fresh document starts from
   ``[eos_id]``. The ids go to a temporary stream file, never all to memory.
   A document longer than PIECE_CHARS is read and encoded in pieces of at most
   about that size (``tokenizers.corpus.split_pieces``), cut before a space so
   that the pieces' ids are exactly the ids of the whole document (a unigram
   tokenizer, which prepends ``▁`` to every input, encodes each later piece without
   its leading space, which the ``▁`` then stands for): memory stays bounded
   whatever the line length.
4. **Split** by document: a seeded permutation picks ``round(n × val_fraction)``
   documents (at least 1, at most n − 1) for ``val``; both splits keep the
   corpus order. A corpus of one document is cut instead at the first line break
   after ``1 − val_fraction`` of its text (``split_rule: "tail"``), which is the
   classic char-rnn / nanoGPT split of a single book; a document read in pieces is
   cut at the piece boundary nearest that point, from the stream of its ids.
   ``val_fraction`` must be above 0: pretraining evaluates on ``val``.
5. **Write** ``train_NNNNN.bin`` / ``val_NNNNN.bin`` (see shards.py), the
   tokenizer (``tokenizer/``), ``config.yaml`` and ``meta.json``, all inside a
   temporary folder beside ``out`` that is renamed into place at the end: a
   failure leaves nothing behind, and an existing ``out`` is replaced only after
   the new one is complete (and only with ``--overwrite``).

``meta.json`` fields: ``format_version``, ``dtype`` (uint16/uint32),
``vocab_size``, ``tokenizer_hash``, ``tokenizer_kind``, ``eos_id``,
``document_boundary`` ("eos_after"), ``splits.{train,val}.{shards, tokens,
documents, chars, bytes}`` (chars and UTF-8 bytes of the documents' text, without
separators, for bits-per-character/byte), ``documents``, ``documents_read``,
``duplicates_dropped``, ``empty_dropped``, ``split_rule``, ``sources`` (per input:
kind and documents kept), and the options that shaped the data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from array import array
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..common import ConfigError, LmforgeError, atomic_write_text, progress, replace_folder
from ..config import save_config
from ..outputs import check_out
from ..tokenizers.corpus import split_pieces
from ..tokenizers.pipeline import engine_threads
from .prepare_config import PrepareConfig
from .readers import Source, iter_documents, resolve_sources
from .shards import (
    FORMAT_VERSION,
    META_FILE,
    SPLITS,
    TOKENIZER_DIR,
    ShardWriter,
    dtype_for_vocab,
)

# Text per encode_batch call: large enough to keep every Rust thread busy,
# small enough that the ids of one batch stay a few MB.
_BATCH_CHARS = 1 << 20
_BATCH_DOCS = 8192
# A longer document is read and encoded in pieces of about this many characters.
PIECE_CHARS = 1 << 18
# Tokens moved per step when the stream is split into train/val.
_SPLIT_CHUNK = 1 << 24

__all__ = ["PrepareConfig", "prepare"]


@dataclass
class _Stats:
    """Running counts of the read/dedup/tokenize pass."""

    read: int = 0
    duplicates: int = 0
    empty: int = 0
    tokens: int = 0


def prepare(cfg: PrepareConfig) -> dict[str, Any]:
    """Build the data folder `cfg.out` (see the module docstring); returns its meta.json dict."""
    from ..config import validate
    from ..tokenizers import Tokenizer

    validate(cfg)
    cfg_out = Path(os.path.abspath(cfg.out))  # "." and "x/.." need a real name and parent
    if not cfg_out.name:
        raise ConfigError("out", f"{cfg.out!r} is a filesystem root; name a folder to create")
    check_out(
        cfg_out,
        force=cfg.force,
        made_here=lambda p: (p / META_FILE).is_file(),
        what="prepared data folder",
        inputs=[("tokenizer", cfg.tokenizer), *(("input", i) for i in cfg.input)],
    )
    tok = Tokenizer.load(cfg.tokenizer)
    if tok.eos_id is None:
        raise LmforgeError(
            f"{cfg.tokenizer}: tokenizer has no end-of-document token (eos); "
            f"documents need one to be separated"
        )
    sources = resolve_sources(cfg.input)
    # Build beside `out` (same filesystem) so that the final rename is atomic.
    tmp = cfg_out.parent / f".{cfg_out.name}.tmp-{os.getpid()}"
    try:
        cfg_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        with engine_threads(cfg.workers):
            meta = _build(cfg, tok, sources, tmp)
        tok.save(tmp / TOKENIZER_DIR)
        save_config(cfg, tmp / "config.yaml")
        atomic_write_text(tmp / META_FILE, _dumps(meta))
        replace_folder(tmp, cfg_out)
    except OSError as e:  # disk full, permissions: a user problem, not a bug
        shutil.rmtree(tmp, ignore_errors=True)
        raise LmforgeError(f"{e.filename or cfg_out}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _dumps(meta: dict[str, Any]) -> str:
    return json.dumps(meta, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------
# The two passes


def _build(cfg: PrepareConfig, tok: Any, sources: list[Source], tmp: Path) -> dict[str, Any]:
    dtype = dtype_for_vocab(tok.vocab_size)
    stream_path = tmp / "stream.tmp"
    started = time.perf_counter()
    docs = _tokenize_all(cfg, tok, sources, stream_path, dtype)
    n = len(docs.lengths)
    stats = docs.stats
    if n == 0:
        raise LmforgeError(
            f"no documents found in {', '.join(cfg.input)} ({stats.empty} empty, "
            f"{stats.duplicates} duplicates); check the inputs and --text-field"
        )
    writers = {s: ShardWriter(tmp, s, dtype, cfg.shard_tokens) for s in SPLITS}
    if n == 1 and cfg.val_fraction > 0:
        split_rule = "tail"
        if docs.cuts:
            counts = _split_single_stream(stream_path, dtype, docs, cfg.val_fraction, tok, writers)
        else:
            counts = _split_single_document(docs.only_text, cfg.val_fraction, tok, writers)
    else:
        split_rule = "documents" if cfg.val_fraction > 0 else "none"
        is_val = _choose_val(n, cfg.val_fraction, cfg.seed)
        _split_stream(stream_path, dtype, docs, is_val, writers)
        counts = {
            "train": _sums(docs, ~is_val),
            "val": _sums(docs, is_val),
        }
    stream_path.unlink()
    splits = {}
    for name, writer in writers.items():
        shards = writer.close()
        splits[name] = {"tokens": writer.tokens, **counts[name], "shards": shards}
    return {
        "format_version": FORMAT_VERSION,
        "dtype": dtype,
        "vocab_size": tok.vocab_size,
        "tokenizer_hash": tok.hash,
        "tokenizer_kind": tok.kind,
        "eos_id": tok.eos_id,
        "document_boundary": "eos_after",
        "splits": splits,
        "documents": n,
        "documents_read": stats.read,
        "duplicates_dropped": stats.duplicates,
        "empty_dropped": stats.empty,
        "split_rule": split_rule,
        "val_fraction": cfg.val_fraction,
        "seed": cfg.seed,
        "txt_docs": cfg.txt_docs,
        "text_field": cfg.text_field,
        "strip_html": cfg.strip_html,
        "dedup": cfg.dedup,
        "sources": [
            {"input": s.name, "kind": s.kind, "documents": docs.per_source.get(s.name, 0)}
            for s in sources
        ],
        "seconds": round(time.perf_counter() - started, 3),
        "lmforge_version": __version__,
    }


class _DocTable:
    """Per-document token lengths (with EOS), chars and UTF-8 bytes, in corpus order."""

    def __init__(self) -> None:
        self.lengths = array("q")
        self.chars = array("q")
        self.bytes = array("q")
        self.per_source: dict[str, int] = {}
        self.stats = _Stats()
        self.only_text = ""  # the text while there is exactly one document (single-doc split)
        # The first document's piece boundaries (chars, bytes, tokens before each later
        # piece) when it was read in pieces: where a single document can be cut.
        self.cuts: list[tuple[int, int, int]] = []


@dataclass
class _OpenDoc:
    """The document being read: its pieces so far."""

    first: bool  # no document has been kept before it
    multi: bool  # it comes in more than one piece
    hasher: Any = None
    chars: int = 0  # chars and UTF-8 bytes read so far
    nbytes: int = 0
    seen_text: bool = False  # a piece with non-whitespace has come
    held: list[tuple[str, tuple[int, int]]] = field(default_factory=list)  # whitespace only
    stream_pos: int = 0  # stream offset (bytes) and token count where it started
    tokens_before: int = 0


def piece_rule(tok: Any) -> tuple[bool, Any]:
    """(drop_space, can_cut) of `split_pieces` that keep `tok`'s ids exact across pieces.

    drop_space: the pipeline puts a `▁` before every input (a unigram's Prepend
    normalizer, a Metaspace pre-tokenizer), so a piece after a cut before a space is
    encoded without that space. can_cut: for a model that sees the whole text (no
    pre-tokenizer splitting at whitespace: unigram), refuse a cut that a vocabulary
    piece spans (`▁of▁the`, learned with --span-spaces); None when none can.
    """
    data = json.loads(tok.engine.to_str())
    pre = data.get("pre_tokenizer") or {}
    norm = data.get("normalizer") or {}
    kinds = _types(pre) | _types(norm)
    if tok.kind == "unigram" or "Metaspace" in kinds or "Prepend" in kinds:
        drop = True
    elif tok.kind in ("bpe", "word", "char"):
        drop = False
    else:  # an imported pipeline: see which way "a b" comes apart
        whole = tok.encode("hello world")
        drop = whole != tok.encode("hello") + tok.encode(" world") and whole == (
            tok.encode("hello") + tok.encode("world")
        )
    if _types(pre) - {"Digits", "Sequence"}:
        return drop, None  # a pre-tokenizer splits at whitespace: no token spans a cut
    space = tok.engine.normalizer.normalize_str(" ")[-1:] if tok.engine.normalizer else " "
    vocab = tok.engine.get_vocab(with_added_tokens=False)
    spanning = [(k, t) for t in vocab if space in t[1:] for k in range(1, len(t)) if t[k] == space]
    if not spanning:
        return drop, None
    lower = "Lowercase" in _types(norm)
    reach = max(len(t) for _, t in spanning)

    def can_cut(buf: str, i: int) -> bool:
        lo = max(0, i - reach)
        window = buf[lo : i + reach].replace(" ", space)
        window = window.lower() if lower else window
        at = i - lo
        return not any(k <= at and window.startswith(t, at - k) for k, t in spanning)

    return drop, can_cut


def _types(node: Any) -> set[str]:
    """Every component type named in a normalizer / pre-tokenizer JSON tree."""
    if isinstance(node, dict):
        out = {node["type"]} if isinstance(node.get("type"), str) else set()
        for v in node.values():
            out |= _types(v)
        return out
    if isinstance(node, list):
        return set().union(*(_types(v) for v in node)) if node else set()
    return set()


def _tokenize_all(
    cfg: PrepareConfig, tok: Any, sources: list[Source], stream_path: Path, dtype: str
) -> _DocTable:
    """Pass 1: read, dedup and tokenize every document into one stream file."""
    table = _DocTable()
    seen: set[bytes] = set()
    eos = (tok.eos_id,)
    np_dtype = np.dtype("<u2" if dtype == "uint16" else "<u4")
    sizes = {s.name: s.size for s in sources}
    total = None if any(v is None for v in sizes.values()) else sum(sizes.values())
    bar = progress(total=total, desc="prepare", unit="B")
    drop_space, can_cut = piece_rule(tok)
    split = partial(split_pieces, max_chars=PIECE_CHARS, spaces_only=drop_space, can_cut=can_cut)
    # Texts to encode, each with: ends its document (EOS after it), and for a piece of
    # the first document its (chars, bytes) offset in it (None otherwise).
    batch: list[str] = []
    ends: list[bool] = []
    marks: list[tuple[int, int] | None] = []
    batch_chars = 0
    open_tokens = 0  # tokens of the current document's pieces written so far
    shown = _ProgressByFile(bar, sizes)

    def flush() -> None:
        nonlocal batch_chars, open_tokens
        if not batch:
            return
        # Special-token strings in documents stay plain text: data cannot forge EOS or a turn.
        ids_lists = tok.encode_batch(batch)
        parts: list[Any] = []
        n_tokens = 0
        for ids, end, mark in zip(ids_lists, ends, marks):
            if mark is not None and mark[0] > 0:
                table.cuts.append((*mark, open_tokens))
            parts.append(ids)
            n_tokens += len(ids)
            open_tokens += len(ids)
            if end:
                parts.append(eos)
                n_tokens += 1
                table.lengths.append(open_tokens + 1)
                open_tokens = 0
        flat = np.fromiter(chain.from_iterable(parts), dtype=np_dtype, count=n_tokens)
        stream.write(flat.tobytes())
        table.stats.tokens += n_tokens
        shown.push()
        bar.set_postfix(tokens=f"{table.stats.tokens:,}", refresh=False)
        batch.clear()
        ends.clear()
        marks.clear()
        batch_chars = 0

    def add(text: str, end: bool, mark: tuple[int, int] | None) -> None:
        nonlocal batch_chars
        batch.append(text)
        ends.append(end)
        marks.append(mark)
        batch_chars += len(text)
        if batch_chars >= _BATCH_CHARS or len(batch) >= _BATCH_DOCS:
            flush()

    doc: _OpenDoc | None = None
    with open(stream_path, "wb") as stream, bar:
        for piece in iter_documents(
            sources,
            strip_html=cfg.strip_html,
            txt_docs=cfg.txt_docs,
            text_field=cfg.text_field,
            split=split,
        ):
            if piece.part == 0:
                table.stats.read += 1
                doc = _OpenDoc(first=not table.chars, multi=not piece.last)
                if doc.multi:  # written as it comes: note where, to take it back if a duplicate
                    flush()
                    doc.stream_pos, doc.tokens_before = stream.tell(), table.stats.tokens
                if cfg.dedup:
                    doc.hasher = hashlib.blake2b(digest_size=16)
            assert doc is not None
            raw = piece.text.encode("utf-8")
            shown.advance(piece.source, len(raw))
            if doc.hasher is not None:
                doc.hasher.update(raw)
            # A unigram's `▁` prefix stands for the space this piece was cut before.
            text = piece.text
            if drop_space and piece.part and text.startswith(" "):
                text = text[1:]
            queue = [(text, (doc.chars, doc.nbytes))]
            doc.chars += len(piece.text)
            doc.nbytes += len(raw)
            if not doc.seen_text:  # hold leading whitespace until the document shows text
                doc.held += queue
                if not piece.text.strip():
                    table.stats.empty += piece.last
                    continue
                doc.seen_text = True
                queue, doc.held = doc.held, []
            if piece.last:  # the document is complete: dedup, then its last piece with EOS
                if doc.hasher is not None:
                    digest = doc.hasher.digest()
                    if digest in seen:
                        table.stats.duplicates += 1
                        if doc.multi:  # take back what of it was written
                            flush()
                            stream.seek(doc.stream_pos)
                            stream.truncate()
                            table.stats.tokens = doc.tokens_before
                            open_tokens = 0
                            if doc.first:
                                table.cuts.clear()
                        continue
                    seen.add(digest)
                table.chars.append(doc.chars)
                table.bytes.append(doc.nbytes)
                table.per_source[piece.source] = table.per_source.get(piece.source, 0) + 1
                table.only_text = piece.text if len(table.chars) == 1 and not doc.multi else ""
            for i, (t, offset) in enumerate(queue):
                end = piece.last and i == len(queue) - 1
                add(t, end, offset if doc.first and doc.multi else None)
        flush()
        shown.finish()
    return table


class _ProgressByFile:
    """A byte bar over the input files, moved by each document's UTF-8 size.

    A document never moves the bar past its file's size (JSON quoting and
    Parquet compression make text and file sizes differ); the rest is added when
    the pass ends. Updates are pushed once per batch to keep the per-document cost
    at a dict lookup.
    """

    def __init__(self, bar: Any, sizes: dict[str, int | None]):
        self.bar = bar
        self.left = dict(sizes)
        self.pending = 0

    def advance(self, source: str, amount: int) -> None:
        room = self.left.get(source)
        if room is None:  # a hub dataset: size unknown, count its text
            if self.bar.total is None:
                self.pending += amount
            return
        step = min(room, amount)
        self.left[source] = room - step
        self.pending += step

    def push(self) -> None:
        if self.pending:
            self.bar.update(self.pending)
            self.pending = 0

    def finish(self) -> None:
        self.push()
        rest = sum(v for v in self.left.values() if v)
        if rest and self.bar.total is not None:
            self.bar.update(rest)
        self.left = {k: 0 for k in self.left}


def _choose_val(n: int, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the documents held out: a seeded choice of round(n × fraction)."""
    is_val = np.zeros(n, dtype=bool)
    if fraction <= 0 or n < 2:
        return is_val
    k = min(max(round(n * fraction), 1), n - 1)
    rng = np.random.default_rng(seed)
    is_val[rng.permutation(n)[:k]] = True
    return is_val


def _split_stream(
    stream_path: Path, dtype: str, docs: _DocTable, is_val: np.ndarray, writers: dict
) -> None:
    """Pass 2: copy each document's ids from the stream to its split, in corpus order."""
    lengths = np.frombuffer(docs.lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    if ends[-1] == 0:
        return
    stream = np.memmap(stream_path, dtype=np.dtype("<u2" if dtype == "uint16" else "<u4"), mode="r")
    first = 0
    while first < len(lengths):
        start = int(ends[first - 1]) if first else 0
        # Whole documents up to ~_SPLIT_CHUNK tokens (at least one) per step.
        last = max(int(np.searchsorted(ends, start + _SPLIT_CHUNK, side="right")), first + 1)
        stop = int(ends[last - 1])
        tokens = stream[start:stop]
        mask = np.repeat(is_val[first:last], lengths[first:last])  # one flag per token
        writers["train"].write(tokens[~mask])
        writers["val"].write(tokens[mask])
        first = last
    del stream


def _sums(docs: _DocTable, mask: np.ndarray) -> dict[str, int]:
    chars = np.frombuffer(docs.chars, dtype=np.int64)
    nbytes = np.frombuffer(docs.bytes, dtype=np.int64)
    return {
        "documents": int(mask.sum()),
        "chars": int(chars[mask].sum()),
        "bytes": int(nbytes[mask].sum()),
    }


def _split_single_document(text: str, fraction: float, tok: Any, writers: dict) -> dict:
    """Cut the only document at a line break near 1 − fraction; each part ends with EOS."""
    cut = int(len(text) * (1 - fraction))
    newline = text.find("\n", cut)
    if newline != -1 and newline + 1 < len(text):
        cut = newline + 1
    parts = {"train": text[:cut], "val": text[cut:]}
    counts = {}
    for split, part in parts.items():
        if part.strip():
            writers[split].write(np.asarray(tok.encode(part, eos=True), dtype=np.int64))
            counts[split] = {"documents": 1, "chars": len(part), "bytes": len(part.encode())}
        else:
            counts[split] = {"documents": 0, "chars": 0, "bytes": 0}
    return counts


def _split_single_stream(
    stream_path: Path, dtype: str, docs: _DocTable, fraction: float, tok: Any, writers: dict
) -> dict:
    """Cut the only document, read in pieces, at the piece boundary nearest 1 − fraction.

    Its ids are already in the stream (pieces encode exactly as the whole text), so
    each part is copied from there and ends with EOS; nothing is encoded again.
    """
    total_chars, total_bytes = int(docs.chars[0]), int(docs.bytes[0])
    target = total_chars * (1 - fraction)
    chars, nbytes, tokens = min(docs.cuts, key=lambda c: abs(c[0] - target))
    stream = np.memmap(stream_path, dtype=np.dtype("<u2" if dtype == "uint16" else "<u4"), mode="r")
    body = int(docs.lengths[0]) - 1  # without its EOS
    eos = np.asarray([tok.eos_id], dtype=np.int64)
    parts = {"train": (0, tokens, chars, nbytes)}
    parts["val"] = (tokens, body, total_chars - chars, total_bytes - nbytes)
    counts = {}
    for split, (a, b, n_chars, n_bytes) in parts.items():
        for start in range(a, b, _SPLIT_CHUNK):
            writers[split].write(stream[start : min(b, start + _SPLIT_CHUNK)])
        writers[split].write(eos)
        counts[split] = {"documents": 1, "chars": n_chars, "bytes": n_bytes}
    del stream
    return counts
