"""Stupid backoff (Brants et al. 2007): a score, not a probability distribution.

S(w | h) = c(h w) / c(h) if h w was seen, else alpha * S(w | h minus its first word);
S(w) = c(w) / tokens. Every backoff step costs alpha, whether or not the context was
seen, so the scores of one context do not sum to 1 (they sum to more). It is cheap
and, on web-scale data, nearly as good as Kneser-Ney for ranking; perplexities
computed from it are not comparable with those of true distributions.
"""

from __future__ import annotations

import math

import numpy as np

from ..counts import NgramCounts
from . import Estimate
from .mle import relative_frequencies


def estimate_stupid(counts: NgramCounts, alpha: float) -> Estimate:
    logp, totals = relative_frequencies(counts)
    log_alpha = math.log10(alpha)
    logbo = [np.full(len(total), log_alpha) for total in totals]
    return Estimate(logp, logbo, unlisted_logbo=log_alpha, info={"alpha": alpha})
