"""The reward model's pairwise objective: LLaMA-2's ranking loss with a margin.

Per pair, with r = the head's score of prompt + answer (a scalar head on the last
token's hidden state, or a likelihood head: w times the answer's mean
log-probability under the trunk's own language model, SimPO's reward)::

    loss = -log σ(r(x, y_chosen) - r(x, y_rejected) - m) + c · (r_chosen + r_rejected)²

`m` is the pair's margin (from its `margin` field or its `rating` through a
table; 0 without either: the InstructGPT loss). Touvron et al. (2023) add the
margin so that clearly-better pairs are pushed further apart. The optional
second term (``center``, Eisenstein et al. 2023's reward centering, TRL's
``center_rewards_coefficient``) keeps rewards near 0, so a reward used in PPO
has no arbitrary offset.

The optional third term (``lm_coef``, Yang et al. 2024's generalizable reward
model, GRM) adds the language-model loss of the chosen answers, a mean
per-token cross-entropy per pair, read from the same trunk pass through the
base's ``lm_head``::

    + λ · (1/|y_c|) Σ_t -log p(y_c,t | x, y_c,<t)

The ranking loss alone lets the trunk forget what the SFT model knew, and a
reward model that must tell a right answer from a wrong one needs exactly
that knowledge (docs/preferences.md measures it on the world's pairs).

Batches come from `lmforge.data.preference_batches.PreferenceBatches`: both
sides of every pair in one forward (chosen rows then rejected rows, or one row
per pair with the prompt once), each answer's tokens numbered by ``sides``. The loss is
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

from ..models.masks import side_sums, target_sides
from .logprobs import IGNORE, layout_kwargs, shifted_targets
from .objective import LossOutput


def pair_rewards(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) scores, each (B,), from one forward over the rows of `batch`."""
    # sides: each answer's tokens (a scalar head reads the last, a likelihood head all)
    scores = model(batch["ids"], sides=batch["sides"], **layout_kwargs(batch))  # (2B,)
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


def pair_rewards_and_chosen_nll(
    model: nn.Module, batch: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(chosen, rejected) scores, each (B,), and the chosen answers' mean per-token
    cross-entropy (B,), all from one forward over the rows of `batch`."""
    ids, sides = batch["ids"], batch["sides"]  # (rows, T) each
    B = batch["margin"].shape[0]
    # Only the chosen answers (sides 0..B-1) are language-modelled.
    targets = shifted_targets(ids, (sides >= 0) & (sides < B))  # (rows, T)
    scores, logits = model(ids, sides=sides, targets=targets, **layout_kwargs(batch))
    keep = targets != IGNORE  # (rows, T)
    nll = torch.zeros(keep.shape, dtype=torch.float32, device=ids.device)  # (rows, T)
    nll[keep] = F.cross_entropy(logits.float(), targets[keep], reduction="none")
    owner = target_sides(sides, targets)  # (rows, T)
    mean = side_sums(nll, owner, B) / side_sums(keep.float(), owner, B).clamp(min=1)  # (B,)
    return scores[:B], scores[B:], mean


class RewardObjective:
    """Summed ranking loss over the pairs of a micro-batch; metrics are per-pair means."""

    count_unit = "pairs"  # n_tokens counts pairs (the progress bar says pairs_s)

    def __init__(self, center: float = 0.0, lm_coef: float = 0.0):
        self.center = float(center)
        self.lm_coef = float(lm_coef)

    def compute_loss(self, model: nn.Module, batch: dict[str, Any]) -> LossOutput:
        metrics: dict[str, torch.Tensor] = {}
        if self.lm_coef:
            r_c, r_r, nll = pair_rewards_and_chosen_nll(model, batch)  # (B,) each
            loss = ranking_loss(r_c, r_r, batch["margin"], self.center) + self.lm_coef * nll
            metrics["chosen_nll"] = nll.detach().mean()
        else:
            r_c, r_r = pair_rewards(model, batch)  # (B,), (B,)
            loss = ranking_loss(r_c, r_r, batch["margin"], self.center)  # (B,)
        with torch.no_grad():
            diff = (r_c - r_r).float()
            metrics.update(
                acc=(diff > 0).float().mean(),
                reward_gap=diff.mean(),
                reward_mean=0.5 * (r_c + r_r).float().mean(),
            )
        return LossOutput(loss.sum(), loss.numel(), metrics)
