"""PPO/GRPO arithmetic pinned by hand-computed examples and formulas; padding changes nothing.

Rows are in the token-position frame: a prompt, then the actions (mask 1), then padding.
Every test fills the masked-out positions with garbage (large numbers, NaN where the
function promises to ignore them) to show they cannot leak in.
"""

from __future__ import annotations

import math

import pytest
import torch

from lmforge.train.ppo_math import (
    AdaptiveKL,
    approx_kl,
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    explained_variance,
    gae,
    group_advantages,
    kl_per_token,
    masked_mean,
    masked_var,
    token_rewards,
    whiten,
)

# One row: 2 prompt positions, 3 actions (positions 2..4), 1 padding position.
MASK = torch.tensor([[0, 0, 1, 1, 1, 0]], dtype=torch.bool)


def _row(actions, fill=99.0):
    """A (1, 6) row holding `actions` at positions 2..4 and `fill` elsewhere."""
    return torch.tensor([[fill, fill, *actions, fill]], dtype=torch.float32)


def test_gae_equals_the_hand_computed_example():
    # r = (0, 0, 1), V = (.5, .6, .7), γ = .9, λ = .8:
    # δ2 = 1 - .7 = .3;            A2 = .3
    # δ1 = .9·.7 - .6 = .03;       A1 = .03 + .72·.3 = .246
    # δ0 = .9·.6 - .5 = .04;       A0 = .04 + .72·.246 = .21712
    adv, ret = gae(_row([0, 0, 1]), _row([0.5, 0.6, 0.7]), MASK, gamma=0.9, lam=0.8)
    assert adv[0, 2:5].tolist() == pytest.approx([0.21712, 0.246, 0.3], abs=1e-6)
    assert ret[0, 2:5].tolist() == pytest.approx([0.71712, 0.846, 1.0], abs=1e-6)
    assert adv[0, [0, 1, 5]].tolist() == [0, 0, 0] and ret[0, [0, 1, 5]].tolist() == [0, 0, 0]


def test_gae_with_gamma_and_lambda_one_is_the_monte_carlo_return_minus_the_value():
    r, v = _row([0.2, -0.1, 1.0]), _row([0.3, 0.1, 0.4])
    adv, ret = gae(r, v, MASK, gamma=1.0, lam=1.0)
    assert ret[0, 2:5].tolist() == pytest.approx([1.1, 0.9, 1.0], abs=1e-6)
    assert adv[0, 2:5].tolist() == pytest.approx([0.8, 0.8, 0.6], abs=1e-6)
    # λ = 0: the one-step TD error.
    adv0, _ = gae(r, v, MASK, gamma=1.0, lam=0.0)
    assert adv0[0, 2:5].tolist() == pytest.approx(
        [0.2 + 0.1 - 0.3, -0.1 + 0.4 - 0.1, 0.6], abs=1e-6
    )


def test_gae_of_rows_of_different_lengths_in_one_batch_equals_each_alone():
    mask = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    r, v = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    adv, ret = gae(r, v, mask, 0.95, 0.9)
    for i in range(3):
        keep = mask[i]
        a1, r1 = gae(r[i, keep][None], v[i, keep][None], torch.ones(1, int(keep.sum())), 0.95, 0.9)
        assert torch.allclose(adv[i, keep], a1[0]) and torch.allclose(ret[i, keep], r1[0])


def test_clipped_policy_loss_follows_the_formula_case_by_case():
    old = torch.zeros(6)
    ratio = torch.tensor([1.5, 1.5, 0.5, 0.5, 1.1, 0.9])
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0, 2.0, -2.0])
    logp = torch.log(ratio).requires_grad_()
    loss, clipped, r = clipped_policy_loss(logp, old, adv, eps=0.2)
    # A > 0, ratio above 1+ε: clipped at -A(1+ε); A < 0, ratio above: -A·ratio (pessimistic)
    # A > 0, ratio below 1-ε: -A·ratio; A < 0, ratio below: clipped at -A(1-ε); inside: -A·ratio.
    expect = [-1.2, 1.5, -0.5, 0.8, -2.2, 1.8]
    assert loss.tolist() == pytest.approx(expect, abs=1e-6)
    assert clipped.tolist() == [1, 0, 0, 1, 0, 0]
    assert r.tolist() == pytest.approx(ratio.tolist())
    loss.sum().backward()
    # No gradient flows through a clipped term.
    assert logp.grad[[0, 3]].tolist() == [0.0, 0.0]
    assert logp.grad[4].item() == pytest.approx(-2.0 * 1.1, abs=1e-6)  # d(-A·e^logp)/dlogp


def test_clipped_value_loss_follows_the_formula():
    v = torch.tensor([1.0, 0.0, 0.5])
    old = torch.tensor([0.5, 0.5, 0.5])
    ret = torch.tensor([0.0, 1.0, 2.0])
    loss, clipped = clipped_value_loss(v, old, ret, clip=0.2)
    # row 0: v moved +0.5 -> clipped to 0.7; max((1-0)², (0.7-0)²) = 1 → ½
    # row 1: v moved -0.5 -> clipped to 0.3; max((0-1)², (0.3-1)²) = 1 → ½
    # row 2: not moved; (0.5-2)² = 2.25 → 1.125
    assert loss.tolist() == pytest.approx([0.5, 0.5, 1.125])
    assert clipped.tolist() == [0, 0, 0]
    # When clipping makes the error larger it is the one taken (the pessimistic bound).
    loss2, clipped2 = clipped_value_loss(
        torch.tensor([1.9]), torch.tensor([1.0]), torch.tensor([2.0]), 0.2
    )
    assert loss2.item() == pytest.approx(0.5 * 0.8**2) and clipped2.item() == 1.0
    plain, _ = clipped_value_loss(v, old, ret, clip=None)
    assert plain.tolist() == pytest.approx((0.5 * (v - ret) ** 2).tolist())


