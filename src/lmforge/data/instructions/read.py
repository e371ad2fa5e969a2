"""`read_instructions`: instruction files of any format as one list of Conversations, with counts.

Each file is streamed record by record (`records.py`), its format detected
from its first valid record (or forced with `fmt=`), and each record converted
(`formats.py`). An unusable record — malformed JSON, a missing or mistyped
field, an unknown role or speaker, no assistant turn — raises LmforgeError
naming `file:line` and the field, or with `skip_bad_lines` is counted and
skipped (the first few reasons are kept). A file with no usable record is an
error either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ...common import LmforgeError, expand_inputs
from ...tokenizers.chat import Conversation
from .fields import RecordError, json_type
from .formats import FORMATS, Format, detect_format
from .options import FileContext, ReadOptions
from .records import DEFAULT_TEXT_LIMIT, RawRecord, iter_raw_records

EXTENSIONS = (".jsonl", ".json")
MAX_REASONS = 5  # bad-line reasons kept per file


@dataclass
class FileCounts:
    """What reading one file gave: records used, conversations made, lines skipped and why."""

    path: str
    format: str | None = None
    records: int = 0
    conversations: int = 0
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)  # the first MAX_REASONS "file:line: why"
    empty: bool = False  # an empty file found in a folder or glob, passed over


@dataclass
class ReadResult:
    conversations: list[Conversation]
    files: list[FileCounts]

    @property
    def read(self) -> int:
        """Records used, over all files."""
        return sum(f.records for f in self.files)

    @property
    def skipped(self) -> int:
        return sum(f.skipped for f in self.files)

    @property
    def reasons(self) -> list[str]:
        """The first few skip reasons, over all files."""
        return [r for f in self.files for r in f.reasons][:MAX_REASONS]

    def summary(self) -> str:
        """One line per file: format, records, conversations, skipped (and the first reason)."""
        lines = []
        for f in self.files:
            if f.empty:
                lines.append(f"{f.path}: empty, passed over")
                continue
            line = f"{f.path}: {f.format or 'format unknown'}, {f.records:,} records, {f.conversations:,} conversations"
            if f.skipped:
                line += f", {f.skipped:,} bad lines skipped (first: {f.reasons[0]})"
            lines.append(line)
        return "\n".join(lines)


def _label(rec: RawRecord) -> str:
    """How a record is named after `file:line`: array records also by index and id."""
    if not rec.in_array:
        return ""
    rid = rec.value.get("id") if isinstance(rec.value, dict) else None
    return f"record {rec.index}" + (f" (id {rid!r})" if isinstance(rid, (str, int)) else "") + ": "


def iter_conversations(
    path: str | Path,
    options: ReadOptions = ReadOptions(),
    counts: FileCounts | None = None,
    *,
    allow_empty: bool = False,
) -> Iterator[Conversation]:
    """The conversations of one file, streamed; `counts` (if given) is filled in as it goes.

    A file without records is an error, unless `allow_empty` (a file found in a
    folder or glob) and it is empty or blank (`counts.empty` is set) or, with
    `skip_bad_lines`, all its records are bad (they are counted).
    """
    p = Path(path)
    counts = counts if counts is not None else FileCounts(str(p))
    if allow_empty and p.is_file() and p.stat().st_size == 0:
        counts.empty = True
        return
    ctx = FileContext(p, options)
    fmt: Format | None = None if options.fmt == "auto" else FORMATS[options.fmt]
    counts.format = fmt.name if fmt else None
    for rec in iter_raw_records(p, options.text_limit):
        try:
            if rec.error is not None:
                raise RecordError("", rec.error)
            if not isinstance(rec.value, dict):
                raise RecordError("", f"expected a JSON object, got {json_type(rec.value)}")
            record_fmt = fmt or detect_format(rec.value)
            convs = record_fmt.convert(rec.value, ctx)
        except RecordError as e:
            msg = f"{p}:{rec.line}: {_label(rec)}{e}"
            if not options.skip_bad_lines:
                raise LmforgeError(
                    f"{msg}; fix or remove it (or skip bad lines with skip_bad_lines)"
                ) from None
            counts.skipped += 1
            if len(counts.reasons) < MAX_REASONS:
                counts.reasons.append(msg)
            continue
        if fmt is None:  # the first valid record fixes the file's format
            fmt = record_fmt
            counts.format = fmt.name
        counts.records += 1
        counts.conversations += len(convs)
        yield from convs
    if counts.records == 0 and counts.skipped == 0 and allow_empty:
        counts.empty = True
    elif counts.records == 0 and not (allow_empty and options.skip_bad_lines):
        # A file found in a folder or glob may be all bad lines when skipping (they are
        # counted); a file named on its own must hold records.
        why = (
            f"; {counts.skipped:,} bad lines skipped, first: {counts.reasons[0]}"
            if counts.skipped
            else ""
        )
        raise LmforgeError(f"{p}: holds no instruction records{why}")


def read_instructions(
    paths: str | Path | Iterable[str | Path],
    *,
    fmt: str = "auto",
    skip_bad_lines: bool = False,
    calculator: str = "remove",
    gsm8k: str = "cot",
    text_limit: int = DEFAULT_TEXT_LIMIT,
) -> ReadResult:
    """Read instruction files (files, folders of .jsonl/.json, globs) into Conversations.

    See `ReadOptions` for the options and the package docstring for the formats.
    """
    options = ReadOptions(
        fmt=fmt,
        skip_bad_lines=skip_bad_lines,
        calculator=calculator,
        gsm8k=gsm8k,
        text_limit=text_limit,
    )
    conversations: list[Conversation] = []
    files = []
    for p, named in instruction_files(paths):
        counts = FileCounts(str(p))
        conversations.extend(iter_conversations(p, options, counts, allow_empty=not named))
        files.append(counts)
    if not conversations:
        raise LmforgeError(
            f"{_names(paths)}: no instruction records in {len(files)} files "
            f"({sum(f.skipped for f in files):,} bad lines skipped)"
        )
    return ReadResult(conversations, files)


def _names(paths: str | Path | Iterable[str | Path]) -> str:
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    return ", ".join(map(str, items))


def instruction_files(
    paths: str | Path | Iterable[str | Path],
    extensions: tuple[str, ...] = EXTENSIONS,
    what: str = "instruction",
) -> list[tuple[Path, bool]]:
    """(file, named) for files, folders (their `extensions` files) and globs, in order.

    `named` is True for a file given by name: only such a file must hold records;
    one found in a folder or glob may be empty (P3 exports hold empty templates).
    `what` names the files in the error for an empty list (preference readers use
    this with their own extensions).
    """
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not items:
        raise LmforgeError(f"no {what} files given")
    out: list[tuple[Path, bool]] = []
    seen: set[Path] = set()
    for item in items:
        named = Path(item).is_file()
        for p in expand_inputs([item], extensions):
            if p not in seen:
                seen.add(p)
                out.append((p, named))
    return out
