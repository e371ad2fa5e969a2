"""Preference data: files of chosen/rejected pairs (or rankings, or HH-RLHF transcripts) as pairs.

    from lmforge.data.preferences import read_preferences, read_prompts
    read = read_preferences(["world/preferences/train.jsonl"])   # PreferenceRead
    print(read.summary())              # one line: pairs, formats, identical, skipped
    read.pairs[0].prompt, read.pairs[0].chosen, read.pairs[0].margin
    prompts = read_prompts(["world/instructions/val.jsonl"])      # [Conversation] to answer

Files are JSONL (`.jsonl`, or gzipped `.jsonl.gz`; a named file may also be a
JSON array), given as files, folders or globs. The formats and what each record
becomes are in `preference_formats` (pairs, chat, hh, ranking). The format is
detected per record from its keys (so a bad record is told what it looks like),
or forced with `fmt=`.

Margins (the reward model's ranking loss `-log sigmoid(r_c - r_r - m)`, LLaMA-2):
a record's `margin` number wins; else its `rating` through a rating table (a
preset of `RATING_TABLES` or a YAML/JSON file `{rating: margin}`); else 0.

What is left out, and counted in the summary: pairs whose chosen and rejected
are the same text (`identical`: no preference to learn), bad records with
`skip_bad_lines` (else the first is an error naming file:line and field), and
HH records that give no usable pair (`skipped`, by reason). Pairs with an empty
answer are kept (HH's harmless set prefers saying nothing to some harmful
replies) and counted.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common import LmforgeError, get_logger, read_text
from ..tokenizers.chat import Conversation, Message
from .instructions.fields import RecordError, need_object
from .instructions.formats import detect_format as detect_instruction_format
from .instructions.options import FileContext, ReadOptions
from .instructions.read import instruction_files
from .instructions.records import DEFAULT_TEXT_LIMIT, RawRecord, iter_raw_records
from .preference_formats import (
    CONVERTERS,
    FMT_CHOICES,
    FORMAT_NAMES,
    PreferencePair,
    Unusable,
    check_prompt,
    detect_format,
    normalise_rating,
    parse_hh_transcript,
    parse_messages,
    parse_prompt,
)

__all__ = [
    "FORMAT_NAMES",
    "RATING_TABLES",
    "PreferencePair",
    "PreferenceRead",
    "load_rating_table",
    "parse_hh_transcript",
    "preference_files",
    "read_preferences",
    "read_prompts",
]

EXTENSIONS = (".jsonl", ".jsonl.gz")
MAX_BAD_LINES = 5  # full messages of skipped bad lines kept for the report

# LLaMA-2 (Touvron et al., 2023, Table 28): the margin of each preference rating, for the
# small-margin and large-margin reward-model variants.
RATING_TABLES: dict[str, dict[str, float]] = {
    "llama2": {
        "significantly_better": 1.0,
        "better": 2 / 3,
        "slightly_better": 1 / 3,
        "negligibly_better": 0.0,
    },
    "llama2-large": {
        "significantly_better": 3.0,
        "better": 2.0,
        "slightly_better": 1.0,
        "negligibly_better": 0.0,
    },
}


def _check_table(raw: Any, source: str) -> dict[str, float]:
    """{normalised rating: margin}, every margin a finite number."""
    if not isinstance(raw, dict) or not raw:
        raise LmforgeError(f"{source}: expected a mapping of rating: margin, such as better: 0.67")
    table: dict[str, float] = {}
    for key, value in raw.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise LmforgeError(
                f"{source}: {key}: the margin must be a finite number, got {value!r}"
            )
        table[normalise_rating(str(key))] = float(value)
    return table


def load_rating_table(spec: str) -> dict[str, float]:
    """A rating table: a preset name of `RATING_TABLES`, or a YAML/JSON file `{rating: margin}`."""
    if spec in RATING_TABLES:
        return dict(RATING_TABLES[spec])
    p = Path(spec)
    if not p.is_file():
        raise LmforgeError(
            f"rating_table: {spec!r} is neither a preset ({', '.join(RATING_TABLES)}) nor a "
            "file; give a preset name or a YAML/JSON file of rating: margin"
        )
    if p.suffix.lower() == ".json":
        try:
            raw = json.loads(read_text(p))
        except json.JSONDecodeError as e:
            raise LmforgeError(f"{p}:{e.lineno}: not valid JSON ({e.msg})") from None
    else:
        from ..config import read_yaml

        raw = read_yaml(p)
    return _check_table(raw, str(p))


@dataclass
class PreferenceRead:
    """What `read_preferences` gave: the pairs, and what was left out and why."""

    pairs: list[PreferencePair]
    files: list[str]
    by_format: dict[str, int]  # format -> pairs read in it
    identical: int  # chosen == rejected, left out
    skipped: dict[str, int]  # reason -> count (bad lines with skip_bad_lines, unusable HH records)
    empty_answers: int = 0  # kept pairs with an empty chosen or rejected reply
    bad_lines: list[str] = field(default_factory=list)  # the first few skipped "file:line: why"

    def summary(self) -> str:
        """One line: pairs, files, formats and everything left out."""
        files = f"{len(self.files)} file{'s' if len(self.files) != 1 else ''}"
        formats = ", ".join(f"{k} {v:,}" for k, v in self.by_format.items())
        line = f"preferences: {len(self.pairs):,} pairs from {files} ({formats})"
        if self.empty_answers:
            line += f"; {self.empty_answers:,} with an empty answer"
        if self.identical:
            line += f"; {self.identical:,} identical left out (chosen == rejected)"
        if self.skipped:
            reasons = ", ".join(f"{k} {v:,}" for k, v in self.skipped.items())
            line += f"; {sum(self.skipped.values()):,} skipped ({reasons})"
        return line


def preference_files(paths: str | Path | Sequence[str | Path]) -> list[tuple[Path, bool]]:
    """(file, named) for files, folders (their .jsonl / .jsonl.gz files) and globs, in order.

    `named`: given by name (an empty one is an error); a file found in a folder or
    glob may be empty and is passed over.
    """
    return instruction_files(paths, EXTENSIONS, what="preference")


def iter_records(path: Path, named: bool = True) -> Iterator[RawRecord]:
    """The records of one file: JSONL (or a JSON array) as `iter_raw_records`, or gzipped JSONL."""
    if path.stat().st_size == 0:
        if named:
            raise LmforgeError(f"{path}: file is empty")
        return
    if path.name.endswith(".gz"):
        yield from _iter_gzip(path)
    else:
        yield from iter_raw_records(path)


def _iter_gzip(path: Path, limit: int = DEFAULT_TEXT_LIMIT) -> Iterator[RawRecord]:
    """Gzipped JSONL, one line at a time (a line longer than `limit` is a bad record)."""
    index = lineno = 0
    try:
        with gzip.open(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8") as f:
            while line := f.readline(limit + 1):
                lineno += 1
                if lineno == 1:
                    line = line.removeprefix("\ufeff")
                if len(line) > limit and not line.endswith("\n"):
                    while (rest := f.readline(1 << 16)) and not rest.endswith("\n"):
                        pass  # drain the over-long line without holding it
                    yield RawRecord(lineno, index, None, f"longer than {limit:,} characters")
                    index += 1
                    continue
                if not line.strip():
                    continue
                try:
                    value, error = json.loads(line), None
                except json.JSONDecodeError as e:
                    value, error = None, f"malformed JSON ({e.msg} at column {e.colno})"
                yield RawRecord(lineno, index, value, error)
                index += 1
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise LmforgeError(
            f"{path}:{lineno + 1}: not a readable gzip file ({e}); re-download it or "
            "decompress it with gunzip and read the .jsonl"
        ) from None
    except UnicodeDecodeError as e:
        raise LmforgeError(
            f"{path}:{lineno + 1}: is not UTF-8 once decompressed (byte 0x{e.object[e.start]:02X}); "
            "convert it with iconv"
        ) from None


def _bad_key(e: RecordError) -> str:
    """The summary's count key of a skipped bad record: its field, indices dropped."""
    name = re.sub(r"\[\d+\]", "[]", e.field) if e.field else ""
    if not name:
        return "bad line (not JSON)" if str(e).startswith("malformed JSON") else "bad line"
    return f"bad line ({name})"


