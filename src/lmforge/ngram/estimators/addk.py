"""Add-k (Laplace for k = 1): p(w | h) = (c(h w) + k) / (c(h) + k |V|), the textbook form.

``h`` is the full history of N-1 words (shorter only at the start of a sentence, where
it begins with <s>); |V| counts every word a model can predict (the vocabulary with
<unk> and </s>, without <s>); a history never seen gives the uniform 1/|V|.

Written as a backoff model, exactly: the n-grams that condition on a real history
(order N, or beginning with <s>) carry their add-k probability and, as contexts, the
backoff weight ``k|V| / (c(h) + k|V|)``; every other lower-order entry is a
placeholder with probability 1/|V| and backoff 1, so backing off always lands on the
uniform distribution. Such a model round-trips through ARPA and KenLM unchanged.
"""

from __future__ import annotations

import numpy as np

from ..counts import NgramCounts
from ..vocab import BOS_ID
from . import Estimate, log10


def estimate_addk(counts: NgramCounts, k: float) -> Estimate:
    order = counts.order
    n_predictable = counts.vocab_size - 1  # everything but <s>
    uni = counts.counts[0].astype(np.float64)
    uni[BOS_ID] = 0.0
    if order == 1:
        p1 = (uni + k) / (uni.sum() + k * n_predictable)
    else:
        p1 = np.full(counts.vocab_size, 1.0 / n_predictable)
    p1[BOS_ID] = 0.0
    logp = [log10(p1)]
    logbo = []
    for n in range(2, order + 1):
        # Order n-1 entries that are real histories: order N-1, or starting with <s>.
        n_ctx = len(counts.keys[n - 2])
        if n - 1 == order - 1:
            real_ctx = np.ones(n_ctx, dtype=bool)
        else:
            real_ctx = counts.first_words(n - 1) == BOS_ID
        c = counts.counts[n - 1].astype(np.float64)
        parent = counts.parents(n)
        total = np.bincount(parent, weights=c, minlength=n_ctx)
        denom = total + k * n_predictable
        bo = np.where(real_ctx & (total > 0), k * n_predictable / denom, 1.0)
        logbo.append(log10(bo))
        p = np.where(real_ctx[parent], (c + k) / denom[parent], 1.0 / n_predictable)
        logp.append(log10(p))
    return Estimate(logp, logbo, info={"k": k, "predictable_vocab": n_predictable})
