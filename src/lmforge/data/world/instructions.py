"""Instruction splits: train/val/test with seen templates, plus held-out templates.

`heldout_templates.jsonl` renders the *test* problems through templates never
used elsewhere, so test vs held-out accuracy isolates template generalisation.
Word problems appear twice per problem: chain-of-thought and direct (`cot`).
"""

from __future__ import annotations

from .entities import World
from .sampling import sample_problems
from .seeding import component_rng
from .tasks import FAMILIES, render, variants
from .templates import templates_for

SPLITS = ("train", "val", "test")
FILES = (*SPLITS, "heldout_templates")


def build_instructions(
    world: World, seed: int, quotas: dict[str, int], on_family=None
) -> dict[str, list[dict]]:
    """{file stem: records}; `quotas` is problems per family per split."""
    out: dict[str, list[dict]] = {name: [] for name in FILES}
    for fam in FAMILIES.values():
        problems = sample_problems(fam, world, seed, quotas, stream="instructions")
        rng = component_rng(seed, f"instructions/render/{fam.name}")
        for split in SPLITS:
            for p in problems[split]:
                # One template per problem, shared by its CoT and direct variants.
                template = rng.choice(templates_for(p.family, p.subtask, heldout=False))
                out[split].extend(render(p, template, cot) for cot in variants(p))
        for p in problems["test"]:
            template = rng.choice(templates_for(p.family, p.subtask, heldout=True))
            out["heldout_templates"].extend(render(p, template, cot) for cot in variants(p))
        if on_family is not None:
            on_family(fam.name)
    for name, rows in out.items():
        component_rng(seed, f"instructions/shuffle/{name}").shuffle(rows)
    return out
