"""Elementwise parts of a LLaMA block with hand-written backward passes.

A small model's training step on a CPU is bound by how many kernels it launches,
not by arithmetic: at nanoGPT's CPU size the matmuls run near the machine's peak
and the rest of the step is dozens of small elementwise kernels. Autograd's
generic backward for RMSNorm is 19 aten calls (the vector norm's backward
alone divides, multiplies and masks zeros); SwiGLU's ends in a ``torch.cat`` of
the gate and up gradients. The functions here compute the same values with the
fewest kernels we found (measured in docs/benchmarks.md, checked against autograd
in tests/test_model_ops.py). ``torch.compile`` traces them like any other code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _RMSNorm(torch.autograd.Function):
    """y = x * r * w with r = 1 / sqrt(mean(x^2) + eps), over the last dimension."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        r = rms_scale(x, eps)  # (..., 1)
        xhat = x * r
        ctx.save_for_backward(xhat, weight, r)
        return xhat * weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        xhat, weight, r = ctx.saved_tensors
        gw = grad * weight if ctx.needs_input_grad[0] else None
        dx = dw = None
        if ctx.needs_input_grad[0]:
            # d/dx of xhat·gw = r * (gw - xhat * mean(gw * xhat))
            mean = torch.linalg.vecdot(gw, xhat, dim=-1).unsqueeze(-1).div_(xhat.shape[-1])
            dx = torch.addcmul(gw, xhat, mean, value=-1.0).mul_(r)
        if ctx.needs_input_grad[1]:
            dw = (grad * xhat).flatten(0, -2).sum(0)
        return dx, dw, None


def rms_scale(x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """1 / sqrt(mean(x^2) + eps) over the last dimension, shape (..., 1).

    mean(x^2) + eps is one fused multiply-add on the vector norm: three kernels where
    the textbook expression launches five.
    """
    n = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return torch.rsqrt(torch.addcmul(eps, n, n, value=1.0 / x.shape[-1]))


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """RMSNorm of float32 `x` scaled by `weight`; `eps` is a 0-d float32 tensor."""
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return _RMSNorm.apply(x, weight, eps)
    return x * rms_scale(x, eps) * weight


class _SwiGLU(torch.autograd.Function):
    """silu(gate) * up of h = [gate | up] along the last dimension."""

    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:
        gate, up = h.chunk(2, dim=-1)
        s = F.silu(gate)
        ctx.save_for_backward(h, s)
        return s * up

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, s = ctx.saved_tensors
        gate, up = h.chunk(2, dim=-1)
        # Both halves are written straight into one buffer: no torch.cat afterwards.
        dh = torch.empty_like(h)
        d_gate, d_up = dh.chunk(2, dim=-1)
        torch.mul(grad, s, out=d_up)
        torch.ops.aten.silu_backward.grad_input(grad * up, gate, grad_input=d_gate)
        return dh


def swiglu(h: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up where h = [gate | up] (LLaMA's feed-forward activation)."""
    if torch.is_grad_enabled() and h.requires_grad:
        return _SwiGLU.apply(h)
    gate, up = h.chunk(2, dim=-1)
    return F.silu(gate) * up
