"""The next-token objective: batches (x, y) of int64 (B, T), y being x shifted by one."""

from __future__ import annotations

from typing import Any

from torch import nn

from .objective import LossOutput, count_targets


class CausalLMObjective:
    """Summed cross-entropy of predicting `y` from `x` with `model(x, targets=y)`.

    Stateless. The model computes its (mean) loss itself (`forward(ids, targets)`
    returns `(logits, loss)`), so each architecture may fuse or chunk it as it
    likes; the sum is that mean times the number of targets that are not -100,
    which is also `n_tokens`: masked targets (SFT prompts, padding) count for
    nothing.
    """

    def compute_loss(self, model: nn.Module, batch: Any) -> LossOutput:
        x, y = batch  # (B, T), (B, T)
        _, loss = model(x, targets=y)
        return LossOutput.from_mean(loss, count_targets(y))
