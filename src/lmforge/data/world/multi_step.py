"""Multi-step arithmetic: several operations chained, with one worked line per step.

Two presentations of the same kind of computation: an expression
(`(17 + 5) * 3 - 4`, subtask `expression`) and spoken instructions
(`Start with 12, add 7, then double it, then subtract 5`, subtask `chain`).
Difficulty is the number of operations (2, 3, 4). Numbers stay small for a
few-million-parameter model: operands up to 20, multipliers 2-5, every
intermediate result in 0..MAX_VALUE.
"""

from __future__ import annotations

import random

from .entities import World
from .grammar import capitalize
from .problems import NUMBER, Problem

STEPS = (2, 3, 4)
MAX_VALUE = 999  # no intermediate result above this
_SYM = {"add": "+", "sub": "-", "mul": "*"}


def _phrase(rng: random.Random, op: str, k: int) -> str:
    """How the `chain` presentation says one step ("add 7", "double it")."""
    if op == "add":
        return rng.choice((f"add {k}", f"add {k} to it"))
    if op == "sub":
        return rng.choice((f"subtract {k}", f"take away {k}"))
    named = {2: "double it", 3: "triple it"}.get(k)
    return rng.choice((named, f"multiply it by {k}")) if named else f"multiply it by {k}"


def _ops(rng: random.Random, start: int, steps: int) -> list[tuple[str, int, int]]:
    """`steps` operations (op, operand, result) from `start`, results within 0..MAX_VALUE."""
    out: list[tuple[str, int, int]] = []
    n = start
    for _ in range(steps):
        allowed = ["add"] if n + 2 <= MAX_VALUE else []
        if n >= 2:
            allowed.append("sub")
        if 2 <= n <= MAX_VALUE // 2:
            allowed.append("mul")
        prev = out[-1][:2] if out else None
        while True:
            op = rng.choice(allowed)
            if op == "add":
                k = rng.randint(2, min(20, MAX_VALUE - n))
            elif op == "sub":
                k = rng.randint(2, min(20, n))
            else:
                k = rng.randint(2, min(5, MAX_VALUE // n))
            # A step that undoes the one before ("add 7, then subtract 7") teaches nothing.
            undo = {"add": "sub", "sub": "add"}.get(op)
            if prev != (undo, k):
                break
        n = {"add": n + k, "sub": n - k, "mul": n * k}[op]
        out.append((op, k, n))
    return out


def _expression(start: int, ops: list[tuple[str, int, int]]) -> str:
    """Left-to-right evaluation order made explicit: '(17 + 5) * 3 - 4'."""
    expr, last = str(start), None
    for op, k, _ in ops:
        if op == "mul" and last in ("add", "sub"):
            expr = f"({expr})"
        expr = f"{expr} {_SYM[op]} {k}"
        last = op
    return expr


def multi_step(rng: random.Random, world: World, difficulty: int) -> Problem:
    """`difficulty` chained operations on small numbers, as an expression or as instructions."""
    start = rng.randint(2, 20)
    ops = _ops(rng, start, difficulty)
    sub = rng.choice(("expression", "chain"))
    values = [start] + [n for _, _, n in ops]
    # One worked line per step.
    lines = [f"{values[i]} {_SYM[op]} {k} = {n}." for i, (op, k, n) in enumerate(ops)]
    if sub == "expression":
        fields = {"expr": _expression(start, ops)}
    else:
        phrases = [_phrase(rng, op, k) for op, k, _ in ops]
        lines = [f"{capitalize(p)}: {line}" for p, line in zip(phrases, lines)]
        fields = {
            "start": str(start),
            "steps": ", then ".join(phrases),
            "step_sentences": " ".join(f"{capitalize(p)}." for p in phrases),
        }
    # The key is the computation itself, so the same chain of operations is one
    # problem (one split) whichever presentation and phrasing it was drawn with.
    key = str(start) + "".join(f"{_SYM[op]}{k}" for op, k, _ in ops)
    return Problem(
        family="multi_step",
        subtask=sub,
        difficulty=difficulty,
        key=key,
        fields=fields,
        answer=str(ops[-1][2]),
        answer_type=NUMBER,
        reasoning=tuple(lines),
    )
