"""The world's entities: people, places and events, generated from one seed.

Each person has a unique first name and a unique pet name, so every fact
("Anna lives in Harlow", "the owner of Rex lives in Harlow") has exactly one
right answer that a checker can verify.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from . import vocab


@dataclass(frozen=True)
class Place:
    name: str
    country: str
    feature: str  # "by the sea"
    landmark: str  # "an old stone bridge"


@dataclass(frozen=True)
class Person:
    name: str
    surname: str
    pronoun: str  # "she" / "he"
    age: int
    city: str
    job: str
    pet: str  # kind of animal
    pet_name: str
    food: str
    color: str
    hobby: str
    friend: str  # name of the best friend (another person)

    @property
    def poss(self) -> str:
        """Possessive pronoun: 'her' / 'his'."""
        return "her" if self.pronoun == "she" else "his"

    @property
    def obj(self) -> str:
        """Object pronoun: 'her' / 'him'."""
        return "her" if self.pronoun == "she" else "him"


@dataclass(frozen=True)
class Event:
    name: str  # "the Lantern Festival"
    city: str
    year: int
    month: str
    organizer: str
    attendees: tuple[str, ...]


@dataclass(frozen=True)
class World:
    people: tuple[Person, ...]
    places: tuple[Place, ...]
    events: tuple[Event, ...]

    def person(self, name: str) -> Person:
        for p in self.people:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def city_names(self) -> list[str]:
        return [p.name for p in self.places]

    @property
    def person_names(self) -> list[str]:
        return [p.name for p in self.people]

    @property
    def pet_names(self) -> list[str]:
        return [p.pet_name for p in self.people]

    def residents(self, city: str) -> list[Person]:
        return [p for p in self.people if p.city == city]

    def to_json(self) -> dict:
        """Plain data for world.json (lists in generation order)."""
        return {
            "people": [dataclasses.asdict(p) for p in self.people],
            "places": [dataclasses.asdict(p) for p in self.places],
            "events": [
                {**dataclasses.asdict(e), "attendees": list(e.attendees)} for e in self.events
            ],
        }


def invent_name(rng: random.Random, taken: set[str], syllables: int) -> str:
    """A new pronounceable name (e.g. 'Kalora') not in `taken` (compared case-insensitively)."""
    while True:
        name = "".join(rng.choice(vocab.NAME_SYLLABLES) for _ in range(syllables)).capitalize()
        if name.lower() not in taken:
            taken.add(name.lower())
            return name


def _unique_names(
    rng: random.Random, pool: tuple[str, ...], n: int, taken: set[str], syllables: int
) -> list[str]:
    """n distinct names: the curated pool (shuffled) first, invented names after it runs out."""
    names = [x for x in pool if x.lower() not in taken]
    rng.shuffle(names)
    names = names[:n]
    taken.update(x.lower() for x in names)
    while len(names) < n:
        names.append(invent_name(rng, taken, syllables))
    return names


def reserved_words() -> set[str]:
    """Lower-cased words that invented names must not collide with."""
    words = set()
    for group in (vocab.CITIES, vocab.COUNTRIES, vocab.PETS, vocab.JOBS, vocab.FOODS, vocab.WORDS):
        words.update(w.lower() for w in group)
    words.update(w.lower() for w in vocab.FEMALE_NAMES + vocab.MALE_NAMES + vocab.PET_NAMES)
    return words


def make_world(rng: random.Random, n_people: int, n_places: int, n_events: int) -> World:
    """Generate the world. Cities come from `vocab.CITIES`; names are unique."""
    if n_places > len(vocab.CITIES):
        raise ValueError(f"at most {len(vocab.CITIES)} places")
    if n_events > len(vocab.EVENT_KINDS) * len(vocab.EVENT_THEMES):
        raise ValueError("too many events for the name lists")
    cities = list(vocab.CITIES)
    rng.shuffle(cities)
    places = tuple(
        Place(
            name=c,
            country=vocab.COUNTRIES[i % len(vocab.COUNTRIES)],
            feature=rng.choice(vocab.CITY_FEATURES),
            landmark=rng.choice(vocab.LANDMARKS),
        )
        for i, c in enumerate(cities[:n_places])
    )

    taken = reserved_words()
    # Curated names are reserved already; drop them from `taken` only for their own draw.
    person_pool = vocab.FEMALE_NAMES + vocab.MALE_NAMES
    first_names = _unique_names(
        rng, person_pool, n_people, taken - {x.lower() for x in person_pool}, 3
    )
    taken.update(x.lower() for x in first_names)
    pet_names = _unique_names(
        rng, vocab.PET_NAMES, n_people, taken - {x.lower() for x in vocab.PET_NAMES}, 2
    )
    female = set(vocab.FEMALE_NAMES)
    people = []
    for i, name in enumerate(first_names):
        if name in female:
            pronoun = "she"
        elif name in vocab.MALE_NAMES:
            pronoun = "he"
        else:
            pronoun = rng.choice(("she", "he"))
        # Every city gets residents before any gets a second round, so no city is empty.
        city = places[i % n_places].name if i < n_places else rng.choice(places).name
        friend = first_names[(i + rng.randrange(1, n_people)) % n_people]
        people.append(
            Person(
                name=name,
                surname=rng.choice(vocab.SURNAMES),
                pronoun=pronoun,
                age=rng.randint(18, 80),
                city=city,
                job=rng.choice(vocab.JOBS),
                pet=rng.choice(vocab.PETS),
                pet_name=pet_names[i],
                food=rng.choice(vocab.FOODS),
                color=rng.choice(vocab.COLORS),
                hobby=rng.choice(vocab.HOBBIES),
                friend=friend,
            )
        )

    names = [f"the {t} {k}" for t in vocab.EVENT_THEMES for k in vocab.EVENT_KINDS]
    rng.shuffle(names)
    events = []
    for name in names[:n_events]:
        attendees = rng.sample(first_names, k=min(len(first_names), rng.randint(2, 4)))
        events.append(
            Event(
                name=name,
                city=rng.choice(places).name,
                year=rng.randint(1990, 2023),
                month=rng.choice(vocab.MONTHS),
                organizer=attendees[0],
                attendees=tuple(attendees),
            )
        )
    return World(people=tuple(people), places=places, events=tuple(events))
