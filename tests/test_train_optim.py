"""AdamW parameter groups and learning-rate schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lmforge.train.optim import build_optimizer, lr_at, param_groups


def test_matrices_decay_vectors_do_not_and_tied_weights_count_once():
    emb = nn.Embedding(10, 4)
    model = nn.Sequential(emb, nn.LayerNorm(4), nn.Linear(4, 10))
    model[2].weight = emb.weight  # tied, as GPT-2's output layer
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [torch.Size([10, 4])]
    assert sorted(p.numel() for p in no_decay["params"]) == [4, 4, 10]  # norm w, b; bias
    opt = build_optimizer(model, 1e-3, 0.1, (0.9, 0.95))
    assert opt.defaults["fused"] is True  # one kernel, and it can skip non-finite steps


def test_fused_adamw_skips_a_step_when_found_inf():
    torch.manual_seed(0)
    m = nn.Linear(3, 3)
    opt = build_optimizer(m, 0.1, 0.1, (0.9, 0.95))
    m(torch.randn(2, 3)).sum().backward()
    opt.step()
    before = {k: v.clone() for k, v in opt.state[m.weight].items()}
    w = m.weight.detach().clone()
    m(torch.randn(2, 3)).sum().backward()
    opt.found_inf = torch.ones(())
    opt.step()
    del opt.found_inf
    assert torch.equal(w, m.weight)
    for k, v in opt.state[m.weight].items():
        assert torch.equal(v, before[k]), k


KW = dict(lr=1.0, min_lr=0.1, warmup=10)


def test_warmup_is_linear_to_the_peak():
    assert [lr_at(s, 0.0, schedule="cosine", **KW) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]


@pytest.mark.parametrize("schedule", ["cosine", "linear", "wsd", "constant"])
def test_schedules_end_at_min_lr_and_never_rise(schedule):
    steps = 100
    lrs = [
        lr_at(s, s / steps, schedule=schedule, warmup_progress=0.1, **KW) for s in range(steps + 1)
    ]
    after = lrs[10:]
    assert all(b <= a + 1e-12 for a, b in zip(after, after[1:]))
    assert after[0] == pytest.approx(1.0)
    assert after[-1] == pytest.approx(1.0 if schedule == "constant" else 0.1)


def test_cosine_midpoint_and_wsd_shape():
    mid = lr_at(55, 0.55, schedule="cosine", warmup_progress=0.1, **KW)
    assert mid == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.5)))
    # wsd with decay_frac 0.2: flat until 80% of the post-warmup run, then linear.
    flat = lr_at(80, 0.8, schedule="wsd", warmup_progress=0.1, decay_frac=0.2, **KW)
    half = lr_at(91, 0.91, schedule="wsd", warmup_progress=0.1, decay_frac=0.2, **KW)
    assert flat == 1.0 and half == pytest.approx(0.55)
