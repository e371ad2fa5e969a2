"""Answer extractors: how a response to an instruction conversation is scored.

A conversation whose target can be checked records `answer`, `answer_type`
and `extractor` in its meta, so an evaluator scores chain-of-thought and
direct variants the same way: the extractor finds the final answer in the
response (after the reasoning) and compares it with `answer`.

* ``checker``: the world's checkers (`lmforge.data.world.checkers`), by
  answer_type (number, choice, sequence); world records and hand-made records
  with an answer.
* ``gsm8k``: the number after the last ``####`` (or ``Answer:``) marker, else the
  last number of the response; ``1,000`` reads as 1000.
* ``exact``: the text after an answer marker, else the whole response, equal
  to the answer after lower-casing and collapsing spaces and punctuation (T0
  completions).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...common import LmforgeError
from ..world import checkers

EXTRACTORS = ("checker", "gsm8k", "exact")
_WORDS = re.compile(r"\w+")


def _normalize(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))


def _extractor(meta: Mapping[str, Any]) -> str:
    name = meta.get("extractor")
    if name is None or "answer" not in meta:
        raise LmforgeError(
            f"conversation (template {meta.get('template')!r}) has no answer to score: "
            f"its target is free text"
        )
    if name not in EXTRACTORS:
        raise LmforgeError(f"extractor: got {name!r}; allowed: {', '.join(EXTRACTORS)}")
    return name


def extract_answer(meta: Mapping[str, Any], response: str) -> str | None:
    """The final answer a response gives, in the form `meta["answer"]` has (None if none)."""
    name = _extractor(meta)
    if name == "checker":
        return checkers.extract_answer(dict(meta), response)
    if name == "gsm8k":
        got = checkers.extract_number(response)
        return None if got is None else (str(int(got)) if got.is_integer() else str(got))
    marked = checkers.marked_answer(response)
    text = (response if marked is None else marked).strip()
    return text or None


def score(meta: Mapping[str, Any], response: str) -> float:
    """1.0 if `response` gives the conversation's answer, else 0.0."""
    name = _extractor(meta)
    if not isinstance(response, str) or not response.strip():
        return 0.0
    if name == "checker":
        return checkers.check(dict(meta), response)
    if name == "gsm8k":
        got = checkers.extract_number(response)
        try:
            want = float(str(meta["answer"]).replace(",", ""))
        except ValueError:
            raise LmforgeError(f"answer: {meta['answer']!r} is not a number") from None
        return 1.0 if got is not None and got == want else 0.0
    got = extract_answer(meta, response)
    return 1.0 if got is not None and _normalize(got) == _normalize(str(meta["answer"])) else 0.0
