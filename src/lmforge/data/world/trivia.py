"""TriviaQA-style closed-book questions about the world's facts, with answer aliases.

Every fact the pretraining text states about a person (city, job, pet, pet name,
food, age, best friend, colour, hobby, surname) or an event (city, year,
organiser) becomes one question, asked without any passage::

    {"Question": "Which city is Anna's home?", "QuestionId": "world-city-Anna",
     "QuestionSource": "lmforge world", "attribute": "city",
     "Answer": {"Value": "Harlow", "Aliases": ["Harlow", "the city of Harlow", ...],
                "NormalizedValue": "harlow", "NormalizedAliases": ["harlow", ...],
                "Type": "lmforge world"}}

The record is a line of the TriviaQA format (its ``Data`` entries, one per line),
so one reader serves the world's file and the real one. A question's split is the
`facts` instruction family's split of the same fact (``city:Anna``, ...), so a
test question never appears as a ``Question:``/``Answer:`` line of the
pretraining text (those come from the facts family's train split); the plain
fact itself is stated there, by design: the test is whether a model recalls
what it read when asked in another form. Facts the facts family does not ask
(colour, hobby, surname, organiser) are split by their own hash.

`normalize_answer` is TriviaQA's answer normalisation (lower case, punctuation
and the articles a/an/the removed, white space collapsed).
"""

from __future__ import annotations

import random
import re
import string

from .entities import World
from .grammar import a_an
from .seeding import component_rng, split_of

FAMILY = "trivia"
SOURCE = "lmforge world"
# Attributes the `facts` family also asks: the trivia question takes that family's split.
FACTS_SPLIT = (
    "city",
    "pet",
    "job",
    "food",
    "pet_name",
    "age",
    "friend",
    "event_city",
    "event_year",
)

QUESTIONS = {
    "city": ("Which city is {n}'s home?", "{n} lives in which city?"),
    "job": ("What is {n}'s profession?", "{n} works as what?"),
    "pet": ("What kind of animal is {n}'s pet?", "{n} keeps which animal as a pet?"),
    "pet_name": ("What is the name of {n}'s {pet}?",),
    "food": ("What is {n}'s favourite food?", "Which food does {n} love most?"),
    "age": ("How old is {n}?", "What age is {n}?"),
    "friend": ("Who is {n}'s best friend?",),
    "color": ("What is {n}'s favourite colour?",),
    "hobby": ("What does {n} enjoy doing in {poss} free time?",),
    "surname": ("What is {n}'s surname?", "What is {n}'s family name?"),
    "event_city": ("In which city was {event} held?", "Which city hosted {event}?"),
    "event_year": ("In which year did {event} take place?",),
    "event_organizer": ("Who organised {event}?",),
}
ATTRIBUTES = tuple(QUESTIONS)

_PUNCT = set(string.punctuation + "‘’´`")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """TriviaQA's normalisation: lower case, no punctuation or articles, single spaces."""
    text = text.replace("_", " ").lower()
    text = "".join(" " if ch in _PUNCT else ch for ch in text)
    return " ".join(_ARTICLES.sub(" ", text).split())


_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """0..99 in words: 34 -> 'thirty-four'."""
    if n < 20:
        return _UNITS[n]
    tens, unit = divmod(n, 10)
    return _TENS[tens] + ("" if unit == 0 else "-" + _UNITS[unit])


def _city_aliases(world: World, city: str) -> list[str]:
    country = next(p.country for p in world.places if p.name == city)
    return [city, f"the city of {city}", f"{city}, {country}"]


def _questions(world: World) -> list[tuple[str, str, dict, str, list[str]]]:
    """(attribute, key, template slots, answer, aliases) of every fact, in a fixed order."""
    out = []
    for p in world.people:
        slots = {"n": p.name, "pet": p.pet, "poss": p.poss}
        friend = world.person(p.friend)
        facts = {
            "city": (p.city, _city_aliases(world, p.city)),
            "job": (p.job, [p.job, a_an(p.job)]),
            "pet": (p.pet, [p.pet, a_an(p.pet), p.pet + "s"]),
            "pet_name": (p.pet_name, [p.pet_name]),
            "food": (p.food, [p.food]),
            "age": (str(p.age), [str(p.age), f"{p.age} years old", number_words(p.age)]),
            "friend": (p.friend, [p.friend, f"{p.friend} {friend.surname}"]),
            "color": (p.color, [p.color]),
            "hobby": (p.hobby, [p.hobby]),
            "surname": (p.surname, [p.surname, f"{p.name} {p.surname}"]),
        }
        for attr, (answer, aliases) in facts.items():
            out.append((attr, f"{attr}:{p.name}", slots, answer, aliases))
    for e in world.events:
        slots = {"event": e.name}
        organizer = world.person(e.organizer)
        facts = {
            "event_city": (e.city, _city_aliases(world, e.city)),
            "event_year": (str(e.year), [str(e.year)]),
            "event_organizer": (e.organizer, [e.organizer, f"{e.organizer} {organizer.surname}"]),
        }
        for attr, (answer, aliases) in facts.items():
            out.append((attr, f"{attr}:{e.name}", slots, answer, aliases))
    return out


def _record(rng: random.Random, attr: str, key: str, slots: dict, answer: str, aliases) -> dict:
    question = rng.choice(QUESTIONS[attr]).format(**slots)
    question = question[:1].upper() + question[1:]
    aliases = list(dict.fromkeys(aliases))
    return {
        "Question": question,
        "QuestionId": f"world-{key.replace(':', '-').replace(' ', '_')}",
        "QuestionSource": SOURCE,
        "attribute": attr,
        "Answer": {
            "Value": answer,
            "Aliases": aliases,
            "NormalizedValue": normalize_answer(answer),
            "NormalizedAliases": list(dict.fromkeys(normalize_answer(a) for a in aliases)),
            "Type": SOURCE,
        },
    }


def split_of_fact(seed: int, attr: str, key: str) -> str:
    """The split of a fact question: the facts family's for the facts it asks, else its own."""
    return split_of(seed, "facts" if attr in FACTS_SPLIT else FAMILY, key)


def build_trivia(world: World, seed: int, n_train: int, n_test: int) -> dict[str, list[dict]]:
    """{"train": records, "test": records}: every fact's question in its split, shuffled,
    at most `n_train` / `n_test` of them (the world's facts are finite: fewer if it is small)."""
    rng = component_rng(seed, FAMILY)
    by_split: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for attr, key, slots, answer, aliases in _questions(world):
        by_split[split_of_fact(seed, attr, key)].append(
            _record(rng, attr, key, slots, answer, aliases)
        )
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        rows = by_split[split]
        rng.shuffle(rows)
        out[split] = rows[:n]
    return out
