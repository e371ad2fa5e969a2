"""One preference record -> `PreferencePair`s, per format; margins; the HH-RLHF transcript parser.

Formats (`FORMAT_NAMES`; `detect_format` picks one from a record's keys):

| fmt | a record | read as |
|---|---|---|
| pairs | `{"prompt": str \\| [messages], "chosen": str, "rejected": str, "margin"?, "rating"?}` | as is (a string prompt is one user turn; one in HH layout, `"\\n\\nHuman: ...\\n\\nAssistant:"`, is parsed as a transcript) |
| chat | `{"chosen": [messages], "rejected": [messages]}` | the shared messages are the prompt, the final assistant turns the answers |
| hh | `{"chosen": "\\n\\nHuman: ... \\n\\nAssistant: ...", "rejected": "..."}` | HH-RLHF transcripts, parsed; the common prefix is the prompt |
| ranking | `{"prompt": ..., "ranking": [best, ..., worst]}` (2-8 strings) | every pair i < j, i the better, margin 0 |

Every other field of a record goes into `PreferencePair.meta` (the world's task,
answer, answer_type, choices, rejected_kind, ...). A record that cannot be read
raises `RecordError(field, what)` (the reader names file:line, or counts and
skips it); a well-formed HH record that yields no usable pair raises `Unusable`
(always counted by reason, never an error: real HH files hold a few).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..common import LmforgeError
from ..tokenizers.chat import ROLES, Message
from .instructions.fields import RecordError, json_type, key_list, need_list, need_object, need_str

FORMAT_NAMES = ("pairs", "chat", "hh", "ranking")
FMT_CHOICES = ("auto", *FORMAT_NAMES)
MAX_RANKING = 8  # responses in one ranking record: C(8, 2) = 28 pairs at most


@dataclass
class PreferencePair:
    """A prompt and two final assistant replies, `chosen` the better one by `margin`."""

    prompt: list[Message]  # ends with a user turn (may hold a system turn and earlier turns)
    chosen: str  # final assistant reply
    rejected: str
    margin: float = 0.0
    rating: str | None = None  # normalised ("significantly_better"), as the record gave it
    where: str = ""  # "path:line"
    meta: dict[str, Any] = field(default_factory=dict)  # every other field of the record


class Unusable(Exception):
    """A well-formed record that yields no usable pair; `reason` is the summary's count key."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------
# Margins


def normalise_rating(rating: str) -> str:
    """ "Significantly Better" / "significantly-better" -> "significantly_better"."""
    return re.sub(r"[\s\-]+", "_", rating.strip().lower())


def margin_of(obj: dict, table: dict[str, float]) -> tuple[float, str | None]:
    """(margin, normalised rating) of a record: `margin` wins, else `rating` through `table`, else 0.

    A null margin or rating counts as absent (tables exported with empty cells).
    """
    rating = obj.get("rating")
    norm = None
    if rating is not None:
        if not isinstance(rating, str):
            raise RecordError(
                "rating", f'must be a string such as "better", got {json_type(rating)}'
            )
        norm = normalise_rating(rating)
    m = obj.get("margin")
    if m is not None:
        if isinstance(m, bool) or not isinstance(m, (int, float)):
            shown = f" {m!r}"[:40] if isinstance(m, str) else ""
            raise RecordError(
                "margin", f"must be a number, got {json_type(m)}{shown}; write it as a JSON number"
            )
        if not math.isfinite(m):
            raise RecordError("margin", f"must be a finite number, got {m}")
        if m < 0:
            raise RecordError(
                "margin",
                f"must be >= 0, got {m} (chosen is the better answer: swap chosen and rejected)",
            )
        return float(m), norm
    if norm is not None:
        if norm not in table:
            allowed = ", ".join(sorted(table))
            raise RecordError(
                "rating",
                f"unknown rating {rating!r}; allowed: {allowed} (or give a rating table file)",
            )
        return table[norm], norm
    return 0.0, None


# ---------------------------------------------------------------------------
# Messages and prompts


def parse_messages(value: Any, name: str) -> list[Message]:
    """OpenAI-style `[{"role", "content"}, ...]` as Messages, each field checked."""
    if not isinstance(value, list):
        raise RecordError(name, f"must be an array of messages, got {json_type(value)}")
    out: list[Message] = []
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        m = need_object(item, where)
        role = need_str(m, "role", where=where + ".")
        content = need_str(m, "content", where=where + ".")
        if role not in ROLES:
            raise RecordError(
                f"{where}.role", f"unknown role {role!r}; expected one of {', '.join(ROLES)}"
            )
        if role == "system" and out:
            raise RecordError(
                f"{where}.role",
                "a system message is only allowed as the first message; merge it into the first",
            )
        out.append(Message(role, content))
    return out


