"""The next-token objective: batches (x, y) of int64 (B, T), y being x shifted by one."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class CausalLMObjective:
    """Mean cross-entropy of predicting `y` from `x` with `model(x, targets=y)`.

    Stateless. The model computes its loss itself (`forward(ids, targets)` returns
    `(logits, loss)`), so each architecture may fuse or chunk it as it likes.
    """

    def compute_loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict]:
        x, y = batch  # (B, T), (B, T)
        _, loss = model(x, targets=y)
        return loss, {}

    def count_tokens(self, batch: Any) -> int:
        return batch[0].numel()  # B * T, from the shape: no device sync
