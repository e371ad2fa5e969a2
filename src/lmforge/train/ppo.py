"""The PPO and GRPO objectives: what the one loop optimises on a rollout buffer's minibatches.

A minibatch (from the stage's rollout batch source) is a dict of (B, T) tensors in
the token-position frame (`train.ppo_math`): ``ids`` (prompt + response, right
padded), ``mask`` (1 on response tokens: the actions), ``old_logp`` (log π_old of
each action, recomputed by a teacher-forced forward after generation — not the
sampler's numbers), ``advantages``, and for PPO ``old_values`` and ``returns``,
for GRPO ``ref_logp`` (log π_ref of each action).

* `PPOObjective` — a value-headed policy (`models.heads.WithValueHead`: the critic
  shares the policy's trunk): one trunk pass gives the actor's logits at the
  actions and the critic's values; loss per action = clipped surrogate + c_v ×
  clipped value loss − c_e × entropy.
* `GRPOObjective` — the plain policy: clipped surrogate with group-normalised
  advantages + β × KL(π ‖ π_ref) (the k3 estimator) per action − c_e × entropy;
  no value model.

Rows that answer the same prompt (``--n`` answers per prompt, GRPO's groups) can run
the prompt once: with ``share_prompts`` (GPT/LLaMA) `policy_forward` lays each
group out as one row of branches (`shared_prompt_layout`, the layout the preference
stages use) and puts every action's numbers back in the (B, T) frame, so nothing
downstream changes (tests/test_shared_prompt.py: the same log-probabilities,
values and gradients).

Both sum the per-action loss and count the actions (`n_tokens`), so the loop's
mean is per action over the whole optimizer step (token-level normalisation, as
TRL's PPO trainer and DAPO-style GRPO do). Both add their per-token statistics to
an `UpdateStats`, which the rollout source reads per iteration (the iteration's
table row) and per optimizer step (early stopping on the approximate KL).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .logprobs import IGNORE, shifted_targets, to_token_frame
from .objective import LossOutput
from .ppo_math import approx_kl, clipped_policy_loss, clipped_value_loss, kl_per_token, masked_sum


class UpdateStats:
    """Per-action sums of the update's statistics since the last `take` (CPU floats).

    `take()` gives their means and resets them; `step_kl` holds the mean approximate
    KL of the micro-batches since `take_step_kl()` (one optimizer step's, when the
    batch source reads it at each step's first micro-batch).
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0.0
        self.kl_sum, self.kl_count = 0.0, 0.0

    def add(self, sums: dict[str, torch.Tensor], n: torch.Tensor) -> None:
        n = float(n)
        for k, v in sums.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += n
        self.kl_sum += float(sums["approx_kl"])
        self.kl_count += n

    def take(self) -> dict[str, float]:
        out = {k: v / self.count for k, v in self.sums.items()} if self.count else {}
        self.sums, self.count = {}, 0.0
        return out

    def take_step_kl(self) -> tuple[float, float]:
        """(approximate-KL sum, action count) since the last call."""
        out = (self.kl_sum, self.kl_count)
        self.kl_sum, self.kl_count = 0.0, 0.0
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count, "kl": [self.kl_sum, self.kl_count]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums, self.count = dict(state["sums"]), float(state["count"])
        self.kl_sum, self.kl_count = (float(x) for x in state["kl"])


def action_logps(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log π(action), entropy of π) at the N target positions, from logits (N, V), float32.

    The policy is softmax(logits / temperature): the distribution the rollout sampled
    from, so ratios compare like with like.
    """
    z = logits.float()
    if temperature != 1.0:
        z = z / temperature
    logz = torch.log_softmax(z, dim=-1)  # (N, V)
    kept = targets.reshape(-1)[(targets != IGNORE).reshape(-1)]  # (N,)
    logp = logz.gather(1, kept[:, None]).squeeze(1)  # (N,)
    entropy = -(logz.exp() * logz).sum(-1)  # (N,)
    return logp, entropy


def shared_prompt_layout(ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """The rows of `ids` (B, T) that share a prompt (the tokens before their first action
    in `mask`) as branches of one row each (`data.preference_batches.branched_rows`),
    with ``origin`` (R, T'): each action token's flat index ``row * T + column`` in
    (B, T), -1 elsewhere. Rows without an action are left out. None when no two rows
    share a prompt (nothing to gain)."""
    from ..data.preference_batches import branched_rows

    B, T = ids.shape
    has = mask.any(dim=1)  # (B,)
    start = mask.int().argmax(dim=1)  # (B,) the first action: where the answer starts
    end = T - mask.int().flip(1).argmax(dim=1)  # (B,) one past the last action
    rows, starts, ends = ids.tolist(), start.tolist(), end.tolist()
    groups: dict[tuple[int, ...], list[int]] = {}
    for r in range(B):
        if has[r]:
            groups.setdefault(tuple(rows[r][: starts[r]]), []).append(r)
    if all(len(members) < 2 for members in groups.values()):
        return None
    layout = branched_rows(
        [(list(prompt), [(r, rows[r][starts[r] : ends[r]]) for r in members])
         for prompt, members in groups.items()],
        pad_id=0,
    )  # fmt: skip
    sides = layout["sides"].to(ids.device)  # (R, T'): each answer token's row in (B, T)
    flat = sides.reshape(-1)
    cols = torch.arange(sides.shape[1], device=ids.device).expand_as(sides).reshape(-1)
    keep = flat >= 0
    own = flat.clamp(min=0)
    first = torch.full((B,), sides.shape[1], device=ids.device, dtype=torch.long)
    first = first.scatter_reduce(0, flat[keep], cols[keep], reduce="amin")  # (B,)
    origin = own * T + start.to(ids.device)[own] + (cols - first[own])  # (R*T',)
    return {
        "ids": layout["ids"].to(ids.device),
        "branch_ids": layout["branch_ids"].to(ids.device),
        "actions": sides >= 0,  # (R, T')
        "origin": torch.where(keep, origin, -1).view_as(sides),  # (R, T')
    }


def policy_forward(
    model: nn.Module,
    ids: torch.Tensor,
    mask: torch.Tensor,
    *,
    value_head: bool,
    temperature: float = 1.0,
    share_prompts: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(logp, entropy, values), each (B, T) in the token-position frame (0 off `mask`).

    One forward of `model` (possibly wrapped in DDP): a plain policy, or with
    `value_head` a value-headed one whose critic reads the same trunk. Only the
    action positions reach the vocabulary projection. The value of action t is the
    critic's output at t−1: the state before the action. `share_prompts`: rows with
    the same prompt run it once (`shared_prompt_layout`; GPT/LLaMA models only).
    """
    if share_prompts:
        layout = shared_prompt_layout(ids, mask)
        if layout is not None:
            return _branched_policy_forward(model, ids.shape, layout, value_head, temperature)
    B, T = ids.shape
    targets = shifted_targets(ids, mask)  # (B, T): position t-1 predicts action t
    values = None
    if value_head:
        v, logits = model(ids, targets=targets)  # (B, T), (N, V)
        values = torch.cat([v.new_zeros(B, 1), v[:, :-1]], dim=1).float()  # (B, T) at actions
        values = torch.where(mask.bool(), values, 0.0)
    else:
        logits, _ = model(ids, targets=targets, targets_only=True, reduction="none")
    logp, entropy = action_logps(logits, targets, temperature)
    keep = targets != IGNORE
    return to_token_frame(logp, keep), to_token_frame(entropy, keep), values


def _branched_policy_forward(model, shape, layout, value_head: bool, temperature: float):
    """`policy_forward` over `shared_prompt_layout` rows, its numbers put back in (B, T)."""
    B, T = shape
    ids, branch_ids = layout["ids"], layout["branch_ids"]  # (R, T') each
    targets = shifted_targets(ids, layout["actions"])  # (R, T'): t-1 predicts action t
    keep = targets != IGNORE
    dest = layout["origin"][:, 1:][keep[:, :-1]]  # (N,) each target's action in (B, T)
    values = None
    if value_head:
        v, logits = model(ids, targets=targets, branch_ids=branch_ids)  # (R, T'), (N, V)
        values = v[keep]  # (N,) the critic at t-1: the state before action t
    else:
        logits, _ = model(ids, targets=targets, targets_only=True, reduction="none",
                          branch_ids=branch_ids)  # fmt: skip
    logp, entropy = action_logps(logits, targets, temperature)  # (N,) each

    def frame(x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(B * T, dtype=torch.float32, device=x.device)
        return out.index_put((dest,), x.float()).view(B, T)

    return frame(logp), frame(entropy), None if values is None else frame(values)


class _RLObjective:
    """What PPO and GRPO share: the forward, the surrogate, the entropy bonus, the stats."""

    value_head = False  # whether the trained model carries the critic

    def __init__(
        self, *, clip: float, entropy_coef: float, temperature: float, share_prompts: bool
    ):
        if clip <= 0:
            raise ValueError(f"clip ε must be > 0, got {clip}")
        self.clip, self.entropy_coef, self.temperature = clip, entropy_coef, temperature
        self.share_prompts = share_prompts
        self.stats = UpdateStats()

    def _surrogate(self, model, batch):
        mask = batch["mask"].bool()
        logp, entropy, values = policy_forward(
            model, batch["ids"], mask, value_head=self.value_head, temperature=self.temperature,
            share_prompts=self.share_prompts,
        )  # fmt: skip
        # No old_logp: one update step per rollout, so π_old is this very forward (ratio 1).
        old = batch["old_logp"] if "old_logp" in batch else logp.detach()
        pg, clipped, ratio = clipped_policy_loss(logp, old, batch["advantages"], self.clip)
        loss = pg - self.entropy_coef * entropy
        with torch.no_grad():
            sums = {
                "pg_loss": masked_sum(pg, mask),
                "clipfrac": masked_sum(clipped, mask),
                "approx_kl": masked_sum(approx_kl(logp, old), mask),
                "entropy": masked_sum(entropy, mask),
                "ratio": masked_sum(ratio, mask),
            }
        return mask, logp, values, loss, sums

    def _finish(self, mask, loss, sums) -> LossOutput:
        n = mask.sum()
        self.stats.add(sums, n)
        denom = n.clamp(min=1).float()
        metrics = {k: (v / denom).detach() for k, v in sums.items()}
        return LossOutput(masked_sum(loss, mask), n, metrics)

    def state_dict(self) -> dict[str, Any]:
        return {"stats": self.stats.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict(state["stats"])


class PPOObjective(_RLObjective):
    """Clipped surrogate + clipped value loss − entropy bonus, per action (see the module doc)."""

    value_head = True

    def __init__(
        self,
        *,
        clip: float = 0.2,
        value_clip: float | None = 0.2,
        value_coef: float = 0.1,
        entropy_coef: float = 0.0,
        temperature: float = 1.0,
        share_prompts: bool = False,
    ):
        super().__init__(clip=clip, entropy_coef=entropy_coef, temperature=temperature,
                         share_prompts=share_prompts)  # fmt: skip
        self.value_clip, self.value_coef = value_clip, value_coef

    def compute_loss(self, model: nn.Module, batch: dict[str, Any]) -> LossOutput:
        mask, _, values, loss, sums = self._surrogate(model, batch)
        vf, vclipped = clipped_value_loss(
            values, batch["old_values"], batch["returns"], self.value_clip
        )
        loss = loss + self.value_coef * vf
        with torch.no_grad():
            sums["vf_loss"] = masked_sum(vf, mask)
            sums["vf_clipfrac"] = masked_sum(vclipped, mask)
        return self._finish(mask, loss, sums)


class GRPOObjective(_RLObjective):
    """Clipped surrogate on group advantages + β·KL(π ‖ π_ref) (k3) − entropy bonus, per action."""

    def __init__(
        self,
        *,
        beta: float = 0.04,
        clip: float = 0.2,
        entropy_coef: float = 0.0,
        temperature: float = 1.0,
        share_prompts: bool = False,
    ):
        super().__init__(clip=clip, entropy_coef=entropy_coef, temperature=temperature,
                         share_prompts=share_prompts)  # fmt: skip
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = beta

    def compute_loss(self, model: nn.Module, batch: dict[str, Any]) -> LossOutput:
        mask, logp, _, loss, sums = self._surrogate(model, batch)
        with torch.no_grad():
            sums["k1"] = masked_sum(logp - batch["ref_logp"], mask)  # the reported KL
        if self.beta:
            kl = kl_per_token(logp, batch["ref_logp"], "k3")
            loss = loss + self.beta * kl
            with torch.no_grad():
                sums["kl"] = masked_sum(kl, mask)
        return self._finish(mask, loss, sums)