def test_kl_estimators_match_their_formulas_and_k1_k3_are_unbiased():
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    r = ref - logp
    assert kl_per_token(logp, ref, "k1").tolist() == pytest.approx((-r).tolist())
    assert kl_per_token(logp, ref, "k2").tolist() == pytest.approx((0.5 * r * r).tolist())
    assert kl_per_token(logp, ref, "k3").tolist() == pytest.approx((r.exp() - 1 - r).tolist())
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_per_token(logp, ref, "k4")
    # Monte Carlo over samples of π: E[k1] = E[k3] = KL(π ‖ ref); k3 is never negative.
    p = torch.tensor([0.6, 0.3, 0.1])
    q = torch.tensor([0.3, 0.3, 0.4])
    exact = float((p * (p / q).log()).sum())
    x = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(1))
    lp, lq = p.log()[x], q.log()[x]
    for est in ("k1", "k3"):
        assert kl_per_token(lp, lq, est).mean().item() == pytest.approx(exact, abs=0.01)
    assert bool((kl_per_token(lp, lq, "k3") >= 0).all())


def test_whitening_gives_zero_mean_unit_variance_on_the_mask_only():
    x = _row([1.0, 2.0, 6.0], fill=float("nan"))
    w = whiten(x, MASK)
    vals = w[0, 2:5]
    assert vals.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert vals.var(unbiased=True).item() == pytest.approx(1.0, abs=1e-5)
    assert w[0, [0, 1, 5]].tolist() == [0, 0, 0]
    # shift_mean=False only scales: the mean stays where it was.
    s = whiten(x, MASK, shift_mean=False)
    assert s[0, 2:5].mean().item() == pytest.approx(3.0, abs=1e-5)
    assert masked_var(s, MASK).item() == pytest.approx(1.0, abs=1e-5)
    assert masked_mean(x, MASK).item() == pytest.approx(3.0)


def test_token_rewards_put_the_score_on_the_last_action_and_the_penalty_everywhere():
    mask = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    logp = torch.tensor([[9.0, -1.0, -2.0, 9.0], [1.0, 2.0, 3.0, 4.0]])
    ref = torch.tensor([[0.0, -1.5, -1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    rewards, kl = token_rewards(torch.tensor([3.0, 7.0]), logp, ref, mask, beta=0.1)
    assert kl[0].tolist() == pytest.approx([0, 0.5, -1.0, 0])
    assert rewards[0].tolist() == pytest.approx([0, -0.05, 0.1 + 3.0, 0])
    assert rewards[1].tolist() == [0, 0, 0, 0]  # an empty row gets nothing


def test_group_advantages_normalise_within_each_group():
    scores = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    adv = group_advantages(scores, 4)
    # group 1: mean .25, std (Bessel) .5 → (.75/.5, -.25/.5 ×3); group 2: all alike → 0.
    assert adv[:4].tolist() == pytest.approx([1.5, -0.5, -0.5, -0.5], abs=1e-3)
    assert adv[4:].tolist() == [0, 0, 0, 0]
    assert group_advantages(scores, 4, scale=False)[:4].tolist() == pytest.approx(
        [0.75, -0.25, -0.25, -0.25]
    )
    # A failed sample is out of its group's statistics and gets 0.
    valid = torch.tensor([True, True, True, False, True, True, True, True])
    adv_v = group_advantages(torch.tensor([1.0, 0.0, 0.0, 5.0, 1, 1, 1, 1]), 4, valid=valid)
    assert adv_v[3].item() == 0.0
    assert adv_v[:3].tolist() == pytest.approx(
        group_advantages(torch.tensor([1.0, 0, 0]), 3).tolist()
    )
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(scores, 3)


def test_the_adaptive_kl_controller_moves_beta_towards_the_target():
    ctl = AdaptiveKL(0.1, target=6.0, horizon=10000)
    ctl.update(12.0, n=100)  # KL twice the target: error clipped to +0.2
    assert ctl.beta == pytest.approx(0.1 * (1 + 0.2 * 100 / 10000))
    ctl.update(3.0, n=100)  # half the target: error -0.5 clipped to -0.2
    assert ctl.beta == pytest.approx(0.1 * (1 + 0.002) * (1 - 0.002))
    fixed = AdaptiveKL(0.05)
    fixed.update(100.0, n=1000)
    assert fixed.beta == 0.05
    other = AdaptiveKL(1.0, target=1.0)
    other.load_state_dict(ctl.state_dict())
    assert other.beta == ctl.beta


def test_entropy_approx_kl_and_explained_variance():
    assert entropy_from_logits(torch.zeros(1, 4)).item() == pytest.approx(math.log(4))
    assert entropy_from_logits(torch.tensor([[0.0, -1e4]])).item() == pytest.approx(0.0, abs=1e-6)
    assert approx_kl(torch.tensor([0.3]), torch.tensor([0.1])).item() == pytest.approx(0.02)
    mask = torch.ones(1, 4, dtype=torch.bool)
    ret = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert explained_variance(ret, ret, mask) == pytest.approx(1.0)
    assert explained_variance(torch.zeros(1, 4), ret, mask) == pytest.approx(0.0)
    assert math.isnan(explained_variance(ret, torch.ones(1, 4), mask))
