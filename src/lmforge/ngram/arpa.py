"""ARPA files: write any NgramModel, read any ARPA file (KenLM's, SRILM's, lmforge's).

lmforge writes what ``lmplz`` writes: tab-separated ``log10 p  n-gram  log10 backoff``
lines (a backoff on every n-gram below the highest order), <s> with probability 0
(written -99, as SRILM and KenLM mean log10 0), preceded by one ``# lmforge-meta:``
comment line holding the smoothing and tokenizer (KenLM skips it). Reading
accepts tabs or spaces and ``.gz`` files; n-grams whose context or suffix is missing
(as some pruned ARPA files have) are added with the probability the backoff rule
gives them, which changes no score. Every format error names ``FILE:LINE``.
"""

from __future__ import annotations

import gc
import gzip
import io
import itertools
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .. import __version__
from ..common import LmforgeError, progress
from .counts import trie_rows
from .model import NgramModel
from .vocab import BOS, BOS_ID, EOS, SPECIALS, Vocab

META_PREFIX = "# lmforge-meta: "
LOG_ZERO = -99.0  # how ARPA files write log10(0)
MISSING_UNK_LOGP = -100.0  # KenLM's choice when an ARPA file has no <unk>


def _open_text(path: Path, mode: str, gz: bool | None = None) -> TextIO:
    if path.name.endswith(".gz") if gz is None else gz:
        return io.TextIOWrapper(gzip.open(path, mode + "b"), encoding="utf-8")  # type: ignore[arg-type]
    return open(path, mode, encoding="utf-8")


def _fmt(values: np.ndarray) -> list[str]:
    """Nine significant digits: enough to round-trip a float32 exactly (KenLM reads float32)."""
    finite = np.maximum(np.where(np.isfinite(values), values, LOG_ZERO), LOG_ZERO)
    return [f"{v:.9g}" for v in finite.astype(np.float32).tolist()]


# ---------------------------------------------------------------------------
# writing


def write_arpa(model: NgramModel, path: str | Path) -> Path:
    """Write `model` as an ARPA file (gzip if `path` ends in .gz), atomically."""
    p = Path(path)
    bad = next((w for w in model.vocab.words if not w or any(c.isspace() for c in w)), None)
    if bad is not None:
        raise LmforgeError(
            f"{p}: the word {bad!r} contains whitespace, which ARPA cannot represent"
        )
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    words = np.array(model.vocab.words, dtype=object)
    meta = {
        "smoothing": model.smoothing,
        "tokenizer": model.tokenizer,
        "lmforge": __version__,
    }
    counts = model.ngram_counts()
    try:
        with _open_text(tmp, "w", gz=p.name.endswith(".gz")) as f:
            f.write(META_PREFIX + json.dumps(meta, ensure_ascii=False) + "\n")
            f.write("\\data\\\n")
            for n, c in enumerate(counts, start=1):
                f.write(f"ngram {n}={c}\n")
            with progress(total=sum(counts), desc="writing ARPA", unit="ngram") as bar:
                for n in range(1, model.order + 1):
                    f.write(f"\n\\{n}-grams:\n")
                    rows = trie_rows(model.keys, model.vocab_size, n)
                    grams = words[rows[:, 0]]
                    for c in range(1, n):
                        grams = grams + " " + words[rows[:, c]]
                    logp = model.logp[n - 1].copy()
                    if n == 1:
                        logp[BOS_ID] = -np.inf  # <s> is never predicted
                    probs = _fmt(logp)
                    if n < model.order:
                        bos = _fmt(model.logbo[n - 1])
                        f.writelines(f"{a}\t{g}\t{b}\n" for a, g, b in zip(probs, grams, bos))
                    else:
                        f.writelines(f"{a}\t{g}\n" for a, g in zip(probs, grams))
                    bar.update(len(probs))
            f.write("\n\\end\\\n")
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


# ---------------------------------------------------------------------------
# reading


