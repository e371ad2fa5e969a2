"""Using a model: scoring and perplexity, suggestions, completion, sampling, the REPL's parsing."""

from __future__ import annotations

import io
import math
import os
import threading
import time

import numpy as np
import pytest

from lmforge.ngram.config import NgramConfig
from lmforge.ngram.repl import format_line, run_lines, split_typed
from lmforge.ngram.sample import detokenize, sample_sentence, sample_text
from lmforge.ngram.scoring import score_sentences, sentence_logprob, underflow_demo
from lmforge.ngram.suggest import complete, context_ids, suggest_next
from lmforge.ngram.text import encode_sentences, make_tokenizer
from lmforge.ngram.train import train_from_corpus
from lmforge.ngram.vocab import BOS_ID, Vocab

TEXT = """the cat sat on the mat .
the cat ate the fish .
the dog sat on the log .
a dog ate a bone .
the cat saw the dog .
the dog saw a cat on the mat .
"""


@pytest.fixture(scope="module")
def sentences():
    return [line.split() for line in TEXT.strip().split("\n")]


def build(sentences, smoothing="mkn", order=3):
    words = sorted({w for s in sentences for w in s})
    vocab = Vocab(["<unk>", "<s>", "</s>", *words])
    return train_from_corpus(
        encode_sentences(sentences, vocab), vocab, NgramConfig(order=order, smoothing=smoothing)
    )


def zipf_model(order=3, smoothing="mkn", n=3000, n_words=300):
    rng = np.random.default_rng(7)
    words = [f"w{i:03d}" for i in range(n_words)]
    p = 1.0 / np.arange(1, n_words + 1)
    p /= p.sum()
    train = [
        [words[i] for i in rng.choice(n_words, size=rng.integers(2, 12), p=p)] for _ in range(n)
    ]
    vocab = Vocab(["<unk>", "<s>", "</s>", *words])
    model = train_from_corpus(
        encode_sentences(train, vocab), vocab, NgramConfig(order=order, smoothing=smoothing)
    )
    return model, train


def test_sentence_logprob_is_the_sum_of_token_logprobs(sentences):
    m = build(sentences, "kn", 2)
    s = sentences[0]
    total = sentence_logprob(m, s)
    manual = 0.0
    ctx = BOS_ID
    for w in [*s, "</s>"]:
        wid = m.vocab.id(w)
        lp, _ = m.logprob(np.array([[ctx]]), np.array([wid]))
        manual += lp[0]
        ctx = wid
    assert total == pytest.approx(manual, abs=1e-9)


def test_perplexity_counts_eos_and_oovs_like_kenlm(sentences):
    m = build(sentences, "mkn", 3)
    scores = score_sentences(m, [["the", "zebra", "sat"], ["a", "cat"]])
    assert scores.n_tokens == 3 + 1 + 2 + 1 and scores.n_sentences == 2
    assert int(scores.oov.sum()) == 1
    expected = 10 ** (-scores.logp.sum() / 7)
    assert scores.perplexity == pytest.approx(expected)
    keep = ~scores.oov
    assert scores.perplexity_without_oov == pytest.approx(10 ** (-scores.logp[keep].sum() / 6))
    assert scores.order.max() <= 3 and scores.order.min() >= 1
    # the OOV backs off to the unigram <unk>
    assert scores.order[1] == 1


def test_underflow_demo_shows_zero_product_and_finite_log_sum(sentences):
    m = build(sentences, "mkn", 3)
    scores = score_sentences(m, sentences * 40)
    lines = underflow_demo(scores)
    assert math.isfinite(scores.total) and scores.total < -323.3
    assert "0.0" in lines[1] and "underflowed to 0 at token" in lines[1]
    short = underflow_demo(score_sentences(m, sentences[:1]))
    assert "no underflow yet" in short[1]


def brute_force_top(model, ctx, k, allowed=None):
    lp = model.log_distribution(ctx)
    lp[:3] = -np.inf
    if allowed is not None:
        mask = np.full(len(lp), -np.inf)
        mask[allowed] = lp[allowed]
        lp = mask
    order = np.lexsort((np.arange(len(lp)), -lp))[:k]
    return [(model.vocab.words[i], 10.0 ** lp[i]) for i in order if np.isfinite(lp[i])]


