"""Inputs the base-free experiments (C1-C3) share: their own world, and Tiny Shakespeare."""

from __future__ import annotations

from pathlib import Path

from .claims import ClaimContext

SHAKESPEARE = Path("data") / "corpora" / "tinyshakespeare.txt"
# --quick: the recipe test's tiny world (bases/quick.yaml's world stage), in seconds.
QUICK_WORLD = {"pretrain-chars": 60000, "people": 20, "places": 5, "events": 6,
               "train-per-family": 20, "val-per-family": 5, "test-per-family": 5,
               "dialogues-train": 20, "dialogues-val": 5, "dialogues-test": 5,
               "preferences-train": 40, "preferences-val": 16, "rankings-train": 10,
               "rankings-val": 5, "classification-train-per-label": 5,
               "classification-test-per-label": 5}  # fmt: skip


def own_world(ctx: ClaimContext) -> Path:
    """`lmforge world --size small` into ctx.out/world (a tiny one under --quick)."""
    world = ctx.out / "world"
    argv = ["world", "--out", str(world), "--size", "small", "--seed", str(ctx.seed)]
    if ctx.quick:
        argv += [a for k, v in QUICK_WORLD.items() for a in (f"--{k}", str(v))]
    ctx.verb(argv, "world")
    return world


def find_shakespeare() -> Path | None:
    """Tiny Shakespeare from ../shared (next to the working folder or the repository)."""
    for root in (Path.cwd().parent / "shared", Path(__file__).resolve().parents[4] / "shared"):
        if (root / SHAKESPEARE).is_file():
            return root / SHAKESPEARE
    return None
