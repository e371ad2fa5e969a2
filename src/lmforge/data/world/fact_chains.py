"""Multi-hop fact questions over the world, with the hops written out as reasoning.

A chain starts at a person, a pet or an event and follows `difficulty`
relations (2 or 3): "In which country is the city where the best friend of
Anna lives?" is friend -> home -> country. The chain-of-thought names one fact
per hop, in the canonical phrasing of the pretraining text:

    Anna's best friend is Sven.
    Sven lives in Harlow.
    Harlow is a city in Norland.
    Answer: Norland

Every fact is in the pretraining text, so the task tests whether a model can
chain what it read. The two chains the `facts` family already asks at its
level 3 (owner's city, best friend's pet) are left out, so no question is in
two families (and so possibly in two splits).
"""

from __future__ import annotations

import random

from . import vocab
from .entities import World
from .grammar import a_an, capitalize
from .problems import CHOICE, NUMBER, Problem

HOPS = (2, 3)

# relation -> (type it starts from, type it leads to)
RELATIONS: dict[str, tuple[str, str]] = {
    "friend": ("person", "person"),
    "owner": ("pet", "person"),
    "pet_name": ("person", "pet"),
    "home": ("person", "city"),
    "country": ("city", "country"),
    "organizer": ("event", "person"),
    "venue": ("event", "city"),
    "pet": ("person", "animal"),
    "job": ("person", "job"),
    "food": ("person", "food"),
    "age": ("person", "age"),
}
_INVERSE = {("pet_name", "owner"), ("owner", "pet_name")}  # back where the chain was
_IN_FACTS = {("pet", ("owner", "home")), ("person", ("friend", "pet"))}  # facts asks these
_STARTS = (("person", 5), ("pet", 3), ("event", 2))  # (type, weight)

# How a relation reads in the middle of a chain, and as the final question
# (chains have two hops or more: an event only starts one, a pet name only ends
# one, an owner never does: see _INVERSE).
_NOUN = {
    "friend": "the best friend of {s}",
    "owner": "the owner of {s}",
    "home": "the city where {s} lives",
    "organizer": "the organiser of {s}",
    "venue": "the city where {s} was held",
}
_QUESTION = {
    "friend": "Who is the best friend of {s}?",
    "pet_name": "What is the name of the pet of {s}?",
    "home": "In which city does {s} live?",
    "country": "In which country is {s}?",
    "pet": "What kind of pet does {s} have?",
    "job": "What does {s} do for a living?",
    "food": "What is the favourite food of {s}?",
    "age": "How old is {s}?",
}


def _hop(world: World, rel: str, value: str) -> tuple[str, str]:
    """(the value one relation leads to, the fact sentence that says so)."""
    if rel in ("organizer", "venue"):
        e = next(x for x in world.events if x.name == value)
        if rel == "organizer":
            return e.organizer, f"{capitalize(e.name)} was organised by {e.organizer}."
        return e.city, f"{capitalize(e.name)} was held in {e.city}."
    if rel == "country":
        place = next(x for x in world.places if x.name == value)
        return place.country, f"{value} is a city in {place.country}."
    if rel == "owner":
        p = next(x for x in world.people if x.pet_name == value)
        return p.name, f"{value} the {p.pet} belongs to {p.name}."
    p = world.person(value)
    return {
        "friend": (p.friend, f"{p.name}'s best friend is {p.friend}."),
        "pet_name": (p.pet_name, f"{p.name}'s {p.pet} is called {p.pet_name}."),
        "home": (p.city, f"{p.name} lives in {p.city}."),
        "pet": (p.pet, f"{p.name} has {a_an(p.pet)}."),
        "job": (p.job, f"{p.name} is {a_an(p.job)}."),
        "food": (p.food, f"{p.name}'s favourite food is {p.food}."),
        "age": (str(p.age), f"{p.name} is {p.age} years old."),
    }[rel]


def _choices(world: World, kind: str) -> tuple[str, ...]:
    return {
        "person": tuple(world.person_names),
        "pet": tuple(world.pet_names),
        "city": tuple(world.city_names),
        "country": tuple(dict.fromkeys(p.country for p in world.places)),
        "animal": vocab.PETS,
        "job": vocab.JOBS,
        "food": vocab.FOODS,
    }[kind]


def _paths(start: str, hops: int) -> tuple[tuple[str, ...], ...]:
    """Every relation path of `hops` hops from a `start`-type entity (in a fixed order)."""
    paths: list[tuple[str, ...]] = [()]
    for _ in range(hops):
        paths = [
            (*path, rel)
            for path in paths
            for rel, (src, _) in RELATIONS.items()
            if src == (RELATIONS[path[-1]][1] if path else start)
            and not (path and (path[-1], rel) in _INVERSE)
        ]
    return tuple(p for p in paths if (start, p) not in _IN_FACTS)


# Paths are drawn uniformly per start type, so no answer type dominates (a
# city's only way on is its country: drawing hop by hop would ask for
# countries half the time).
PATHS = {(start, hops): _paths(start, hops) for start, _ in _STARTS for hops in HOPS}


def fact_chain(rng: random.Random, world: World, difficulty: int) -> Problem:
    """A `difficulty`-hop question; every entity on the chain is a different one."""
    kinds, weights = zip(*_STARTS)
    while True:
        (start,) = rng.choices(kinds, weights=weights)
        rels = rng.choice(PATHS[start, difficulty])
        if start == "person":
            value = rng.choice(world.people).name
        elif start == "pet":
            value = rng.choice(world.people).pet_name
        else:
            value = rng.choice(world.events).name
        visited, lines = [value], []
        for rel in rels:
            value, line = _hop(world, rel, value)
            visited.append(value)
            lines.append(line)
        # "The best friend of the best friend of Anna" may be Anna herself: not a question.
        if len(set(visited)) == len(visited):
            break
    phrase = visited[0]
    for rel in rels[:-1]:
        phrase = _NOUN[rel].format(s=phrase)
    question = capitalize(_QUESTION[rels[-1]].format(s=phrase))
    answer, target = visited[-1], RELATIONS[rels[-1]][1]
    answer_type, choices = (NUMBER, ()) if target == "age" else (CHOICE, _choices(world, target))
    return Problem(
        family="fact_chain",
        subtask=rels[-1],
        difficulty=difficulty,
        key=f"{start}:{visited[0]}:{'>'.join(rels)}",
        fields={"question": question},
        answer=answer,
        answer_type=answer_type,
        choices=choices,
        reasoning=tuple(lines),
    )
