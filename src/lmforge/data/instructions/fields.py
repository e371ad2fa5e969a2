"""Checked access to the fields of one instruction record, and the checked Conversation.

Converters raise `RecordError(field, what)` for a record they cannot use; the
reader turns it into a `file:line: field: what` LmforgeError, or counts the line
as skipped (`skip_bad_lines`).
"""

from __future__ import annotations

import json
from typing import Any

from ...common import LmforgeError
from ...tokenizers.chat import ROLES, Conversation, Message


class RecordError(LmforgeError):
    """One record is unusable; `field` names the part at fault ("" for the whole record)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages ("string", "array", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def key_list(obj: dict, limit: int = 8) -> str:
    """A record's keys for a message, JSON-quoted (so one line) and at most `limit` of them."""
    keys = [json.dumps(k, ensure_ascii=False)[:40] for k in list(obj)[:limit]]
    more = f", ... ({len(obj)} keys)" if len(obj) > limit else ""
    return (", ".join(keys) + more) if keys else "none"


def need_object(value: Any, field: str = "") -> dict:
    if not isinstance(value, dict):
        raise RecordError(field, f"expected a JSON object, got {json_type(value)}")
    return value


def need_str(obj: dict, key: str, *, where: str = "", optional: bool = False) -> str:
    """`obj[key]` as a string; a missing optional field (or null) is ""."""
    name = f"{where}{key}"
    if key not in obj or (optional and obj[key] is None):
        if optional:
            return ""
        have = key_list(obj)
        raise RecordError(name, f"missing (this record has: {have})")
    value = obj[key]
    if not isinstance(value, str):
        raise RecordError(name, f"must be a string, got {json_type(value)}")
    return value


def need_list(obj: dict, key: str, *, where: str = "") -> list:
    name = f"{where}{key}"
    if key not in obj:
        have = key_list(obj)
        raise RecordError(name, f"missing (this record has: {have})")
    value = obj[key]
    if not isinstance(value, list):
        raise RecordError(name, f"must be an array, got {json_type(value)}")
    if not value:
        raise RecordError(name, "is empty")
    return value


def optional_str_meta(meta: dict, *keys: str) -> None:
    """Meta keys the mixture reads (task, template, ...) must be strings when present."""
    for key in keys:
        if key in meta and meta[key] is not None and not isinstance(meta[key], str):
            raise RecordError(key, f"must be a string, got {json_type(meta[key])}")


def make_conversation(
    turns: list[tuple[str, str, Any]], meta: dict[str, Any], what: str = "messages"
) -> Conversation:
    """A Conversation from (field name, role, content) turns, checked.

    Every role is one of ROLES, every content a string, and at least one
    assistant turn says something (there is nothing to train on otherwise).
    """
    if not turns:
        raise RecordError(what, "is empty")
    messages = []
    for field, role, content in turns:
        if role not in ROLES:
            raise RecordError(
                f"{field}.role", f"unknown role {role!r}; expected one of {', '.join(ROLES)}"
            )
        if not isinstance(content, str):
            raise RecordError(f"{field}.content", f"must be a string, got {json_type(content)}")
        if role == "system" and messages:
            raise RecordError(
                f"{field}.role",
                "a system message is only allowed as the first message; merge it into the first",
            )
        messages.append(Message(role, content))
    if not any(m.role == "assistant" and m.content.strip() for m in messages):
        raise RecordError(what, "has no assistant turn with content (nothing to learn from)")
    return Conversation(messages, meta)
