"""The two interfaces the one loop is generic over: an objective and a batch source.

An **objective** turns a batch into a summed loss and the number of tokens it
is summed over (next-token LM, masked LM, SFT with a loss mask, reward-model
ranking, PPO's clipped surrogate, ...). A **batch source** hands out batches and
can save and restore its position, so that resume continues the same data
order. Both are duck-typed protocols: any object with these methods plugs into
`lmforge.train.loop.train`.

Why sums: the loop divides the step's summed loss by the step's *global* token
count (all micro-batches of all processes), so every token weighs the same
whatever batch it sat in. Averaging per micro-batch would weigh the tokens of
a micro-batch with few of them (short SFT answers) more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@dataclass
class LossOutput:
    """What `Objective.compute_loss` returns for one micro-batch.

    `loss_sum`: scalar tensor with grad, the SUM of the per-token losses.
    `n_tokens`: how many tokens `loss_sum` sums over (for a next-token loss, the
    targets that are not -100), as a scalar integer tensor on the device (no
    `.item()`: that would stall the GPU) or a Python int.
    `metrics`: name -> detached scalar tensor, each the MEAN over this
    micro-batch's `n_tokens` tokens (e.g. {"mlm_acc": ...}); the loop reports the
    token-weighted mean over the logging window (all micro-batches and
    processes) as `train_<name>`.
    """

    loss_sum: torch.Tensor
    n_tokens: torch.Tensor | int
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def mean(self) -> torch.Tensor:
        """`loss_sum / n_tokens` (0 for a batch without tokens), for use outside the loop."""
        n = self.n_tokens
        if isinstance(n, torch.Tensor):
            return self.loss_sum / n.clamp(min=1)
        return self.loss_sum / max(n, 1)

    @classmethod
    def from_mean(
        cls, mean: torch.Tensor, n_tokens: torch.Tensor | int, metrics: dict | None = None
    ) -> LossOutput:
        """From a mean over `n_tokens` tokens (what models' forward returns): `mean * n_tokens`.

        A batch without tokens gives `loss_sum = 0` (its mean is 0/0 = NaN) with a
        zero gradient, rather than poisoning the step.
        """
        if isinstance(n_tokens, torch.Tensor):
            loss_sum = torch.where(n_tokens > 0, mean * n_tokens, 0.0)
        else:
            loss_sum = mean * n_tokens if n_tokens > 0 else mean.nan_to_num(0.0) * 0.0
        return cls(loss_sum, n_tokens, dict(metrics or {}))


def count_targets(targets: torch.Tensor) -> torch.Tensor:
    """Targets that count (not the ignore index -100), as a device scalar: no host sync."""
    return (targets != -100).sum()


@runtime_checkable
class Objective(Protocol):
    """A loss over one micro-batch.

    `compute_loss(model, batch) -> LossOutput`: `batch` is whatever the batch
    source returned, already moved to the training device. The loop backpropagates
    each micro-batch's `loss_sum` and scales the gradients by the step's global
    token count (see `LossOutput`); never call `.item()` here, it would stall the
    GPU every step.

    Token accounting: `tokens_seen`, `tok_per_s` and `max_tokens` count the
    tokens the losses are summed over (`n_tokens`): padding and masked targets
    do not count.

    Optional: `count_unit` (class attribute, default "tok"), what `n_tokens` counts, as
    the progress bar names its rate (the preference objectives count "pairs").

    Optional, for objectives that carry state between steps (an RNN's hidden
    state across sequential windows): `state_dict() -> dict` (tensors and plain
    values) and `load_state_dict(dict)`; the loop stores it per process in the
    checkpoint's objective.pt. The loop never calls the objective outside
    training steps; evaluation should use its own (fresh) objective instance.
    """

    def compute_loss(self, model: nn.Module, batch: Any) -> LossOutput: ...


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
