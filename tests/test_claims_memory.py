"""C3 (RNNs forget distant context): the verdict, the bucket arithmetic, and a --quick run."""

from __future__ import annotations

import math

import numpy as np
import pytest
from claims_helpers import quick_context

from lmforge.experiments.claims import NOT_REPRODUCED, PARTLY, REPRODUCED
from lmforge.experiments.claims_memory import verdict
from lmforge.experiments.claims_memory_stats import (
    Gain,
    binned_profile,
    bucket_edges,
    bucket_labels,
    bucket_means,
    gain,
    log_bins,
    paired_difference_se,
    profile_buckets,
    window_matrix,
)


def _g(name: str, value: float, se: float = 0.005) -> Gain:
    return Gain(name, "32-128", "128-256", value, se, 400)


def test_verdict_reproduced_when_only_the_transformer_gains():
    v = verdict(_g("lstm", 0.004), _g("llama", 0.08), diff_se=0.006, budget_s=150)
    assert v.status == REPRODUCED
    assert "+0.080" in v.reason and "+0.004" in v.reason


def test_verdict_partly_when_both_gain_the_transformer_more():
    v = verdict(_g("lstm", 0.05), _g("llama", 0.12), diff_se=0.01, budget_s=150)
    assert v.status == PARTLY
    assert "does not forget yet" in v.reason


def test_verdict_partly_when_the_difference_is_noise():
    # The transformer gains, the RNN is flat, but their paired difference has a wide error.
    v = verdict(_g("lstm", 0.01, se=0.02), _g("llama", 0.05), diff_se=0.03, budget_s=150)
    assert v.status == PARTLY
    assert "within 2 standard errors" in v.reason


def test_verdict_not_reproduced_when_the_rnn_gains_as_much():
    v = verdict(_g("lstm", 0.07), _g("llama", 0.075), diff_se=0.01, budget_s=150)
    assert v.status == NOT_REPRODUCED
    assert "gains as much" in v.reason


def test_verdict_not_reproduced_when_the_transformer_is_flat():
    v = verdict(_g("lstm", 0.06), _g("llama", 0.01), diff_se=0.01, budget_s=90)
    assert v.status == NOT_REPRODUCED
    assert "after 90 s" in v.reason and "while the RNN already does" in v.reason
    floor = {"ngram5": 2.28, "llama": 3.09, "lstm": 2.72}
    said = verdict(_g("lstm", 0.0), _g("llama", 0.0), diff_se=0.01, budget_s=90, bpc=floor)
    assert said.status == NOT_REPRODUCED and "above the ngram5's 2.280: undertrained" in said.reason
    # A gain inside its own noise does not count either, however large.
    noisy = verdict(_g("lstm", 0.0), _g("llama", 0.05, se=0.04), diff_se=0.04, budget_s=90)
    assert noisy.status == NOT_REPRODUCED


def test_bucket_edges_fit_the_context():
    assert bucket_edges(256) == [0, 8, 32, 128, 256]
    assert bucket_edges(64) == [0, 8, 32, 64]
    assert bucket_edges(300) == [0, 8, 32, 128, 256, 300]
    assert bucket_labels([0, 8, 32]) == ["0-8", "8-32"]
    with pytest.raises(ValueError):
        bucket_edges(1)


def test_window_matrix_drops_the_short_tail_and_gives_bits():
    losses = np.full(2 * 4 + 3, math.log(2))  # 2 full windows of 4 + a tail of 3
    m = window_matrix(losses, 4)
    assert m.shape == (2, 4)
    assert np.allclose(m, 1.0)
    with pytest.raises(ValueError):
        window_matrix(np.ones(3), 4)


def test_gain_and_paired_difference():
    # Window w: loss 3 + w over positions 0-1, 2 + w over 2-3 -> every window gains 1 bit.
    rows = np.array([[3 + w, 3 + w, 2 + w, 2 + w] for w in range(5)], dtype=float)
    b = bucket_means(rows, [0, 2, 4])
    assert b.shape == (5, 2)
    g = gain("m", b, ["0-2", "2-4"], 0, 1)
    assert g.gain == pytest.approx(1.0) and g.se == pytest.approx(0.0) and g.windows == 5
    other = b.copy()
    other[:, 1] = other[:, 0] - np.array([0.0, 1.0, 2.0, 3.0, 4.0])  # gains 0..4, mean 2
    g2 = gain("o", other, ["0-2", "2-4"], 0, 1)
    assert g2.gain == pytest.approx(2.0)
    assert g2.se == pytest.approx(np.std([0, 1, 2, 3, 4], ddof=1) / math.sqrt(5))
    assert paired_difference_se(other, b, 0, 1) == pytest.approx(g2.se)
    with pytest.raises(ValueError):
        paired_difference_se(other, b[:3], 0, 1)


def test_profiles_and_plot_bins():
    assert profile_buckets([4.0, 2.0, 1.0, 1.0], [0, 2, 4]) == [3.0, 1.0]
    bins = log_bins(256)
    assert bins[0] == (0, 1) and bins[-1] == (128, 256)
    assert all(a[1] == b[0] for a, b in zip(bins, bins[1:]))  # contiguous, no gap
    xs, ys = binned_profile([5.0, 4.0, 3.0, 1.0], log_bins(4))
    assert ys == [5.0, 4.0, 2.0] and xs == [1.0, 2.0, 3.5]


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    from lmforge.experiments.claims_memory import run

    ctx = quick_context(tmp_path)
    res = run(ctx)
    assert res.verdict.status in (REPRODUCED, PARTLY, NOT_REPRODUCED)
    assert [r[0] for r in res.rows] == ["ngram5", "lstm", "llama"]
    assert "loss 0-8" in res.columns and len(res.rows[0]) == len(res.columns)
    assert (ctx.out / res.plots[0]).is_file()
    n = res.numbers
    assert n["buckets"] == ["0-8", "8-32", "32-64"]
    assert set(n["far_gain"]) == {"lstm", "llama"} and n["windows"] > 0
    for name in ("ngram5", "lstm", "llama"):
        assert len(n["loss_by_bucket"][name]) == 3
        assert all(math.isfinite(x) for x in n["loss_by_bucket"][name])
    assert n["diff"] == pytest.approx(
        n["far_gain"]["llama"]["gain"] - n["far_gain"]["lstm"]["gain"]
    )
