"""One row per preference pair, the prompt once (`branch_ids`, `collate_shared_pairs`).

The shared-prompt layout must be a pure speed-up: every logit of a branch, every
reward-model score (scalar and likelihood heads, with the language-model term),
every DPO log-probability and every gradient equals the two-row layout's.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmforge.data.preference_batches import (
    PairTokens,
    PreferenceBatches,
    collate_pairs,
    collate_shared_pairs,
)
from lmforge.models import build_model
from lmforge.models.heads import HeadModel
from lmforge.models.masks import branch_mask, branch_positions
from lmforge.train.dpo import DPOObjective
from lmforge.train.logprobs import answer_logps
from lmforge.train.reward import RewardObjective, pair_rewards

V, PAD = 61, 0
SMALL = dict(vocab_size=V, block_size=48, n_layer=2, n_head=4, d_model=32, init_std=0.2)
ARCHS = [("gpt", {}), ("llama", {"n_kv_head": 2})]


def make(arch: str, **kw):
    torch.manual_seed(0)
    return build_model(arch, {**SMALL, **kw}).eval()


def toy_pairs(seed: int, n: int = 5) -> list[PairTokens]:
    """Pairs of random ids with prompts and answers of different lengths (so rows pad)."""
    g = torch.Generator().manual_seed(seed)

    def ids(lo: int, hi: int) -> list[int]:
        k = int(torch.randint(lo, hi, (1,), generator=g))
        return torch.randint(1, V, (k,), generator=g).tolist()

    out = []
    for i in range(n):
        prompt = ids(1, 9)  # a one-token prompt leaves the shared prefix empty
        out.append(
            PairTokens(len(prompt), prompt + ids(1, 7), prompt + ids(1, 7), 0.25 * i, f"p:{i}")
        )
    return out


def test_branch_positions_and_mask_by_hand():
    # prefix of 2, branch 1 of 3, branch 2 of 2, one padding column
    br = torch.tensor([[0, 0, 1, 1, 1, 2, 2, -1]])
    assert branch_positions(br).tolist() == [[0, 1, 2, 3, 4, 2, 3, 0]]
    m = branch_mask(br)[0, 0]
    assert m[4].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]  # branch 1 sees the prefix and itself
    assert m[6].tolist() == [1, 1, 0, 0, 0, 1, 1, 0]  # branch 2 never sees branch 1
    assert not m[:7, 7].any() and m[7, 7]  # no real query sees padding; it sees itself


@pytest.mark.parametrize("arch,kw", ARCHS)
def test_each_branch_computes_what_prefix_plus_branch_alone_computes(arch, kw):
    model = make(arch, **kw)
    g = torch.Generator().manual_seed(3)
    prefix, a, b = (torch.randint(0, V, (n,), generator=g) for n in (5, 4, 6))
    row = torch.cat([prefix, a, b, torch.zeros(3, dtype=torch.long)])[None]  # (1, 18)
    br = torch.tensor([0] * 5 + [1] * 4 + [2] * 6 + [-1] * 3)[None]
    with torch.no_grad():
        got, _ = model(row, branch_ids=br)  # (1, 18, V)
        alone_a, _ = model(torch.cat([prefix, a])[None])
        alone_b, _ = model(torch.cat([prefix, b])[None])
    torch.testing.assert_close(got[0, :9], alone_a[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(got[0, 9:15], alone_b[0, 5:], atol=1e-5, rtol=0)
    assert torch.isfinite(got).all()  # padding rows too


def test_branch_ids_and_doc_ids_are_refused_together():
    model = make("llama")
    ids = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="do not combine"):
        model(ids, branch_ids=torch.zeros_like(ids), doc_ids=torch.zeros_like(ids))


def test_shared_layout_by_hand():
    pair = PairTokens(3, [5, 6, 7, 10, 11], [5, 6, 7, 20], 0.5, "")  # prompt 5 6 7 (7: header)
    b = collate_shared_pairs([pair, pair], [0, 1], PAD)
    assert b["ids"][0].tolist() == [5, 6, 7, 10, 11, 7, 20]
    assert b["branch_ids"][0].tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert b["sides"][0].tolist() == [-1, -1, -1, 0, 0, -1, 2]  # chosen: side 0, rejected: B + 0
    assert b["sides"][1].tolist() == [-1, -1, -1, 1, 1, -1, 3]
    assert b["lengths"].tolist() == [7, 7] and b["margin"].tolist() == [0.5, 0.5]


def both_layouts(pairs: list[PairTokens]) -> tuple[dict, dict]:
    idx = range(len(pairs))
    return collate_pairs(pairs, idx, PAD), collate_shared_pairs(pairs, idx, PAD)


def grads(model: torch.nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def assert_same_loss_and_grads(model, objective, two, shared):
    a = objective.compute_loss(model, two)
    ga = grads(model, a.loss_sum)
    b = objective.compute_loss(model, shared)
    gb = grads(model, b.loss_sum)
    assert a.n_tokens == b.n_tokens
    torch.testing.assert_close(b.loss_sum, a.loss_sum, atol=1e-5, rtol=1e-5)
    for k in a.metrics:
        torch.testing.assert_close(b.metrics[k], a.metrics[k], atol=1e-5, rtol=1e-5)
    assert len(ga) == len(gb)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(y, x, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch,kw", ARCHS)
def test_dpo_loss_logps_and_gradients_match_the_two_row_layout(arch, kw):
    ref, policy = make(arch, **kw), make(arch, **kw)
    with torch.no_grad():  # a policy that differs from its reference
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    two, shared = both_layouts(toy_pairs(1))
    with torch.no_grad():
        torch.testing.assert_close(answer_logps(ref, shared), answer_logps(ref, two), atol=1e-5,
                                   rtol=0)  # fmt: skip
    for loss_type in ("sigmoid", "ipo"):
        objective = DPOObjective(beta=0.3, loss_type=loss_type, reference=ref)
        assert_same_loss_and_grads(policy, objective, two, shared)


@pytest.mark.parametrize("head,lm_coef", [("scalar", 0.0), ("scalar", 0.3), ("likelihood", 0.0)])
@pytest.mark.parametrize("arch,kw", ARCHS)
def test_reward_scores_loss_and_gradients_match_the_two_row_layout(arch, kw, head, lm_coef):
    model = HeadModel(make(arch, **kw), head, scale=2.0)
    two, shared = both_layouts(toy_pairs(2))
    with torch.no_grad():
        for x, y in zip(pair_rewards(model, shared), pair_rewards(model, two)):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=0)
    objective = RewardObjective(center=0.01, lm_coef=lm_coef)
    assert_same_loss_and_grads(model, objective, two, shared)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 6))
def test_shared_rows_hold_each_prompt_once_and_both_answers(seed, n):
    pairs = toy_pairs(seed, n)
    two, shared = both_layouts(pairs)
    # The same answer tokens, side by side, in both layouts.
    for side in range(2 * n):
        assert (
            two["ids"][two["sides"] == side].tolist()
            == shared["ids"][shared["sides"] == side].tolist()
        )
    for r, p in enumerate(pairs):
        answers = len(p.chosen) + len(p.rejected) - 2 * p.prompt_len
        assert int(shared["lengths"][r]) == p.prompt_len + answers + 1  # the header twice
    assert int(shared["lengths"].sum()) < int(two["lengths"].sum()) + n


def test_preference_batches_share_prompt_keeps_order_and_cursor():
    pairs = toy_pairs(5, 7)
    a = PreferenceBatches(pairs, 3, pad_id=PAD, seed=4)
    b = PreferenceBatches(pairs, 3, pad_id=PAD, seed=4, share_prompt=True)
    for _ in range(4):  # across an epoch boundary
        x, y = a.next_batch(), b.next_batch()
        assert x["index"].tolist() == y["index"].tolist()
        assert "branch_ids" in y and "branch_ids" not in x
    assert a.state_dict() == b.state_dict()
    assert [e["index"].tolist() for e in a.eval_batches()] == [
        e["index"].tolist() for e in b.eval_batches()
    ]


@pytest.mark.parametrize("head", ["scalar", "likelihood"])
def test_score_ids_runs_each_prompt_once_with_the_same_scores(head):
    from lmforge.eval.reward_scores import score_ids

    model = HeadModel(make("llama", n_kv_head=2), head, scale=2.0)
    g = torch.Generator().manual_seed(7)
    prompts = [torch.randint(1, V, (n,), generator=g).tolist() for n in (6, 3, 9)]
    rows, starts = [], []
    for k in range(14):  # prompts 0, 1, 2 with 6, 4 and 4 answers, interleaved
        p = prompts[k % 3] if k < 12 else prompts[0]
        rows.append(p + torch.randint(1, V, (1 + k % 5,), generator=g).tolist())
        starts.append(len(p))
    plain = score_ids(model, rows, pad_id=PAD, starts=starts, branches=False, batch_size=4)
    shared = score_ids(model, rows, pad_id=PAD, starts=starts, batch_size=4)
    torch.testing.assert_close(torch.tensor(shared), torch.tensor(plain), atol=1e-5, rtol=0)


def test_prompt_groups_split_at_the_budget():
    from lmforge.eval.reward_scores import prompt_groups

    rows = [[1, 2, 3, 9], [1, 2, 3, 8, 8], [4, 5, 7], [1, 2, 3, 6]]
    starts = [3, 3, 2, 3]
    assert prompt_groups(rows, starts, None) == [([1, 2, 3], [0, 1, 3]), ([4, 5], [2])]
    # prefix 2 tokens + (1 + 1) + (1 + 2) = 7 fits 7; + (1 + 1) would not: a new row
    assert prompt_groups(rows, starts, 7) == [
        ([1, 2, 3], [0, 1]), ([1, 2, 3], [3]), ([4, 5], [2])
    ]  # fmt: skip


def rollout_rows(seed: int):
    """(ids, mask) like a rollout buffer: groups of answers to shared prompts, a lone
    answer, an answer whose reward failed (no actions), right padding."""
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(1, V, (n,), generator=g).tolist() for n in (5, 3, 7)]
    plan = [0, 0, 0, 1, 1, 2, 0, 1]  # prompt of each row (rows of a group need not touch)
    seqs = [prompts[k] + torch.randint(1, V, (1 + i % 4,), generator=g).tolist()
            for i, k in enumerate(plan)]  # fmt: skip
    T = max(map(len, seqs)) + 2
    ids = torch.zeros(len(seqs), T, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.bool)
    for r, (q, k) in enumerate(zip(seqs, plan)):
        ids[r, : len(q)] = torch.tensor(q)
        mask[r, len(prompts[k]) : len(q)] = r != 4  # row 4: a skipped answer
    return ids, mask


@pytest.mark.parametrize("value_head", [False, True], ids=["policy", "value-headed"])
def test_policy_forward_shares_prompts_with_the_same_numbers_and_gradients(value_head):
    from lmforge.train.ppo import policy_forward, shared_prompt_layout

    base = make("llama", n_kv_head=2)
    model = HeadModel(base, "value") if value_head else base
    if value_head:
        torch.nn.init.normal_(model.head.weight, std=0.3)  # a critic that is not all zeros
    ids, mask = rollout_rows(11)
    assert shared_prompt_layout(ids, mask)["ids"].shape[0] == 3  # three prompts, three rows
    outs = []
    for share in (False, True):
        logp, ent, values = policy_forward(model, ids, mask, value_head=value_head,
                                           temperature=0.7, share_prompts=share)  # fmt: skip
        loss = (logp * 1.3 + ent * 0.2).sum() + (values.sum() if value_head else 0)
        outs.append((logp, ent, values, grads(model, loss)))
    (a, b) = outs
    for x, y in zip(a[:3], b[:3]):
        if x is not None:
            torch.testing.assert_close(y, x, atol=1e-5, rtol=0)
            assert not y[~mask].any()  # nothing off the actions
    for x, y in zip(a[3], b[3]):
        torch.testing.assert_close(y, x, atol=1e-5, rtol=1e-4)


def test_rows_without_a_shared_prompt_take_the_plain_path():
    from lmforge.train.ppo import shared_prompt_layout

    ids, mask = rollout_rows(2)
    assert shared_prompt_layout(ids[[0, 3, 5]], mask[[0, 3, 5]]) is None  # three prompts


def test_loglik_ids_runs_each_prompt_once_with_the_same_sums():
    from lmforge.eval.reward_scores import loglik_ids

    model = make("gpt")
    g = torch.Generator().manual_seed(8)
    prompts = [torch.randint(1, V, (n,), generator=g).tolist() for n in (4, 7)]
    rows = [prompts[k % 2] + torch.randint(1, V, (2 + k % 3,), generator=g).tolist()
            for k in range(9)]  # fmt: skip
    starts = [len(prompts[k % 2]) for k in range(9)]
    plain = loglik_ids(model, rows, starts, pad_id=PAD, branches=False, batch_size=3)
    shared = loglik_ids(model, rows, starts, pad_id=PAD, batch_size=3)
    torch.testing.assert_close(torch.tensor(shared), torch.tensor(plain), atol=1e-4, rtol=1e-6)
