"""ShareGPT `{"id", "conversations": [{"from": "human"|"gpt"|"system", "value"}, ...]}`.

Files come as one JSON array (as ShareGPT dumps and FastChat's examples are)
or as JSONL. Other keys of a record (`id`, ...) go into meta; a speaker other
than the known ones is an error naming the record.
"""

from __future__ import annotations

from ...tokenizers.chat import Conversation
from .fields import RecordError, make_conversation, need_list, need_object, need_str
from .options import FileContext

# `user` / `assistant` appear in ShareGPT-style files converted from OpenAI chats.
SPEAKERS = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}


def detect(obj: dict) -> bool:
    return "conversations" in obj


def convert(obj: dict, ctx: FileContext) -> list[Conversation]:
    turns = []
    for i, t in enumerate(need_list(obj, "conversations")):
        where = f"conversations[{i}]"
        t = need_object(t, where)
        speaker = need_str(t, "from", where=where + ".")
        if speaker not in SPEAKERS:
            raise RecordError(
                f"{where}.from",
                f"unknown speaker {speaker!r}; expected human, gpt or system (or user, assistant)",
            )
        turns.append((where, SPEAKERS[speaker], need_str(t, "value", where=where + ".")))
    meta = {k: v for k, v in obj.items() if k != "conversations"}
    return [make_conversation(turns, meta, what="conversations")]
