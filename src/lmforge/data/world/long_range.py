"""LAMBADA-style passages: the last word of a story, stated only far back in it.

A passage is a short story in the style of the pretraining text about one person
P, in four parts::

    One morning, Anna left her house in Harlow.                 opening
    Anna looked after Rex, Bob's dog, for the day.              the clue: states the answer
    It started to rain for a while. Anna bought some tacos.     distance - 1 distractors
    In the evening, Anna gave a treat to Rex                    the last sentence: ends on it

The record's ``text`` is the passage ending with the answer word and no final
full stop, as in the LAMBADA files (``{"text": "..."}``), so the same reader
serves both; ``distance`` is the number of sentences from the clue to the last
sentence (1: the clue comes just before it), ``distance_words`` the words from
the answer's mention to the blank.

The answer is never guessable from the last sentence or from the world's facts
alone: the pairing of P with the answer is drawn at random (a person P meets who
is not P's best friend, a pet that is not P's own, a city that is not P's home,
an object), so only the passage says which one it is. Some distractors are
*lures*: they name another thing of the answer's kind (P's own pet, another
city, another person), as LAMBADA's passages name other characters; their
count is the record's ``lures``. The answer is mentioned exactly once before
the blank (checked while building).

Kinds (``kind``) and their candidate words (`candidates`, written to
``long_range/candidates.json``): ``person`` (every first name), ``pet`` (every
pet name), ``place`` (every city), ``object`` (`OBJECTS`). The split is a hash
of (kind, P, answer), so a test pairing never appears in a train passage.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from .entities import Person, World
from .facts_text import fact
from .grammar import a_an, capitalize
from .seeding import component_rng, problem_id, split_of

FAMILY = "long_range"
KINDS = ("person", "pet", "place", "object")
MAX_DISTANCE = 6  # the clue 1..6 sentences before the blank (at most 10: distractors run out)
LURE_RATE = 0.3  # share of distractor slots that name another thing of the answer's kind

# Things a person can buy, find or be given, and be happy with (all one word).
OBJECTS = (
    "umbrella", "kettle", "lamp", "guitar", "violin", "basket", "candle", "jacket", "blanket",
    "piano", "telescope", "mirror", "pillow", "hammer", "bucket", "vase", "hat", "bottle",
    "quilt", "ladder", "map", "spoon", "clock", "bicycle", "scarf", "teapot", "lantern",
    "backpack",
)  # fmt: skip


@dataclass(frozen=True)
class Passage:
    """One generated passage (see the module doc); `record` is its JSONL line."""

    text: str  # ends with the answer, no final full stop
    answer: str
    kind: str
    distance: int
    distance_words: int
    lures: int
    person: str
    key: str  # (kind, person, answer): what the split is a hash of

    def record(self, seed: int) -> dict:
        return {
            "text": self.text,
            "answer": self.answer,
            "kind": self.kind,
            "distance": self.distance,
            "distance_words": self.distance_words,
            "lures": self.lures,
            "person": self.person,
            "problem_id": problem_id(FAMILY, self.key),
        }


def candidates(world: World) -> dict[str, list[str]]:
    """The words each kind's blank is scored against (every word of that kind)."""
    return {
        "person": world.person_names,
        "pet": world.pet_names,
        "place": world.city_names,
        "object": list(OBJECTS),
    }


# ---------------------------------------------------------------------------
# Sentences. Each kind has clue templates (they state the answer), last-sentence
# templates (they end on it) and lure templates (another thing of the same kind).


@dataclass(frozen=True)
class _Scene:
    """What a passage is about: P, the answer, and the slots its templates use."""

    p: Person
    answer: str
    slots: dict[str, str]


def _landmark(world: World, city: str) -> str:
    return next(x.landmark for x in world.places if x.name == city)


def _person_scene(rng: random.Random, world: World, p: Person) -> _Scene:
    q = rng.choice([x for x in world.people if x.name not in (p.name, p.friend)])
    return _Scene(
        p, q.name, {"q_job": a_an(q.job), "q_city": q.city, "place": _landmark(world, p.city)}
    )


def _pet_scene(rng: random.Random, world: World, p: Person) -> _Scene:
    q = rng.choice([x for x in world.people if x.name != p.name])
    return _Scene(p, q.pet_name, {"owner": q.name, "pet": q.pet, "owner_poss": q.poss})


