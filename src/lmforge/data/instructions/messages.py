"""JSONL `{"messages": [{"role", "content"}, ...], ...}`: lmforge's own form (world instructions
and dialogues, OpenAI-style chat files). Every other key goes into meta."""

from __future__ import annotations

from ...tokenizers.chat import Conversation
from .fields import make_conversation, need_list, need_object, need_str, optional_str_meta
from .options import FileContext


def detect(obj: dict) -> bool:
    return "messages" in obj


def convert(obj: dict, ctx: FileContext) -> list[Conversation]:
    turns = []
    for i, m in enumerate(need_list(obj, "messages")):
        where = f"messages[{i}]"
        m = need_object(m, where)
        turns.append(
            (
                where,
                need_str(m, "role", where=where + "."),
                need_str(m, "content", where=where + "."),
            )
        )
    meta = {k: v for k, v in obj.items() if k != "messages"}
    optional_str_meta(meta, "task", "subtask", "template", "answer_type", "extractor")
    if "answer" in meta and "extractor" not in meta:
        meta["extractor"] = "checker"  # the world's checkers: by answer_type
    return [make_conversation(turns, meta)]