@pytest.mark.parametrize("smoothing", ["mkn", "stupid", "addk"])
def test_suggestions_equal_brute_force_ranking(smoothing):
    model, train = zipf_model(3, smoothing)
    histories = [s[:i] for s in train[:80] for i in range(len(s))] + [["w999"], ["w001", "zzz"]]
    for h in histories:
        got = suggest_next(model, h, 5)
        want = brute_force_top(model, context_ids(model, h), 5)
        assert [w for w, _ in got] == [w for w, _ in want], h
        np.testing.assert_allclose([p for _, p in got], [p for _, p in want], rtol=1e-9)
        if h:
            prefix = h[-1][:3]
            got = complete(model, h[:-1], prefix, 4)
            want = brute_force_top(
                model, context_ids(model, h[:-1]), 4, model.vocab.prefix_range(prefix)
            )
            assert [w for w, _ in got] == [w for w, _ in want], (h, prefix)


def test_suggestions_read_naturally(sentences):
    m = build(sentences, "mkn", 3)
    assert suggest_next(m, ["the", "cat"], 3)[0][0] in {"sat", "ate", "saw"}
    assert [w for w, _ in complete(m, ["the"], "d", 2)] == ["dog"]
    assert complete(m, ["the"], "qq", 3) == []
    assert all(w not in ("<s>", "</s>", "<unk>") for w, _ in suggest_next(m, [], 20))
    assert suggest_next(m, [], 1)[0][0] == "the"  # most sentences start with "the"


def test_mle_never_suggests_zero_probability_words(sentences):
    m = build(sentences, "mle", 2)
    got = suggest_next(m, ["cat"], 10)
    assert {w for w, _ in got} == {"sat", "ate", "saw", "on"}  # what followed "cat"
    assert sum(p for _, p in got) == pytest.approx(1.0)


def test_sampling_is_reproducible_and_temperature_sharpens(sentences):
    m = build(sentences, "kn", 3)
    a = sample_text(m, 5, seed=3)
    assert a == sample_text(m, 5, seed=3)
    assert a != sample_text(m, 5, seed=4)
    greedy = sample_sentence(m, np.random.default_rng(0), temperature=0.0)
    assert greedy == sample_sentence(m, np.random.default_rng(1), temperature=0.0)
    rng = np.random.default_rng(0)
    cold = [" ".join(sample_sentence(m, rng, temperature=0.2)) for _ in range(30)]
    hot = [" ".join(sample_sentence(m, rng, temperature=3.0)) for _ in range(30)]
    assert len(set(cold)) < len(set(hot))
    assert all("<unk>" not in s for s in hot)
    assert all(len(sample_sentence(m, rng, max_tokens=3)) <= 3 for _ in range(10))
    prefixed = sample_sentence(m, np.random.default_rng(0), prefix=["the", "dog"])
    assert prefixed and prefixed[0] in {"sat", "saw"}


def test_detokenize():
    assert detokenize(["hello", ",", "world", "!", "(", "yes", ")"]) == "hello, world! (yes)"
    assert detokenize(["i", "'", "m", "well", "-", "known"]) == "i'm well-known"


def test_repl_line_mode_suggests_and_completes(sentences):
    m = build(sentences, "mkn", 3)
    tok = make_tokenizer("default")
    assert split_typed("The ca", tok) == (["the"], "ca")
    assert split_typed("the cat ", tok) == (["the", "cat"], None)
    assert split_typed("", tok) == ([], None)
    out = io.StringIO()
    run_lines(m, tok, 2, io.StringIO("the ca\nthe cat \nzz\n"), out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("the ca_ | cat ")
    assert lines[1].split(" | ")[1].split()[0] in {"sat", "ate", "saw"}
    assert lines[2] == "zz_ | (no suggestion)"
    assert format_line("x", None, [("a", 0.5)]) == "x_ | a 0.5"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a POSIX pseudo-terminal")
def test_repl_on_a_terminal_updates_per_key_and_tab_accepts(sentences):
    from lmforge.ngram.repl import run_terminal

    m = build(sentences, "mkn", 3)
    master, slave = os.openpty()
    keys = [b"the d", b"\t", b"\x1b[A", b"s", b"\x7f", b"\r", "é".encode(), b"\x04"]

    def type_keys():
        for k in keys:
            time.sleep(0.05)
            os.write(master, k)

    typist = threading.Thread(target=type_keys)
    typist.start()
    out = io.StringIO()
    try:
        assert run_terminal(m, make_tokenizer("default"), 2, slave, out) == 0
    finally:
        typist.join()
        os.close(master)
        os.close(slave)
    screen = out.getvalue()
    assert "> the d\n  dog (" in screen  # completion shown while typing
    assert "> the dog \n" in screen  # Tab accepted it, followed by a space
    assert "> the dog s\n" in screen and "> é\n" in screen  # keys after an arrow key; UTF-8
