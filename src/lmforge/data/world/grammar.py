"""Small English helpers for generated sentences."""

from __future__ import annotations

from collections.abc import Sequence

_ORDINALS = (
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
)


def a_an(noun: str) -> str:
    """'a cat', 'an owl'."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def ordinal(n: int) -> str:
    """1 -> 'first' ... 10 -> 'tenth'."""
    return _ORDINALS[n - 1]


def join_and(items: Sequence[str]) -> str:
    """['a'] -> 'a'; ['a', 'b', 'c'] -> 'a, b and c'."""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def capitalize(text: str) -> str:
    """Upper-case the first character only (keeps names inside the sentence as they are)."""
    return text[:1].upper() + text[1:]


def possessive(name: str) -> str:
    """'Anna' -> "Anna's"."""
    return name + "'s"
