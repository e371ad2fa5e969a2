"""Draw distinct problems of one family and sort them into splits by key."""

from __future__ import annotations

from .entities import World
from .problems import Problem
from .seeding import component_rng, split_of
from .tasks import TaskFamily

# Stop after this many draws in a row that add nothing: the family's problem
# space (at these difficulty levels) is exhausted for the splits still open.
STALE_DRAWS = 4000


def sample_problems(
    family: TaskFamily, world: World, seed: int, quotas: dict[str, int], stream: str
) -> dict[str, list[Problem]]:
    """Up to quotas[split] distinct problems per split; splits come from `split_of`.

    Difficulty levels are drawn uniformly; a split whose share of the problem
    space is small (e.g. fact questions in a small world) may end up with fewer
    problems than asked, never with a duplicate or a problem of another split.
    """
    rng = component_rng(seed, f"{stream}/{family.name}")
    out: dict[str, list[Problem]] = {split: [] for split in quotas}
    seen: set[str] = set()
    stale = 0
    while stale < STALE_DRAWS and any(len(out[s]) < q for s, q in quotas.items()):
        problem = family.generate(rng, world, rng.choice(family.difficulties))
        if problem.key in seen:
            stale += 1
            continue
        seen.add(problem.key)
        split = split_of(seed, family.name, problem.key)
        if split not in out or len(out[split]) >= quotas[split]:
            stale += 1
            continue
        stale = 0
        out[split].append(problem)
    return out


def spread(total: int, n: int) -> list[int]:
    """Split `total` into `n` near-equal non-negative parts (the first ones get the remainder)."""
    return [total // n + (1 if i < total % n else 0) for i in range(n)]
