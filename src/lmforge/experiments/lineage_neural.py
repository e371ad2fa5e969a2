"""The neural side of the lineage benchmark: train under a time budget, score windows, generate.

Each model is trained by `lmforge.stages.pretrain` (the one loop) with
``max_time`` as its only stop, then scored on the same non-overlapping
validation windows as the n-grams (see `lineage_ngram.window_targets`), each
window from a fresh state: a transformer sees nothing before its window, and
so, for a like-for-like comparison, neither does the LSTM.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..runs import RunLayout
from ..stages.pretrain_config import ModelOverrides, PretrainConfig
from .lineage_config import LineageConfig

EVAL_ROWS = 32  # windows per forward when scoring the whole validation split


def pretrain_config(cfg: LineageConfig, arch: str, data: Path, out: Path) -> PretrainConfig:
    """The same budget, data order, schedule and windows for every arch; only the model differs.

    The LSTM does not carry its state across windows here (``carry_state`` off): with
    it, its reader would walk the text sequentially, and the three models would no
    longer see the same windows in the same order.
    """
    overrides = ModelOverrides(block_size=cfg.context)
    if arch == "llama":
        overrides.d_ff = swiglu_width(cfg.preset)
    return PretrainConfig(
        arch=arch,
        preset=cfg.preset,
        data=str(data),
        out=str(out),
        seq_len=cfg.context,
        batch_size=cfg.batch_size,
        max_steps=None,
        max_time=cfg.budget_s,
        lr=cfg.lr,
        min_lr=cfg.lr / 10,
        warmup=cfg.warmup,
        schedule="cosine",
        dtype="fp32",
        eval_every=cfg.eval_every,
        eval_batches=cfg.eval_batches,
        save_every=0,
        log_every=_log_every(cfg.eval_every),
        seed=cfg.seed,
        device="cpu",
        threads=cfg.threads,
        samples=0,
        carry_state=False,
        model=overrides,
    )


def swiglu_width(preset: str) -> int:
    """LLaMA's 2/3 x 4d SwiGLU width (rounded to 8) for the preset's d_model, so its MLP has
    the GPT's 8d^2 weights; the preset's rounding up to a multiple of 256 would make the
    LLaMA a third larger than the GPT at the CPU sizes."""
    from ..models import get_preset

    _, mcfg = get_preset(preset, "llama")
    return 8 * math.ceil(8 * mcfg.d_model / 3 / 8)


def _log_every(eval_every: int) -> int:
    """A logging period that divides the evaluation period, so each curve point has a time."""
    return next(d for d in (10, 5, 2, 1) if eval_every % d == 0)


def train_neural(cfg: LineageConfig, arch: str, data: Path, out: Path) -> dict[str, Any]:
    """Train `arch` for `cfg.budget_s` seconds; returns steps, tokens, time and the curve."""
    from ..stages.pretrain import pretrain

    result = pretrain(pretrain_config(cfg, arch, data, out))
    return {
        "steps": result.step,
        "tokens_seen": result.tokens_seen,
        "train_s": result.elapsed_s,
        "train_tok_per_s": result.tokens_seen / result.elapsed_s if result.elapsed_s else None,
        "final_train_loss": result.train_loss,
        "curve": read_val_curve(RunLayout(out).metrics),
    }


def read_val_curve(path: Path) -> list[dict[str, float]]:
    """[{step, elapsed_s, val_loss}] from a run's metrics.jsonl.

    Validation records carry no clock; the training record logged at the same
    step (the log period divides the evaluation period) gives the elapsed time.
    """
    from ..train.metrics import read_metrics

    clock: dict[int, float] = {}
    curve = []
    for rec in read_metrics(path):
        if "elapsed_s" in rec:
            clock[int(rec["step"])] = float(rec["elapsed_s"])
        if "val_loss" in rec and int(rec["step"]) in clock:
            step = int(rec["step"])
            curve.append(
                {"step": step, "elapsed_s": clock[step], "val_loss": float(rec["val_loss"])}
            )
    return curve


def count_params(model: torch.nn.Module) -> int:
    """Distinct parameters (a tied embedding counts once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


@torch.inference_mode()
def score_windows(model: torch.nn.Module, val_ids: np.ndarray, context: int) -> np.ndarray:
    """Loss in nats of every predicted token of `val_ids`, in `window_targets` order."""
    model.eval()
    ids = torch.as_tensor(np.asarray(val_ids, dtype=np.int64))
    n = len(ids)
    full = (n - 1) // context  # windows with all T + 1 tokens
    out = []
    for lo in range(0, full, EVAL_ROWS):
        rows = range(lo, min(lo + EVAL_ROWS, full))
        win = torch.stack([ids[r * context : r * context + context + 1] for r in rows])
        out.append(_token_losses(model, win).reshape(-1))
    tail = ids[full * context :]
    if len(tail) > 1:  # the last, shorter window
        out.append(_token_losses(model, tail[None]).reshape(-1))
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def _token_losses(model: torch.nn.Module, win: torch.Tensor) -> torch.Tensor:
    logits, _ = model(win[:, :-1])  # (B, T, V)
    return F.cross_entropy(logits.float().transpose(1, 2), win[:, 1:], reduction="none")  # (B, T)


def generation_speed(
    model: torch.nn.Module, start: int, n: int, temperature: float, seed: int, repeats: int = 3
) -> tuple[list[int], float]:
    """`n` ids sampled at batch 1 through the engine after `start`, and the median tokens/s
    of `repeats` timed runs after one warm-up (stop tokens off: exactly `n` tokens each)."""
    from ..inference.engine import generate
    from ..inference.sampling import SamplingConfig

    sc = SamplingConfig(max_new_tokens=n, temperature=temperature, seed=seed)
    ids = generate(model, [[start]], sc)[0]  # warm-up, and the sample
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        got = generate(model, [[start]], sc)[0]
        rates.append(len(got) / (time.perf_counter() - t0))
    return ids, statistics.median(rates)
