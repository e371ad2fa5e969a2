"""Recover the raw fields of a pre-rendered world record through its world template.

A world instruction record carries its template id (`sentiment/t3`) and its
answer in meta but not the slots it was rendered from. The template's text is a
`str.format` pattern, so the slots can be read back from the user turn with a
regular expression built from it; with the answer (and, for a chain-of-thought
record, the reasoning lines) they feed the registry's inverted templates.
"""

from __future__ import annotations

import functools
import re
import string

from ...tokenizers.chat import Conversation
from ..world.templates import COT_INSTRUCTION, DIRECT_INSTRUCTIONS, TEMPLATES

# Every world template by id, and the ids of the held-out ones.
WORLD_TEMPLATES = {
    t.id: t for subs in TEMPLATES.values() for seen, held in subs.values() for t in (*seen, *held)
}
WORLD_HELDOUT = frozenset(tid for tid, t in WORLD_TEMPLATES.items() if t.heldout)


@functools.lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern:
    """`text`'s literal parts, escaped, with one named group per slot (a repeat must match)."""
    out, seen = [], set()
    for literal, name, _, _ in string.Formatter().parse(text):
        out.append(re.escape(literal))
        if name:
            out.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
            seen.add(name)
    return re.compile("".join(out), re.DOTALL)


def world_fields(conv: Conversation) -> dict[str, str] | None:
    """The slots, answer (and reasoning, problem) of a single-turn world record; None otherwise."""
    template = WORLD_TEMPLATES.get(str(conv.meta.get("template")))
    users = [m for m in conv.messages if m.role == "user"]
    replies = [m for m in conv.messages if m.role == "assistant"]
    if template is None or len(users) != 1 or len(replies) != 1 or "answer" not in conv.meta:
        return None
    prompt = users[0].content
    for suffix in (COT_INSTRUCTION, *DIRECT_INSTRUCTIONS.values()):
        prompt = prompt.removesuffix("\n" + suffix)
    m = _pattern(template.text).fullmatch(prompt)
    if m is None:
        return None
    fields = dict(m.groupdict())
    fields["answer"] = str(conv.meta["answer"])
    if conv.meta.get("cot"):
        # The CoT target is the reasoning lines, then "Answer: X".
        lines = replies[0].content.split("\n")
        fields["reasoning"] = "\n".join(lines[:-1]) if len(lines) > 1 else ""
    if "story" in fields and "question" in fields:
        fields["problem"] = f"{fields['story']} {fields['question']}"
    return fields
