"""Estimators: hand-computed probabilities on a tiny corpus, and every distribution sums to 1."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmforge.ngram.config import NgramConfig
from lmforge.ngram.estimators.kneser_ney import modified_discounts
from lmforge.ngram.text import encode_sentences
from lmforge.ngram.train import train_from_corpus
from lmforge.ngram.vocab import BOS_ID, Vocab

# The tiny corpus of every hand computation below (one sentence per line):
#   a b / a b c / b a
# Vocabulary ids: <unk> 0, <s> 1, </s> 2, a 3, b 4, c 5 (a and b both seen 3 times).
TINY = [["a", "b"], ["a", "b", "c"], ["b", "a"]]
VOCAB = Vocab(["<unk>", "<s>", "</s>", "a", "b", "c"])


def model(smoothing, order, sentences=TINY, vocab=VOCAB, **kw):
    cfg = NgramConfig(order=order, smoothing=smoothing, **kw)
    return train_from_corpus(encode_sentences(sentences, vocab), vocab, cfg)


def p(m, word, *context):
    """p(word | context) through the row scorer, as a float."""
    v = m.vocab
    ctx = np.array([[v.id(w) for w in context]], dtype=np.int64).reshape(1, len(context))
    lp, _ = m.logprob(ctx, np.array([v.id(word)]))
    return 10.0 ** lp[0]


# Values are float32-stored log10 probabilities: compare to ~1e-6 relative.
approx = lambda x: pytest.approx(x, rel=2e-6)  # noqa: E731


def test_mle_hand_computed():
    m = model("mle", 2)
    # Tokens predicted: a 3, b 3, c 1, </s> 3 = 10.
    assert 10.0 ** m.logp[0][VOCAB.id("a")] == approx(3 / 10)
    assert m.logp[0][BOS_ID] == -np.inf
    # <s> is followed by a twice and b once; a by b twice and </s> once.
    assert p(m, "a", "<s>") == approx(2 / 3)
    assert p(m, "b", "a") == approx(2 / 3)
    assert p(m, "</s>", "a") == approx(1 / 3)
    assert p(m, "c", "a") == 0.0  # seen context, unseen word: zero
    assert p(m, "a", "<unk>") == approx(3 / 10)  # unseen context: its longest seen suffix


def test_addk_hand_computed_is_textbook_laplace():
    m = model("addk", 2, k=1.0)
    # |V| = 5 predictable words (<unk>, </s>, a, b, c); c(a .) = 3.
    assert p(m, "b", "a") == approx((2 + 1) / (3 + 5))
    assert p(m, "c", "a") == approx((0 + 1) / (3 + 5))
    assert p(m, "<unk>", "a") == approx(1 / 8)
    assert p(m, "a", "<unk>") == approx(1 / 5)  # unseen history: uniform
    m3 = model("addk", 3, k=0.5)
    # c(a b .) = 2 with c(a b c) = 1; sentence start uses the history "<s> a".
    assert p(m3, "c", "a", "b") == approx((1 + 0.5) / (2 + 2.5))
    assert p(m3, "b", "<s>", "a") == approx((2 + 0.5) / (2 + 2.5))
    assert p(m3, "a", "<s>") == approx((2 + 0.5) / (3 + 2.5))
    assert p(m3, "a", "c", "b") == approx(1 / 5)  # "c b" never seen: uniform


def test_stupid_backoff_hand_computed():
    m = model("stupid", 3, alpha=0.4)
    assert p(m, "b", "<s>", "a") == approx(2 / 2)
    # "a b" never continues with a; "b a" is seen once of c(b .) = 3.
    assert p(m, "a", "a", "b") == approx(0.4 * 1 / 3)
    # Neither "<s> b b" nor "b b" was seen: two backoff steps down to S(b) = 3/10.
    assert p(m, "b", "<s>", "b") == approx(0.4 * 0.4 * 3 / 10)
    assert p(m, "a", "c", "b") == approx(0.4 * 1 / 3)  # unseen context still costs alpha
    assert p(m, "c", "<s>") == approx(0.4 * 1 / 10)


def test_kneser_ney_bigram_hand_computed():
    m = model("kn", 2)
    # Bigram counts-of-counts: n1 = 6, n2 = 2 -> D = 6 / (6 + 4) = 0.6.
    # Unigram continuation counts: a 2, b 2, c 1, </s> 3 -> n1 = 1, n2 = 2 -> D = 0.2;
    # total 8, gamma = 4 * 0.2 / 8 = 0.1, spread over |V| = 5.
    d = m.meta["estimator"]["discounts"]
    assert d[0] == pytest.approx([0.2] * 3) and d[1] == pytest.approx([0.6] * 3)
    uni = {"a": 1.8 / 8 + 0.02, "b": 1.8 / 8 + 0.02, "c": 0.8 / 8 + 0.02, "</s>": 2.8 / 8 + 0.02}
    for w, expected in uni.items():
        assert 10.0 ** m.logp[0][VOCAB.id(w)] == approx(expected)
    assert 10.0 ** m.logp[0][0] == approx(0.02)  # <unk>: its share of the uniform mass
    # Context a: a b (2), a </s> (1); gamma(a) = 2 * 0.6 / 3 = 0.4.
    assert p(m, "b", "a") == approx((2 - 0.6) / 3 + 0.4 * uni["b"])
    assert p(m, "c", "a") == approx(0.4 * uni["c"])
    bo = m.logbo[0][VOCAB.id("a")]
    assert 10.0**bo == approx(0.4)


def test_modified_kneser_ney_hand_computed_with_fallback():
    m = model("mkn", 2)
    # Unigrams: n1 = 1, n2 = 2, n3 = 1, n4 = 0 -> Y = 0.2, D1 = 1 - 2*0.2*2 = 0.2,
    # D2 = 2 - 3*0.2*1/2 = 1.7, D3+ = 3 - 0 = 3. Bigrams have no count-3 n-gram:
    # KenLM's fallback discounts 0.5, 1, 1.5.
    d = m.meta["estimator"]["discounts"]
    assert d[0] == pytest.approx([0.2, 1.7, 3.0])
    assert d[1] == [0.5, 1.0, 1.5] and m.meta["estimator"]["discount_fallback"] == [False, True]
    gamma0 = (1.7 + 1.7 + 0.2 + 3.0) / 8
    uni = {"a": 0.3 / 8, "b": 0.3 / 8, "c": 0.8 / 8, "</s>": 0.0, "<unk>": 0.0}
    for w, u in uni.items():
        assert 10.0 ** m.logp[0][VOCAB.id(w)] == approx(u + gamma0 / 5)
    # Context a: a b has count 2 (D2 = 1), a </s> count 1 (D1 = 0.5): gamma = 1.5 / 3.
    assert p(m, "b", "a") == approx((2 - 1.0) / 3 + 0.5 * (0.3 / 8 + gamma0 / 5))
    assert p(m, "</s>", "a") == approx((1 - 0.5) / 3 + 0.5 * (gamma0 / 5))


def test_modified_discounts_formula():
    (d1, d2, d3), fell = modified_discounts([100, 40, 20, 10])
    y = 100 / 180
    assert not fell
    assert (d1, d2, d3) == pytest.approx((1 - 2 * y * 0.4, 2 - 3 * y * 0.5, 3 - 4 * y * 0.5))
    assert modified_discounts([5, 0, 1, 1])[1] is True


def test_kneser_ney_adjusted_counts_keep_raw_counts_after_bos():
    # "<s> x" keeps its raw count (3) at a lower order, not its continuation count (1).
    sentences = [["x", "y"], ["x", "y"], ["x", "z"], ["w", "x"]]
    vocab = Vocab(["<unk>", "<s>", "</s>", "x", "y", "z", "w"])
    m = model("kn", 3, sentences, vocab)
    # Order 2 context <s>: children <s> x (raw 3), <s> w (raw 1) -> denominator 4.
    d2 = m.meta["estimator"]["discounts"][1][0]
    lo, hi = m.children(1, BOS_ID)
    assert hi - lo == 2
    gamma = 10.0 ** m.logbo[0][BOS_ID]
    assert gamma == approx(2 * d2 / 4)


# ---------------------------------------------------------------------------
# Every distribution sums to 1 over the vocabulary, for every context.


def synthetic(seed, n_sent, n_words=12):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(n_words)]
    # Zipf-like word choice so that counts-of-counts are realistic.
    probs = 1.0 / np.arange(1, n_words + 1)
    probs /= probs.sum()
    return [
        [words[i] for i in rng.choice(n_words, size=rng.integers(1, 10), p=probs)]
        for _ in range(n_sent)
    ], words


def every_context(sentences, vocab, order):
    seen = set()
    for s in sentences:
        ids = [BOS_ID] + [vocab.id(w) for w in s]
        for t in range(1, len(ids) + 1):
            seen.add(tuple(ids[max(0, t - order + 1) : t]))
    return sorted(seen)


@pytest.mark.parametrize("smoothing", ["mle", "addk", "kn", "mkn"])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("prune", [[], [0, 1, 1]])
def test_next_token_probabilities_sum_to_one(smoothing, order, prune):
    train, words = synthetic(0, 300)
    held_out, _ = synthetic(1, 40, n_words=14)  # includes unseen words and contexts
    vocab = Vocab(["<unk>", "<s>", "</s>", *words])
    prune = prune[:order] if order > 1 else []
    m = model(smoothing, order, train, vocab, prune=prune, k=0.3)
    contexts = every_context(train + held_out, vocab, order)
    assert len(contexts) > {1: 0, 2: 12}.get(order, 100)
    for ctx in contexts:
        lp = m.log_distribution(list(ctx))
        assert lp[BOS_ID] == -np.inf
        total = float(np.sum(10.0**lp))
        assert total == pytest.approx(1.0, abs=1e-6), (ctx, total)
    # The row scorer (used for perplexity) agrees with the distribution builder.
    ctx = contexts[len(contexts) // 2]
    lp = m.log_distribution(list(ctx))
    rows = np.broadcast_to(np.array(ctx, dtype=np.int64), (len(vocab), len(ctx)))
    got, _ = m.logprob(rows, np.arange(len(vocab)))
    finite = np.isfinite(lp)
    assert np.array_equal(finite, np.isfinite(got))
    np.testing.assert_allclose(got[finite], lp[finite], atol=1e-9)


def test_stupid_backoff_is_not_a_distribution():
    train, words = synthetic(0, 300)
    vocab = Vocab(["<unk>", "<s>", "</s>", *words])
    m = model("stupid", 3, train, vocab)
    totals = [
        float(np.sum(10.0 ** m.log_distribution(list(c))))
        for c in every_context(train, vocab, 3)[:50]
    ]
    assert max(totals) > 1.05  # scores add up to more than one: documented, not a bug


def test_pruned_kneser_ney_moves_mass_to_backoff():
    train, words = synthetic(2, 400)
    vocab = Vocab(["<unk>", "<s>", "</s>", *words])
    full = model("mkn", 3, train, vocab)
    pruned = model("mkn", 3, train, vocab, prune=[0, 0, 1])
    assert pruned.ngram_counts()[2] < full.ngram_counts()[2]
    assert pruned.ngram_counts()[:2] == full.ngram_counts()[:2]
    # Same discounts (computed before pruning), as KenLM does.
    assert pruned.meta["estimator"]["discounts"] == full.meta["estimator"]["discounts"]
    ctx = every_context(train, vocab, 3)[5]
    assert math.isclose(
        float(np.sum(10.0 ** pruned.log_distribution(list(ctx)))), 1.0, abs_tol=1e-6
    )
