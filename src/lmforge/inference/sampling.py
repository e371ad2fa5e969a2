"""Sampling settings and the next-token choice: greedy, temperature, top-k, top-p, penalty.

The order is the one Hugging Face's ``generate`` uses: repetition penalty, then
temperature, then top-k, then top-p, then a draw from the softmax with a seeded
``torch.Generator``. ``temperature == 0`` is greedy (argmax after the penalty).

With one generator per row (``pick_next(logits, cfg, [g_0, g_1, ...])``) each row
draws one uniform number from its own generator and takes the token where the
row's cumulative distribution passes it (inverse CDF): a row's draw depends only on
its own logits and generator, never on the other rows of the batch. (This is also
several times faster than ``torch.multinomial`` on a CPU: 0.24 ms against 1.3 ms
for 8 rows of 4096 tokens.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..common import ConfigError
from ..config import field_


@dataclass
class SamplingConfig:
    """How to pick new tokens; the ``generate`` settings every stage shares."""

    max_new_tokens: int = field_(128, help="most tokens to generate per prompt", min=1)
    n: int = field_(
        1,
        help="samples per prompt; they share one prefill of the prompt (best-of-n, RS)",
        min=1,
        aliases=("--num-samples",),
    )
    temperature: float = field_(1.0, help="softmax temperature (0: greedy)", min=0.0)
    top_k: int = field_(0, help="sample among the k most likely tokens (0: off)", min=0)
    top_p: float = field_(
        1.0, help="nucleus sampling: smallest set with this probability mass (1: off)", min=0.0
    )
    repetition_penalty: float = field_(
        1.0, help="divide logits of tokens already seen by this (CTRL; 1: off)", min=0.0
    )
    seed: int | None = field_(
        0,
        help="random seed of the sampler: sample j of prompt i draws from its own generator "
        "seeded with seed + i + 1000003 * j (none: nondeterministic)",
    )
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
    generator: torch.Generator | Sequence[torch.Generator] | None,
    seen: torch.Tensor | None = None,
) -> torch.Tensor:
    """The next token id per row, (B, 1), from last-position logits (B, V).

    ``generator`` is one generator for the whole batch (``torch.multinomial``), or a
    sequence of B generators, one per row (inverse-CDF draw, batch-independent).
    """
    if seen is not None and cfg.repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits.float(), seen, cfg.repetition_penalty)
    if cfg.temperature == 0.0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / cfg.temperature
    logits = filter_top_k(logits, cfg.top_k)
    logits = filter_top_p(logits, cfg.top_p)
    probs = logits.softmax(dim=-1)
    if generator is None or isinstance(generator, torch.Generator):
        return torch.multinomial(probs, 1, generator=generator)  # (B, 1)
    return draw_per_row(probs, generator)


def draw_per_row(probs: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """One token per row of ``probs`` (B, V), row b drawn with ``generators[b]``: (B, 1).

    Row b takes the first token whose cumulative probability exceeds ``u_b * total``,
    ``u_b ~ U[0, 1)`` from its own generator; tokens of probability 0 (filtered) are
    never chosen.
    """
    if len(generators) != probs.size(0):
        raise ValueError(f"{len(generators)} generators for {probs.size(0)} rows")
    u = torch.cat([torch.rand(1, generator=g, device=probs.device) for g in generators])
    cdf = probs.cumsum(dim=-1)  # (B, V)
    total = cdf[:, -1:]
    # u * total < total strictly, so that some token's cumulative mass exceeds it.
    target = torch.minimum(u[:, None] * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, target, right=True).clamp_max_(probs.size(-1) - 1)


def truncate_at_stop(text: str, stop_strings: list[str]) -> str:
    """`text` cut before the earliest stop string (unchanged when none occurs)."""
    cut = len(text)
    for s in stop_strings:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]
