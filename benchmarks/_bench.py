"""Shared benchmark plumbing: timing medians, machine facts, tables, JSON results.

Every script in benchmarks/ runs lmforge and its peer in the same run on the same
input, prints a table whose last line is the ratio, and writes JSON to
benchmarks/results/<name>.json through `write_result`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def machine() -> dict[str, Any]:
    """Cores, CPU model, Python/torch versions and device, recorded with every result."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["device"] = torch.cuda.get_device_name(0)
        else:
            info["device"] = "cpu"
    except ImportError:
        pass
    return info


def run_times(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> list[float]:
    """Wall times in seconds of `repeats` runs of `fn()` after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median_time(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time in seconds of `fn()` over `repeats` runs after `warmup` runs."""
    return statistics.median(run_times(fn, repeats, warmup))


def best_time(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> float:
    """Best wall time of `fn()`: on a shared machine load only ever slows a run down."""
    return min(run_times(fn, repeats, warmup))


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    """A plain Markdown table (copy-paste ready for docs/benchmarks.md)."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.1f}"
        return str(v)

    cells = [[fmt(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write benchmarks/results/<name>.json with the machine facts added."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "machine": machine(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return path


def matmul_attention_floor_s(
    model: Any, batch: int, ctx: int, heads: int, layers: int, reps: int = 10
) -> float:
    """Best time of one training step's matrix products and causal attention alone, fp32.

    Every nn.Linear of `model` runs forward, input-gradient and weight-gradient
    products on `batch * ctx` random rows, and `layers` SDPA forward+backward passes
    run on (batch, heads, ctx, head_dim): the work no implementation of the step can
    skip (train_cpu.py and sft.py report their rates against it).
    """
    import torch
    import torch.nn.functional as F

    n = batch * ctx
    g = torch.Generator().manual_seed(0)
    mats = [
        (torch.randn(n, m.in_features, generator=g), m.weight.detach().clone(),
         torch.randn(n, m.out_features, generator=g))
        for m in model.modules() if isinstance(m, torch.nn.Linear)
    ]  # fmt: skip
    d = next(m for m in model.modules() if isinstance(m, torch.nn.Embedding)).embedding_dim
    hd = d // heads
    qkv = [torch.randn(batch, heads, ctx, hd, requires_grad=True) for _ in range(3)]
    dy = torch.randn(batch, heads, ctx, hd)

    def once():
        for x, w, dout in mats:
            F.linear(x, w)  # forward
            dout @ w  # gradient of the input
            dout.t() @ x  # gradient of the weight
        for _ in range(layers):
            y = F.scaled_dot_product_attention(*qkv, is_causal=True)
            torch.autograd.grad(y, qkv, dy)

    return best_time(once, reps)
