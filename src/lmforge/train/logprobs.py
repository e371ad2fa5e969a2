"""Log-probabilities of chosen tokens under a decoder, with gradients: what DPO and PPO train on.

`masked_token_logps(model, ids, mask)` gives, for every position t where
``mask[:, t]`` is set, ``log p(ids[:, t] | ids[:, :t])`` and 0 elsewhere. Only
the masked positions reach the output layer (`GPT.forward(..., targets_only=True)`):
a preference batch is mostly prompt, and the vocabulary projection is the
biggest matmul of a small model. The log-probabilities are the negated
per-target cross-entropies in float32, so they match ``log_softmax(...).gather``
of the full logits (tests/test_dpo.py checks it against TRL's computation).
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.masks import IGNORE, shifted_targets, side_sums

__all__ = [
    "IGNORE",
    "answer_logps",
    "layout_kwargs",
    "masked_token_logps",
    "sequence_logps",
    "shifted_targets",
    "to_token_frame",
]


def to_token_frame(flat: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """(B, T) float32 from one value per kept target: the value of target position t-1
    lands at token t (the token it predicts); 0 elsewhere. `keep` (B, T): targets != -100."""
    B, T = keep.shape
    out = torch.zeros(B * T, dtype=torch.float32, device=flat.device)
    out = out.masked_scatter(keep.reshape(-1), flat.float())  # (B*T,), positions t-1
    out = out.view(B, T)
    return torch.cat([out.new_zeros(B, 1), out[:, :-1]], dim=1)  # (B, T), positions t


def masked_token_logps(
    model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, **layout: torch.Tensor
) -> torch.Tensor:
    """(B, T) log p(ids[t] | ids[<t]) at positions where `mask` (B, T) is set, 0 elsewhere.

    Position 0 has no context and is never scored (its mask bit is ignored).
    `layout`: the row layout's model arguments (``branch_ids``), see `layout_kwargs`.
    """
    targets = shifted_targets(ids, mask)  # (B, T)
    _, nll = model(ids, targets=targets, targets_only=True, reduction="none", **layout)  # (N,)
    # The prediction at t-1 is the log-probability of token t: shift back by one.
    return to_token_frame(-nll, targets != IGNORE)


def sequence_logps(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) sum of the masked tokens' log-probabilities per row."""
    return masked_token_logps(model, ids, mask).sum(dim=1)


def layout_kwargs(batch: dict) -> dict[str, torch.Tensor]:
    """The model arguments a preference batch's row layout needs: ``branch_ids`` for
    shared-prompt rows (`data.preference_batches.collate_shared_pairs`), none for two rows."""
    return {"branch_ids": batch["branch_ids"]} if "branch_ids" in batch else {}


def answer_logps(model: nn.Module, batch: dict) -> torch.Tensor:
    """(2B,) summed log-probabilities of every answer of a preference batch, by side
    (chosen answers first), in either row layout."""
    sides = batch["sides"]  # (rows, T)
    frame = masked_token_logps(model, batch["ids"], sides >= 0, **layout_kwargs(batch))
    return side_sums(frame, sides, 2 * batch["margin"].shape[0])  # (2B,)