def _place_scene(rng: random.Random, world: World, p: Person) -> _Scene:
    c = rng.choice([x for x in world.places if x.name != p.city])
    return _Scene(p, c.name, {"feature": c.feature, "landmark": c.landmark})


def _object_scene(rng: random.Random, world: World, p: Person) -> _Scene:
    giver = rng.choice([x for x in world.people if x.name != p.name])
    return _Scene(p, rng.choice(OBJECTS), {"giver": giver.name})


SCENES: dict[str, Callable[[random.Random, World, Person], _Scene]] = {
    "person": _person_scene,
    "pet": _pet_scene,
    "place": _place_scene,
    "object": _object_scene,
}

# {n}: P's name, {X}: the answer, {poss}: her/his, {home}: P's city; kind slots as above.
CLUES = {
    "person": (
        "{n} met {X} at {place}.",
        "At the market, {n} ran into {X}, {q_job} from {q_city}.",
        "{n} had lunch with {X} in {home}.",
        "{X} came to visit {n} that morning.",
    ),
    "pet": (
        "{n} looked after {X}, {owner}'s {pet}, for the day.",
        "{owner} asked {n} to look after {X}, {owner_poss} {pet}.",
        "{n} took {X}, the {pet} of {owner}, to the park.",
    ),
    "place": (
        "{n} took the train from {home} to {X}.",
        "{n} spent the day in {X}, a city {feature}.",
        "{n} went to {X} to see {landmark}.",
    ),
    "object": (
        "At the market in {home}, {n} bought a new {X}.",
        "{n} found an old {X} in the attic.",
        "{giver} gave {n} a {X} as a present.",
    ),
}
LAST = {
    "person": (
        "Before going home, {n} said goodbye to {X}",
        "At the end of the day, {n} waved goodbye to {X}",
        "{n} promised to write a letter to {X}",
    ),
    "pet": (
        "In the evening, {n} gave a treat to {X}",
        "Back in {home}, {n} fed {X}",  # a pretraining story's ending names P's own pet here
        "{n} was sad to say goodbye to {X}",
    ),
    "place": (
        "On the way home, {n} thought about the day in {X}",
        "{n} promised to visit {X}",
        "It had been a long trip, but {n} was glad to have seen {X}",
    ),
    "object": (
        "{n} was very happy with the {X}",
        "{n} showed everyone the {X}",
        "{n} smiled and looked at the {X}",
    ),
}
LURES = {
    "person": (
        "{L} was selling flowers nearby.",
        "{n} walked past the house of {L}.",
        "{n} saw {L} across the street.",
    ),
    "pet": (
        "{n} thought about {own}, {poss} own {own_pet}, at home.",
        "{L}, a sleepy {L_pet}, was lying in the sun.",
    ),
    "place": (
        "{n} remembered a trip to {L} years ago.",
        "A friend of {n} had once lived in {L}.",
    ),
    "object": (
        "{n} also looked at a {L}, but it was too expensive.",
        "There was a {L} in a shop window.",
    ),
}
OPENINGS = (
    "One morning, {n} left {poss} house in {home}.",
    "{n}, {a_job} from {home}, had a free day.",
    "It was a quiet day in {home}, and {n} was not working.",
)
NEUTRAL = (
    "It started to rain for a while.",
    "The sky was grey, and the wind was cold.",
    "The sun came out in the afternoon.",
    "{n} stopped for a cup of tea.",
    "{n} bought some {food} for lunch.",
    "{n} sat on a bench and read a newspaper.",
    "The streets were busy with people.",
    "{n} thought about {poss} work as {a_job}.",
    "A small band was playing music in the square.",
    "{n} felt a little tired after the long walk.",
)
# Facts about P that name nothing of a kind (the canonical pretraining phrasings).
NEUTRAL_FACTS = ("job", "food", "age", "color", "hobby")


