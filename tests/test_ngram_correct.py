"""Typo correction: candidate generation against brute force, the error model, fixing typos
in context, leaving clean text alone, synthetic typos, the evaluation and the CLI contract."""

from __future__ import annotations

import io
import sys
from collections import Counter

import numpy as np
import pytest
from conftest import assert_clean_error, run_lmforge_inprocess
from hypothesis import given, settings
from hypothesis import strategies as st

from lmforge.ngram.config import NgramConfig
from lmforge.ngram.correct_eval import correct_table, evaluate_correction, split_corpus
from lmforge.ngram.text import encode_sentences, make_tokenizer
from lmforge.ngram.train import train_from_corpus
from lmforge.ngram.typo_noise import NoiseConfig, TypoMaker, corrupt_sentences
from lmforge.ngram.typos import (
    CorrectConfig,
    Corrector,
    DeletionIndex,
    EditCosts,
    correct_line,
    keyboard_neighbours,
)
from lmforge.ngram.vocab import Vocab


def osa_reference(a: str, b: str) -> int:
    """Optimal string alignment distance, the textbook DP (the brute-force reference)."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(
                d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


words_st = st.text(alphabet="abcd", min_size=1, max_size=7)


@settings(max_examples=60, deadline=None)
@given(
    vocab=st.lists(words_st, min_size=1, max_size=40, unique=True),
    typed=st.text(alphabet="abcde", min_size=1, max_size=8),
    d=st.integers(1, 2),
    keyboard=st.booleans(),
)
def test_candidates_match_brute_force(vocab, typed, d, keyboard):
    cfg = CorrectConfig(keyboard=keyboard, transpose_cost=2.0)
    costs = EditCosts(sorted(set("".join(vocab))), cfg)
    index = DeletionIndex(vocab, 2, costs)
    idx, dist, cost = index.lookup(typed, d)
    got = {vocab[i]: int(k) for i, k in zip(idx, dist)}
    want = {w: osa_reference(w, typed) for w in vocab if osa_reference(w, typed) <= d}
    assert got == want
    if not keyboard:  # every edit costs edit_cost: the cost is the distance times it
        assert np.allclose(cost, dist * cfg.edit_cost)
    else:
        assert np.all(cost <= dist * (cfg.edit_cost + cfg.keyboard_far) + 1e-9)
        assert np.all(cost >= dist * (cfg.edit_cost - cfg.keyboard_gain) - 1e-9)


def test_keyboard_weights():
    near = keyboard_neighbours()
    assert {"q", "w", "s", "z"} <= near["a"] and "p" not in near["a"]
    assert near["й"] == {"ц", "ф"} and "ы" in near["ц"] and "е" in near["ё"]
    cfg = CorrectConfig(keyboard=True)
    costs = EditCosts(sorted(set("catvxp")), cfg)
    index = DeletionIndex(["cat"], 1, costs)
    c_near = index.lookup("cay", 1)[2][0]  # t -> y: neighbouring keys
    c_far = index.lookup("cap", 1)[2][0]  # t -> p: far apart
    assert c_near == pytest.approx(cfg.edit_cost - cfg.keyboard_gain)
    assert c_far == pytest.approx(cfg.edit_cost + cfg.keyboard_far)
    assert index.lookup("act", 1)[2][0] == pytest.approx(cfg.transpose_cost)


TEXT = """i will go home now
we go home at night
what time is it
it is time to go
the time is near
they went home
at home we sit
it is the time of the king
the king is dead !
long live the king !
no time to lose
my lord the king is here
what is your name
tell me your name
the king and the queen
"""


def build(text: str = TEXT, order: int = 3):
    sents = [line.split() for line in text.strip().split("\n")]
    vocab, _ = Vocab.from_counts(Counter(w for s in sents for w in s))
    model = train_from_corpus(
        encode_sentences(sents, vocab), vocab, NgramConfig(order=order, smoothing="mkn")
    )
    model.meta["tokenizer"] = "default"
    return model


@pytest.fixture(scope="module")
def corrector():
    return Corrector(build(), CorrectConfig(keyboard=True))


def fixed(corrector, sentence: str) -> str:
    return " ".join(f.word for f in corrector.correct_tokens(sentence.split()))


def test_fixes_typos_using_context(corrector):
    # "hime" is one edit from both "home" and "time": the neighbours decide.
    assert fixed(corrector, "we go hime now") == "we go home now"
    assert fixed(corrector, "what hime is it") == "what time is it"
    assert fixed(corrector, "teh kign is daed") == "the king is dead"  # transpositions
    assert fixed(corrector, "tell me yuor nmae") == "tell me your name"
    assert fixed(corrector, "my lrd the kingg is here") == "my lord the king is here"


def test_alternatives_rank_the_window(corrector):
    fixes = corrector.correct_tokens("what hime is it".split(), top=3)
    ranked = [w for w, _ in fixes[1].alternatives]
    assert ranked[0] == "time" and "home" in ranked
    assert fixes[0].alternatives == [] or fixes[0].alternatives[0][0] == "what"


def test_keeps_clean_in_vocabulary_text(corrector):
    # Every training sentence, and in-vocabulary sentences the model has never seen.
    for line in [*TEXT.strip().split("\n"), "the queen is here", "we sit at home now"]:
        assert fixed(corrector, line) == line
    # An unknown word with no near neighbour is kept as typed, never dropped.
    assert fixed(corrector, "the zyxwvut is here") == "the zyxwvut is here"
    # Punctuation and numbers are never candidates for change.
    assert fixed(corrector, "the king , 1812 !") == "the king , 1812 !"


def test_clean_change_rate_on_real_training_text(shared_data):
    """Stated rate: below 0.5% of the words of sentences the model was trained on."""
    lines = (shared_data / "corpora" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    tok = make_tokenizer("default")
    sents = [tok(x) for x in lines.split("\n")[:3000] if x.strip()]
    model = build("\n".join(" ".join(s) for s in sents))
    corrector = Corrector(model, CorrectConfig())
    words = changed = 0
    for s in sents[::10][:150]:
        for f in corrector.correct_tokens(s):
            words += 1
            changed += f.changed
    assert words > 800
    assert changed / words < 0.005, (changed, words)


def test_correct_line_keeps_spacing_and_case(corrector):
    out, fixes = correct_line(corrector, "Teh  KIGN is daed!", make_tokenizer("default"))
    assert out == "The  KING is dead!"
    assert [f.word for f in fixes if f.changed] == ["the", "king", "dead"]


def test_baseline_is_context_free(corrector):
    # "time" (5 times) is more frequent than "home" (4), whatever the context.
    assert corrector.baseline("hime") == ["time"]
    assert corrector.baseline("home", top=3)[0] == "home"  # a known word is kept
    assert corrector.baseline("zyxwvut") == ["zyxwvut"]


def test_typo_noise_is_seeded_and_edits_once_or_twice():
    sents = [["the", "king", "is", "dead", ",", "long", "live", "the", "king"]] * 200
    cfg = NoiseConfig(rate=0.3, seed=7)
    a, b = corrupt_sentences(sents, cfg), corrupt_sentences(sents, cfg)
    assert a == b
    assert a != corrupt_sentences(sents, NoiseConfig(rate=0.3, seed=8))
    hits = [(w, t) for s, (noisy, mask) in zip(sents, a) for w, t, m in zip(s, noisy, mask) if m]
    n_words = sum(1 for s in sents for w in s if w.isalpha())
    assert 0.25 < len(hits) / n_words < 0.35
    assert all(w.isalpha() for w, _ in hits)  # "," is never corrupted
    dists = Counter(osa_reference(w, t) for w, t in hits)
    assert set(dists) <= {1, 2} and dists[1] > dists[2] > 0
    maker = TypoMaker(NoiseConfig(seed=0))
    assert all(maker.corrupt(w) != w for w in ["aa", "ab", "дом", "x"] * 20)


def test_evaluation_reports_every_system(tmp_path):
    rng = np.random.default_rng(0)
    words = TEXT.split()
    corpus = tmp_path / "c.txt"
    corpus.write_text(
        "\n".join(" ".join(rng.choice(words, size=7)) for _ in range(400)) + "\n",
        encoding="utf-8",
    )
    train, held = split_corpus(corpus)
    assert (len(train), len(held)) == (360, 40)
    r = evaluate_correction(corpus, NoiseConfig(rate=0.2, seed=1), max_sentences=30)
    assert set(r["systems"]) == {
        "context-free baseline",
        "noisy channel",
        "noisy channel + keyboard",
        "noisy channel + keyboard + lexicon",
    }
    for s in r["systems"].values():
        assert 0.0 <= s["top1"] <= s["top3"] <= 1.0
        assert s["ms_median"] > 0
    assert r["systems"]["noisy channel"]["text_changed"] < 0.01
    assert r["typos"] > 20 and len(correct_table([r])) == 2 + 4


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("correct")
    build().save(d / "m.npz")
    (d / "text.txt").write_text("not a model\n", encoding="utf-8")
    return d


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_cli_corrects_args_and_stdin(model_file, monkeypatch):
    r = run_lmforge_inprocess(
        "ngram", "correct", "--model", model_file / "m.npz", "We go hime now.", "--top", "2"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "We go home now."
    assert r.stdout.splitlines()[1].startswith("  hime -> home ")
    _stdin(monkeypatch, b"what hime is it\n\nteh king\n")
    r = run_lmforge_inprocess("ngram", "correct", "--model", model_file / "m.npz", "--keyboard")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["what time is it", "", "the king"]


@pytest.mark.parametrize(
    "stdin, needles",
    [
        (b"\x00\x01\x02", ["stdin:1", "binary"]),
        (b"the king\n\xcf\xf0\xe8\n", ["stdin:2", "not utf-8"]),
        (b"", ["no input"]),
    ],
)
def test_cli_bad_stdin_exits_2(model_file, monkeypatch, stdin, needles):
    _stdin(monkeypatch, stdin)
    r = run_lmforge_inprocess("ngram", "correct", "--model", model_file / "m.npz")
    assert_clean_error(r, *needles)


def test_cli_bad_model_and_config_exit_2(model_file):
    r = run_lmforge_inprocess("ngram", "correct", "--model", model_file / "text.txt", "x")
    assert_clean_error(r, "text.txt", "not an n-gram model")
    r = run_lmforge_inprocess(
        "ngram", "correct", "--model", model_file / "m.npz", "--real-word-edits", "3", "x"
    )
    assert_clean_error(r, "real_word_edits", "max_edits")
    r = run_lmforge_inprocess("ngram", "correct-eval", "--corpus", model_file / "nope.txt")
    assert_clean_error(r, "nope.txt", "no such file")
