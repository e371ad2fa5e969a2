"""Stream the records of an instruction file: JSONL line by line, or a JSON array element by element.

`iter_raw_records(path, text_limit)` yields one `RawRecord` per record: the
parsed JSON value, or why it could not be parsed (malformed JSON, longer than
`text_limit`). Such records are the reader's to report or skip. What cannot be
skipped raises LmforgeError at once: a missing, empty, binary or non-UTF-8 file,
and broken JSON inside an array (after it there is no telling where the next
record starts). Neither form is ever held whole in memory: a JSONL file is read
one line at a time, an array one element at a time.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ...common import LmforgeError, check_text_file, not_utf8_error

# The longest record read by default, in characters: it bounds memory per record.
DEFAULT_TEXT_LIMIT = 1 << 23
_CHUNK = 1 << 16  # characters read at a time while draining or filling
_BOM = "\ufeff"
_SPACE = re.compile(r"[ \t\r\n]*")


@dataclass(frozen=True, slots=True)
class RawRecord:
    line: int  # 1-based line where the record starts
    index: int  # 0-based position among the file's records
    value: Any  # the parsed JSON value (None when `error` is set)
    error: str | None = None  # why the record could not be parsed
    in_array: bool = False  # the file is a JSON array (records are named by index too)


def iter_raw_records(path: str | Path, text_limit: int = DEFAULT_TEXT_LIMIT) -> Iterator[RawRecord]:
    """Every record of a JSONL file or a JSON-array file, streamed (see the module docstring)."""
    if text_limit < 1:
        raise LmforgeError(f"text_limit: must be >= 1, got {text_limit}")
    p = check_text_file(path)
    if _first_char(p) == "[" and not _jsonl_starting_with_array(p, text_limit):
        yield from _iter_array(p, text_limit)
    else:
        yield from _iter_lines(p, text_limit)


def _jsonl_starting_with_array(path: Path, text_limit: int) -> bool:
    """A file that starts with "[" is JSONL only if its first line is a whole JSON value and
    more lines follow (a one-line file is a minified array; a pretty-printed array's first
    line is not valid JSON on its own)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline(text_limit + 1)
        while first and not first.strip(" \t\r\n" + _BOM):
            first = f.readline(text_limit + 1)
        try:
            json.loads(first.removeprefix(_BOM))
        except (json.JSONDecodeError, RecursionError):
            return False
        while line := f.readline(_CHUNK):
            if line.strip():
                return True
    return False


def _first_char(path: Path) -> str:
    """The first character that is not whitespace or a BOM ("" for a blank file)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        while chunk := f.read(4096):
            rest = chunk.lstrip(" \t\r\n" + _BOM)
            if rest:
                return rest[0]
    return ""


def _iter_lines(path: Path, text_limit: int) -> Iterator[RawRecord]:
    index = 0
    lineno = 0
    with open(path, encoding="utf-8") as f:
        while True:
            try:
                line = f.readline(text_limit + 1)
            except UnicodeDecodeError as e:
                raise _bad_bytes(path, e, lineno + 1) from None
            if not line:
                return
            lineno += 1
            if lineno == 1:
                line = line.removeprefix(_BOM)
            if len(line) > text_limit and not line.endswith("\n"):
                # Read the rest of the line in pieces, never holding it whole.
                size = len(line)
                try:
                    while piece := f.readline(_CHUNK):
                        size += len(piece)
                        if piece.endswith("\n"):
                            break
                except UnicodeDecodeError as e:
                    raise _bad_bytes(path, e, lineno) from None
                yield RawRecord(lineno, index, None, _too_long(size, text_limit))
                index += 1
                continue
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                yield RawRecord(
                    lineno, index, None, f"malformed JSON ({e.msg} at column {e.colno})"
                )
            except RecursionError:
                yield RawRecord(lineno, index, None, "malformed JSON (nested too deeply)")
            else:
                yield RawRecord(lineno, index, value)
            index += 1


def _too_long(size: int, limit: int) -> str:
    return f"record of {size:,} characters is longer than text_limit ({limit:,}); raise text_limit"


def _bad_bytes(path: Path, e: UnicodeDecodeError, line: int) -> LmforgeError:
    # The decoder works ahead of the line being read: the line is where reading stopped.
    err = not_utf8_error(path, e.object, e.start)
    return LmforgeError(f"{err} (near line {line})")


class _Text:
    """A file's decoded text, read in growing chunks; consumed text is dropped."""

    def __init__(self, f: BinaryIO, path: Path):
        self.f, self.path = f, path
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.text = ""
        self.pos = 0
        self.line = 1  # line number at `pos`
        self.eof = False

    def fill(self) -> bool:
        """Read more (at least as much as is pending, so a long record parses in O(n)); False at EOF."""
        if self.eof:
            return False
        raw = self.f.read(max(_CHUNK, len(self.text) - self.pos))
        try:
            self.text += self.decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as e:
            raise _bad_bytes(self.path, e, self.line) from None
        if not raw:
            self.eof = True
        return bool(raw)

    def line_at(self, pos: int) -> int:
        return self.line + self.text.count("\n", self.pos, pos)

    def advance(self, end: int) -> None:
        self.line = self.line_at(end)
        self.pos = end
        if self.pos > _CHUNK:
            self.text, self.pos = self.text[self.pos :], 0

    def skip_space(self) -> str:
        """Skip whitespace; the next character ("" at end of file)."""
        while True:
            end = _SPACE.match(self.text, self.pos).end()
            self.advance(end)
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.fill():
                return ""


