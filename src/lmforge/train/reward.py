"""The reward model's pairwise objective: LLaMA-2's ranking loss with a margin.

Per pair, with r = the scalar head's score of prompt + answer::

    loss = -log σ(r(x, y_chosen) - r(x, y_rejected) - m) + c · (r_chosen + r_rejected)²

`m` is the pair's margin (from its `margin` field or its `rating` through a
table; 0 without either: the InstructGPT loss). Touvron et al. (2023) add the
margin so that clearly-better pairs are pushed further apart. The optional
second term (``center``, Eisenstein et al. 2023's reward centering, TRL's
``center_rewards_coefficient``) keeps rewards near 0, so a reward used in PPO
has no arbitrary offset.

Batches come from `lmforge.data.preference_batches.PreferenceBatches`: chosen
rows then rejected rows, both sides of every pair in one forward. The loss is
summed over pairs and `n_tokens` counts pairs, so the loop averages over the
pairs of the whole step (tokens_seen and the max-tokens budget count pairs
here). TRL's `RewardTrainer` computes the same per-batch mean
(tests/test_reward_objective.py, to 1e-5).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .objective import LossOutput


def pair_rewards(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) scores, each (B,), from one forward over the 2B rows of `batch`."""
    scores = model(batch["ids"], lengths=batch["lengths"])  # (2B,)
    B = batch["margin"].shape[0]
    return scores[:B], scores[B:]


def ranking_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor, center: float = 0.0
) -> torch.Tensor:
    """(B,) per-pair loss: -log σ(r_c - r_r - m) + center · (r_c + r_r)²."""
    loss = -F.logsigmoid(chosen.float() - rejected.float() - margin.float())
    if center:
        loss = loss + center * (chosen.float() + rejected.float()) ** 2
    return loss


class RewardObjective:
    """Summed ranking loss over the pairs of a micro-batch; metrics are per-pair means."""

    count_unit = "pairs"  # n_tokens counts pairs (the progress bar says pairs_s)

    def __init__(self, center: float = 0.0):
        self.center = float(center)

    def compute_loss(self, model: nn.Module, batch: dict[str, Any]) -> LossOutput:
        r_c, r_r = pair_rewards(model, batch)  # (B,), (B,)
        loss = ranking_loss(r_c, r_r, batch["margin"], self.center)  # (B,)
        with torch.no_grad():
            diff = (r_c - r_r).float()
            metrics = {
                "acc": (diff > 0).float().mean(),
                "reward_gap": diff.mean(),
                "reward_mean": 0.5 * (r_c + r_r).float().mean(),
            }
        return LossOutput(loss.sum(), loss.numel(), metrics)
