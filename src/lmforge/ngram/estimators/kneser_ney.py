"""Interpolated Kneser-Ney and modified Kneser-Ney, estimated as KenLM's ``lmplz`` does.

Following Chen & Goodman (1998) and Heafield et al. (2013):

* adjusted counts a(g): the raw count at the highest order and for n-grams that begin
  with <s> (nothing can precede them); otherwise the continuation count, the number
  of distinct words seen before g. <s> itself has a = 0.
* discounts per order from the counts-of-counts n_k of adjusted counts:
  Y = n1 / (n1 + 2 n2); modified KN: D_k = k - (k+1) Y n_{k+1} / n_k for k = 1, 2, 3+;
  plain KN: one D = Y. When a count-of-counts is 0 (tiny corpora) or a discount falls
  outside [0, k], the order uses KenLM's fallback discounts (0.5, 1, 1.5; KN: 0.75).
* p(w | h) = (a(h w) - D(a(h w))) / sum_x a(h x) + gamma(h) p(w | h'), with
  gamma(h) = sum_x D(a(h x)) / sum_x a(h x); at the bottom the unigram distribution is
  interpolated with the uniform 1/|V| (|V| counts <unk>, excludes <s>), which is where
  <unk> gets its probability (KenLM's default ``--interpolate_unigrams``).
* pruning (KenLM's semantics): pruned n-grams still count in the discounts and in
  sum_x a(h x); their whole adjusted count moves into gamma(h), so the model stays a
  distribution.

The interpolated model is written in backoff form: p(h w) as above for listed n-grams,
and backoff weight gamma(h) for each context.
"""

from __future__ import annotations

import numpy as np

from ..counts import NgramCounts, continuation_counts
from ..vocab import BOS_ID
from . import Estimate, log10

MKN_FALLBACK = (0.5, 1.0, 1.5)
KN_FALLBACK = 0.75


def adjusted_counts(counts: NgramCounts) -> list[np.ndarray]:
    """a(g) per order: raw counts at order N and for <s>-initial n-grams, else N1+(. g)."""
    order = counts.order
    out = []
    for n in range(1, order + 1):
        raw = counts.counts[n - 1]
        if n == order:
            a = raw.copy()
        else:
            a = continuation_counts(counts, n)
            starts_bos = counts.first_words(n) == BOS_ID
            a[starts_bos] = raw[starts_bos]
        if n == 1:
            a[BOS_ID] = 0
        out.append(a)
    return out


def counts_of_counts(adjusted: np.ndarray) -> list[int]:
    """[n_1, n_2, n_3, n_4]: how many n-grams have adjusted count 1, 2, 3, 4."""
    small = np.bincount(np.minimum(adjusted, 5), minlength=6)
    return [int(x) for x in small[1:5]]


def modified_discounts(coc: list[int]) -> tuple[tuple[float, float, float], bool]:
    """(D1, D2, D3+) from counts-of-counts (Chen & Goodman eq. 26) and whether it fell back."""
    n1, n2, n3, n4 = coc
    if n1 == 0 or n2 == 0 or n3 == 0:
        return MKN_FALLBACK, True
    y = n1 / (n1 + 2.0 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if any(not 0.0 <= dk <= k for k, dk in enumerate(d, start=1)):
        return MKN_FALLBACK, True
    return d, False


def kn_discount(coc: list[int]) -> tuple[tuple[float, float, float], bool]:
    """Plain KN's single discount D = n1 / (n1 + 2 n2), repeated for counts 1, 2, 3+."""
    n1, n2 = coc[0], coc[1]
    if n1 == 0:
        return (KN_FALLBACK,) * 3, True
    y = n1 / (n1 + 2.0 * n2)
    return (y, y, y), False


def _discount(adjusted: np.ndarray, d: tuple[float, float, float]) -> np.ndarray:
    """D(a) per entry: 0 for a = 0, else D1, D2 or D3+."""
    table = np.array([0.0, d[0], d[1], d[2]])
    return table[np.minimum(adjusted, 3)]


def estimate_kneser_ney(
    counts: NgramCounts, keep: list[np.ndarray | None], modified: bool
) -> Estimate:
    order, vocab_size = counts.order, counts.vocab_size
    adjusted = adjusted_counts(counts)
    discounts, fallback, cocs = [], [], []
    for a in adjusted:
        coc = counts_of_counts(a)
        d, fell_back = modified_discounts(coc) if modified else kn_discount(coc)
        discounts.append(d)
        fallback.append(fell_back)
        cocs.append(coc)

    # Unigrams: discounted mass spread uniformly over every word but <s>.
    a1 = adjusted[0].astype(np.float64)
    disc1 = _discount(adjusted[0], discounts[0])
    total1 = a1.sum()
    gamma0 = disc1.sum() / total1
    prob = (a1 - disc1) / total1 + gamma0 / (vocab_size - 1)
    prob[BOS_ID] = 0.0
    logp, logbo = [log10(prob)], []

    for n in range(2, order + 1):
        a_int = adjusted[n - 1]
        a = a_int.astype(np.float64)
        disc = _discount(a_int, discounts[n - 1])
        parent = counts.parents(n)
        n_ctx = len(counts.keys[n - 2])
        total = np.bincount(parent, weights=a, minlength=n_ctx)
        mask = keep[n - 1] if n - 1 < len(keep) else None
        # A pruned n-gram's whole adjusted count goes to its context's backoff mass.
        freed = disc if mask is None else np.where(mask, disc, a)
        mass = np.bincount(parent, weights=freed, minlength=n_ctx)
        is_ctx = total > 0
        gamma = np.divide(mass, total, out=np.ones(n_ctx), where=is_ctx)
        logbo.append(np.where(is_ctx, log10(gamma), 0.0).astype(np.float32))
        prob = (a - disc) / total[parent] + gamma[parent] * prob[counts.suffix[n - 1]]
        logp.append(log10(prob).astype(np.float32))  # stored as float32 (see train.py)
        del a, disc, freed, mass, total

    info = {
        "discounts": [list(map(float, d)) for d in discounts],
        "discount_fallback": fallback,
        "counts_of_counts": cocs,
    }
    return Estimate(logp, logbo, info=info)
