"""GSM8K `{"question", "answer"}`: the answer is reasoning steps, then a final `#### n` line.

The conversation is the question through the registry's `gsm8k/cot/t1` (the
world's "Let's think step by step.", target: the steps and `#### n`) or, with
the direct option, `gsm8k/direct/t1` (target: the number); `both` gives the
two. `<<48/2=24>>` calculator annotations are removed from the steps unless
kept by option. Meta: task "gsm8k", answer n (commas dropped), answer_type
"number", cot, extractor "gsm8k", and the raw fields for a mixture to rephrase.
"""

from __future__ import annotations

import re

from ...tokenizers.chat import Conversation
from .fields import RecordError, need_str, optional_str_meta
from .options import FileContext
from .registry import TEMPLATES, render_conversation

CALCULATOR = re.compile(r"<<[^<>]*>>")
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
VARIANTS = {"cot": ("gsm8k/cot/t1",), "direct": ("gsm8k/direct/t1",)}
VARIANTS["both"] = VARIANTS["cot"] + VARIANTS["direct"]


def detect(obj: dict) -> bool:
    return "question" in obj and "answer" in obj


def gsm8k_fields(obj: dict, calculator: str = "remove") -> dict[str, str]:
    """question, solution (the steps), final (`#### n` as written) and answer (n without commas)."""
    question = need_str(obj, "question").strip()
    answer = need_str(obj, "answer")
    if not question:
        raise RecordError("question", "is empty")
    steps, marker, final = answer.rpartition("####")
    if not marker:
        raise RecordError("answer", "has no final '#### <number>' line")
    final = final.strip()
    if not _NUMBER.fullmatch(final):
        raise RecordError("answer", f"the final '####' line ({final[:40]!r}) is not a number")
    if calculator == "remove":
        steps = CALCULATOR.sub("", steps)
    return {
        "question": question,
        "solution": steps.strip(),
        "final": final,
        "answer": final.replace(",", ""),
    }


def convert(obj: dict, ctx: FileContext) -> list[Conversation]:
    fields = gsm8k_fields(obj, ctx.options.calculator)
    meta = {k: v for k, v in obj.items() if k not in ("question", "answer")}
    meta.setdefault("task", "gsm8k")
    optional_str_meta(meta, "task", "subtask")
    meta.update(fields_kind="gsm8k", fields=fields)
    out = []
    for tid in VARIANTS[ctx.options.gsm8k]:
        conv = render_conversation(TEMPLATES[tid], fields, meta)
        if conv is None:  # a CoT target needs the steps
            raise RecordError("answer", "has no reasoning before the '####' line")
        out.append(conv)
    return out
