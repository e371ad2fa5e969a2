"""Pretraining text: fact paragraphs, Q&A, stories, places, events, arithmetic, puzzles.

Each generator returns one document: lines of text with no blank line inside,
so documents can be joined with a blank line. Problems that also exist as
instruction tasks (arithmetic, word problems, puzzles, fact Q&A) are drawn
only from the train split, so the test split never appears in the pretraining
text; plain facts about every person do appear, by design — fact questions
test whether a model can use what it read. Held-out families never appear:
their document kind is dropped (their puzzles, for the puzzle documents).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Collection, Iterator

from .entities import World
from .facts_text import fact, profile
from .grammar import a_an, capitalize, join_and
from .labelled_text import SENTIMENT_LABELS, TOPIC_LABELS, review, topic_sentence
from .problems import Problem
from .seeding import split_of
from .tasks import DEFAULT_HELDOUT_TASKS, FAMILIES
from .templates import templates_for


def _train_problem(rng: random.Random, world: World, seed: int, family: str) -> Problem:
    """A random problem of `family` from the train split (never val/test)."""
    fam = FAMILIES[family]
    while True:
        p = fam.generate(rng, world, rng.choice(fam.difficulties))
        if split_of(seed, family, p.key) == "train":
            return p


def profile_doc(rng: random.Random, world: World, seed: int) -> str:
    return profile(rng, world, rng.choice(world.people))


def qa_doc(rng: random.Random, world: World, seed: int) -> str:
    lines = []
    for _ in range(rng.randint(3, 6)):
        p = _train_problem(rng, world, seed, "facts")
        template = rng.choice(templates_for("facts", p.subtask, heldout=False))
        lines.append(f"Question: {template.render(p.fields)}")
        lines.append(f"Answer: {p.answer}")
    return "\n".join(lines)


def story_doc(rng: random.Random, world: World, seed: int) -> str:
    """A short story tying a person, their pet, their best friend and places together."""
    p = rng.choice(world.people)
    f = world.person(p.friend)
    place = next(x for x in world.places if x.name == p.city)
    opening = rng.choice(
        (
            f"One morning, {p.name} left {p.poss} house in {p.city}.",
            f"{p.name}, {a_an(p.job)} from {p.city}, had a free day.",
            f"It was a quiet day in {p.city}, and {p.name} was not working.",
        )
    )
    where = "who also lives in " + p.city if f.city == p.city else f"who had come from {f.city}"
    walk = f"{p.name} took {p.pet_name}, {p.poss} {p.pet}, for a walk to {place.landmark}."
    walks = rng.random() < 0.7
    meet = (
        f"{'There' if walks else 'That day'} {p.name} met {p.poss} best friend {f.name}, {where}."
    )
    # Scenes about "they" / the friend come after the meeting, in random order.
    together = [
        f"They shared a big plate of {p.food}, {p.name}'s favourite food.",
        f"{f.name} talked about {f.poss} work as {a_an(f.job)}.",
        f"In the afternoon they spent some time {f.hobby}, which {f.name} loves.",
        f"{f.name}, who is {f.age} years old, told a story about {f.poss} {f.pet}, {f.pet_name}.",
    ]
    events = [e for e in world.events if p.name in e.attendees]
    if events:
        e = rng.choice(events)
        together.append(f"They remembered {e.name} in {e.city} back in {e.month} {e.year}.")
    rng.shuffle(together)
    chosen = ([walk] if walks else []) + [meet] + together[: rng.randint(1, 4)]
    ending = rng.choice(
        (
            f"In the evening {p.name} went home to {p.city} with {p.pet_name}.",
            f"It had been a good day for {p.name}.",
            f"Back in {p.city}, {p.name} fed {p.pet_name} and went to sleep.",
        )
    )
    return " ".join((opening, *chosen, ending))


def place_doc(rng: random.Random, world: World, seed: int) -> str:
    place = rng.choice(world.places)
    residents = world.residents(place.name)
    lines = [
        f"{place.name} is a city in {place.country}. It lies {place.feature}.",
        f"{place.name} is known for {place.landmark}.",
    ]
    if residents:
        some = rng.sample(residents, k=min(len(residents), rng.randint(1, 5)))
        lines.append(f"People who live in {place.name} include {join_and([p.name for p in some])}.")
        lines.extend(fact(rng, p, "city") for p in some)
    held = [e for e in world.events if e.city == place.name]
    if held:
        e = rng.choice(held)
        lines.append(f"{capitalize(e.name)} was held in {place.name} in {e.year}.")
    return "\n".join(lines)


def event_doc(rng: random.Random, world: World, seed: int) -> str:
    e = rng.choice(world.events)
    name = capitalize(e.name)
    return " ".join(
        (
            rng.choice(
                (
                    f"{name} took place in {e.city} in {e.month} {e.year}.",
                    f"In {e.year}, {e.city} hosted {e.name}.",
                    f"{name} was held in {e.city} in {e.year}.",
                )
            ),
            f"It was organised by {e.organizer}.",
            f"{join_and(list(e.attendees))} went to {e.name}.",
        )
    )


def arithmetic_doc(rng: random.Random, world: World, seed: int) -> str:
    lines = []
    for _ in range(rng.randint(4, 10)):
        p = _train_problem(rng, world, seed, "arithmetic")
        f = p.fields
        lines.append(
            f"{f['a']} {f['sym']} {f['b']} = {p.answer}"
            if rng.random() < 0.7
            else f"{f['a']} {f['op_word']} {f['b']} is {p.answer}."
        )
    return "\n".join(lines)


def word_problem_doc(rng: random.Random, world: World, seed: int) -> str:
    p = _train_problem(rng, world, seed, "word_problem")
    return "\n".join((f"{p.fields['story']} {p.fields['question']}", p.cot_target()))


PUZZLES = ("counting", "reversing", "sorting", "comparing")


def puzzle_doc(
    rng: random.Random, world: World, seed: int, families: tuple[str, ...] = PUZZLES
) -> str:
    lines = []
    for _ in range(rng.randint(2, 4)):
        family = rng.choice(families)
        p = _train_problem(rng, world, seed, family)
        template = rng.choice(templates_for(family, p.subtask, heldout=False))
        lines.append(f"Question: {template.render(p.fields)}")
        lines.append(f"Answer: {p.answer}")
    return "\n".join(lines)


# Verdicts and section tags name the label word in free prose, as real reviews and news
# pages do ("Overall: positive."); never in the few-shot sets' "Sentiment:" format, so a
# model has to learn that format from the shown examples while the word-label link comes
# from pretraining.
SENTIMENT_VERDICTS = (
    "Overall: {label}.",
    "My verdict is {label}.",
    "All in all, a {label} experience.",
    "I would call it {label}.",
)
TOPIC_TAGS = ("Section: {label}.", "This is about {label}.", "Filed under {label}.")


def opinion_doc(rng: random.Random, world: World, seed: int) -> str:
    """Reviews and topical sentences, so the classification vocabulary is familiar;
    half of them state their label in words (a verdict, a section tag)."""
    tagged = rng.random() < 0.5
    if rng.random() < 0.5:
        parts = []
        for _ in range(rng.randint(1, 3)):
            label = rng.choice(SENTIMENT_LABELS)
            parts.append(review(rng, world, rng.choice((1, 2, 3)), label))
            if tagged:
                parts.append(rng.choice(SENTIMENT_VERDICTS).format(label=label))
        return " ".join(parts)
    label = rng.choice(TOPIC_LABELS)
    text = topic_sentence(rng, world, rng.choice((1, 2, 3)), label)
    return f"{text} {rng.choice(TOPIC_TAGS).format(label=label)}" if tagged else text


# (generator, weight): facts dominate so that every person's facts recur often.
DOC_KINDS: tuple[tuple[Callable[[random.Random, World, int], str], float], ...] = (
    (profile_doc, 0.28),
    (qa_doc, 0.10),
    (story_doc, 0.20),
    (place_doc, 0.06),
    (event_doc, 0.05),
    (arithmetic_doc, 0.10),
    (word_problem_doc, 0.09),
    (puzzle_doc, 0.05),
    (opinion_doc, 0.07),
)


# The task families a document kind renders problems of (kinds not listed: none).
DOC_FAMILIES = {
    qa_doc: ("facts",),
    arithmetic_doc: ("arithmetic",),
    word_problem_doc: ("word_problem",),
    puzzle_doc: PUZZLES,
}


def documents(
    rng: random.Random,
    world: World,
    seed: int,
    heldout_tasks: Collection[str] = DEFAULT_HELDOUT_TASKS,
) -> Iterator[str]:
    """An endless stream of documents drawn from DOC_KINDS, none about `heldout_tasks`."""
    gens, weights = [], []
    for gen, weight in DOC_KINDS:
        families = tuple(f for f in DOC_FAMILIES.get(gen, ()) if f not in heldout_tasks)
        if gen in DOC_FAMILIES and not families:
            continue  # every family this kind would show is held out
        if gen is puzzle_doc:
            gen = functools.partial(puzzle_doc, families=families)
        gens.append(gen)
        weights.append(weight)
    while True:
        (gen,) = rng.choices(gens, weights=weights)
        yield gen(rng, world, seed)
