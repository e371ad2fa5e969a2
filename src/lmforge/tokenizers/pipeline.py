"""Pieces every trainer's `tokenizers` pipeline shares: special tokens, digits, threads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..common import progress
from .base import SPECIAL_TOKENS, UNK

UNK_ID = SPECIAL_TOKENS.index(UNK)


def special_added_tokens() -> list[Any]:
    """SPECIAL_TOKENS as special AddedTokens, matched in raw (un-normalized) text."""
    from tokenizers import AddedToken

    return [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS]


def pre_tokenizer_sequence(steps: list[Any]) -> Any:
    """One pre-tokenizer out of `steps` (None when empty)."""
    from tokenizers import pre_tokenizers

    if not steps:
        return None
    return steps[0] if len(steps) == 1 else pre_tokenizers.Sequence(steps)


def normalizer_sequence(steps: list[Any]) -> Any:
    """One normalizer out of `steps` (None when empty)."""
    from tokenizers import normalizers

    if not steps:
        return None
    return steps[0] if len(steps) == 1 else normalizers.Sequence(steps)


def digits_step() -> Any:
    """The --split-digits step: every digit its own pre-token, so `12345` becomes 5 tokens."""
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Digits(individual_digits=True)


def show_rust_progress() -> bool:
    """Whether the Rust trainers may draw their own bars (same rule as common.progress)."""
    with progress(total=0) as bar:
        return not bar.disable


@contextmanager
def engine_threads(threads: int) -> Iterator[None]:
    """Limit the `tokenizers` engine to `threads` threads while training (0: leave as is).

    TOKENIZERS_PARALLELISM=false (1 thread) is read on every call. A larger count
    goes to RAYON_NUM_THREADS, which the Rust pool reads once, when the process
    first works in parallel; the CLI trains before anything else, so it holds there.
    """
    if threads <= 0:
        yield
        return
    keys = ("TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["TOKENIZERS_PARALLELISM"] = "false" if threads == 1 else "true"
    if threads > 1:
        os.environ["RAYON_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_special_ids(engine: Any) -> None:
    """Every trainer must put SPECIAL_TOKENS at ids 0..N-1; a broken promise is a bug, not bad input."""
    for i, t in enumerate(SPECIAL_TOKENS):
        got = engine.token_to_id(t)
        if got != i:
            raise RuntimeError(f"special token {t} got id {got}, expected {i}")
