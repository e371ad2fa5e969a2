"""What the experiments' tests share: the --quick base, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.experiments.claims import NEEDS_SFT, ClaimContext
from lmforge.experiments.claims_base import ensure_base


@pytest.fixture(scope="session")
def quick_base(tmp_path_factory):
    """The tiny base (world, tokenizer, shards, pretrain, SFT) of `--quick` (~40 s, once)."""
    out = tmp_path_factory.mktemp("claims")
    return ensure_base(out, NEEDS_SFT, quick=True, given=None)


def quick_context(tmp_path: Path, base=None, seed: int = 0) -> ClaimContext:
    """A --quick experiment context writing into tmp_path/exp."""
    out = tmp_path / "exp"
    out.mkdir(parents=True, exist_ok=True)
    return ClaimContext(out=out, quick=True, seed=seed, base=base, threads=1)
