"""Declarative fact sentences about people, in many phrasings.

The first phrasing of each attribute is the canonical one ("Anna lives in
Harlow.") and is drawn most often, so a masked LM sees "Anna lives in [MASK]."
many times; the others teach that the same fact has many surface forms.
"""

from __future__ import annotations

import random

from .entities import Person, World
from .grammar import a_an, capitalize

# attribute -> phrasings over {n} name, {c} city, {pet}, {pn} pet name, {job}, {food},
# {age}, {f} friend, {color}, {hobby}, {s} surname, {poss} her/his.
PHRASES: dict[str, tuple[str, ...]] = {
    "city": (
        "{n} lives in {c}.",
        "{n} lives in the city of {c}.",
        "{n}'s home is in {c}.",
        "{n} has a house in {c}.",
        "{n} calls {c} home.",
        "The city where {n} lives is {c}.",
    ),
    "pet": (
        "{n} has {a_pet}.",
        "{n}'s pet is {a_pet}.",
        "{n} keeps {a_pet} as a pet.",
        "{n} owns {a_pet} called {pn}.",
    ),
    "pet_name": (
        "{n}'s {pet} is called {pn}.",
        "{pn} is {n}'s {pet}.",
        "The name of {n}'s {pet} is {pn}.",
        "{pn} the {pet} belongs to {n}.",
        "{pn} lives in {c} with {n}.",
    ),
    "job": (
        "{n} is {a_job}.",
        "{n} works as {a_job}.",
        "{n} works as {a_job} in {c}.",
        "By profession, {n} is {a_job}.",
    ),
    "food": (
        "{n}'s favourite food is {food}.",
        "{n} loves {food}.",
        "{n} likes {food} more than anything.",
        "The food {n} likes best is {food}.",
    ),
    "age": (
        "{n} is {age} years old.",
        "{n} is {age}.",
        "{n}'s age is {age}.",
        "{n} turned {age} this year.",
    ),
    "friend": (
        "{n}'s best friend is {f}.",
        "{f} is {n}'s best friend.",
        "The best friend of {n} is {f}.",
        "{n} spends a lot of time with {poss} best friend, {f}.",
    ),
    "color": ("{n}'s favourite colour is {color}.", "{n} likes the colour {color}."),
    "hobby": (
        "{n} enjoys {hobby}.",
        "{n}'s hobby is {hobby}.",
        "In {poss} free time, {n} likes {hobby}.",
    ),
    "surname": ("{n}'s full name is {n} {s}.", "{n} {s} is usually just called {n}."),
}
ATTRIBUTES = tuple(PHRASES)


def slots(p: Person) -> dict[str, str]:
    return {
        "n": p.name,
        "c": p.city,
        "pet": p.pet,
        "a_pet": a_an(p.pet),
        "pn": p.pet_name,
        "a_job": a_an(p.job),
        "job": p.job,
        "food": p.food,
        "age": str(p.age),
        "f": p.friend,
        "color": p.color,
        "hobby": p.hobby,
        "s": p.surname,
        "poss": p.poss,
    }


def fact(rng: random.Random, p: Person, attribute: str) -> str:
    """One sentence stating `attribute` of `p`; the canonical phrasing half of the time."""
    phrases = PHRASES[attribute]
    phrase = phrases[0] if rng.random() < 0.5 else rng.choice(phrases)
    return phrase.format(**slots(p))


def with_pronoun(sentence: str, p: Person) -> str:
    """'Anna works ...' -> 'She works ...' (and "Anna's" -> 'Her') for flowing text."""
    if sentence.startswith(p.name + "'s "):
        return capitalize(p.poss) + sentence[len(p.name) + 2 :]
    if sentence.startswith(p.name + " "):
        return capitalize(p.pronoun) + sentence[len(p.name) :]
    return sentence


def profile(rng: random.Random, world: World, p: Person) -> str:
    """A paragraph of facts about one person, in random order and phrasing."""
    attrs = list(ATTRIBUTES)
    rng.shuffle(attrs)
    attrs = attrs[: rng.randint(4, len(attrs))]
    sentences = []
    for i, attr in enumerate(attrs):
        s = fact(rng, p, attr)
        if i > 0 and rng.random() < 0.35:
            s = with_pronoun(s, p)
        sentences.append(s)
    return " ".join(sentences)
