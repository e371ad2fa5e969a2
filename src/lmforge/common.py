"""Shared plumbing: errors, input checks, seeding, devices, torchrun, progress.

Everything here is small and dependency-light so that every layer may import it.
torch is imported lazily so that torch-free verbs (n-grams, tokenizers, world)
start fast.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class LmforgeError(Exception):
    """A user-facing error: printed as one line, exit code 2, no traceback.

    Raise it for bad input (files, flags, configs) with a message that names
    the file, line or field and says what to do.
    """


class Interrupted(LmforgeError):
    """Training stopped by SIGINT/SIGTERM at a step boundary, after saving (the CLI exits 130)."""


class ConfigError(LmforgeError):
    """An invalid configuration value; the message names the field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


# ---------------------------------------------------------------------------
# Input checks shared by every reader


def check_text_file(path: str | Path) -> Path:
    """Return `path` if it is a readable, non-empty UTF-8 text file, else raise.

    Reads at most the first 1 MiB to detect binary content (NUL bytes) and
    non-UTF-8 encodings (e.g. cp1251 Russian), the two mistakes users make.
    """
    p = Path(path)
    if not p.exists():
        raise LmforgeError(f"{p}: no such file")
    if p.is_dir():
        raise LmforgeError(f"{p}: is a folder, expected a file")
    if p.stat().st_size == 0:
        raise LmforgeError(f"{p}: file is empty")
    with open(p, "rb") as f:
        head = f.read(1 << 20)
    if b"\x00" in head:
        raise LmforgeError(
            f"{p}: looks like a binary file (contains NUL bytes), expected UTF-8 text"
        )
    try:
        # A multi-byte character may be cut at the 1 MiB boundary; ignore only that.
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:
            line = head.count(b"\n", 0, e.start) + 1
            raise not_utf8_error(p, head, e.start, line) from None
    return p


def stdin_line(raw: bytes, n: int) -> str:
    """Line `n` (1-based) of stdin's bytes as text, without its newline; refused with one
    line (``stdin:N: ...``) when it is binary or not UTF-8 (with the iconv command to fix it)."""
    if b"\x00" in raw:
        raise LmforgeError(f"stdin:{n}: binary data (NUL bytes); pipe UTF-8 text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        enc = guess_encoding(raw, e.start)
        raise LmforgeError(
            f"stdin:{n}: not UTF-8 (byte 0x{raw[e.start]:02X}); it looks like {enc}: "
            f"convert it with `iconv -f {enc} -t utf-8`"
        ) from None
    if n == 1:
        text = text.removeprefix("\ufeff")  # a byte-order mark is not input
    return text.rstrip("\r\n")


def guess_encoding(data: bytes, pos: int) -> str:
    """The likelier 8-bit encoding of non-UTF-8 `data` around offset `pos`: cp1251 or cp1252.

    Cyrillic in cp1251 is whole words of bytes >= 0x80, so such bytes mostly sit
    next to each other; accented Latin letters in cp1252/Latin-1 (`café`, `Müller`)
    are single high bytes between ASCII letters.
    """
    window = data[max(0, pos - 4096) : pos + 4096]
    high = [i for i, b in enumerate(window) if b >= 0x80]
    if not high:
        return "cp1252"
    paired = sum(
        1
        for i in high
        if (i > 0 and window[i - 1] >= 0x80) or (i + 1 < len(window) and window[i + 1] >= 0x80)
    )
    return "cp1251" if paired > len(high) / 2 else "cp1252"


def not_utf8_error(
    path: str | Path, data: bytes, pos: int, line: int | None = None
) -> LmforgeError:
    """The one-line error for a file that is not UTF-8: where, the likely encoding, the fix.

    `data` holds the bad byte at offset `pos` (and some text around it); the hint
    names the encoding `guess_encoding` finds likelier, shows the word as it reads
    in that encoding, and names the other one as the alternative.
    """
    p = Path(path)
    enc = guess_encoding(data, pos)
    other = "cp1251" if enc == "cp1252" else "cp1252"
    names = {"cp1252": "cp1252/Latin-1, Western European", "cp1251": "cp1251, Cyrillic"}
    start, end = pos, pos + 1
    while start > 0 and pos - start < 24 and data[start - 1 : start] not in _WORD_ENDS:
        start -= 1
    while end < len(data) and end - pos < 24 and data[end : end + 1] not in _WORD_ENDS:
        end += 1
    word = data[start:end].decode(enc, errors="replace")
    where = f"{p}:{line}" if line is not None else f"{p}"
    return LmforgeError(
        f"{where}: is not UTF-8 (byte 0x{data[pos]:02X} in {word!r} as {enc}); it looks like "
        f"{names[enc]}: convert it with `iconv -f {enc} -t utf-8 {p} > {p.stem}.utf8{p.suffix}` "
        f"(or -f {other} if the text reads wrong)"
    )


_WORD_ENDS = {b" ", b"\n", b"\r", b"\t", b""}


def read_text(path: str | Path) -> str:
    """Read a whole UTF-8 text file after `check_text_file`, with a clear error."""
    p = check_text_file(path)
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = e.object.count(b"\n", 0, e.start) + 1
        raise not_utf8_error(p, e.object, e.start, line) from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, object) for each non-blank line of a JSONL file.

    A malformed line raises LmforgeError naming the file and the 1-based line.
    """
    p = check_text_file(path)
    with open(p, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise LmforgeError(
                    f"{p}:{i}: malformed JSON ({e.msg} at column {e.colno}); each line "
                    f'must be one JSON object such as {{"text": "..."}}: fix or remove line {i}'
                ) from None
            if not isinstance(obj, dict):
                raise LmforgeError(
                    f"{p}:{i}: expected a JSON object per line, got {type(obj).__name__}"
                )
            yield i, obj


def expand_inputs(inputs: Iterable[str | Path], extensions: tuple[str, ...]) -> list[Path]:
    """Expand files, folders (recursively, by extension) and globs into a sorted file list.

    Every `--input` in lmforge goes through here, so all verbs accept the same forms.
    """
    import glob

    out: list[Path] = []
    for item in inputs:
        s = str(item)
        if any(ch in s for ch in "*?["):
            matches = sorted(glob.glob(s, recursive=True))
            if not matches:
                raise LmforgeError(f"{s}: glob matched no files")
            out.extend(Path(m) for m in matches if Path(m).is_file())
            continue
        p = Path(s)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.name.endswith(extensions))
            if not found:
                raise LmforgeError(f"{p}: folder holds no files ending in {', '.join(extensions)}")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise LmforgeError(f"{p}: no such file or folder")
    # Keep order, drop repeats.
    seen: set[Path] = set()
    uniq = []
    for p in out:
        if p not in seen:
            seen.add(p)
            uniq.append(p)
    return uniq


def named_folder(spec: str) -> tuple[str, str]:
    """A command-line ``[NAME=]DIR`` -> (name, folder); the name defaults to the folder's."""
    name, sep, folder = spec.partition("=")
    return (name, folder) if sep else (Path(spec).name, spec)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file through a temporary file and rename, so readers never see half of it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave the half file behind
        raise


