"""Alpaca `{"instruction", "input", "output"}` and Self-Instruct seed tasks
`{"instruction", "instances": [{"input", "output"}, ...], "name", ...}`.

Both carry raw fields, so the conversation is rendered through the registry's
`alpaca/forward/t1` (instruction, then the input if there is one) and the fields
stay in meta (`fields`, `fields_kind`) for a mixture to rephrase. A Self-Instruct
task gives one conversation per instance; its `name` becomes `subtask`.
"""

from __future__ import annotations

from typing import Any

from ...tokenizers.chat import Conversation
from .fields import RecordError, need_list, need_object, need_str, optional_str_meta
from .options import FileContext
from .registry import TEMPLATES, render_conversation

DEFAULT_TEMPLATE = "alpaca/forward/t1"


def detect_alpaca(obj: dict) -> bool:
    return "instruction" in obj and "output" in obj


def detect_self_instruct(obj: dict) -> bool:
    return "instruction" in obj and "instances" in obj


def _render(fields: dict[str, str], meta: dict[str, Any], where: str = "") -> Conversation:
    """`where` prefixes the output's field name (a Self-Instruct instance)."""
    meta = {**meta, "fields_kind": "alpaca", "fields": fields}
    conv = render_conversation(TEMPLATES[DEFAULT_TEMPLATE], fields, meta)
    if conv is None:  # the template needs both
        empty = "instruction" if not fields["instruction"].strip() else f"{where}output"
        raise RecordError(empty, "is empty")
    return conv


def convert_alpaca(obj: dict, ctx: FileContext) -> list[Conversation]:
    fields = {
        "instruction": need_str(obj, "instruction"),
        "input": need_str(obj, "input", optional=True),
        "output": need_str(obj, "output"),
    }
    meta = {k: v for k, v in obj.items() if k not in fields}
    optional_str_meta(meta, "task", "subtask")
    return [_render(fields, meta)]


def convert_self_instruct(obj: dict, ctx: FileContext) -> list[Conversation]:
    instruction = need_str(obj, "instruction")
    instances = need_list(obj, "instances")
    meta = {k: v for k, v in obj.items() if k not in ("instruction", "instances")}
    meta.setdefault("task", "self_instruct")
    if isinstance(meta.get("name"), str):
        meta.setdefault("subtask", meta["name"])
    optional_str_meta(meta, "task", "subtask")
    out = []
    for j, inst in enumerate(instances):
        where = f"instances[{j}]."
        inst = need_object(inst, where[:-1])
        fields = {
            "instruction": instruction,
            "input": need_str(inst, "input", where=where, optional=True),
            "output": need_str(inst, "output", where=where),
        }
        out.append(_render(fields, {**meta, "instance": j} if len(instances) > 1 else meta, where))
    return out