def check_prompt(messages: list[Message], name: str) -> list[Message]:
    """A prompt must say something and end with the user turn the answers reply to."""
    if not messages or not any(m.content.strip() for m in messages):
        raise RecordError(name, "is empty; give the question the answers reply to")
    if messages[-1].role != "user":
        raise RecordError(
            f"{name}[{len(messages) - 1}].role",
            f"the prompt must end with a user turn, got {messages[-1].role}",
        )
    return messages


def parse_prompt(obj: dict, name: str = "prompt") -> list[Message]:
    """The record's prompt: a string is one user turn, an array is messages."""
    if name not in obj or obj[name] is None:
        raise RecordError(name, f"missing (this record has: {key_list(obj)})")
    value = obj[name]
    if isinstance(value, str):
        return check_prompt([Message("user", value)], name)
    if isinstance(value, list):
        return check_prompt(parse_messages(value, name), name)
    raise RecordError(name, f"must be a string or an array of messages, got {json_type(value)}")


def _extras(obj: dict, used: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in used}


def _shared(a: list[Message], b: list[Message]) -> int:
    """How many leading messages `a` and `b` share."""
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return k


# ---------------------------------------------------------------------------
# HH-RLHF transcripts

_HH_TURN = re.compile(r"\n\n(Human|Assistant):")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def _split_hh(text: str) -> list[Message]:
    """The turns of an HH transcript; ValueError saying what is wrong with it."""
    if re.match(r"(Human|Assistant):", text):
        text = "\n\n" + text  # some exports drop the leading blank line
    parts = _HH_TURN.split(text)  # [before, speaker, text, speaker, text, ...]
    if len(parts) == 1:
        raise ValueError(
            'not an HH-RLHF transcript (no "\\n\\nHuman:" or "\\n\\nAssistant:" turns)'
        )
    if parts[0].strip():
        raise ValueError(f'text before the first "\\n\\nHuman:" turn: {parts[0][:30]!r}')
    return [
        Message(_HH_ROLES[speaker], body[1:] if body.startswith(" ") else body)
        for speaker, body in zip(parts[1::2], parts[2::2])
    ]


def parse_hh_transcript(text: str, where: str = "") -> list[Message]:
    """An HH-RLHF transcript as user/assistant Messages.

    Turns start at "\\n\\nHuman:" / "\\n\\nAssistant:"; the one space after the
    colon is dropped, everything else kept as written (an answer may be empty).
    Raises LmforgeError (prefixed by `where`) for text with no turns or with text
    before the first turn.
    """
    try:
        return _split_hh(text)
    except ValueError as e:
        raise LmforgeError(f"{where}: {e}" if where else str(e)) from None


def _hh_side(obj: dict, side: str) -> list[Message]:
    text = need_str(obj, side)
    try:
        return _split_hh(text)
    except ValueError as e:
        hint = "" if "prompt" in obj else '; a plain-text answer needs a "prompt" field'
        raise RecordError(side, f"{e}{hint}") from None


# ---------------------------------------------------------------------------
# Converters: record -> pairs


def _is_hh(text: str) -> bool:
    return text.startswith(("\n\nHuman:", "Human:"))


def convert_pairs(obj: dict, table: dict[str, float]) -> list[PreferencePair]:
    chosen, rejected = need_str(obj, "chosen"), need_str(obj, "rejected")
    if isinstance(obj.get("prompt"), str) and _is_hh(obj["prompt"]):
        # HH-RLHF with the prompt split off ("...\n\nAssistant:" then " answer"):
        # parsed as the transcript it is, the answers lose the space after the colon.
        turns = _split_hh(obj["prompt"])
        if turns[-1].role == "assistant" and not turns[-1].content.strip():
            turns = turns[:-1]
        prompt = check_prompt(turns, "prompt")
        chosen, rejected = (t[1:] if t.startswith(" ") else t for t in (chosen, rejected))
    else:
        prompt = parse_prompt(obj)
    margin, rating = margin_of(obj, table)
    meta = _extras(obj, ("prompt", "chosen", "rejected", "margin", "rating"))
    return [PreferencePair(prompt, chosen, rejected, margin, rating, meta=meta)]


def _answer_of(messages: list[Message], prompt: list[Message] | None, side: str) -> str:
    """The final assistant reply of one side of a chat record."""
    if not messages:
        raise RecordError(side, "is empty")
    last = messages[-1]
    if prompt is not None and not (
        len(messages) == 1 or (messages[:-1] == prompt and len(messages) == len(prompt) + 1)
    ):
        raise RecordError(
            side,
            "beside a prompt field must be one assistant message (or the prompt's messages "
            "followed by one assistant message)",
        )
    if last.role != "assistant":
        raise RecordError(
            f"{side}[{len(messages) - 1}].role",
            f"must end with an assistant turn (the answer), got {last.role}",
        )
    return last.content


