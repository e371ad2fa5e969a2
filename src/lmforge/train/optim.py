"""AdamW with decay / no-decay parameter groups, and learning-rate schedules."""

from __future__ import annotations

import math
import sys

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: matrices (2-D and up) decay; biases, norms and gains do not.

    Embeddings are matrices and decay too (as in nanoGPT and LLaMA). Parameters
    shared between modules (tied embeddings) are listed once.
    """
    decay, no_decay = [], []
    seen: set[int] = set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def fused_available(model: nn.Module) -> bool:
    """Fused AdamW runs on CPU and CUDA for plain float tensors (not FSDP's DTensors)."""
    # No DTensor can exist unless its module was imported (importing it costs a second).
    dtensor = sys.modules.get("torch.distributed.tensor")
    for p in model.parameters():
        if dtensor is not None and isinstance(p, dtensor.DTensor):
            return False
        if p.device.type not in ("cpu", "cuda"):
            return False
        if not p.is_floating_point():
            return False
    return True


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over `param_groups`; fused where possible (one kernel, and it can skip bad steps)."""
    fused = fused_available(model)
    return torch.optim.AdamW(
        param_groups(model, weight_decay),
        lr=lr,
        betas=tuple(betas),
        eps=eps,
        fused=fused or None,
        foreach=None if fused else True,
    )


def lr_at(
    step: int,
    progress: float,
    *,
    lr: float,
    min_lr: float,
    warmup: int,
    schedule: str,
    decay_frac: float = 0.2,
    warmup_progress: float = 0.0,
) -> float:
    """Learning rate for optimizer step `step` (0-based).

    `progress` in [0, 1] is how far the run is (steps, tokens or time, whichever
    budget ends first); `warmup_progress` is the progress at the end of warmup, so
    decay schedules run from there to 1. Warmup is linear from lr/warmup to lr.
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    span = max(1.0 - warmup_progress, 1e-12)
    t = min(max((progress - warmup_progress) / span, 0.0), 1.0)  # 0..1 after warmup
    if schedule == "cosine":
        return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * t))
    if schedule == "linear":
        return lr - (lr - min_lr) * t
    if schedule == "wsd":
        # Warmup-stable-decay: hold the peak, then decay linearly over the last `decay_frac`.
        if decay_frac <= 0.0 or t < 1.0 - decay_frac:
            return lr
        return lr - (lr - min_lr) * (t - (1.0 - decay_frac)) / decay_frac
    raise ValueError(f"unknown schedule {schedule!r}")
