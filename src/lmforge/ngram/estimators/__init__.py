"""Estimators: raw n-gram counts -> a backoff model (log10 probability and backoff per n-gram).

Every estimator produces the same form, the one ARPA files hold: for each listed
n-gram ``h w`` a log10 probability, and for each listed context ``h`` a log10 backoff
weight, so that ``p(w | h) = p(h w)`` if ``h w`` is listed, else
``bo(h) * p(w | h minus its first word)``. Interpolated Kneser-Ney has exactly this
form; so do maximum likelihood, add-k and stupid backoff when written as below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..counts import NgramCounts


@dataclass
class Estimate:
    """Per order n (index n-1): ``logp[n-1]`` for every n-gram of the counts' table and,
    for n < N, ``logbo[n-1]``. ``unlisted_logbo`` is the backoff charged for a context
    the model does not list (0 for true backoff models; log10 alpha for stupid backoff).
    """

    logp: list[np.ndarray]
    logbo: list[np.ndarray]
    unlisted_logbo: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


# Estimators that read pruned n-grams while estimating (KenLM's pruning); the others
# see counts with pruned n-grams already removed.
PRUNE_INSIDE = ("kn", "mkn")


def log10(x: np.ndarray) -> np.ndarray:
    """log10 with log10(0) = -inf and no warning."""
    with np.errstate(divide="ignore"):
        return np.log10(x)


def estimate(
    name: str,
    counts: NgramCounts,
    keep: list[np.ndarray | None],
    *,
    k: float = 1.0,
    alpha: float = 0.4,
) -> Estimate:
    """Run estimator `name` ('mle', 'addk', 'stupid', 'kn', 'mkn') on `counts`."""
    from .addk import estimate_addk
    from .kneser_ney import estimate_kneser_ney
    from .mle import estimate_mle
    from .stupid import estimate_stupid

    if name == "mle":
        return estimate_mle(counts)
    if name == "addk":
        return estimate_addk(counts, k)
    if name == "stupid":
        return estimate_stupid(counts, alpha)
    if name in ("kn", "mkn"):
        return estimate_kneser_ney(counts, keep, modified=name == "mkn")
    raise ValueError(f"unknown estimator {name!r}")
