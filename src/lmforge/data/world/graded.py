"""The graded checker: how close a response comes to the right answer, in [0, 1].

`check` (checkers.py) says right or wrong; `check_graded(example, response)`
gives partial credit, a denser reward for rejection sampling and PPO, and the
scores the world's preference pairs and rankings are rated by. It is
deterministic, pure Python and regex-based, and finds the answer exactly as
`check` does (same markers, same extraction), so

    check_graded == 1.0  exactly when  check == 1.0 and the form is clean.

**Score.** ``closeness`` c in [0, 1] (1 exactly when `check` passes) times a
``form`` quality f in [0.55, 1]:

* a right answer scores f: 1.0 when clean, 0.55–0.95 when sloppy;
* a wrong one scores ``WRONG_CAP * c * f`` (below 0.45), so any right answer,
  however sloppy, beats any wrong one; a response with no answer scores 0.

**Closeness**, by answer type:

* ``number``: ``exp(-|got - want| / scale)``, ``scale = max(3, |want| / 50)``:
  off by 1 or 2 of a small number keeps more than half the credit, as does
  being within ~1.4% of a large one (a year off by 10, a product off by 100);
  no number found → 0;
* ``sequence``: the longest common subsequence of the items, ``2·LCS / (len(got)
  + len(want))`` (two items swapped keep most of it, a reversed list little);
  a one-word answer (a word spelt backwards) compares its letters; no items → 0;
* ``choice``: 1 for the right option, 0 for another, several or none.

**Form** starts at 1 and loses, once each (at most 0.45 in all):

* ``spacing`` 0.05: leading/trailing or doubled spaces, a space before
  punctuation, list items not separated by ", " (cosmetic);
* ``case`` 0.05: an option or list item written in another case than the
  canonical one (``HARLOW``, ``harlow`` for Harlow) (cosmetic);
* ``filler`` 0.2: hedges and filler (``umm``, ``i think``, ``i guess``,
  ``probably``, ``lol``, ``ok so``, ``easy``);
* ``punctuation`` 0.15: ``!!``, ``??``, ``...``;
* ``answer_line`` 0.2: a chain-of-thought example (``cot`` true) whose reply has
  no line starting with an answer marker (``Answer: X``), e.g. reasoning run
  together into one line.

Cosmetic faults alone cost at most 0.1; any other fault at least 0.15 — the line
between the world's "negligibly" and "slightly" better pairs (preferences.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from ...common import LmforgeError
from .checkers import (
    _choice_pattern,
    check_answer,
    extract_number,
    extract_sequence,
    infer_answer_type,
    marked_answer,
)
from .problems import ANSWER_TYPES, CHOICE, NUMBER, SEQUENCE

WRONG_CAP = 0.45  # the most a wrong answer can score (a right one scores at least 0.55)
MAX_PENALTY = 0.45
PENALTIES = {"spacing": 0.05, "case": 0.05, "filler": 0.2, "punctuation": 0.15, "answer_line": 0.2}
COSMETIC = ("spacing", "case")

_FILLER = re.compile(
    r"\b(?:u+m+|u+h+|h+m+|i think|i guess|probably|lol|ok so|easy|dunno)\b", re.IGNORECASE
)
_PUNCT = re.compile(r"[!?]{2,}|\.{3}|…")
_SPACING = re.compile(r"(?<=\S)[ \t]{2,}(?=\S)|[ \t][,.!?;:]")
_BAD_COMMA = re.compile(r",(?! )")
_ANSWER_LINE = re.compile(r"^\s*(?:answer(?:\s+is)?\s*[:：]|####)", re.IGNORECASE | re.MULTILINE)
_RAW_TOKEN = re.compile(r"[^\W\d_]+|-?\d+")


def _sequence_text(response: str) -> str:
    """Where `extract_sequence` reads the list: the marked answer, else the last line."""
    marked = marked_answer(response)
    if marked is None:
        lines = [ln for ln in response.splitlines() if ln.strip()]
        marked = lines[-1] if lines else ""
    return marked.rsplit(":", 1)[-1]


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (O(len(a)·len(b)), lists are short)."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _overlap(got: Sequence[str], want: Sequence[str]) -> float:
    return 2 * _lcs(got, want) / (len(got) + len(want))


def number_scale(want: float) -> float:
    """How far off a number may be and keep 1/e of the credit."""
    return max(3.0, abs(want) / 50)


def closeness(answer: str, answer_type: str, response: str, choices: Sequence[str] = ()) -> float:
    """How close the answer in `response` is to `answer`: 1.0 exactly when `check_answer` passes."""
    if check_answer(answer, answer_type, response, choices) == 1.0:
        return 1.0
    if not isinstance(response, str) or not response.strip():
        return 0.0
    if answer_type == NUMBER:
        got, want = extract_number(response), float(answer)
        if got is None:
            return 0.0
        # Capped below 1: a wrong number never rounds up to a right one.
        return min(math.exp(-abs(got - want) / number_scale(want)), 0.999)
    if answer_type == CHOICE:
        return 0.0
    if answer_type == SEQUENCE:
        want, got = _RAW_TOKEN.findall(answer.lower()), extract_sequence(response)
        if want and all(t.lstrip("-").isdigit() for t in want):
            got = [t for t in got if t.lstrip("-").isdigit()]
        if not got or not want:
            return 0.0
        if len(want) == 1 and len(got) == 1:  # one word: compare its letters
            return min(_overlap(got[0], want[0]), 0.999)
        return min(_overlap(got, want), 0.999)
    raise LmforgeError(f"answer_type: got {answer_type!r}; allowed: {', '.join(ANSWER_TYPES)}")


def _case_fault(answer: str, answer_type: str, response: str, choices: Sequence[str]) -> bool:
    """Is an option or list item written in another case than its canonical spelling?"""
    if answer_type == CHOICE and choices:
        # Only where the answer is read: a reasoning line may name "the Cheese Market"
        # when the option is "cheese" (checkers.extract_choice reads the same text).
        marked = marked_answer(response)
        text = response if marked is None else marked
        canonical = {c.lower(): c for c in choices}
        return any(
            m.group(1) != canonical[m.group(1).lower()]
            for m in _choice_pattern(tuple(choices)).finditer(text)
        )
    if answer_type == SEQUENCE:
        canonical = {t.lower(): t for t in _RAW_TOKEN.findall(answer)}
        return any(
            t != canonical[t.lower()]
            for t in _RAW_TOKEN.findall(_sequence_text(response))
            if t.lower() in canonical
        )
    if answer_type == CHOICE:  # no closed set: the answer itself
        return answer.lower() in response.lower() and answer not in response
    return False


def form_faults(
    answer: str, answer_type: str, response: str, choices: Sequence[str] = (), cot: bool = False
) -> list[str]:
    """The names (keys of PENALTIES) of the form faults found in `response`."""
    faults = []
    spaced = response != response.strip() or bool(_SPACING.search(response))
    if answer_type == SEQUENCE and ", " in answer:
        spaced = spaced or bool(_BAD_COMMA.search(_sequence_text(response)))
    if spaced:
        faults.append("spacing")
    if _case_fault(answer, answer_type, response, choices):
        faults.append("case")
    if _FILLER.search(response):
        faults.append("filler")
    if _PUNCT.search(response):
        faults.append("punctuation")
    if cot and not _ANSWER_LINE.search(response):
        faults.append("answer_line")
    return faults


def form(
    answer: str, answer_type: str, response: str, choices: Sequence[str] = (), cot: bool = False
) -> float:
    """Form quality in [1 - MAX_PENALTY, 1]: 1.0 for a clean reply."""
    faults = form_faults(answer, answer_type, response, choices, cot)
    return 1.0 - min(MAX_PENALTY, sum(PENALTIES[f] for f in faults))


def graded_answer(
    answer: str, answer_type: str, response: str, choices: Sequence[str] = (), cot: bool = False
) -> float:
    """The graded score of `response` for `answer` (see the module docstring)."""
    c = closeness(answer, answer_type, response, choices)
    if c == 0.0:
        return 0.0
    f = form(answer, answer_type, response, choices, cot)
    return f if c == 1.0 else WRONG_CAP * c * f


def _fields(example: dict) -> tuple[str, str, tuple[str, ...], bool]:
    if "answer" not in example:
        raise LmforgeError(
            "example has no 'answer' field; checkers need the records written by `lmforge world`"
        )
    answer_type = example.get("answer_type") or infer_answer_type(example)
    choices = tuple(example.get("choices") or ())
    return str(example["answer"]), answer_type, choices, bool(example.get("cot"))


def check_graded(example: dict, response: str) -> float:
    """Score a response against a world record in [0, 1] (1.0: right and cleanly written)."""
    answer, answer_type, choices, cot = _fields(example)
    return graded_answer(answer, answer_type, response, choices, cot)


def example_closeness(example: dict, response: str) -> float:
    """`closeness` for a world record: how far the response's answer is from the right one."""
    answer, answer_type, choices, _ = _fields(example)
    return closeness(answer, answer_type, response, choices)


def example_faults(example: dict, response: str) -> list[str]:
    """`form_faults` for a world record."""
    answer, answer_type, choices, cot = _fields(example)
    return form_faults(answer, answer_type, response, choices, cot)
