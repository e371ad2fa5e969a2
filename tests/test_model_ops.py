"""The hand-written backward passes in lmforge.models.ops against autograd's own."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmforge.models.ops import rms_norm, swiglu


def reference_rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def reference_swiglu(h):
    gate, up = h.chunk(2, dim=-1)
    return F.silu(gate) * up


@pytest.mark.parametrize("shape", [(7, 16), (2, 3, 8)])
def test_rms_norm_gradcheck(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(shape[-1], dtype=torch.float64, generator=g, requires_grad=True)
    eps = torch.tensor(1e-5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: rms_norm(a, b, eps), (x, w))


def test_rms_norm_matches_reference_values_and_grads():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 32, generator=g, requires_grad=True)
    w = (1 + 0.1 * torch.randn(32, generator=g)).requires_grad_()
    eps = torch.tensor(1e-6)
    dy = torch.randn(64, 32, generator=g)
    ours = rms_norm(x, w, eps)
    ours_grads = torch.autograd.grad(ours, (x, w), dy)
    ref = reference_rms_norm(x, w, 1e-6)
    ref_grads = torch.autograd.grad(ref, (x, w), dy)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)
    for a, b in zip(ours_grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    with torch.no_grad():  # the inference path computes the same values
        torch.testing.assert_close(rms_norm(x, w, eps), ours, atol=0, rtol=0)


def test_rms_norm_frozen_weight_or_frozen_input():
    x = torch.randn(4, 8, requires_grad=True)
    w = torch.ones(8)
    (gx,) = torch.autograd.grad(rms_norm(x, w, torch.tensor(1e-6)).sum(), x)
    (rx,) = torch.autograd.grad(reference_rms_norm(x, w, 1e-6).sum(), x)
    torch.testing.assert_close(gx, rx, atol=1e-5, rtol=1e-4)
    w.requires_grad_()
    (gw,) = torch.autograd.grad(rms_norm(x.detach(), w, torch.tensor(1e-6)).sum(), w)
    torch.testing.assert_close(gw, reference_rms_norm(x.detach(), 1.0, 1e-6).sum(0))


@pytest.mark.parametrize("shape", [(5, 12), (2, 3, 10)])
def test_swiglu_gradcheck(shape):
    h = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(swiglu, (h,))


def test_swiglu_matches_reference_on_a_non_contiguous_input():
    g = torch.Generator().manual_seed(2)
    base = torch.randn(16, 40, generator=g)
    h = base[:, 4:36].requires_grad_()  # a strided view, as a slice of a larger buffer is
    dy = torch.randn(16, 16, generator=g)
    ours = swiglu(h)
    (dh,) = torch.autograd.grad(ours, h, dy)
    ref = reference_swiglu(h)
    (rh,) = torch.autograd.grad(ref, h, dy)
    torch.testing.assert_close(ours, ref, atol=0, rtol=0)
    torch.testing.assert_close(dh, rh, atol=1e-6, rtol=1e-5)


def test_llama_training_step_matches_autograd_reference():
    """One LLaMA loss and its gradients equal those of the same model with textbook ops."""
    from lmforge.models import build_model, get_preset, gpt

    arch, cfg = get_preset("llama-tiny")
    torch.manual_seed(0)
    model = build_model(arch, cfg).train()
    ids = torch.randint(0, cfg.vocab_size, (2, 16), generator=torch.Generator().manual_seed(3))
    _, loss = model(ids[:, :-1], ids[:, 1:])
    grads = torch.autograd.grad(loss, list(model.parameters()))

    def textbook_norm(self, x):
        return reference_rms_norm(x, self.weight, self.eps)

    def textbook_mlp(self, x):
        return self.proj(reference_swiglu(self.fc(x)))

    mp = pytest.MonkeyPatch()
    mp.setattr(gpt.RMSNorm, "forward", textbook_norm)
    mp.setattr(gpt.MLP, "forward", textbook_mlp)
    try:
        _, ref_loss = model(ids[:, :-1], ids[:, 1:])
        ref_grads = torch.autograd.grad(ref_loss, list(model.parameters()))
    finally:
        mp.undo()
    torch.testing.assert_close(loss, ref_loss, atol=1e-6, rtol=1e-6)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