def _rating_table(spec: str | dict) -> dict[str, float]:
    if isinstance(spec, dict):
        return _check_table(spec, "rating_table")
    return load_rating_table(spec)


def read_preferences(
    paths: Sequence[str],
    *,
    fmt: str = "auto",
    rating_table: str | dict = "llama2",
    skip_bad_lines: bool = False,
) -> PreferenceRead:
    """Every preference pair of `paths` (files, folders, globs), in file and line order.

    Raises LmforgeError `path:line: field: what; ...` for the first bad record
    (or counts and skips bad records with `skip_bad_lines`), and when no usable
    pair is left.
    """
    if fmt not in FMT_CHOICES:
        raise LmforgeError(f"fmt: got {fmt!r}; allowed: {', '.join(FMT_CHOICES)}")
    table = _rating_table(rating_table)
    read = PreferenceRead([], [], {}, 0, {})
    by_format: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for p, named in preference_files(paths):
        read.files.append(str(p))
        for rec in iter_records(p, named):
            where = f"{p}:{rec.line}"
            try:
                if rec.error is not None:
                    raise RecordError("", rec.error)
                obj = need_object(rec.value)
                this = detect_format(obj) if fmt == "auto" else fmt
                made = CONVERTERS[this](obj, table)
            except Unusable as u:
                skipped[u.reason] += 1
                continue
            except RecordError as e:
                msg = f"{where}: {e}"
                if not skip_bad_lines:
                    raise LmforgeError(
                        f"{msg}; fix or remove the line (or skip bad lines with skip_bad_lines)"
                    ) from None
                skipped[_bad_key(e)] += 1
                if len(read.bad_lines) < MAX_BAD_LINES:
                    read.bad_lines.append(msg)
                continue
            for pair in made:
                pair.where = where
                # Exact text: the world's "sloppy" rejections may differ only in spacing.
                if pair.chosen == pair.rejected:
                    read.identical += 1
                    continue
                if not (pair.chosen.strip() and pair.rejected.strip()):
                    read.empty_answers += 1
                read.pairs.append(pair)
                by_format[this] += 1
    read.by_format, read.skipped = dict(by_format), dict(skipped)
    if read.identical:
        get_logger(__name__).warning(
            "%d preference pairs have chosen == rejected and were left out", read.identical
        )
    if not read.pairs:
        names = ", ".join(map(str, [paths] if isinstance(paths, (str, Path)) else paths))
        raise LmforgeError(
            f"{names}: no usable preference pairs in {len(read.files)} files "
            f"({read.identical} identical, {sum(skipped.values())} skipped"
            + (f": {read.bad_lines[0]}" if read.bad_lines else "")
            + "); check the files hold prompt/chosen/rejected records"
        )
    return read


