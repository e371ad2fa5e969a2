"""Next-token objective for recurrent LMs with the hidden state carried between windows.

Truncated back-propagation through time: each training window is one forward
and backward pass (gradients stop at the window's start), but the hidden state
at the end of a window is the starting state of the next one, so the model sees
context longer than a window. That only makes sense when row ``i`` of batch
``n+1`` continues the text of row ``i`` of batch ``n``, which is what the batch
reader's ``mode="sequential"`` provides.

The carried state is part of the training state: ``state_dict`` saves it so a
resumed run continues from the same hidden state as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..models.rnn import RNNState
from .objective import LossOutput, count_targets


def _core(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model under DDP/FSDP (``.module``) and torch.compile (``._orig_mod``)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


class RecurrentLMObjective:
    """``compute_loss(model, batch) -> LossOutput`` with the RNN state carried across calls.

    With ``carry_state=False`` every window starts from a zero state (plain
    next-token training, suited to the reader's random windows).
    ``continues() -> bool``, if given, is asked before each window whether it
    continues the previous one; when not (the sequential reader starts a new
    epoch and its rows jump back to the start of their stretches), the state is
    reset. Pass ``lambda: reader.continues_previous``.
    """

    def __init__(self, carry_state: bool = True, continues: Callable[[], bool] | None = None):
        self.carry_state = carry_state
        self.continues = continues
        self.state: RNNState | None = None

    def reset(self) -> None:
        """Forget the carried state (the next window starts a fresh text)."""
        self.state = None

    def compute_loss(
        self, model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> LossOutput:
        x, y = batch
        if not self.carry_state:
            _, loss = model(x, y)
            return LossOutput.from_mean(loss, count_targets(y))
        B = x.shape[0]
        if self.continues is not None and not self.continues():
            self.state = None
        if self.state is None or self.state.batch_size != B:
            self.state = _core(model).init_state(B, device=x.device)
        elif self.state.h.device != x.device:
            self.state = RNNState.from_state_dict(self.state.state_dict(), x.device)
        _, loss = model(x, y, kv_cache=self.state)
        # The graph of this window stays alive for backward; the next window starts
        # from the values only.
        self.state.detach_()
        return LossOutput.from_mean(loss, count_targets(y))

    def state_dict(self) -> dict[str, Any]:
        if self.state is None:
            return {}
        return {"state": self.state.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = RNNState.from_state_dict(state["state"]) if state.get("state") else None
