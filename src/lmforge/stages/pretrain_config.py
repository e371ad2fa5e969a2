"""`PretrainConfig` (the pretraining stage) and `ModelOverrides` (`--model.*` on a preset)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..common import ConfigError
from ..config import field_
from .base import StageConfig


@dataclass
class ModelOverrides:
    """Model fields that `--model.<name>` may change on top of a preset (unset: keep)."""

    n_layer: int | None = field_(None, help="transformer blocks", min=1)
    n_head: int | None = field_(None, help="attention heads", min=1)
    n_kv_head: int | None = field_(None, help="key/value heads (LLaMA grouped-query)", min=1)
    d_model: int | None = field_(None, help="model width", min=1)
    d_ff: int | None = field_(None, help="feed-forward width", min=1)
    block_size: int | None = field_(None, help="context length", min=1)
    vocab_size: int | None = field_(None, help="vocabulary size (default: the tokenizer's)", min=1)
    dropout: float | None = field_(None, help="dropout probability", min=0.0, max=1.0)
    cell: str | None = field_(None, help="rnn: recurrent cell", choices=("rnn", "lstm", "gru"))
    d_embed: int | None = field_(None, help="rnn: token embedding size", min=1)
    attention: bool | None = field_(None, help="rnn: attention over past hidden states")
    attn_window: int | None = field_(None, help="rnn: positions each step attends to", min=2)

    def given(self) -> dict:
        """The overrides that were set, as {field: value}."""
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class PretrainConfig(StageConfig):
    """`lmforge pretrain`: next-token training of a GPT or LLaMA on token shards."""

    arch: str = field_("llama", help="model family", choices=("gpt", "llama", "rnn", "bert"))
    preset: str = field_("tiny", help="model size preset (see `lmforge.models` presets)")
    data: str = field_("", help="shards folder written by `lmforge data prepare`")
    seq_len: int | None = field_(
        None, help="training sequence length (default: the model's)", min=2
    )
    samples: int = field_(3, help="samples written to report.md at the end", min=0)
    sample_tokens: int = field_(64, help="new tokens per report sample", min=1)
    carry_state: bool = field_(
        True, help="rnn: carry the hidden state across consecutive windows (truncated BPTT)"
    )
    model: ModelOverrides = field(default_factory=ModelOverrides)

    def validate(self) -> None:
        super().validate()
        if not self.data:
            raise ConfigError("data", "required: the shards folder from `lmforge data prepare`")