def _iter_array(path: Path, text_limit: int) -> Iterator[RawRecord]:
    decoder = json.JSONDecoder()
    with open(path, "rb") as f:
        t = _Text(f, path)
        t.fill()
        t.text = t.text.removeprefix(_BOM)
        t.skip_space()
        t.advance(t.pos + 1)  # the "[" that made this an array file
        index = 0
        if t.skip_space() == "]":
            t.advance(t.pos + 1)
            _expect_end(t)
            return
        while True:
            if t.skip_space() == "":
                raise _array_error(t, t.pos, "the array is not closed with ] (file cut short?)")
            start_line = t.line
            while True:
                try:
                    value, end = decoder.raw_decode(t.text, t.pos)
                except json.JSONDecodeError as e:
                    if _cut_short(e, len(t.text)):
                        if len(t.text) - t.pos > text_limit:
                            too_long = _too_long(len(t.text) - t.pos, text_limit)
                            raise _array_error(t, t.pos, f"record {index}: {too_long}") from None
                        if t.fill():
                            continue
                    raise _array_error(
                        t, e.pos, f"record {index}: malformed JSON ({e.msg})"
                    ) from None
                except RecursionError:
                    raise _array_error(
                        t, t.pos, f"record {index}: malformed JSON (nested too deeply)"
                    ) from None
                if end == len(t.text) and t.fill():
                    continue  # a number or literal may go on in the next chunk
                break
            size = end - t.pos
            t.advance(end)
            if size > text_limit:
                yield RawRecord(start_line, index, None, _too_long(size, text_limit), True)
            else:
                yield RawRecord(start_line, index, value, None, True)
            index += 1
            sep = t.skip_space()
            if sep == ",":
                t.advance(t.pos + 1)
                if t.skip_space() == "]":
                    raise _array_error(t, t.pos, "malformed JSON (a comma before the closing ])")
                continue
            if sep == "]":
                t.advance(t.pos + 1)
                _expect_end(t)
                return
            if sep == "":
                raise _array_error(t, t.pos, "the array is not closed with ] (file cut short?)")
            raise _array_error(
                t, t.pos, f"malformed JSON (expected , or ] after record {index - 1})"
            )


def _cut_short(e: json.JSONDecodeError, size: int) -> bool:
    """Whether a parse error may only mean that the text read so far ends inside the record.

    Such errors sit at the very end of the text (or within a few characters of
    it: an escape or a literal cut in half), or name an unterminated string
    (reported where the string starts).
    """
    return e.pos >= size - 6 or e.msg.startswith("Unterminated string")


def _expect_end(t: _Text) -> None:
    if t.skip_space() != "":
        raise _array_error(t, t.pos, "text after the closing ] of the array")


def _array_error(t: _Text, pos: int, what: str) -> LmforgeError:
    return LmforgeError(
        f"{t.path}:{t.line_at(pos)}: {what}; a broken JSON array cannot be read past this point: "
        f"fix the file (or write it as JSONL, one record per line, to skip bad lines)"
    )
