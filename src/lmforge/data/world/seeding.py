"""Deterministic randomness for the world: one seed, named streams, stable splits.

Every component draws from its own `random.Random` derived from the world seed
and a component name, so adding draws to one component never shifts another's
output, and nothing ever touches the global RNG or Python's salted `hash()`.
"""

from __future__ import annotations

import hashlib
import random

# Share of underlying problems that land in each split (percent, must sum to 100).
SPLIT_PERCENT = (("train", 70), ("val", 10), ("test", 20))


def component_rng(seed: int, name: str) -> random.Random:
    """A Random for one component; seeding with a str hashes it with SHA-512 (stable everywhere)."""
    return random.Random(f"lmforge-world/{seed}/{name}")


def split_of(seed: int, family: str, key: str) -> str:
    """The split ('train', 'val' or 'test') an underlying problem belongs to.

    Decided by a hash of the problem's key alone, so a problem can never be in
    two splits, whichever file (instructions, preferences, dialogues,
    classification, pretraining arithmetic) it is rendered into.
    """
    digest = hashlib.sha256(f"{seed}\x1f{family}\x1f{key}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    for name, percent in SPLIT_PERCENT:
        if bucket < percent:
            return name
        bucket -= percent
    raise AssertionError("SPLIT_PERCENT must sum to 100")


def problem_id(family: str, key: str) -> str:
    """A short stable id of an underlying problem (shared by all its renderings)."""
    return hashlib.sha256(f"{family}\x1f{key}".encode()).hexdigest()[:16]
