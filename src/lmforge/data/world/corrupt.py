"""Worse responses for preference pairs: wrong, unhelpful, or right but sloppy.

Each function returns the assistant text only. `wrong` and `unhelpful` fail
the problem's checker; `sloppy` passes it (the answer is right, the form is not).
"""

from __future__ import annotations

import random
import re

from .checkers import check_answer
from .problems import CHOICE, NUMBER, Problem

UNHELPFUL = (
    "I don't know.",
    "I'm not sure, sorry.",
    "That is a hard question.",
    "Let me think about it some other time.",
    "Why do you want to know?",
)


def wrong_answer(rng: random.Random, problem: Problem) -> str:
    """A canonical-looking answer that is not the right one."""
    answer = problem.answer
    if problem.answer_type == NUMBER:
        value = int(answer)
        delta = rng.choice((1, 2, 3, 10)) * rng.choice((-1, 1))
        if value + delta < 0:
            delta = -delta
        return str(value + delta)
    if problem.answer_type == CHOICE:
        return rng.choice([c for c in problem.choices if c != answer])
    items = answer.split(", ") if ", " in answer else list(answer)
    joiner = ", " if ", " in answer else ""
    while True:
        i, j = rng.sample(range(len(items)), k=2)
        if items[i] != items[j]:
            break
    items[i], items[j] = items[j], items[i]
    return joiner.join(items)


def _slip(line: str, answer: str, bad: str) -> str:
    """The last reasoning line, reaching `bad` instead of `answer`."""
    if re.search(r"= -?\d+\.$", line):  # "1 + 4 = 5." -> "1 + 4 = 7."
        return re.sub(r"= -?\d+\.$", f"= {bad}.", line)
    # A fact line ("Sven lives in Harlow."): its last mention of the answer.
    found = list(re.finditer(rf"(?<!\w){re.escape(answer)}(?!\w)", line))
    if not found:
        return line
    m = found[-1]
    return line[: m.start()] + bad + line[m.end() :]


def wrong(rng: random.Random, problem: Problem, cot: bool) -> str:
    """A wrong response; with CoT, the reasoning slips in its last step and ends wrong."""
    bad = wrong_answer(rng, problem)
    if not cot:
        return bad
    lines = list(problem.reasoning)
    lines[-1] = _slip(lines[-1], problem.answer, bad)
    return "\n".join((*lines, f"Answer: {bad}"))


def unhelpful(rng: random.Random, problem: Problem, cot: bool) -> str:
    return rng.choice(UNHELPFUL)


def sloppy(rng: random.Random, problem: Problem, cot: bool) -> str:
    """The right answer, carelessly written."""
    a = problem.answer
    if cot:
        # Reasoning run together in lower case, the result at the end; a number is
        # found as the last one, an option must be marked (the reasoning names others).
        squashed = " ".join(line.lower() for line in problem.reasoning)
        if problem.answer_type == NUMBER:
            return f"{squashed} so its {a}"
        return f"{squashed} so answer: {a.lower()}"
    if problem.answer_type == NUMBER:
        return rng.choice(
            (f"umm... i think its {a}??", f"{a}   ", f"the answer is {a} i guess", f"{a}!!! easy")
        )
    if problem.answer_type == CHOICE:
        return rng.choice(
            (
                f"umm i think it's {a.lower()}...",
                f"{a.upper()}!!",
                f"probably {a.lower()} lol",
                f"  {a.lower()}",
            )
        )
    items = a.split(", ") if ", " in a else [a]
    seps = (",", " ,", ",  ", " , ")
    messy = items[0]
    for item in items[1:]:
        messy += rng.choice(seps) + (item.upper() if rng.random() < 0.3 else item)
    return rng.choice((f"ok so: {messy}", f"{messy} !!", f"  {messy}"))


# kind -> (make, margin): how much better the chosen response is.
REJECTIONS = {
    "wrong": (wrong, 1.0),
    "unhelpful": (unhelpful, 0.75),
    "sloppy": (sloppy, 0.25),
}


def consistent(problem: Problem, kind: str, text: str) -> bool:
    """Does `text` score as a `kind` rejection should (sloppy passes, the others fail)?"""
    score = check_answer(problem.answer, problem.answer_type, text, problem.choices)
    return score == (1.0 if kind == "sloppy" else 0.0)
