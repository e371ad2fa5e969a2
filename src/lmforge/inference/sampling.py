"""Sampling settings and the next-token choice: greedy, temperature, top-k, top-p, penalty.

The order is the one Hugging Face's ``generate`` uses: repetition penalty, then
temperature, then top-k, then top-p, then a draw from the softmax with a seeded
``torch.Generator``. ``temperature == 0`` is greedy (argmax after the penalty).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..common import ConfigError
from ..config import field_


@dataclass
class SamplingConfig:
    """How to pick new tokens; the ``generate`` settings every stage shares."""

    max_new_tokens: int = field_(128, help="most tokens to generate per prompt", min=1)
    temperature: float = field_(1.0, help="softmax temperature (0: greedy)", min=0.0)
    top_k: int = field_(0, help="sample among the k most likely tokens (0: off)", min=0)
    top_p: float = field_(
        1.0, help="nucleus sampling: smallest set with this probability mass (1: off)", min=0.0
    )
    repetition_penalty: float = field_(
        1.0, help="divide logits of tokens already seen by this (CTRL; 1: off)", min=0.0
    )
    seed: int | None = field_(0, help="random seed of the sampler (none: nondeterministic)")
    stop_token_ids: list[int] = field_(
        default_factory=list, help="stop a row when it produces one of these ids"
    )
    stop_strings: list[str] = field_(
        default_factory=list, help="stop a row when its new text contains one of these"
    )

    def validate(self) -> None:
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError("top_p", f"must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0.0:
            raise ConfigError("repetition_penalty", f"must be > 0, got {self.repetition_penalty}")
        if any(s == "" for s in self.stop_strings):
            raise ConfigError("stop_strings", "an empty stop string would stop at once")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def apply_repetition_penalty(
    logits: torch.Tensor, seen: torch.Tensor, penalty: float
) -> torch.Tensor:
    """CTRL penalty: seen tokens' positive logits are divided, negative ones multiplied."""
    # logits (B, V) float, seen (B, V) bool
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits per row (ties at the k-th value are kept)."""
    if k <= 0 or k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches p (at least one)."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    probs = sorted_logits.softmax(dim=-1)
    # Mass strictly before each token: a token is dropped once that mass already reaches p.
    before = probs.cumsum(dim=-1) - probs
    drop_sorted = before >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def pick_next(
    logits: torch.Tensor,
    cfg: SamplingConfig,
    generator: torch.Generator | None,
    seen: torch.Tensor | None = None,
) -> torch.Tensor:
    """The next token id per row, (B, 1), from last-position logits (B, V)."""
    if seen is not None and cfg.repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits.float(), seen, cfg.repetition_penalty)
    if cfg.temperature == 0.0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / cfg.temperature
    logits = filter_top_k(logits, cfg.top_k)
    logits = filter_top_p(logits, cfg.top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)  # (B, 1)


def truncate_at_stop(text: str, stop_strings: list[str]) -> str:
    """`text` cut before the earliest stop string (unchanged when none occurs)."""
    cut = len(text)
    for s in stop_strings:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]