def convert_chat(obj: dict, table: dict[str, float]) -> list[PreferencePair]:
    chosen = parse_messages(need_list(obj, "chosen"), "chosen")
    rejected = parse_messages(need_list(obj, "rejected"), "rejected")
    given = parse_prompt(obj) if obj.get("prompt") is not None else None  # TRL's explicit prompt
    answers = _answer_of(chosen, given, "chosen"), _answer_of(rejected, given, "rejected")
    if given is not None:
        prompt = given
    else:
        k = _shared(chosen[:-1], rejected[:-1])
        if k < len(chosen) - 1 or k < len(rejected) - 1:
            raise RecordError(
                f"chosen[{k}]",
                f"chosen and rejected must share every message before their final answers; "
                f"they differ at message {k} (or write the prompt in a prompt field)",
            )
        if len(chosen) == 1:
            raise RecordError(
                "chosen", "holds only the answer: no prompt messages before it (add a prompt field)"
            )
        prompt = check_prompt(chosen[:-1], "chosen")
    margin, rating = margin_of(obj, table)
    meta = _extras(obj, ("prompt", "chosen", "rejected", "margin", "rating"))
    return [PreferencePair(prompt, *answers, margin, rating, meta=meta)]


def convert_hh(obj: dict, table: dict[str, float]) -> list[PreferencePair]:
    """The common message prefix is the prompt; each side must then hold one assistant reply.

    Transcripts that differ earlier (an extra assistant turn on one side, a
    different Human turn) are `Unusable` ("diverging before the last turn"):
    the two answers would not reply to the same prompt.
    """
    chosen, rejected = _hh_side(obj, "chosen"), _hh_side(obj, "rejected")
    if chosen[-1].role != "assistant" or rejected[-1].role != "assistant":
        raise Unusable("no final assistant turn")
    k = min(_shared(chosen, rejected), len(chosen) - 1)  # identical: the last turn is the answer
    if len(chosen) - k != 1 or len(rejected) - k != 1:
        raise Unusable("diverging before the last turn")
    prompt = chosen[:k]
    if not prompt or not any(m.content.strip() for m in prompt):
        raise Unusable("empty prompt")
    if prompt[-1].role != "user":
        raise Unusable("prompt does not end with a Human turn")
    margin, rating = margin_of(obj, table)
    meta = _extras(obj, ("chosen", "rejected", "margin", "rating"))
    return [
        PreferencePair(prompt, chosen[-1].content, rejected[-1].content, margin, rating, meta=meta)
    ]


def convert_ranking(obj: dict, table: dict[str, float]) -> list[PreferencePair]:
    prompt = parse_prompt(obj)
    ranking = need_list(obj, "ranking")
    if not 2 <= len(ranking) <= MAX_RANKING:
        raise RecordError(
            "ranking", f"must hold 2 to {MAX_RANKING} responses, best first; got {len(ranking)}"
        )
    for i, r in enumerate(ranking):
        if not isinstance(r, str):
            raise RecordError(f"ranking[{i}]", f"must be a string, got {json_type(r)}")
    extras = _extras(obj, ("prompt", "ranking"))
    k = len(ranking)
    return [
        PreferencePair(
            list(prompt),
            ranking[i],
            ranking[j],
            meta={**extras, "ranking_size": k, "rank_pair": (i, j)},
        )
        for i in range(k)
        for j in range(i + 1, k)
    ]


CONVERTERS: dict[str, Callable[[dict, dict[str, float]], list[PreferencePair]]] = {
    "pairs": convert_pairs,
    "chat": convert_chat,
    "hh": convert_hh,
    "ranking": convert_ranking,
}


def detect_format(obj: dict) -> str:
    """The format of a record from its keys, or a RecordError saying what it looks like."""
    if "ranking" in obj:
        return "ranking"
    if "chosen" in obj and "rejected" in obj:
        if isinstance(obj["chosen"], list):
            return "chat"
        return "pairs" if obj.get("prompt") is not None else "hh"
    for have, lacks in (("chosen", "rejected"), ("rejected", "chosen")):
        if have in obj:
            raise RecordError(lacks, f"missing (this record has: {key_list(obj)})")
    if "messages" in obj or "conversations" in obj:
        raise RecordError(
            "", "looks like chat or instruction data, not preference pairs (read_prompts reads it)"
        )
    if "prompt" in obj:
        raise RecordError(
            "chosen", "missing: a prompt without chosen/rejected answers (read_prompts reads it)"
        )
    raise RecordError(
        "",
        f"matches no preference format (keys: {key_list(obj)}); expected "
        '"prompt"+"chosen"+"rejected" (pairs), "chosen"/"rejected" message arrays (chat), '
        '"chosen"/"rejected" HH-RLHF transcripts (hh) or "prompt"+"ranking" (ranking)',
    )
