"""C1 (n-gram context): the verdict, the pure helpers, and one --quick run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from claims_helpers import quick_context

from lmforge.experiments.claims import NOT_REPRODUCED, PARTLY, REPRODUCED
from lmforge.experiments.claims_ngram import (
    CorpusNumbers,
    first_zero,
    parts,
    relative_gains,
    run,
    seen_windows,
    verdict,
)
from lmforge.ngram.counts import count_ngrams
from lmforge.ngram.text import encode_sentences
from lmforge.ngram.vocab import Vocab


def numbers(unseen, ppl, under=(139, 288, 453, 500, 515, 524), name="world") -> CorpusNumbers:
    n = len(ppl)
    logsum = [None if u is None else -323.9 for u in under]
    return CorpusNumbers(name, list(range(1, n + 1)), [10] * n, [0.5] * n, list(unseen),
                         list(ppl), list(under), [18] * n, logsum, 18906)  # fmt: skip


SPARSE = [0.001, 0.018, 0.055, 0.116, 0.17, 0.232]
SATURATING = [197.9, 13.4, 5.53, 4.45, 4.09, 3.89]


def test_verdict_reproduced_when_all_three_parts_hold():
    v = verdict([numbers(SPARSE, SATURATING)])
    assert v.status == REPRODUCED
    assert "524" in v.reason and "3.89" in v.reason


def test_verdict_partly_when_gains_do_not_saturate():
    still_falling = [200.0, 100.0, 50.0, 25.0, 12.5, 6.0]  # every order halves it
    v = verdict([numbers(SPARSE, still_falling)])
    assert v.status == PARTLY
    assert "still removes" in v.reason


def test_verdict_partly_when_a_rising_perplexity_reverses():
    reversed_ = [200.0, 20.0, 8.0, 7.0, 7.1, 7.3]
    assert parts(numbers(SPARSE, reversed_))["saturates"]


def test_verdict_not_reproduced_when_nothing_holds():
    flat_sparsity = [0.1, 0.1, 0.05, 0.05, 0.05, 0.05]
    still_falling = [200.0, 100.0, 50.0, 25.0, 12.5, 6.0]
    v = verdict([numbers(flat_sparsity, still_falling, under=[None] * 6)])
    assert v.status == NOT_REPRODUCED
    assert "too short" in v.reason


def test_verdict_needs_every_corpus():
    ok = numbers(SPARSE, SATURATING)
    bad = numbers(SPARSE, SATURATING, under=[None] * 6, name="other")
    assert verdict([ok, bad]).status == PARTLY


def test_relative_gains_and_first_zero():
    assert relative_gains([100.0, 50.0, 40.0]) == pytest.approx([0.5, 0.2])
    assert first_zero(np.full(400, 0.1)) == 324  # 10^-324 is below float64's 4.9e-324
    assert first_zero(np.full(400, 0.1, dtype=np.float32)) == 46  # float32 stops at 1.4e-45
    assert first_zero(np.full(10, 0.5)) is None


def test_seen_windows_matches_a_python_set():
    train = [["a", "b", "c"], ["b", "c", "d"]]
    test = [["a", "b", "d"], ["b", "c", "e"]]
    vocab, _ = Vocab.from_counts({"a": 1, "b": 2, "c": 2, "d": 1})
    corpus = encode_sentences(train, vocab)
    test_corpus = encode_sentences(test, vocab)
    counts = count_ngrams(corpus, 3, len(vocab))

    def grams(sents, n):
        out = []
        for s in sents:
            padded = ["<s>", *[w if w in vocab else "<unk>" for w in s], "</s>"]
            out += [tuple(padded[i : i + n]) for i in range(len(padded) - n + 1)]
        return out

    for n in (1, 2, 3):
        known = set(grams(train, n))
        expected = [g in known for g in grams(test, n)]
        assert seen_windows(counts, test_corpus, n).tolist() == expected


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    ctx = quick_context(tmp_path)
    res = run(ctx)
    assert res.verdict.status in (REPRODUCED, PARTLY, NOT_REPRODUCED)
    assert len(res.rows) == 6 and len(res.rows[0]) == len(res.columns)
    world = res.numbers["world"]
    assert world["orders"] == [1, 2, 3, 4, 5, 6]
    assert all(p > 1.0 for p in world["perplexity"])
    assert world["distinct"] == sorted(world["distinct"])  # longer n-grams: more distinct ones
    for name in res.plots:
        assert (ctx.out / name).stat().st_size > 1000
    json.dumps(res.numbers, default=str)  # what result.json writes
