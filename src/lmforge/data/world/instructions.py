"""Instruction splits: train/val/test with seen templates, plus the two held-out files.

`heldout_templates.jsonl` renders the *test* problems of the seen families
through templates never used elsewhere, so test vs held-out accuracy isolates
template generalisation. `heldout_tasks.jsonl` holds whole families that never
appear in train or val (test-sized, through their own seen templates), so
held-out-task accuracy measures generalisation to an unseen task. Families
with reasoning (word problems, multi-step arithmetic, fact chains) appear
twice per problem: chain-of-thought and direct (`cot`).
"""

from __future__ import annotations

import random
from collections.abc import Collection

from .entities import World
from .sampling import sample_heldout, sample_problems
from .seeding import component_rng
from .tasks import DEFAULT_HELDOUT_TASKS, FAMILIES, render, variants
from .templates import templates_for

SPLITS = ("train", "val", "test")
FILES = (*SPLITS, "heldout_templates", "heldout_tasks")


def _template_rng(seed: int, family: str, file: str) -> random.Random:
    """One template stream per family and file, so that asking for more training problems
    (`--train-per-family`) leaves the templates of val, test and the held-out files unchanged."""
    return component_rng(seed, f"instructions/render/{family}/{file}")


def build_instructions(
    world: World,
    seed: int,
    quotas: dict[str, int],
    on_family=None,
    heldout_tasks: Collection[str] = DEFAULT_HELDOUT_TASKS,
) -> dict[str, list[dict]]:
    """{file stem: records}; `quotas` is problems per family per split.

    A family in `heldout_tasks` gets `quotas["test"]` problems, all in
    heldout_tasks.jsonl and none in any other file.
    """
    out: dict[str, list[dict]] = {name: [] for name in FILES}
    for fam in FAMILIES.values():
        if fam.name in heldout_tasks:
            rng = _template_rng(seed, fam.name, "heldout_tasks")
            for p in sample_heldout(fam, world, seed, quotas["test"], stream="instructions"):
                template = rng.choice(templates_for(p.family, p.subtask, heldout=False))
                out["heldout_tasks"].extend(
                    render(p, template, cot, heldout_task=True) for cot in variants(p)
                )
        else:
            problems = sample_problems(fam, world, seed, quotas, stream="instructions")
            for split in SPLITS:
                rng = _template_rng(seed, fam.name, split)
                for p in problems[split]:
                    # One template per problem, shared by its CoT and direct variants.
                    template = rng.choice(templates_for(p.family, p.subtask, heldout=False))
                    out[split].extend(render(p, template, cot) for cot in variants(p))
            rng = _template_rng(seed, fam.name, "heldout_templates")
            for p in problems["test"]:
                template = rng.choice(templates_for(p.family, p.subtask, heldout=True))
                out["heldout_templates"].extend(render(p, template, cot) for cot in variants(p))
        if on_family is not None:
            on_family(fam.name)
    for name, rows in out.items():
        component_rng(seed, f"instructions/shuffle/{name}").shuffle(rows)
    return out
