"""The underlying problem every instruction example is rendered from.

A `Problem` is the thing a split owns: its `key` names it uniquely within its
family, `seeding.split_of(seed, family, key)` decides its split, and the same
problem may be rendered through several templates (seen or held out) without
ever crossing into another split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# How a response is checked (see checkers.py).
NUMBER, CHOICE, SEQUENCE = "number", "choice", "sequence"
ANSWER_TYPES = (NUMBER, CHOICE, SEQUENCE)


@dataclass(frozen=True)
class Problem:
    family: str
    subtask: str
    difficulty: int
    key: str  # unique identity of the underlying problem within its family
    fields: dict[str, str]  # template slots
    answer: str  # canonical answer
    answer_type: str  # NUMBER, CHOICE or SEQUENCE
    choices: tuple[str, ...] = ()  # the closed answer set for CHOICE problems
    reasoning: tuple[str, ...] = field(default=())  # chain-of-thought lines (one per step)

    def cot_target(self) -> str:
        """Reasoning lines then a final 'Answer: X' line."""
        return "\n".join((*self.reasoning, f"Answer: {self.answer}"))