class _Lines:
    """Numbered lines of a file, for error messages that name FILE:LINE."""

    def __init__(self, path: Path, f: TextIO):
        self.path, self._it, self.number = path, iter(f), 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        self.number += 1
        return next(self._it).rstrip("\r\n")

    def error(self, message: str, line: int | None = None) -> LmforgeError:
        return LmforgeError(f"{self.path}:{self.number if line is None else line}: {message}")

    def take(self, k: int) -> tuple[list[str], int]:
        """Up to k raw lines at C speed, and the number of the first one."""
        block = list(itertools.islice(self._it, k))
        first = self.number + 1
        self.number += len(block)
        return block, first

    def next_nonblank(self) -> str | None:
        for line in self:
            if line.strip():
                return line
        return None


def _read_header(lines: _Lines) -> tuple[list[int], dict[str, Any]]:
    meta: dict[str, Any] = {}
    for line in lines:
        s = line.strip()
        if s == "\\data\\":
            break
        if s.startswith(META_PREFIX.strip()):
            try:
                meta = json.loads(s[len(META_PREFIX.strip()) :])
            except json.JSONDecodeError:
                raise lines.error("malformed lmforge-meta comment") from None
    else:
        raise LmforgeError(f"{lines.path}: not an ARPA file (no \\data\\ line)")
    sizes: list[int] = []
    for line in lines:
        s = line.strip()
        if not s:
            if sizes:
                break
            continue
        if s.startswith("\\") and sizes:
            raise lines.error("expected a blank line after the ngram counts")
        head, _, value = s.partition("=")
        parts = head.split()
        if len(parts) != 2 or parts[0] != "ngram" or not value.strip().isdigit():
            raise lines.error(f"expected 'ngram N=COUNT', got {s!r}")
        if not parts[1].isdigit() or int(parts[1]) != len(sizes) + 1:
            raise lines.error(f"expected 'ngram {len(sizes) + 1}=COUNT', got {s!r}")
        sizes.append(int(value))
    if not sizes:
        raise lines.error("no 'ngram N=COUNT' lines after \\data\\")
    if len(sizes) > 6:
        raise lines.error(f"order {len(sizes)} is above the supported maximum of 6")
    return sizes, meta


def _floats(lines: _Lines, texts: list[str], first: list[int], what: str) -> np.ndarray:
    """Parse many numbers at once; on failure, name the first bad line."""
    try:
        values = np.array(texts, dtype=np.float64)
    except ValueError:
        values = None
    if values is None or np.isnan(values).any():
        for text, line in zip(texts, first):
            try:
                v = float(text)
            except ValueError:
                raise lines.error(f"{what} {text!r} is not a number", line) from None
            if math.isnan(v):
                raise lines.error(f"{what} is NaN", line)
    return values


def _read_section(lines: _Lines, n: int, size: int, order: int):
    header = lines.next_nonblank()
    if header is None:
        raise lines.error(f"expected '\\{n}-grams:' but the file ends")
    if header.strip() != f"\\{n}-grams:":
        raise lines.error(f"expected '\\{n}-grams:', got {header!r}")
    block, first = lines.take(size)
    parts = list(map(str.split, block))
    lens = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    ok = (lens == n + 1) | ((lens == n + 2) & (n < order))
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        if lens[i] == 0 or parts[i][0].startswith("\\"):  # blank or the next section
            raise lines.error(f"expected {size} {n}-grams, found {i}", first + i)
        want = f"log10 p, {n} word(s)" + (", optional backoff" if n < order else "")
        raise lines.error(f"expected {want}; got {lens[i]} fields", first + i)
    if len(block) < size:
        raise lines.error(f"expected {size} {n}-grams, found {len(block)} before the file ends")
    line_no = first + np.arange(size, dtype=np.int64)
    logp = _floats(lines, [p[0] for p in parts], line_no.tolist(), "probability")
    if (logp > 0).any():
        i = int(np.flatnonzero(logp > 0)[0])
        raise lines.error(f"log10 probability {logp[i]:g} is above 0", first + i)
    logbo = np.zeros(size, dtype=np.float32)
    with_bo = np.flatnonzero(lens == n + 2).tolist()
    if with_bo:
        logbo[with_bo] = _floats(
            lines, [parts[i][-1] for i in with_bo], [first + i for i in with_bo], "backoff"
        )
    grams = [p[1 : n + 1] for p in parts]
    return grams, logp.astype(np.float32), logbo, line_no


