"""`SFTConfig`: supervised fine-tuning on conversations, from a parent run."""

from __future__ import annotations

from dataclasses import dataclass

from ..common import ConfigError
from ..config import field_
from .base import StageConfig


@dataclass
class SFTConfig(StageConfig):
    """`lmforge sft --from RUN --data FILES|MIXTURE.yaml --out RUN2`."""

    data: list[str] = field_(
        default_factory=list,
        help="instruction files (JSONL messages, prompt/completion, Alpaca, ShareGPT, GSM8K), "
        "folders, globs, or one mixture YAML",
    )
    val_data: list[str] = field_(
        default_factory=list, help="validation conversations (default: --val-fraction of --data)"
    )
    val_fraction: float = field_(
        0.02, help="share of --data held out for validation when --val-data is not given",
        min=0.0, max=0.5,
    )  # fmt: skip
    seq_len: int = field_(0, help="packed row length (0: the model's context)", min=0)
    epochs: float | None = field_(
        None, help="passes over the data; sets --max-steps (none: use the step/token/time budget)",
        min=0.0,
    )  # fmt: skip
    fmt: str = field_(
        "auto",
        help="input format",
        choices=("auto", "messages", "prompt_completion", "sharegpt", "alpaca", "self_instruct",
                 "gsm8k"),
    )  # fmt: skip
    skip_bad_lines: bool = field_(False, help="count and skip malformed records instead of failing")
    add_chat_tokens: bool = field_(
        False,
        help="add the role tokens (<|system|> <|user|> <|assistant|> <|end|>) to a tokenizer "
        "that lacks them and grow the model's embeddings",
    )

    def validate(self) -> None:
        super().validate()
        if not self.data:
            raise ConfigError("data", "required: instruction files or a mixture YAML")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError("epochs", "must be above 0")
