"""The two interfaces the one loop is generic over: an objective and a batch source.

An **objective** turns a batch into a scalar loss (next-token LM, masked LM,
SFT with a loss mask, reward-model ranking, PPO's clipped surrogate, ...). A
**batch source** hands out batches and can save and restore its position, so
that resume continues the same data order. Both are duck-typed protocols: any
object with these methods plugs into `lmforge.train.loop.train`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class Objective(Protocol):
    """A loss over one micro-batch.

    `compute_loss(model, batch) -> (loss, metrics)`: `batch` is whatever the batch
    source returned, already moved to the training device; `loss` is a scalar
    tensor, the mean over the batch's counted tokens (the loop divides by
    grad_accum and calls backward); `metrics` maps names to detached scalar
    tensors (e.g. {"accuracy": ...}) that the loop averages over the logging
    window and writes to metrics.jsonl as `train_<name>` — never call `.item()`
    here, it would stall the GPU every step.

    `count_tokens(batch) -> int`: tokens this batch trains on, for tokens/s,
    `max_tokens` and loss weighting; must be cheap and must not synchronise
    with the GPU (use shapes, not masks' sums).

    Optional, for objectives that carry state between steps (an RNN's hidden
    state across sequential windows): `state_dict() -> dict` (tensors and plain
    values) and `load_state_dict(dict)`; the loop stores it per process in the
    checkpoint's objective.pt. The loop never calls the objective outside
    training steps; evaluation should use its own (fresh) objective instance.
    """

    def compute_loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict]: ...

    def count_tokens(self, batch: Any) -> int: ...


@runtime_checkable
class BatchSource(Protocol):
    """Training batches in a reproducible order.

    `next_batch()` returns a tensor or a (nested) tuple/list/dict of tensors on the
    CPU; `state_dict()` must be JSON-able (it is stored in trainer_state.json) and
    `load_state_dict(state)` must make the next `next_batch()` return what it
    would have returned when `state_dict()` was taken. Under torchrun each
    process owns its own source (rank-sharded), and each rank's state is saved.
    """

    def next_batch(self) -> Any: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...
