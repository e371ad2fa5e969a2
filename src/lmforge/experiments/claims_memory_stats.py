"""C3's arithmetic: loss by position buckets of the context window, and how much a model
gains from distant context, with a standard error over the validation windows.

Input is a matrix of per-token losses in bits, one row per validation window and one
column per window position (position t = the token predicted from t + 1 tokens of
history). A bucket's loss is the mean over its positions; a model's *gain* from bucket
a to bucket b is loss(a) - loss(b): how many bits per token the extra history between
the two buckets is worth. Its standard error comes from the per-window gains (each
window is one paired draw of "short history" vs "long history" on the same text), and
the difference of two models' gains is paired the same way: both models read the very
same windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

# Bucket edges in positions; those at or past the context are dropped and the context
# itself closes the last bucket (256 -> 0-8, 8-32, 32-128, 128-256).
EDGES = (0, 8, 32, 128, 256, 512, 1024, 2048)


def bucket_edges(context: int) -> list[int]:
    """[0, 8, 32, ..., context]: the bucket boundaries that fit a window of `context`."""
    if context < 2:
        raise ValueError(f"context must be at least 2 positions, got {context}")
    return [e for e in EDGES if e < context] + [context]


def bucket_labels(edges: Sequence[int]) -> list[str]:
    return [f"{a}-{b}" for a, b in zip(edges[:-1], edges[1:])]


def window_matrix(losses_nats: np.ndarray, context: int) -> np.ndarray:
    """(windows, context) bits per token of the full windows of a `window_targets` stream.

    Losses come in window order (window w's positions 0..T-1, then window w + 1); the
    last, shorter window is left out so every row has every position."""
    full = len(losses_nats) // context
    if full == 0:
        raise ValueError(f"{len(losses_nats)} losses hold no full window of {context}")
    return np.asarray(losses_nats[: full * context], dtype=np.float64).reshape(
        full, context
    ) / math.log(2)  # (W, T)


def bucket_means(matrix: np.ndarray, edges: Sequence[int]) -> np.ndarray:
    """(W, buckets): each window's mean loss over each bucket's positions."""
    return np.stack([matrix[:, a:b].mean(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)


def profile_buckets(by_position: Sequence[float], edges: Sequence[int]) -> list[float]:
    """Bucket means of a per-position mean-loss profile (for models scored elsewhere)."""
    ys = np.asarray(by_position, dtype=np.float64)
    return [float(np.nanmean(ys[a:b])) for a, b in zip(edges[:-1], edges[1:])]


@dataclass(frozen=True)
class Gain:
    """What a model gains (bits per token) from bucket `near` to bucket `far`."""

    name: str
    near: str  # bucket label, e.g. "32-128"
    far: str  # "128-256"
    gain: float  # loss(near) - loss(far); > 0: the longer history helps
    se: float  # standard error over the validation windows
    windows: int

    def to_dict(self) -> dict:
        return asdict(self)


def mean_se(x: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of a 1-D sample (se 0 for a single value)."""
    x = np.asarray(x, dtype=np.float64)
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0
    return float(x.mean()), se


def per_window_gain(buckets: np.ndarray, near: int, far: int) -> np.ndarray:
    """(W,) each window's loss in bucket `near` minus its loss in bucket `far`."""
    return buckets[:, near] - buckets[:, far]


def gain(name: str, buckets: np.ndarray, labels: Sequence[str], near: int, far: int) -> Gain:
    m, se = mean_se(per_window_gain(buckets, near, far))
    return Gain(name, labels[near], labels[far], m, se, int(buckets.shape[0]))


def paired_difference_se(a: np.ndarray, b: np.ndarray, near: int, far: int) -> float:
    """Standard error of gain(a) - gain(b) when both models scored the same windows."""
    if a.shape != b.shape:
        raise ValueError(f"bucket matrices differ in shape: {a.shape} vs {b.shape}")
    return mean_se(per_window_gain(a, near, far) - per_window_gain(b, near, far))[1]


def log_bins(context: int) -> list[tuple[int, int]]:
    """Position bins for the plot: 0, 1, 2-3, 4-7, ... doubling, capped at `context`
    (per-position means are noisy; log-spaced bins smooth them evenly on a log axis)."""
    bins, lo = [], 0
    while lo < context:
        hi = min(context, max(1, 2 * lo))
        bins.append((lo, hi))
        lo = hi
    return bins


def binned_profile(by_position: Sequence[float], bins: Sequence[tuple[int, int]]):
    """(xs, ys): the mean position (+1 = tokens of history) and mean loss of each bin."""
    ys = np.asarray(by_position, dtype=np.float64)
    xs = [(a + b - 1) / 2 + 1 for a, b in bins]
    return xs, [float(np.nanmean(ys[a:b])) for a, b in bins]
