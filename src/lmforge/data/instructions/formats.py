"""The instruction formats by name, and how a file's format is recognised from a record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...tokenizers.chat import Conversation
from . import alpaca, gsm8k, messages, prompt_completion, sharegpt
from .fields import RecordError, key_list
from .options import FORMAT_NAMES, FileContext


@dataclass(frozen=True)
class Format:
    name: str
    keys: str  # what a record of this format holds, for messages
    detect: Callable[[dict], bool]
    convert: Callable[[dict, FileContext], list[Conversation]]


# In detection order: the first whose keys a record has wins.
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("messages", '"messages"', messages.detect, messages.convert),
        Format("sharegpt", '"conversations"', sharegpt.detect, sharegpt.convert),
        Format(
            "prompt_completion",
            '"prompt" and "completion"',
            prompt_completion.detect,
            prompt_completion.convert,
        ),
        Format(
            "self_instruct",
            '"instruction" and "instances"',
            alpaca.detect_self_instruct,
            alpaca.convert_self_instruct,
        ),
        Format("alpaca", '"instruction" and "output"', alpaca.detect_alpaca, alpaca.convert_alpaca),
        Format("gsm8k", '"question" and "answer"', gsm8k.detect, gsm8k.convert),
    )
}
assert tuple(sorted(FORMATS)) == tuple(sorted(FORMAT_NAMES))

# Records of other lmforge data that users pass here by mistake.
_NOT_INSTRUCTIONS = (
    (("chosen", "rejected"), "preference pairs (prompt/chosen/rejected): read them as preferences"),
    (("text", "label"), "a classification set (text/label), not instruction data"),
    (("text",), "pretraining text (a text field), not instruction data"),
)


def detect_format(obj: dict) -> Format:
    """The format of a record, or a RecordError saying what it looks like instead."""
    for fmt in FORMATS.values():
        if fmt.detect(obj):
            return fmt
    for keys, what in _NOT_INSTRUCTIONS:
        if all(k in obj for k in keys):
            raise RecordError("", f"looks like {what}")
    have = key_list(obj)
    expected = "; ".join(f"{f.keys} ({f.name})" for f in FORMATS.values())
    raise RecordError("", f"matches no instruction format (keys: {have}); expected {expected}")
