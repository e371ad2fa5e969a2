"""What the experiments' tests share (the --quick base itself is conftest.py's `quick_base`:
a fixture defined there is built once per session, one imported into each module is not)."""

from __future__ import annotations

from pathlib import Path

from lmforge.experiments.claims import ClaimContext


def quick_context(tmp_path: Path, base=None, seed: int = 0) -> ClaimContext:
    """A --quick experiment context writing into tmp_path/exp."""
    out = tmp_path / "exp"
    out.mkdir(parents=True, exist_ok=True)
    return ClaimContext(out=out, quick=True, seed=seed, base=base, threads=1)
