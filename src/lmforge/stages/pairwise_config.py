"""`PairwiseConfig`: what the preference stages (`reward train`, `dpo`) share: pairs and their fit."""

from __future__ import annotations

from dataclasses import dataclass

from ..common import ConfigError
from ..config import field_
from .base import StageConfig


@dataclass
class PairwiseConfig(StageConfig):
    """Preference pairs (`--data`), a validation share, the rating table and the row length."""

    data: list[str] = field_(
        default_factory=list,
        help="preference files: JSONL prompt/chosen/rejected (+margin or rating), chat-form "
        "chosen/rejected message lists, HH-RLHF transcripts, rankings; files, folders, globs",
    )
    val_data: list[str] = field_(
        default_factory=list, help="validation pairs (default: --val-fraction of --data)"
    )
    val_fraction: float = field_(
        0.05, help="share of --data held out for validation when --val-data is not given",
        min=0.0, max=0.5,
    )  # fmt: skip
    fmt: str = field_(
        "auto", help="input format", choices=("auto", "pairs", "chat", "hh", "ranking")
    )
    rating_table: str = field_(
        "llama2",
        help="how a `rating` becomes a margin: llama2 (1, 2/3, 1/3, 0), llama2-large "
        "(3, 2, 1, 0) or a YAML/JSON file {rating: margin}",
    )
    skip_bad_lines: bool = field_(False, help="count and skip malformed records instead of failing")
    seq_len: int = field_(0, help="longest prompt + answer row (0: the model's context)", min=0)
    epochs: float | None = field_(
        None, help="passes over the pairs; sets --max-steps (none: use the step/token/time budget)",
        min=0.0,
    )  # fmt: skip
    share_prompt: bool = field_(
        True, help="GPT/LLaMA: one row per pair, the prompt once and both answers as branches "
        "(the same scores and losses from fewer tokens); off: a row per answer (RNN always)",
    )  # fmt: skip

    def validate(self) -> None:
        super().validate()
        if not self.data:
            raise ConfigError("data", "required: preference files (prompt/chosen/rejected)")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError("epochs", "must be above 0")
