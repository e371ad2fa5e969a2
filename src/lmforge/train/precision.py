"""Compute dtype: which autocast to train under, and whether this CPU does bf16 fast."""

from __future__ import annotations

import contextlib
import functools

import torch


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True on CPUs with bf16 matrix instructions (AVX-512 BF16 or AMX), where oneDNN's
    bf16 matmuls beat fp32 by 2-6x; elsewhere bf16 is emulated and slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return (" avx512_bf16" in flags or " amx_bf16" in flags) and bool(
        torch.backends.mkldnn.is_available()
    )


# Below this layer width, autocast's per-op casts cost more on a CPU than bf16 matmuls
# save (measured: d_model 128 no faster, d_model 384 three times faster; docs/training.md).
CPU_BF16_MIN_WIDTH = 256


def model_width(model: torch.nn.Module) -> int:
    """The typical input width of the model's linear layers (their median in_features)."""
    widths = sorted(m.in_features for m in model.modules() if isinstance(m, torch.nn.Linear))
    return widths[len(widths) // 2] if widths else 0


def resolve_dtype(
    dtype: str, device: str, model: torch.nn.Module | None = None
) -> torch.dtype | None:
    """The autocast dtype for `--dtype` on `device`; None means plain fp32.

    auto: bf16 on CUDA cards that support it; on CPUs with bf16 instructions when the
    model's layers are at least CPU_BF16_MIN_WIDTH wide (or no model is given);
    fp32 elsewhere.
    """
    kind = device.split(":")[0]
    if dtype == "fp32":
        return None
    if dtype == "bf16":
        return torch.bfloat16
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if kind == "cpu" and cpu_has_fast_bf16():
        if model is not None and model_width(model) < CPU_BF16_MIN_WIDTH:
            return None
        return torch.bfloat16
    return None


def autocast(device: str, dtype: torch.dtype | None):
    """Autocast context for the forward pass (weights and optimizer stay fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)
