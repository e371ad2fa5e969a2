"""Symbol-manipulation tasks: counting, reversing, sorting, comparing.

Difficulty grows with length (letters, words, list items) and number size;
comparing at difficulty 3 asks which of two people is older, which needs the
ages learnt from the pretraining text.
"""

from __future__ import annotations

import random

from . import vocab
from .entities import World
from .problems import CHOICE, NUMBER, SEQUENCE, Problem

# Word lengths / list lengths per difficulty (inclusive ranges).
_WORD_LEN = {1: (3, 5), 2: (6, 8), 3: (9, 12)}
_SENTENCE_LEN = {1: (3, 5), 2: (6, 9), 3: (10, 14)}
_LIST_LEN = {1: (4, 6), 2: (7, 9), 3: (10, 14)}
_SHORT_LIST = {1: (3, 3), 2: (4, 5), 3: (6, 7)}
_MAX_NUMBER = {1: 9, 2: 99, 3: 999}


def _word_of_length(rng: random.Random, difficulty: int) -> str:
    lo, hi = _WORD_LEN[difficulty]
    pool = [w for w in vocab.WORDS if lo <= len(w) <= hi]
    return rng.choice(pool)


def _csv(items: list[str]) -> str:
    return ", ".join(items)


def counting(rng: random.Random, world: World, difficulty: int) -> Problem:
    """Count a letter in a word, the words in a sentence, or one item in a list."""
    sub = rng.choice(("letters", "words", "items"))
    if sub == "letters":
        word = _word_of_length(rng, difficulty)
        present = sorted(set(word))
        absent = [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in word]
        letter = rng.choice(absent if rng.random() < 0.15 else present)
        fields = {"word": word, "letter": letter}
        answer, key = word.count(letter), f"letters:{word}:{letter}"
    elif sub == "words":
        n = rng.randint(*_SENTENCE_LEN[difficulty])
        sentence = " ".join(rng.choice(vocab.WORDS) for _ in range(n))
        fields = {"sentence": sentence}
        answer, key = n, f"words:{sentence}"
    else:
        n = rng.randint(*_LIST_LEN[difficulty])
        kinds = rng.sample(vocab.WORDS, k=rng.randint(2, 4))
        items = [rng.choice(kinds) for _ in range(n)]
        item = rng.choice(kinds)
        fields = {"items": _csv(items), "item": item}
        answer, key = items.count(item), f"items:{_csv(items)}:{item}"
    return Problem("counting", sub, difficulty, key, fields, str(answer), NUMBER)


def reversing(rng: random.Random, world: World, difficulty: int) -> Problem:
    """Reverse a list of words, or spell a word backwards."""
    sub = rng.choice(("words", "letters"))
    if sub == "words":
        items = rng.sample(vocab.WORDS, k=rng.randint(*_SHORT_LIST[difficulty]))
        fields, answer = {"items": _csv(items)}, _csv(items[::-1])
    else:
        word = _word_of_length(rng, difficulty)
        fields, answer = {"word": word}, word[::-1]
    key = f"{sub}:{fields.get('items') or fields['word']}"
    return Problem("reversing", sub, difficulty, key, fields, answer, SEQUENCE)


def sorting(rng: random.Random, world: World, difficulty: int) -> Problem:
    """Sort distinct numbers (up or down) or words (alphabetically)."""
    sub = rng.choice(("ascending", "descending", "words"))
    n = rng.randint(*_SHORT_LIST[difficulty])
    if sub == "words":
        items = rng.sample(vocab.WORDS, k=n)
        answer = sorted(items)
        fields = {"items": _csv(items)}
    else:
        numbers = rng.sample(range(_MAX_NUMBER[difficulty] + 1), k=n)
        items = [str(x) for x in numbers]
        answer = [str(x) for x in sorted(numbers, reverse=sub == "descending")]
        fields = {"items": _csv(items)}
    return Problem(
        "sorting", sub, difficulty, f"{sub}:{_csv(items)}", fields, _csv(answer), SEQUENCE
    )


def comparing(rng: random.Random, world: World, difficulty: int) -> Problem:
    """Which is larger/smaller/longer (difficulty 1-2), or which person is older (3)."""
    if difficulty == 3:
        while True:
            a, b = rng.sample(world.people, k=2)
            if a.age != b.age:
                break
        answer = a.name if a.age > b.age else b.name
        fields = {"a": a.name, "b": b.name}
        return Problem(
            "comparing",
            "older",
            3,
            f"older:{a.name}:{b.name}",
            fields,
            answer,
            CHOICE,
            choices=(a.name, b.name),
        )
    sub = rng.choice(("larger", "smaller", "longer") if difficulty == 1 else ("larger", "smaller"))
    if sub == "longer":
        while True:
            x, y = rng.sample(vocab.WORDS, k=2)
            if len(x) != len(y):
                break
        answer = x if len(x) > len(y) else y
    elif difficulty == 1:
        x, y = (str(v) for v in rng.sample(range(100), k=2))
    else:
        # Close numbers of equal length: the model must look past the first digits.
        digits = rng.choice((3, 4))
        base = rng.randint(10 ** (digits - 1), 10**digits - 100)
        u, v = rng.sample(range(base, base + 100), k=2)
        x, y = str(u), str(v)
    if sub == "larger":
        answer = max(x, y, key=int)
    elif sub == "smaller":
        answer = min(x, y, key=int)
    fields = {"a": x, "b": y}
    return Problem(
        "comparing", sub, difficulty, f"{sub}:{x}:{y}", fields, answer, CHOICE, choices=(x, y)
    )
