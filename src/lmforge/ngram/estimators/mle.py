"""Maximum likelihood: p(w | h) = c(h w) / c(h) at the longest context seen in training.

A context seen in training gives zero probability to every word never seen after it
(its backoff weight is 0, log10 -inf), so held-out perplexity is usually infinite:
this estimator is the baseline that smoothing exists to fix. A context never seen
falls back to its longest seen suffix, which keeps every context a distribution.
``c(h)`` is the sum of the counts of h's continuations (so it sums to exactly 1).
"""

from __future__ import annotations

import numpy as np

from ..counts import NgramCounts
from ..vocab import BOS_ID
from . import Estimate, log10


def relative_frequencies(counts: NgramCounts) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """log10 c(h w)/c(h) per order (unigrams: c(w)/tokens, <s> excluded), and context totals."""
    uni = counts.counts[0].astype(np.float64)
    uni[BOS_ID] = 0.0  # <s> is never predicted
    logp = [log10(uni / uni.sum())]
    totals = []
    for n in range(2, counts.order + 1):
        c = counts.counts[n - 1].astype(np.float64)
        parent = counts.parents(n)
        total = np.bincount(parent, weights=c, minlength=len(counts.keys[n - 2]))
        logp.append(log10(c / total[parent]))
        totals.append(total)
    return logp, totals


def estimate_mle(counts: NgramCounts) -> Estimate:
    logp, totals = relative_frequencies(counts)
    logbo = [np.where(total > 0, -np.inf, 0.0) for total in totals]
    return Estimate(logp, logbo)
