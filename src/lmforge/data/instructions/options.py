"""How instruction files are read: the options, and what a converter knows about its file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...common import LmforgeError
from .records import DEFAULT_TEXT_LIMIT

FORMAT_NAMES = ("messages", "prompt_completion", "sharegpt", "self_instruct", "alpaca", "gsm8k")
FMT_CHOICES = ("auto", *FORMAT_NAMES)
CALCULATOR_CHOICES = ("remove", "keep")
GSM8K_CHOICES = ("cot", "direct", "both")


@dataclass(frozen=True)
class ReadOptions:
    """fmt: a format name, or "auto" to detect it per file from its first valid record.
    skip_bad_lines: count and skip unusable records instead of stopping at the first.
    calculator: GSM8K `<<48/2=24>>` annotations removed or kept.
    gsm8k: GSM8K as chain-of-thought (reasoning, then `#### n`), direct (the number) or both.
    text_limit: the longest record, in characters (it bounds the memory one record takes).
    """

    fmt: str = "auto"
    skip_bad_lines: bool = False
    calculator: str = "remove"
    gsm8k: str = "cot"
    text_limit: int = DEFAULT_TEXT_LIMIT

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("fmt", self.fmt, FMT_CHOICES),
            ("calculator", self.calculator, CALCULATOR_CHOICES),
            ("gsm8k", self.gsm8k, GSM8K_CHOICES),
        ):
            if value not in allowed:
                raise LmforgeError(f"{name}: got {value!r}; allowed: {', '.join(allowed)}")
        if not isinstance(self.text_limit, int) or self.text_limit < 1:
            raise LmforgeError(f"text_limit: must be a positive integer, got {self.text_limit!r}")


@dataclass
class FileContext:
    """The file being converted; `cache` holds what a converter works out once per file."""

    path: Path
    options: ReadOptions
    cache: dict[str, Any] = field(default_factory=dict)
