"""Draw distinct problems of one family and sort them into splits by key."""

from __future__ import annotations

import random
from collections.abc import Callable

from .entities import World
from .problems import Problem
from .seeding import component_rng, split_of
from .tasks import TaskFamily

# Stop after this many draws in a row that add nothing: the family's problem
# space (at these difficulty levels) is exhausted for the splits still open.
STALE_DRAWS = 4000

# The one bucket of a held-out family: its problems are never trained on, so
# every problem may be used, whatever its train/val/test hash says.
HELDOUT = "heldout"


def _draw(
    family: TaskFamily,
    world: World,
    rng: random.Random,
    quotas: dict[str, int],
    bucket: Callable[[Problem], str],
) -> dict[str, list[Problem]]:
    out: dict[str, list[Problem]] = {name: [] for name in quotas}
    seen: set[str] = set()
    stale = 0
    while stale < STALE_DRAWS and any(len(out[s]) < q for s, q in quotas.items()):
        problem = family.generate(rng, world, rng.choice(family.difficulties))
        if problem.key in seen:
            stale += 1
            continue
        seen.add(problem.key)
        name = bucket(problem)
        if name not in out or len(out[name]) >= quotas[name]:
            stale += 1
            continue
        stale = 0
        out[name].append(problem)
    return out


def sample_problems(
    family: TaskFamily, world: World, seed: int, quotas: dict[str, int], stream: str
) -> dict[str, list[Problem]]:
    """Up to quotas[split] distinct problems per split; splits come from `split_of`.

    Difficulty levels are drawn uniformly; a split whose share of the problem
    space is small (e.g. fact questions in a small world) may end up with fewer
    problems than asked, never with a duplicate or a problem of another split.
    """
    rng = component_rng(seed, f"{stream}/{family.name}")
    return _draw(family, world, rng, quotas, lambda p: split_of(seed, family.name, p.key))


def sample_heldout(
    family: TaskFamily, world: World, seed: int, n: int, stream: str
) -> list[Problem]:
    """Up to `n` distinct problems of a held-out family, from its whole problem space."""
    rng = component_rng(seed, f"{stream}/{family.name}")
    return _draw(family, world, rng, {HELDOUT: n}, lambda p: HELDOUT)[HELDOUT]


def spread(total: int, n: int) -> list[int]:
    """Split `total` into `n` near-equal non-negative parts (the first ones get the remainder)."""
    return [total // n + (1 if i < total % n else 0) for i in range(n)]
