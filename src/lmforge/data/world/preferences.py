"""Preference pairs with graded margins, from train/val problems of every seen family.

Record: {"prompt": [messages], "chosen": str, "rejected": str, "margin": float,
"rejected_kind": "wrong"|"unhelpful"|"sloppy", plus the task fields
(task, subtask, template, difficulty, cot, answer, answer_type, choices)} so a
checker can score any response to the prompt. The prompt is a list of chat
messages (a single user turn); chosen/rejected are assistant replies.
Held-out families are left out: preference data is training data.
"""

from __future__ import annotations

from collections.abc import Collection

from .corrupt import REJECTIONS, consistent
from .entities import World
from .sampling import sample_problems, spread
from .seeding import component_rng
from .tasks import DEFAULT_HELDOUT_TASKS, FAMILIES, render
from .templates import templates_for

# Share of each rejection kind (wrong answers dominate: they carry the signal).
KIND_WEIGHTS = {"wrong": 2, "unhelpful": 1, "sloppy": 1}


def build_preferences(
    world: World,
    seed: int,
    n_train: int,
    n_val: int,
    heldout_tasks: Collection[str] = DEFAULT_HELDOUT_TASKS,
) -> dict[str, list[dict]]:
    """`n_train` / `n_val` pairs, spread evenly over the families not in `heldout_tasks`."""
    out: dict[str, list[dict]] = {"train": [], "val": []}
    fams = [f for f in FAMILIES.values() if f.name not in heldout_tasks]
    for fam, q_train, q_val in zip(fams, spread(n_train, len(fams)), spread(n_val, len(fams))):
        problems = sample_problems(
            fam, world, seed, {"train": q_train, "val": q_val}, stream="preferences"
        )
        rng = component_rng(seed, f"preferences/render/{fam.name}")
        for split in ("train", "val"):
            for p in problems[split]:
                template = rng.choice(templates_for(p.family, p.subtask, heldout=False))
                cot = bool(p.reasoning) and rng.random() < 0.5
                example = render(p, template, cot)
                kind = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
                make, margin = REJECTIONS[kind]
                rejected = make(rng, p, cot)
                if not consistent(p, kind, rejected):
                    raise AssertionError(f"{kind} rejection {rejected!r} misjudged for {p.key!r}")
                record = {
                    "prompt": example["messages"][:-1],
                    "chosen": example["messages"][-1]["content"],
                    "rejected": rejected,
                    "margin": margin,
                    "rejected_kind": kind,
                }
                record.update({k: v for k, v in example.items() if k != "messages"})
                out[split].append(record)
    for split, rows in out.items():
        component_rng(seed, f"preferences/shuffle/{split}").shuffle(rows)
    return out