def read_arpa(path: str | Path) -> NgramModel:
    """Load an ARPA file as an NgramModel (bad input raises LmforgeError naming FILE:LINE)."""
    p = Path(path)
    if not p.is_file():
        raise LmforgeError(f"{p}: no such file")
    # Parsing makes millions of small lists: pausing the cyclic garbage collector
    # (nothing here forms cycles) more than halves the time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _read_arpa(p)
    finally:
        if gc_was_enabled:
            gc.enable()


def _read_arpa(p: Path) -> NgramModel:
    try:
        with _open_text(p, "r") as f:
            lines = _Lines(p, f)
            sizes, meta = _read_header(lines)
            order = len(sizes)
            sections = []
            with progress(total=sum(sizes), desc="reading ARPA", unit="ngram") as bar:
                for n in range(1, order + 1):
                    sections.append(_read_section(lines, n, sizes[n - 1], order))
                    bar.update(sizes[n - 1])
            tail = lines.next_nonblank()
            if tail is None:
                raise lines.error("expected '\\end\\' but the file ends")
            if tail.strip() != "\\end\\":
                raise lines.error(f"expected '\\end\\', got {tail!r}")
    except UnicodeDecodeError as e:
        raise LmforgeError(f"{p}: is not UTF-8 text (invalid byte at offset {e.start})") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise LmforgeError(f"{p}: cannot read ({e})") from None
    return _build(p, sections, meta)


def _build(path: Path, sections, meta: dict[str, Any]) -> NgramModel:
    order = len(sections)
    uni_words, uni_logp, uni_logbo, uni_lines = sections[0]
    words = [g[0] for g in uni_words]
    position: dict[str, int] = {}
    for i, w in enumerate(words):
        if w in position:
            raise LmforgeError(f"{path}:{uni_lines[i]}: unigram {w!r} is listed twice")
        position[w] = i
    for needed in (BOS, EOS):
        if needed not in position:
            raise LmforgeError(f"{path}: the unigrams do not list {needed}; not a sentence model")
    ordered = [*SPECIALS, *(w for w in words if w not in SPECIALS)]
    vocab = Vocab(ordered)
    V = len(vocab)
    logp1 = np.full(V, MISSING_UNK_LOGP, dtype=np.float32)
    logbo1 = np.zeros(V, dtype=np.float32)
    ids = np.array([vocab.index[w] for w in words], dtype=np.int64)
    logp1[ids], logbo1[ids] = uni_logp, uni_logbo
    logp1[BOS_ID] = -np.inf

    orders = [_Order(np.arange(V, dtype=np.int64)[:, None], logp1, logbo1, np.zeros(V, np.int64))]
    get = vocab.index.get
    for n in range(2, order + 1):
        grams, lp, lb, ln = sections[n - 1]
        flat = map(get, itertools.chain.from_iterable(grams), itertools.repeat(-1))
        r = np.fromiter(flat, dtype=np.int64, count=len(grams) * n).reshape(len(grams), n)
        if (r < 0).any():
            i = int(np.flatnonzero((r < 0).any(axis=1))[0])
            unknown = next(w for w in grams[i] if w not in vocab.index)
            raise LmforgeError(f"{path}:{ln[i]}: word {unknown!r} is not among the unigrams")
        orders.append(_Order(r, lp, lb, ln))
    keys = _close_and_sort(path, orders, vocab)

    model_meta = {
        "format": "arpa",
        "order": order,
        "smoothing": meta.get("smoothing", "arpa"),
        "tokenizer": meta.get("tokenizer", "whitespace"),
        "source": str(path),
        "inserted_ngrams": [int(o.inserted.sum()) for o in orders],
    }
    if model_meta["smoothing"] == "stupid" and order > 1:
        # Stupid backoff charges alpha for unlisted contexts too; every context holds it.
        unlisted = float(orders[0].logbo[BOS_ID])
    else:
        unlisted = 0.0
    model = NgramModel(vocab, keys[:1], [orders[0].logp], [], model_meta, unlisted)
    # Entries added to close the trie get the probability the backoff rule gives them:
    # computed with the orders below, so the model scores exactly as before.
    for n in range(2, order + 1):
        o = orders[n - 1]
        model.logbo.append(orders[n - 2].logbo)
        if o.inserted.any():
            # p(w | h) = bo(h) p(w | h minus its first word); h itself is listed.
            model.keys = keys[: n - 1]
            r = o.rows[o.inserted]
            below, _ = model.logprob(r[:, 1:-1], r[:, -1])
            o.logp[o.inserted] = orders[n - 2].logbo[_lookup(keys, V, r[:, :-1])] + below
        model.logp.append(o.logp)
    model.keys = keys
    return model


