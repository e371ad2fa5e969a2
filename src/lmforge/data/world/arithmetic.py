"""Arithmetic and multi-step word problems (with chain-of-thought solutions)."""

from __future__ import annotations

import random

from . import vocab
from .entities import World
from .grammar import capitalize
from .problems import NUMBER, Problem

_OPS = {"add": ("+", "plus"), "sub": ("-", "minus"), "mul": ("*", "times")}


def _operand(rng: random.Random, digits: int) -> int:
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


def arithmetic(rng: random.Random, world: World, difficulty: int) -> Problem:
    """a op b; difficulty = digits per operand (multiplication: 1x1, 2x1, 2x2)."""
    op = rng.choice(("add", "sub", "mul"))
    if op == "mul":
        a = _operand(rng, 1 if difficulty == 1 else 2)
        b = _operand(rng, 2 if difficulty == 3 else 1)
        value = a * b
    else:
        a, b = _operand(rng, difficulty), _operand(rng, difficulty)
        if op == "sub" and b > a:
            a, b = b, a  # results stay non-negative: small models, plain numbers
        value = a + b if op == "add" else a - b
    sym, word = _OPS[op]
    return Problem(
        family="arithmetic",
        subtask=op,
        difficulty=difficulty,
        key=f"{a}{sym}{b}",
        fields={"a": str(a), "b": str(b), "sym": sym, "op_word": word},
        answer=str(value),
        answer_type=NUMBER,
    )


def _step(
    rng: random.Random, n: int, who: str, name: str, friend: str, items: str, allow_mul: bool
):
    """One story step: (sentence, reasoning line, new count); `who` is the name or a pronoun."""
    ops = ["add"]
    if n >= 2:
        ops.append("sub")  # k >= 2 below keeps every "k items" plural
    if allow_mul and 1 <= n <= 15:
        ops.append("mul")
    op = rng.choice(ops)
    if op == "add":
        k = rng.randint(2, 9)
        sentence = rng.choice(
            (
                f"{who} buys {k} more {items}.",
                f"{friend} gives {name} {k} more {items}.",
                f"{who} finds {k} more {items}.",
            )
        )
        return sentence, f"{name} gets {k} more: {n} + {k} = {n + k}.", n + k
    if op == "sub":
        k = rng.randint(2, min(9, n))
        sentence = rng.choice(
            (
                f"{who} gives {k} {items} to {friend}.",
                f"{who} loses {k} {items}.",
                f"{who} uses up {k} of the {items}.",
            )
        )
        return sentence, f"{name} has {k} fewer: {n} - {k} = {n - k}.", n - k
    k = rng.choice((2, 3))
    verb = "doubles" if k == 2 else "triples"
    sentence = f"Then the number of {items} that {name} has {verb}."
    return sentence, f"The {items} {verb[:-1]}: {n} * {k} = {n * k}.", n * k


def word_problem(rng: random.Random, world: World, difficulty: int) -> Problem:
    """A story with `difficulty` steps and `difficulty - 1` distracting numbers."""
    person = rng.choice(world.people)
    friend = person.friend
    items = rng.choice(vocab.ITEMS)
    n = rng.randint(2, 9 if difficulty == 1 else 20)
    story = [f"{person.name} has {n} {items}."]
    reasoning = [f"{person.name} starts with {n} {items}."]
    for i in range(difficulty):
        # Later steps say "she"/"he" so the model must track who is meant.
        who = capitalize(person.pronoun) if i > 0 and rng.random() < 0.5 else person.name
        sentence, line, n = _step(rng, n, who, person.name, friend, items, allow_mul=difficulty > 1)
        story.append(sentence)
        reasoning.append(line)
    for _ in range(difficulty - 1):
        other_items = rng.choice([x for x in vocab.ITEMS if x != items])
        distractor = rng.choice(
            (
                f"{friend} has {rng.randint(2, 30)} {other_items}.",
                f"{person.name}'s {person.pet} is {rng.randint(2, 15)} years old.",
                f"There are {rng.randint(2, 30)} {other_items} on the table.",
            )
        )
        # Never right before a "She ..." sentence, where it would make the pronoun ambiguous.
        slots = [
            i
            for i in range(1, len(story) + 1)
            if i == len(story) or not story[i].startswith(("She ", "He "))
        ]
        story.insert(rng.choice(slots), distractor)
    question = rng.choice(
        (
            f"How many {items} does {person.name} have now?",
            f"How many {items} does {person.name} have in the end?",
        )
    )
    text = " ".join(story)
    return Problem(
        family="word_problem",
        subtask=f"steps{difficulty}",
        difficulty=difficulty,
        key=f"{text} {question}",
        fields={"story": text, "question": question},
        answer=str(n),
        answer_type=NUMBER,
        reasoning=tuple(reasoning),
    )