def _lure(rng: random.Random, world: World, kind: str, scene: _Scene) -> tuple[str, str]:
    """(template, sentence) of a lure: another thing of the answer's kind."""
    p = scene.p
    if kind == "person":
        others = [x.name for x in world.people if x.name not in (p.name, scene.answer)]
        slots = {"L": rng.choice(others)}
    elif kind == "pet":
        other = rng.choice(
            [x for x in world.people if x.pet_name not in (scene.answer, p.pet_name)]
        )
        slots = {"own": p.pet_name, "own_pet": p.pet, "L": other.pet_name, "L_pet": other.pet}
    elif kind == "place":
        slots = {"L": rng.choice([c for c in world.city_names if c != scene.answer])}
    else:
        slots = {"L": rng.choice([o for o in OBJECTS if o != scene.answer])}
    template = rng.choice(LURES[kind])
    return template, _fill(template, p, scene, slots)


def _neutral(rng: random.Random, scene: _Scene) -> tuple[str, str]:
    """(template, sentence) of a distractor that names nothing of any kind but P."""
    if rng.random() < 0.3:
        attr = rng.choice(NEUTRAL_FACTS)
        return f"fact:{attr}", fact(rng, scene.p, attr)
    template = rng.choice(NEUTRAL)
    return template, _fill(template, scene.p, scene, {})


def _fill(template: str, p: Person, scene: _Scene, extra: dict[str, str]) -> str:
    slots = {
        "n": p.name,
        "X": scene.answer,
        "poss": p.poss,
        "home": p.city,
        "a_job": a_an(p.job),
        "food": p.food,
        **scene.slots,
        **extra,
    }
    return capitalize(template.format(**slots))


_WORDS = re.compile(r"\w[\w'-]*")


def _mentions(text: str, word: str) -> int:
    """How often `word` occurs in `text` as a whole word."""
    return len(re.findall(rf"(?<!\w){re.escape(word)}(?!\w)", text))


def passage(rng: random.Random, world: World, kind: str, distance: int) -> Passage:
    """A passage of `kind` whose clue is `distance` sentences before the blank."""
    p = rng.choice(world.people)
    scene = SCENES[kind](rng, world, p)
    opening = _fill(rng.choice(OPENINGS), p, scene, {})
    clue = _fill(rng.choice(CLUES[kind]), p, scene, {})
    middle: list[str] = []
    used: set[str] = set()
    lures = 0
    while len(middle) < distance - 1:
        is_lure = rng.random() < LURE_RATE
        template, s = _lure(rng, world, kind, scene) if is_lure else _neutral(rng, scene)
        if template in used or _mentions(s, scene.answer):
            continue  # no template twice in a passage; a distractor never names the answer
        used.add(template)
        middle.append(s)
        lures += is_lure
    last = _fill(rng.choice(LAST[kind]), p, scene, {})
    text = " ".join((opening, clue, *middle, last))
    if _mentions(opening, scene.answer) or _mentions(text, scene.answer) != 2:
        raise AssertionError(f"long_range: the answer must be stated once before the blank: {text}")
    after = text[text.index(clue) :]
    at = after.index(scene.answer) + len(scene.answer)
    return Passage(
        text=text,
        answer=scene.answer,
        kind=kind,
        distance=distance,
        distance_words=len(_WORDS.findall(after[at:])) - 1,  # the answer is not between
        lures=lures,
        person=p.name,
        key=f"{kind}:{p.name}:{scene.answer}",
    )


def build_long_range(
    world: World, seed: int, n_train: int, n_test: int, max_distance: int = MAX_DISTANCE
) -> dict[str, list[dict]]:
    """{"train": records, "test": records}: balanced over distances 1..max_distance and kinds.

    Record i of a split has distance ``1 + i % max_distance`` and kind
    ``KINDS[(i // max_distance) % len(KINDS)]`` before the final shuffle, so
    every distance has (nearly) the same count and every kind appears at it.
    """
    if not 1 <= max_distance <= 10:
        raise ValueError(f"max_distance must be 1..10, got {max_distance}")
    rng = component_rng(seed, FAMILY)
    out: dict[str, list[dict]] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        rows: list[dict] = []
        seen: set[str] = set()
        for i in range(n):
            distance = 1 + i % max_distance
            kind = KINDS[(i // max_distance) % len(KINDS)]
            for _ in range(10_000):
                ps = passage(rng, world, kind, distance)
                if ps.text not in seen and split_of(seed, FAMILY, ps.key) == split:
                    break
            else:  # the world is too small for this many distinct passages
                break
            seen.add(ps.text)
            rows.append(ps.record(seed))
        rng.shuffle(rows)
        out[split] = rows
    return out