class _Order:
    """The n-grams of one order while a model is assembled from an ARPA file."""

    def __init__(self, rows: np.ndarray, logp: np.ndarray, logbo: np.ndarray, lines: np.ndarray):
        self.rows, self.logp, self.logbo, self.lines = rows, logp, logbo, lines
        self.inserted = np.zeros(len(rows), dtype=bool)

    def add(self, rows: np.ndarray) -> None:
        k = len(rows)
        self.rows = np.concatenate([self.rows, rows])
        self.logp = np.concatenate([self.logp, np.full(k, np.nan, dtype=np.float32)])
        self.logbo = np.concatenate([self.logbo, np.zeros(k, dtype=np.float32)])
        self.lines = np.concatenate([self.lines, np.zeros(k, dtype=np.int64)])
        self.inserted = np.concatenate([self.inserted, np.ones(k, dtype=bool)])

    def permute(self, perm: np.ndarray) -> None:
        for name in ("rows", "logp", "logbo", "lines", "inserted"):
            setattr(self, name, getattr(self, name)[perm])


def _lookup(keys: list[np.ndarray], V: int, rows: np.ndarray) -> np.ndarray:
    """Index of each row (an n-gram of len(row) words) in the key trie, or -1."""
    idx = rows[:, 0].copy()
    for s in range(2, rows.shape[1] + 1):
        table = keys[s - 1]
        if len(table) == 0:
            return np.full(len(rows), -1, dtype=np.int64)
        q = idx * V + rows[:, s - 1]
        pos = np.minimum(np.searchsorted(table, q), len(table) - 1)
        idx = np.where((idx >= 0) & (table[pos] == q), pos, -1)
    return idx


def _close_and_sort(path: Path, orders: list[_Order], vocab: Vocab) -> list[np.ndarray]:
    """Sort every order into a key trie, adding (flagged `inserted`) any context or
    suffix an n-gram needs but the file does not list. Returns the keys per order."""
    V = len(vocab)
    keys = [orders[0].rows[:, 0]]
    n = 2
    while n <= len(orders):
        o = orders[n - 1]
        parent = _lookup(keys, V, o.rows[:, :-1])
        suffix = _lookup(keys, V, o.rows[:, 1:])
        if (parent < 0).any() or (suffix < 0).any():
            # Only possible for n >= 3: every word is a unigram.
            need = np.concatenate([o.rows[parent < 0, :-1], o.rows[suffix < 0, 1:]])
            orders[n - 2].add(np.unique(need, axis=0))
            del keys[n - 2 :]
            n -= 1  # rebuild the order below, then come back up
            continue
        key = parent * V + o.rows[:, -1]
        perm = np.argsort(key, kind="stable")
        o.permute(perm)
        key = key[perm]
        dup = np.flatnonzero(np.diff(key) == 0)
        if len(dup):
            line = int(max(o.lines[dup[0]], o.lines[dup[0] + 1]))
            gram = " ".join(vocab.words[i] for i in o.rows[dup[0]])
            raise LmforgeError(f"{path}:{line}: the {n}-gram {gram!r} is listed twice")
        del keys[n - 1 :]
        keys.append(key)
        n += 1
    return keys
