"""Direct preference optimisation (Rafailov et al. 2023), and its IPO variant.

For a pair, with π the policy being trained and π_ref the frozen reference (the
SFT model it starts from), and log-probabilities summed over the answer tokens::

    h = (log π(y_c|x) - log π_ref(y_c|x)) - (log π(y_r|x) - log π_ref(y_r|x))
    sigmoid (DPO):  loss = -(1 - ε) log σ(β h) - ε log σ(-β h)
    ipo:            loss = (h̄ - 1 / (2β))²,  h̄ with per-token mean log-ratios

ε is conservative DPO's label smoothing (the share of pairs assumed flipped;
Mitchell 2023), 0 by default; IPO (Azar et al. 2023) averages each side's
log-ratio over its answer tokens, as TRL does. β·(log π - log π_ref) is DPO's
implicit reward: its chosen/rejected means, the pairs it ranks right
(``acc``) and the gap between them are logged.

The reference log-probabilities come either from a frozen copy of the model run
without gradients on every batch (`reference=`), or from a table computed once
before training (`ref_logps=`, indexed by each pair's ``index``): the stage
precomputes by default, which halves the forward passes of every later step
and needs no second model in memory while training. TRL 1.12's `DPOTrainer`
gives the same loss on the same batch (tests/test_dpo.py, to 1e-5).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .logprobs import answer_logps
from .objective import LossOutput

LOSS_TYPES = ("sigmoid", "ipo")


def dpo_loss(
    policy: torch.Tensor,
    reference: torch.Tensor,
    lengths: torch.Tensor,
    *,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-pair loss (B,), chosen rewards (B,), rejected rewards (B,)).

    `policy`, `reference`: (2B,) summed answer log-probabilities, chosen answers first;
    `lengths`: (2B,) the answers' token counts (IPO's per-token mean needs them).
    """
    B = policy.shape[0] // 2
    ratio = policy.float() - reference.float()  # (2B,)
    if loss_type == "sigmoid":
        h = ratio[:B] - ratio[B:]  # (B,)
        loss = -(1 - label_smoothing) * F.logsigmoid(beta * h)
        if label_smoothing:
            loss = loss - label_smoothing * F.logsigmoid(-beta * h)
    elif loss_type == "ipo":
        mean_ratio = ratio / lengths.clamp(min=1).float()  # (2B,)
        loss = (mean_ratio[:B] - mean_ratio[B:] - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"loss_type must be one of {', '.join(LOSS_TYPES)}, got {loss_type!r}")
    rewards = beta * ratio.detach()
    return loss, rewards[:B], rewards[B:]


def answer_lengths(batch: dict[str, Any]) -> torch.Tensor:
    """(2B,) token count of each answer of a preference batch, by side."""
    sides = batch["sides"]
    keep = sides >= 0
    n = torch.zeros(2 * batch["margin"].shape[0], dtype=torch.long, device=sides.device)
    return n.index_add_(0, sides[keep], torch.ones_like(sides[keep]))


class DPOObjective:
    """Summed DPO (or IPO) loss over a micro-batch's pairs; `n_tokens` counts pairs."""

    count_unit = "pairs"  # the progress bar says pairs_s

    def __init__(
        self,
        *,
        beta: float = 0.1,
        loss_type: str = "sigmoid",
        label_smoothing: float = 0.0,
        reference: nn.Module | None = None,
        ref_logps: torch.Tensor | None = None,
    ):
        if (reference is None) == (ref_logps is None):
            raise ValueError("give exactly one of reference (a frozen model) or ref_logps")
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {', '.join(LOSS_TYPES)}, got {loss_type!r}")
        self.beta, self.loss_type, self.label_smoothing = beta, loss_type, label_smoothing
        self.reference = reference
        self.ref_logps = ref_logps  # (N, 2): chosen, rejected of pair `index`

    def reference_logps(self, batch: dict[str, Any]) -> torch.Tensor:
        """(2B,) the reference's summed answer log-probabilities, chosen rows first."""
        if self.ref_logps is not None:
            table = self.ref_logps[batch["index"].cpu()]  # (B, 2)
            return table.T.reshape(-1).to(batch["ids"].device)  # (2B,): chosen..., rejected...
        with torch.no_grad():
            return answer_logps(self.reference, batch)

    def compute_loss(self, model: nn.Module, batch: dict[str, Any]) -> LossOutput:
        policy = answer_logps(model, batch)  # (2B,)
        loss, r_c, r_r = dpo_loss(
            policy, self.reference_logps(batch), answer_lengths(batch), beta=self.beta,
            loss_type=self.loss_type, label_smoothing=self.label_smoothing,
        )  # fmt: skip
        metrics = {
            "acc": (r_c > r_r).float().mean(),
            "reward_chosen": r_c.mean(),
            "reward_rejected": r_r.mean(),
            "reward_gap": (r_c - r_r).mean(),
        }
        return LossOutput(loss.sum(), loss.numel(), metrics)
