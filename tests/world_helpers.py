"""A tiny built-in world for tests of the instruction readers and mixtures (a second each)."""

from __future__ import annotations

from pathlib import Path


def build_tiny_world(out: Path, train_per_family: int = 10) -> Path:
    """`out`: a world small enough to build in a test, with every file a full one has."""
    from lmforge.data.world import WorldConfig, build_world

    build_world(
        WorldConfig(
            out=str(out),
            people=20,
            places=5,
            events=6,
            pretrain_chars=20_000,
            train_per_family=train_per_family,
            val_per_family=3,
            test_per_family=4,
            dialogues_train=10,
            dialogues_test=4,
            preferences_train=10,
            preferences_val=4,
            rankings_train=4,
            rankings_val=2,
            classification_train_per_label=4,
            classification_test_per_label=4,
        )
    )
    return out
