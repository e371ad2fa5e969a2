"""Fact questions about the world, answerable only from the pretraining text.

Difficulty 1 asks one direct attribute, 2 a less frequent one (pet name, age,
best friend, events), 3 chains two facts ("where does the owner of Rex live?").
"""

from __future__ import annotations

import random

from . import vocab
from .entities import World
from .problems import CHOICE, NUMBER, Problem

SUBTASKS = {
    1: ("city", "pet", "job", "food"),
    2: ("pet_name", "age", "friend", "event_city", "event_year"),
    3: ("owner_city", "friend_pet"),
}


def facts(rng: random.Random, world: World, difficulty: int) -> Problem:
    sub = rng.choice(SUBTASKS[difficulty])
    p = rng.choice(world.people)
    fields = {"name": p.name, "pet": p.pet, "pet_name": p.pet_name, "poss": p.poss}
    key = f"{sub}:{p.name}"
    if sub in ("event_city", "event_year"):
        e = rng.choice(world.events)
        fields = {"event": e.name}
        key = f"{sub}:{e.name}"
        if sub == "event_city":
            return Problem(
                "facts", sub, difficulty, key, fields, e.city, CHOICE, tuple(world.city_names)
            )
        return Problem("facts", sub, difficulty, key, fields, str(e.year), NUMBER)
    if sub == "age":
        return Problem("facts", sub, difficulty, key, fields, str(p.age), NUMBER)
    answer, choices = {
        "city": (p.city, world.city_names),
        "pet": (p.pet, vocab.PETS),
        "job": (p.job, vocab.JOBS),
        "food": (p.food, vocab.FOODS),
        "pet_name": (p.pet_name, world.pet_names),
        "friend": (p.friend, world.person_names),
        "owner_city": (p.city, world.city_names),
        "friend_pet": (world.person(p.friend).pet, vocab.PETS),
    }[sub]
    return Problem("facts", sub, difficulty, key, fields, answer, CHOICE, tuple(choices))
