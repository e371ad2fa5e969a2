"""Answer checkers: did a (possibly sloppy) model response get the task right?

`check(example, response) -> float` works on any record the world writes
(instructions, dialogues, preference prompts) and on hand-made ones with an
`answer` and an `answer_type`. It returns 1.0 for a correct final answer and
0.0 otherwise, and serves both as an eval metric and as a verifiable reward.

How the final answer is found, by answer type:

* every type first looks for a marker: the last ``Answer: X`` (also
  ``The answer is: X``, ``#### X``) — when present, only the text after it counts;
* ``number``: the last number in that text (``1,234`` and ``-5`` understood);
* ``choice``: the options of the closed answer set mentioned in the text
  (whole words, any case); exactly one distinct option must be named, so a
  response that hedges ("cat or dog") earns nothing;
* ``sequence``: the items (words or numbers) of the marked text, else of the
  last non-empty line, after any ``label:`` prefix; number lists compare only
  their numbers, word lists every word, both in order.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from ...common import LmforgeError
from .problems import ANSWER_TYPES, CHOICE, NUMBER, SEQUENCE

_MARKER = re.compile(r"(?:\banswer\b(?:\s+is)?\s*[:：]|####)[ \t]*", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:\.\d+)?)")
_TOKEN = re.compile(r"[^\W\d_]+|-?\d+")


def marked_answer(response: str) -> str | None:
    """Text after the last answer marker, up to the end of its line; None without a marker."""
    last = None
    for m in _MARKER.finditer(response):
        last = m
    if last is None:
        return None
    return response[last.end() :].split("\n", 1)[0].strip()


def _numbers(text: str) -> list[float]:
    return [float(m.group(0).replace(",", "")) for m in _NUMBER.finditer(text)]


def extract_number(response: str) -> float | None:
    """The final number of a response (after an answer marker if there is one)."""
    marked = marked_answer(response)
    found = _numbers(response if marked is None else marked)
    return found[-1] if found else None


@functools.lru_cache(maxsize=1024)
def _choice_pattern(choices: tuple[str, ...]) -> re.Pattern:
    # Longest first, so "ice cream" wins over "cream" at the same position.
    alts = sorted(choices, key=lambda c: (-len(c), c))
    return re.compile(
        r"(?<!\w)(" + "|".join(re.escape(c) for c in alts) + r")(?!\w)", re.IGNORECASE
    )


def extract_choice(response: str, choices: Sequence[str]) -> str | None:
    """The one option a response names (None when it names none, or several)."""
    marked = marked_answer(response)
    text = response if marked is None else marked
    by_lower = {c.lower(): c for c in choices}
    found = {m.group(1).lower() for m in _choice_pattern(tuple(choices)).finditer(text)}
    if len(found) != 1:
        return None
    return by_lower[found.pop()]


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def extract_sequence(response: str) -> list[str]:
    """The items of the final list in a response, lower-cased."""
    marked = marked_answer(response)
    if marked is None:
        lines = [ln for ln in response.splitlines() if ln.strip()]
        marked = lines[-1] if lines else ""
    # "Sorted: 1, 2, 3" -> "1, 2, 3"
    text = marked.rsplit(":", 1)[-1]
    return _tokens(text)


def _normalize(text: str) -> str:
    return " ".join(_tokens(text))


def check_answer(
    answer: str, answer_type: str, response: str, choices: Sequence[str] = ()
) -> float:
    """1.0 if `response` gives `answer` (checked as `answer_type`), else 0.0."""
    if not isinstance(response, str) or not response.strip():
        return 0.0
    if answer_type == NUMBER:
        got = extract_number(response)
        return 1.0 if got is not None and got == float(answer) else 0.0
    if answer_type == CHOICE:
        if not choices:
            marked = marked_answer(response)
            text = response if marked is None else marked
            return 1.0 if _normalize(text) == _normalize(answer) else 0.0
        return 1.0 if extract_choice(response, choices) == answer else 0.0
    if answer_type == SEQUENCE:
        want, got = _tokens(answer), extract_sequence(response)
        if want and all(t.lstrip("-").isdigit() for t in want):
            got = [t for t in got if t.lstrip("-").isdigit()]
        return 1.0 if got == want else 0.0
    raise LmforgeError(f"answer_type: got {answer_type!r}; allowed: {', '.join(ANSWER_TYPES)}")


def infer_answer_type(example: dict) -> str:
    """For hand-made examples without `answer_type`: choices → choice, a number → number."""
    if example.get("choices"):
        return CHOICE
    try:
        float(str(example["answer"]).replace(",", ""))
        return NUMBER
    except ValueError:
        return SEQUENCE


def check(example: dict, response: str) -> float:
    """Score a model response against a world record (1.0 correct, 0.0 wrong)."""
    if "answer" not in example:
        raise LmforgeError(
            "example has no 'answer' field; checkers need the records written by `lmforge world`"
        )
    answer_type = example.get("answer_type") or infer_answer_type(example)
    return check_answer(
        str(example["answer"]), answer_type, response, tuple(example.get("choices") or ())
    )


def extract_answer(example: dict, response: str) -> str | None:
    """The answer a response gives, in canonical form (None if none could be found)."""
    answer_type = example.get("answer_type") or infer_answer_type(example)
    if answer_type == NUMBER:
        got = extract_number(response)
        return None if got is None else (str(int(got)) if got.is_integer() else str(got))
    if answer_type == CHOICE and example.get("choices"):
        return extract_choice(response, tuple(example["choices"]))
    seq = extract_sequence(response)
    return ", ".join(seq) if seq else None


def check_graded(example: dict, response: str) -> float:
    """The graded score in [0, 1] beside the binary one: see graded.py."""
    from .graded import check_graded as graded  # late: graded.py builds on this module

    return graded(example, response)
