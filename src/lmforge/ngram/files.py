"""Open a model file of either kind: an lmforge .npz or an ARPA file (plain or .gz)."""

from __future__ import annotations

from pathlib import Path

from ..common import LmforgeError
from .model import NgramModel


def load_model(path: str | Path) -> NgramModel:
    """Load an n-gram model: an .npz written by lmforge, or any ARPA file.

    The kind is told by content, not by name: a zip archive is an .npz; anything
    else must be ARPA text. A file that is neither raises one clear LmforgeError.
    """
    from .arpa import read_arpa

    p = Path(path)
    if not p.exists():
        raise LmforgeError(f"{p}: no such model file; train one with `lmforge ngram train`")
    if p.is_dir():
        raise LmforgeError(f"{p}: is a folder; expected a model file (.npz or .arpa)")
    with open(p, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"PK"):
        return NgramModel.load_npz(p)
    if head.startswith(b"\x1f\x8b") or b"\\data\\" in head:
        return read_arpa(p)
    raise LmforgeError(
        f"{p}: not an n-gram model (neither an lmforge .npz nor an ARPA file with a "
        "\\data\\ section); train one with `lmforge ngram train`"
    )


def save_model(model: NgramModel, path: str | Path) -> Path:
    """Save as ARPA if `path` ends in .arpa or .arpa.gz, else as lmforge .npz."""
    from .arpa import write_arpa

    name = str(path)
    if name.endswith((".arpa", ".arpa.gz")):
        return write_arpa(model, path)
    return model.save(path)
