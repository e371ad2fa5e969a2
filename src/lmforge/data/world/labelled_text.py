"""Generated reviews (sentiment) and sentences (topic), with their labels.

Used by the sentiment/topic instruction families, the few-shot classification
sets and the pretraining text. Difficulty 1 states the label plainly; 2 adds a
contrast ("at first ... but ..."); 3 hides it behind a negation (sentiment) or
mixes in a cue from another topic (topic).
"""

from __future__ import annotations

import random

from . import vocab
from .entities import World
from .grammar import capitalize
from .problems import CHOICE, Problem

SENTIMENT_LABELS = ("negative", "positive")
TOPIC_LABELS = tuple(vocab.TOPIC_CUES)


def _subject(rng: random.Random, world: World) -> str:
    subject = rng.choice(vocab.REVIEW_SUBJECTS)
    if rng.random() < 0.5:
        subject = f"{subject} in {rng.choice(world.places).name}"
    return subject


def review(rng: random.Random, world: World, difficulty: int, label: str) -> str:
    """A one- or two-sentence review whose sentiment is `label`."""
    good = label == "positive"
    words, other = (
        (vocab.POSITIVE_WORDS, vocab.NEGATIVE_WORDS)
        if good
        else (vocab.NEGATIVE_WORDS, vocab.POSITIVE_WORDS)
    )
    details = vocab.POSITIVE_DETAILS if good else vocab.NEGATIVE_DETAILS
    subj = _subject(rng, world)
    adj, opp = rng.choice(words), rng.choice(other)
    if difficulty == 1:
        text = f"{capitalize(subj)} was {adj}. {capitalize(rng.choice(details))}."
    elif difficulty == 2:
        text = rng.choice(
            (
                f"At first {subj} seemed {opp}, but in the end it was {adj}.",
                f"Some people say {subj} is {opp}, but I found it {adj}.",
                f"{capitalize(subj)} looked {opp} from outside, but it was really {adj}.",
            )
        )
    else:
        text = rng.choice(
            (
                f"I would not say {subj} was {opp}.",
                f"Nobody could call {subj} {opp}.",
                f"{capitalize(subj)} was not {opp} at all.",
            )
        )
    if rng.random() < 0.3:
        text = f"{rng.choice(world.people).name} wrote: {text}"
    return text


def topic_sentence(rng: random.Random, world: World, difficulty: int, label: str) -> str:
    """One to three sentences about topic `label`."""
    person, city = rng.choice(world.people).name, rng.choice(world.places).name
    cues = vocab.TOPIC_CUES[label]
    a, b = rng.sample(cues, k=2)
    main = rng.choice(vocab.TOPIC_FRAMES).format(person=person, city=city, a=a)
    extra = rng.choice(vocab.TOPIC_EXTRA_FRAMES)
    if difficulty == 1:
        return f"{capitalize(main)} {extra.format(person=person, city=city, b=b)}"
    if difficulty == 2:
        return capitalize(main)
    # Two cues of the topic, one of another: the majority decides.
    other = rng.choice([t for t in TOPIC_LABELS if t != label])
    distractor = rng.choice(vocab.TOPIC_CUES[other])
    extra2 = rng.choice([f for f in vocab.TOPIC_EXTRA_FRAMES if f != extra])
    return " ".join(
        (
            capitalize(main),
            extra.format(person=person, city=city, b=distractor),
            extra2.format(person=person, city=city, b=b),
        )
    )


def sentiment(rng: random.Random, world: World, difficulty: int) -> Problem:
    label = rng.choice(SENTIMENT_LABELS)
    text = review(rng, world, difficulty, label)
    return Problem(
        "sentiment", "review", difficulty, text, {"text": text}, label, CHOICE, SENTIMENT_LABELS
    )


def topic(rng: random.Random, world: World, difficulty: int) -> Problem:
    label = rng.choice(TOPIC_LABELS)
    text = topic_sentence(rng, world, difficulty, label)
    return Problem(
        "topic", "sentence", difficulty, text, {"text": text}, label, CHOICE, TOPIC_LABELS
    )