def replace_folder(tmp: str | Path, out: str | Path) -> None:
    """Move a finished `tmp` folder to `out`, replacing any old `out`.

    Two renames, so `out` always names a complete folder (the old one or the
    new one); the old folder is deleted only after the new one is in place and
    is put back if the second rename fails.
    """
    import shutil

    tmp, out = Path(tmp), Path(out)
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------
# Seeding, devices, distributed


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and (if imported) torch RNGs."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        pass
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)


def pick_device(name: str = "auto") -> str:
    """Resolve 'auto' to cuda, then mps, then cpu."""
    import torch

    if name != "auto":
        return name
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def move_to(batch: Any, device: Any) -> Any:
    """Tensors inside a batch (tensor, tuple, list or dict, nested) moved to `device`."""
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def dist_info() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) otherwise."""
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    return rank, local_rank, world


def is_main_process() -> bool:
    return dist_info()[0] == 0


def get_logger(name: str = "") -> logging.Logger:
    """The `lmforge` logger (or its child `lmforge.<name>`): library code logs through it."""
    _ensure_handler()
    return logging.getLogger(f"lmforge.{name}" if name else "lmforge")


class _ConsoleHandler(logging.StreamHandler):
    """Plain messages: INFO to the *current* sys.stdout, warnings and errors to sys.stderr
    (looked up per record, so redirection and test capture see them)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))
        self._to_err = False

    def emit(self, record: logging.LogRecord) -> None:
        self._to_err = record.levelno >= logging.WARNING
        super().emit(record)

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr if self._to_err else sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _ensure_handler() -> None:
    """Give the `lmforge` logger a stdout handler at INFO unless the application set one up."""
    root = logging.getLogger("lmforge")
    if not getattr(root, "_lmforge_configured", False):
        root._lmforge_configured = True  # type: ignore[attr-defined]
        if not root.handlers:
            root.addHandler(_ConsoleHandler())
            root.propagate = False
        if root.level == logging.NOTSET:
            root.setLevel(logging.WARNING if _QUIET else logging.INFO)


def print0(*args: Any, sep: str = " ", **_: Any) -> None:
    """An INFO line on the `lmforge` logger, on rank 0 only; silent with --quiet."""
    if is_main_process():
        get_logger().info(sep.join(str(a) for a in args))


# ---------------------------------------------------------------------------
# Progress

_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Silence progress bars and INFO logging process-wide (the CLI's --quiet)."""
    global _QUIET
    _QUIET = quiet
    _ensure_handler()
    logging.getLogger("lmforge").setLevel(logging.WARNING if quiet else logging.INFO)


def progress(
    iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it"
):
    """A tqdm bar with rate and ETA; silent when not a terminal, with --quiet, or off rank 0."""
    from tqdm.auto import tqdm

    if _QUIET or not is_main_process():
        return tqdm(iterable, total=total, disable=True)
    if not sys.stderr.isatty():
        # A log file or CI: no bar redraws, but a plain line every so often so that a
        # long run is visibly alive.
        return PlainProgress(iterable, total=total, desc=desc, unit=unit)
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        dynamic_ncols=True,
    )


class PlainProgress:
    """The part of tqdm's interface lmforge uses, as one stderr line every `interval` s.

    `LMFORGE_PROGRESS_SECONDS` sets the interval (default 30).
    """

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        interval: float | None = None,
    ):
        import time

        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        if interval is None:
            interval = float(os.environ.get("LMFORGE_PROGRESS_SECONDS", "30"))
        self.interval = interval
        self.n = 0
        self.postfix = ""
        self.disable = True  # no bar is drawn (so Rust trainers draw none either)
        self._clock = time.monotonic
        self._t0 = self._last = self._clock()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self._print(now)

    def set_postfix(self, refresh: bool = True, **kw: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _print(self, now: float) -> None:
        done = f"{self.n:,}" + (f"/{self.total:,}" if self.total else "")
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        dt = now - self._t0
        rate = f", {self.n / dt:,.1f} {self.unit}/s" if dt > 0 else ""
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {done} {self.unit}{pct}{rate}, {dt:,.0f} s{extra}", file=sys.stderr)

    def close(self) -> None:
        pass
