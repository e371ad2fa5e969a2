"""Held-out loss, perplexity and bits per byte.

Bits per byte makes models with different tokenizers comparable: the loss in
nats per token, converted to bits (/ ln 2), times tokens per byte of the text
(`tokens / bytes` of the validation split, from the shards' meta.json).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..common import move_to


def bits_per_byte(loss_nats: float, tokens: int, n_bytes: int) -> float:
    """Convert a per-token loss in nats to bits per byte of text."""
    if n_bytes <= 0:
        raise ValueError("n_bytes must be positive")
    return loss_nats / math.log(2) * tokens / n_bytes


def perplexity(loss_nats: float) -> float:
    return math.exp(min(loss_nats, 700.0))  # exp overflows a float past ~709


@torch.no_grad()
def mean_loss(
    model: nn.Module,
    objective: Any,
    batches: Iterable[Any],
    *,
    device: str | torch.device,
    all_reduce_sum: Any = None,
) -> tuple[float, int]:
    """Token-weighted mean of `objective.compute_loss` over `batches`, and the token count.

    The objective returns a `LossOutput` (loss summed over `n_tokens` tokens), so
    the mean is (sum of the sums) / (sum of the counts): every counted token weighs
    the same, however the batches are sized or masked. `all_reduce_sum` (a
    function on a tensor), if given, sums across processes. The counts stay on
    the device until the end: one host sync per evaluation.
    """
    total = torch.zeros(2, dtype=torch.float64, device=device)  # (loss sum, tokens)
    for batch in batches:
        batch = move_to(batch, device)
        out = objective.compute_loss(model, batch)
        total[0] += out.loss_sum.detach().double()
        total[1] += out.n_tokens
    if all_reduce_sum is not None:
        total = all_reduce_sum(total)
    loss_sum, count = total.tolist()
    if count == 0:
        return float("nan"), 0
    return loss_sum / count, int(count)
