"""Token shards on disk: the writer used by ``prepare`` and the memory-mapped reader.

A prepared data folder holds::

    meta.json                 what is in the folder (see prepare.py for the fields)
    train_00000.bin ...       raw little-endian token ids, uint16 when the vocabulary
    val_00000.bin ...         fits (<= 65536 ids), else uint32; no header
    tokenizer/                the tokenizer that produced the ids
    config.yaml               the PrepareConfig that built the folder

Each split is one token stream cut into files of at most ``shard_tokens`` ids; a
document may continue in the next file, and :class:`TokenShards` reads windows
across file boundaries as if the stream were one array.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..common import LmforgeError

META_FILE = "meta.json"
TOKENIZER_DIR = "tokenizer"
FORMAT_VERSION = 1
SPLITS = ("train", "val")
_DTYPES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}
_REDO = "run `lmforge data prepare` again"


def dtype_for_vocab(vocab_size: int) -> str:
    """'uint16' when every id fits in 16 bits, else 'uint32'."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


def shard_name(split: str, index: int) -> str:
    return f"{split}_{index:05d}.bin"


class ShardWriter:
    """Appends token ids to ``<split>_NNNNN.bin`` files of at most `shard_tokens` ids each."""

    def __init__(self, folder: str | Path, split: str, dtype: str, shard_tokens: int):
        self.folder = Path(folder)
        self.split = split
        self.dtype = _DTYPES[dtype]
        self.shard_tokens = shard_tokens
        self.shards: list[dict[str, Any]] = []  # {"file", "tokens"} per finished or open file
        self._file = None
        self._room = 0

    def write(self, ids: np.ndarray) -> None:
        """Append `ids` (any integer dtype; must fit the shard dtype) to the stream."""
        ids = np.asarray(ids).astype(self.dtype, copy=False)
        while ids.size:
            if self._room == 0:
                self._open_next()
            piece, ids = ids[: self._room], ids[self._room :]
            self._file.write(piece.tobytes())
            self._room -= piece.size
            self.shards[-1]["tokens"] += int(piece.size)

    def _open_next(self) -> None:
        if self._file is not None:
            self._file.close()
        name = shard_name(self.split, len(self.shards))
        self._file = open(self.folder / name, "wb")
        self.shards.append({"file": name, "tokens": 0})
        self._room = self.shard_tokens

    def close(self) -> list[dict[str, Any]]:
        """Finish the last file; returns the shard list for meta.json."""
        if self._file is not None:
            self._file.close()
            self._file = None
        return self.shards

    @property
    def tokens(self) -> int:
        return sum(s["tokens"] for s in self.shards)


def read_meta(folder: str | Path) -> dict[str, Any]:
    """meta.json of a prepared data folder, checked for the fields readers rely on."""
    d = Path(folder)
    path = d / META_FILE
    if not d.is_dir():
        raise LmforgeError(f"{d}: no such data folder; create it with `lmforge data prepare`")
    if not path.is_file():
        raise LmforgeError(f"{d}: not a prepared data folder (no {META_FILE}); {_REDO}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LmforgeError(f"{path}: corrupt ({e}); {_REDO}") from None
    if not isinstance(meta, dict):
        raise LmforgeError(f"{path}: corrupt (not a JSON object); {_REDO}")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise LmforgeError(
            f"{path}: format_version {version!r} is not supported (expected {FORMAT_VERSION}); "
            f"{_REDO}"
        )
    for key in ("dtype", "vocab_size", "tokenizer_hash", "splits"):
        if key not in meta:
            raise LmforgeError(f"{path}: missing field {key!r}; {_REDO}")
    if meta["dtype"] not in _DTYPES:
        raise LmforgeError(f"{path}: unknown dtype {meta['dtype']!r}; {_REDO}")
    return meta


class TokenShards:
    """One split of a prepared folder as a single read-only token stream (memory-mapped)."""

    def __init__(self, folder: str | Path, split: str = "train"):
        self.folder = Path(folder)
        self.split = split
        self.meta = read_meta(self.folder)
        splits = self.meta["splits"]
        if split not in splits:
            raise LmforgeError(
                f"{self.folder}: no split {split!r} (splits: {', '.join(splits)}); {_REDO}"
            )
        self.dtype = _DTYPES[self.meta["dtype"]]
        self.vocab_size = int(self.meta["vocab_size"])
        self.tokenizer_hash = str(self.meta["tokenizer_hash"])
        self._arrays: list[np.ndarray] = []
        for shard in splits[split].get("shards", []):
            path = self.folder / shard["file"]
            expected = int(shard["tokens"]) * self.dtype.itemsize
            if not path.is_file():
                raise LmforgeError(f"{path}: shard missing; the folder is incomplete, {_REDO}")
            found = path.stat().st_size
            if found != expected:
                raise LmforgeError(
                    f"{path}: {found} bytes, meta.json says {expected}; the shard is corrupt, "
                    f"{_REDO}"
                )
            if expected:
                self._arrays.append(np.memmap(path, dtype=self.dtype, mode="r"))
        # _starts[i] is the stream offset of shard i; the last entry is the total length.
        self._starts = np.cumsum([0] + [a.size for a in self._arrays], dtype=np.int64)

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def documents(self) -> int:
        return int(self.meta["splits"][self.split].get("documents", 0))

    def window(self, start: int, length: int) -> np.ndarray:
        """Ids [start, start + length) of the stream as an int64 array, across shard files."""
        end = start + length
        if start < 0 or length < 0 or end > len(self):
            raise IndexError(f"window [{start}, {end}) outside the {len(self)}-token stream")
        i = int(np.searchsorted(self._starts, start, side="right")) - 1
        pieces = []
        while start < end:
            offset = start - int(self._starts[i])
            take = min(end - start, self._arrays[i].size - offset)
            pieces.append(self._arrays[i][offset : offset + take])
            start += take
            i += 1
        if len(pieces) == 1:
            return pieces[0].astype(np.int64)
        return np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, np.int64)

    def tokenizer(self):
        """The tokenizer saved in the folder (its hash is checked against meta.json)."""
        from ..tokenizers import Tokenizer

        tok = Tokenizer.load(self.folder / TOKENIZER_DIR)
        check_tokenizer(self.meta, tok, where=str(self.folder))
        return tok

    def __repr__(self) -> str:
        return f"TokenShards({str(self.folder)!r}, {self.split!r}, tokens={len(self)})"


def check_tokenizer(meta: dict[str, Any], tokenizer: Any, where: str = "data") -> None:
    """Raise if `tokenizer` is not the one that produced the shards described by `meta`."""
    if tokenizer.hash != meta["tokenizer_hash"]:
        raise LmforgeError(
            f"{where}: tokenizer mismatch (shards made with {meta['tokenizer_hash']}, "
            f"given {tokenizer.hash}); use the data folder's tokenizer/ or prepare the data again"
        )
