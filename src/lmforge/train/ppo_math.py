"""The arithmetic of RL fine-tuning (PPO, GRPO), as pure functions on masked token tensors.

Every tensor here is in the *token-position frame* of a right-padded rollout batch:
(B, T) with ``mask[i, t] = 1`` where token t of row i is a response token (an
action). Quantities of an action — its log-probability, the value of the state
before it, its reward, its advantage — sit at the action's own position; masked
positions hold 0 and never influence anything (tests change them and compare).

References: Schulman et al. 2015 (GAE) and 2017 (PPO); Ziegler et al. 2019
(per-token KL penalty, the adaptive KL controller); Huang et al. 2022, "The N
Implementation Details of RLHF with PPO" (whitening, value clipping, the order
of operations); Shao et al. 2024 (GRPO); Schulman 2020, "Approximating KL
divergence" (the k1/k2/k3 estimators).
"""

from __future__ import annotations

import math

import torch

KL_ESTIMATORS = ("k1", "k2", "k3")


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of `x` where `mask` is set (NaN or inf outside the mask cannot leak in)."""
    vals = torch.where(mask.bool(), x, torch.zeros((), dtype=x.dtype, device=x.device))
    return vals.sum() if dim is None else vals.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `x` over the masked entries (0 where there are none)."""
    n = mask.sum() if dim is None else mask.sum(dim)
    return masked_sum(x, mask, dim) / n.clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of the masked entries (Bessel-corrected when `unbiased` and n > 1)."""
    n = mask.sum()
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        var = var * n / (n - 1).clamp(min=1)
    return var


def whiten(
    x: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """(x - mean) / std over the masked entries, 0 outside; `shift_mean=False` only scales.

    Advantages are whitened with the mean shifted (PPO's normalisation); rewards, if
    at all, without (shifting would change which answers are "good" on average).
    """
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return torch.where(mask.bool(), out, torch.zeros_like(out))


def kl_per_token(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """An estimate of KL(π ‖ π_ref) at each sampled token, from log π and log π_ref of it.

    With r = log π_ref − log π: k1 = −r (unbiased, can be negative; what the per-token
    KL penalty uses), k2 = r²/2 (low variance, biased), k3 = e^r − 1 − r (unbiased and
    never negative; GRPO's loss term).
    """
    r = ref_logp - logp
    if estimator == "k1":
        return -r
    if estimator == "k2":
        return 0.5 * r * r
    if estimator == "k3":
        return torch.expm1(r) - r
    raise ValueError(f"KL estimator must be one of {', '.join(KL_ESTIMATORS)}, got {estimator!r}")


def token_rewards(
    scores: torch.Tensor,
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
    estimator: str = "k1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rewards, kl), both (B, T): −β·KL at every action, plus the sequence score at its last.

    `scores` (B,) is each episode's reward (the reward model's or the checker's);
    it lands on the row's last masked position, so an episode's return is its score
    minus β times its summed KL (Ziegler et al.).
    """
    kl = torch.where(mask.bool(), kl_per_token(logp, ref_logp, estimator), 0.0)  # (B, T)
    rewards = -beta * kl
    T = mask.size(1)
    cols = torch.arange(T, device=mask.device)
    last = torch.where(mask.bool(), cols, -1).amax(dim=1)  # (B,) -1 for an empty row
    has = last >= 0
    rows = torch.arange(mask.size(0), device=mask.device)[has]
    rewards[rows, last[has]] += scores[has].to(rewards.dtype)
    return rewards, kl


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized Advantage Estimation over each row's masked actions: (advantages, returns).

    δ_t = r_t + γ V_{t+1} − V_t, A_t = δ_t + γλ A_{t+1}, with V and A of the step after
    the last action taken as 0 (the episode ends there). Masked positions are skipped,
    so the actions of a row need not start at 0 (a prompt precedes them) but must be
    contiguous. Returns are A + V, the value loss's target.
    """
    B, T = rewards.shape
    m = mask.to(rewards.dtype)
    adv = torch.zeros_like(rewards)
    next_v = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    next_a = torch.zeros_like(next_v)
    for t in range(T - 1, -1, -1):
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        a = (delta + gamma * lam * next_a) * m[:, t]
        adv[:, t] = a
        # Off the mask nothing carries: the step after a row's last action is terminal.
        next_v = values[:, t] * m[:, t]
        next_a = a
    returns = (adv + values) * m
    return adv, returns


def clipped_policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate per token: (loss, clipped, ratio), each (B, T).

    ratio = π/π_old; loss = max(−A·ratio, −A·clip(ratio, 1−ε, 1+ε)) (the negated
    pessimistic surrogate); `clipped` is 1 where the clipped term was the larger.
    """
    ratio = torch.exp(logp - old_logp)
    loss1 = -advantages * ratio
    loss2 = -advantages * torch.clamp(ratio, 1.0 - eps, 1.0 + eps)
    return torch.maximum(loss1, loss2), (loss2 > loss1).to(logp.dtype), ratio


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Value loss per token: (½·max((V−R)², (clip(V, V_old ± c)−R)²), clipped) (B, T).

    `clip` None (or ≤ 0) gives the plain ½(V−R)².
    """
    plain = (values - returns) ** 2
    if not clip or clip <= 0:
        return 0.5 * plain, torch.zeros_like(plain)
    v_clip = old_values + torch.clamp(values - old_values, -clip, clip)
    clipped = (v_clip - returns) ** 2
    return 0.5 * torch.maximum(plain, clipped), (clipped > plain).to(values.dtype)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) over the last dimension, in float32: (...,)."""
    logz = torch.log_softmax(logits.float(), dim=-1)
    return -(logz.exp() * logz).sum(-1)


def approx_kl(logp: torch.Tensor, old_logp: torch.Tensor) -> torch.Tensor:
    """½(log π − log π_old)² per token: the approximate KL that early stopping watches."""
    d = logp - old_logp
    return 0.5 * d * d


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 − Var(R − V) / Var(R) over the masked entries (nan when the returns do not vary)."""
    var_r = masked_var(returns, mask, unbiased=False)
    if float(var_r) <= 0.0:
        return math.nan
    return float(1.0 - masked_var(returns - values, mask, unbiased=False) / var_r)


def group_advantages(
    scores: torch.Tensor,
    group: int,
    *,
    scale: bool = True,
    valid: torch.Tensor | None = None,
    eps: float = 1e-4,
) -> torch.Tensor:
    """GRPO's advantages: each score minus its group's mean, over the group's std if `scale`.

    `scores` (P·N,) are prompt-major (the N samples of prompt p are rows p·N..p·N+N−1).
    `valid` (P·N,) leaves failed samples out of their group's statistics (their
    advantage is 0). A group whose samples all score alike gives 0 advantage: it
    teaches nothing. The std is Bessel-corrected, as TRL's.
    """
    if scores.numel() % group:
        raise ValueError(f"{scores.numel()} scores do not split into groups of {group}")
    g = scores.float().view(-1, group)  # (P, N)
    m = torch.ones_like(g, dtype=torch.bool) if valid is None else valid.view(-1, group).bool()
    mean = masked_mean(g, m, dim=1)[:, None]  # (P, 1)
    adv = torch.where(m, g - mean, 0.0)
    if scale:
        n = m.sum(1, keepdim=True)
        var = (adv * adv).sum(1, keepdim=True) / (n - 1).clamp(min=1)
        adv = adv / (var.sqrt() + eps)
    return adv.reshape(-1)


class AdaptiveKL:
    """Ziegler et al.'s controller: β moves so that the observed KL tracks `target`.

    After each rollout of `n` episodes: e = clip(KL/target − 1, −0.2, 0.2), β ← β·(1 + e·n/horizon).
    `target` None keeps β fixed. Its state (β) is saved with the run.
    """

    def __init__(self, beta: float, target: float | None = None, horizon: int = 10000):
        self.beta, self.target, self.horizon = float(beta), target, int(horizon)

    def update(self, kl: float, n: int) -> float:
        if self.target and math.isfinite(kl):
            err = min(max(kl / self.target - 1.0, -0.2), 0.2)
            self.beta *= 1.0 + err * n / self.horizon
        return self.beta

    def state_dict(self) -> dict:
        return {"beta": self.beta}

    def load_state_dict(self, state: dict) -> None:
        self.beta = float(state["beta"])