# ---------------------------------------------------------------------------
# Prompts (rejection sampling, PPO): what a policy is asked, with the meta a checker scores by


def _prompt_of(obj: dict, ctx: FileContext) -> tuple[list[Message], dict[str, Any]]:
    """(prompt messages, meta) of one record of any kind `read_prompts` takes."""
    if "chosen" in obj or "ranking" in obj:  # a preference record: its prompt
        pair = CONVERTERS[detect_format(obj)](obj, RATING_TABLES["llama2"])[0]
        return pair.prompt, pair.meta
    if "prompt" in obj:
        return parse_prompt(obj), {k: v for k, v in obj.items() if k != "prompt"}
    meta: dict[str, Any]
    if "messages" in obj:  # may have no assistant turn at all
        messages = parse_messages(obj["messages"], "messages")
        meta = {k: v for k, v in obj.items() if k != "messages"}
    else:  # any instruction format (alpaca, sharegpt, gsm8k, ...)
        conv = detect_instruction_format(obj).convert(obj, ctx)[0]
        messages, meta = conv.messages, dict(conv.meta)
    if messages and messages[-1].role == "assistant":
        meta.setdefault("reference", messages[-1].content)  # the data's own answer
        messages = messages[:-1]
    return check_prompt(messages, "messages"), meta


def read_prompts(paths: Sequence[str], *, skip_bad_lines: bool = False) -> list[Conversation]:
    """The prompt of every record of `paths`, each a Conversation ending with a user turn.

    Takes `{"prompt": str | messages}` records, `{"messages": [...]}` (the trailing
    assistant turn dropped and kept as `meta["reference"]`), preference records of
    any format (their prompt), and every instruction format. The record's other
    fields are kept in meta (answer, answer_type, choices: what a checker scores by),
    with `meta["where"] = "path:line"`.
    """
    ctx_options = ReadOptions()
    out: list[Conversation] = []
    unusable = skipped = 0
    files = preference_files(paths)
    for p, named in files:
        ctx = FileContext(p, ctx_options)
        for rec in iter_records(p, named):
            where = f"{p}:{rec.line}"
            try:
                if rec.error is not None:
                    raise RecordError("", rec.error)
                messages, meta = _prompt_of(need_object(rec.value), ctx)
            except Unusable:
                unusable += 1
                continue
            except RecordError as e:
                if not skip_bad_lines:
                    raise LmforgeError(
                        f"{where}: {e}; fix or remove the line (or skip bad lines with "
                        "skip_bad_lines)"
                    ) from None
                skipped += 1
                continue
            out.append(Conversation(list(messages), {**meta, "where": where}))
    if (unusable or skipped) and out:  # with no prompts at all, the error alone says it
        get_logger(__name__).warning(
            "prompts: %d unusable HH records and %d bad lines skipped", unusable, skipped
        )
    if not out:
        names = ", ".join(map(str, [paths] if isinstance(paths, (str, Path)) else paths))
        left = f" ({unusable} unusable HH records, {skipped} bad lines skipped)" if (
            unusable or skipped) else ""  # fmt: skip
        raise LmforgeError(
            f"{names}: no prompts found{left}; expected records with a prompt, messages or "
            "chosen/rejected fields"
        )
    return out
