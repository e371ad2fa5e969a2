"""T9: keypad layouts, the key-sequence index, beam decoding in context, the CLI contract."""

from __future__ import annotations

import io
import itertools
import sys
from collections import Counter

import numpy as np
import pytest
from conftest import assert_clean_error, run_lmforge_inprocess

from lmforge.common import LmforgeError
from lmforge.ngram.config import NgramConfig
from lmforge.ngram.correct_eval import evaluate_t9, pick_layout, t9_table
from lmforge.ngram.repl import t9_cells
from lmforge.ngram.scoring import sentence_logprob
from lmforge.ngram.t9 import (
    KEYPADS,
    T9Index,
    beam_decode,
    decode_phrase,
    format_result,
    letter_keys,
    parse_keys,
    word_keys,
)
from lmforge.ngram.text import encode_sentences
from lmforge.ngram.train import train_from_corpus
from lmforge.ngram.vocab import Vocab

# "good" is the most frequent 4663 word, but after "go" and "at" comes "home";
# "good home" is a phrase here, "home good" never is.
EN = """we had a good day
good morning to you
a good home is a good thing
they found a good home
i want to go home
we go home now
he is at home
good night and good luck
the good king went home
it is good
"""
RU = """мы идём домой
дом стоит у реки
это мой дом
ёлка стоит в доме
он видел ёлку
"""


def build(text: str, order: int = 3):
    sents = [line.split() for line in text.strip().split("\n")]
    vocab, _ = Vocab.from_counts(Counter(w for s in sents for w in s))
    return train_from_corpus(
        encode_sentences(sents, vocab), vocab, NgramConfig(order=order, smoothing="mkn")
    )


@pytest.fixture(scope="module")
def en():
    return build(EN)


def test_layouts_cover_each_alphabet_once():
    for layout, alphabet in (
        ("en", "abcdefghijklmnopqrstuvwxyz"),
        ("ru", "абвгдежзийклмнопрстуфхцчшщъыьэюяё"),
    ):
        keys = letter_keys(layout)
        assert sorted(keys) == sorted(alphabet)
        assert set(keys.values()) == set("23456789")
    assert word_keys("good", letter_keys("en")) == "4663" == word_keys("Home", letter_keys("en"))
    assert word_keys("don't", letter_keys("en")) is None  # the apostrophe has no key
    ru = letter_keys("ru")
    assert word_keys("дом", ru) == "355"
    assert word_keys("ёлка", ru) == word_keys("елка", ru) == "3442"  # ё is typed as е
    assert KEYPADS["ru"]["9"] == "ьэюя"


def test_single_sequence_ranks_by_unigram(en):
    index = T9Index(en, "en")
    ranked = [w for w, _ in index.ranked("4663", 5)]
    assert ranked == ["good", "home"]  # good: 10 times, home: 6
    line = format_result(index, "4663", ["4663"], 5, 16)
    assert line.startswith("4663 | good ") and "| home " in line
    assert format_result(index, "999", ["999"], 5, 16) == "999 | [999] (no word)"


def test_context_changes_the_ranking(en):
    index = T9Index(en, "en")
    best = decode_phrase(index, ["46", "4663"], top=2)  # "go" + 4663
    assert best[0][0] == ["go", "home"]
    phrases = [" ".join(w) for w, _ in decode_phrase(index, ["4663", "4663"], top=4)]
    assert phrases.index("good home") < phrases.index("home good")
    assert decode_phrase(index, ["28", "4663"], top=1)[0][0] == ["at", "home"]
    # A sequence no word types stays as its digits.
    assert decode_phrase(index, ["46", "99999"], top=1)[0][0] == ["go", "[99999]"]


def test_beam_is_exact_against_brute_force(en):
    index = T9Index(en, "en")
    seqs = ["4663", "4663", "47", "2"]
    lattice = index.lattice(seqs)
    words = en.vocab.words
    brute = max(
        itertools.product(*lattice),
        key=lambda ids: sentence_logprob(en, [words[i] for i in ids]),
    )
    (path, score), *_ = beam_decode(en, lattice, width=64, top=1)
    assert path == list(brute)
    assert score == pytest.approx(sentence_logprob(en, [words[i] for i in path]), abs=1e-4)


def test_unigram_model_still_returns_n_best():
    model = build(EN, order=1)
    found = decode_phrase(T9Index(model, "en"), ["4663"], top=3)
    assert [w for w, _ in found] == [["good"], ["home"]]


def test_cyrillic_layout():
    model = build(RU)
    index = T9Index(model, "ru")
    assert [w for w, _ in index.ranked("355", 3)] == ["дом"]
    assert [w for w, _ in index.ranked("3442", 3)] == ["ёлка"]
    assert decode_phrase(index, ["965", "554", "355"], top=1)[0][0] == ["это", "мой", "дом"]
    assert len(T9Index(model, "en")) == 0  # no Cyrillic word types on the Latin keypad


def test_completion_while_typing(en):
    index = T9Index(en, "en")
    best, _ = t9_cells(index, "46 466", top=3, beam=8)  # "go hom..." still being typed
    assert best == "go home"
    best, _ = t9_cells(index, "46 4663 ", top=3, beam=8)
    assert best == "go home "


def test_parse_keys_errors_name_character_and_column():
    assert parse_keys(" 4663  843 ", "x") == ["4663", "843"]
    with pytest.raises(LmforgeError, match=r"stdin:3: '1' at column 3 is not a letter key"):
        parse_keys("461", "stdin:3")
    with pytest.raises(LmforgeError, match=r"'0' at column 6"):
        parse_keys("4663 0", "x")
    with pytest.raises(LmforgeError, match=r"'a' at column 1 is not a key"):
        parse_keys("a", "x")
    with pytest.raises(LmforgeError, match="empty line"):
        parse_keys("   ", "x")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, en):
    d = tmp_path_factory.mktemp("t9")
    en.save(d / "m.npz")
    (d / "text.txt").write_text("not a model\n", encoding="utf-8")
    return d


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_cli_args_and_stdin(model_file, monkeypatch):
    r = run_lmforge_inprocess("ngram", "t9", "--model", model_file / "m.npz", "46 4663", "4663")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("46 4663 | go home ")
    assert lines[1].startswith("4663 | good ")
    _stdin(monkeypatch, b"28 4663\n")
    r = run_lmforge_inprocess("ngram", "t9", "--model", model_file / "m.npz", "--top", "1")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 1
    assert r.stdout.startswith("28 4663 | at home ")


@pytest.mark.parametrize(
    "stdin, needles",
    [
        (b"4663\n461\n", ["stdin:2", "'1' at column 3", "2-9"]),
        (b"4663\n\n", ["stdin:2", "empty line"]),
        (b"\x00\x01\x02", ["stdin:1", "binary"]),
        (b"\xcf\xf0\xe8\n", ["stdin:1", "not utf-8", "iconv"]),
        (b"", ["no input"]),
    ],
)
def test_cli_bad_input_exits_2(model_file, monkeypatch, stdin, needles):
    _stdin(monkeypatch, stdin)
    r = run_lmforge_inprocess("ngram", "t9", "--model", model_file / "m.npz")
    assert_clean_error(r, *needles)


def test_cli_bad_model_and_layout_exit_2(model_file):
    r = run_lmforge_inprocess("ngram", "t9", "--model", model_file / "text.txt", "4663")
    assert_clean_error(r, "text.txt", "not an n-gram model")
    r = run_lmforge_inprocess("ngram", "t9", "--model", model_file / "m.npz", "--layout", "ru", "2")
    assert_clean_error(r, "ru keypad", "--layout en")
    r = run_lmforge_inprocess("ngram", "t9", "--model", model_file / "m.npz", "--layout", "xx", "2")
    assert_clean_error(r, "layout")
    r = run_lmforge_inprocess("ngram", "t9", "--model", model_file / "m.npz", "4a")
    assert_clean_error(r, "argument 1", "'a' at column 2")


def test_evaluation_on_a_small_corpus(tmp_path):
    rng = np.random.default_rng(0)
    words = EN.split()
    lines = [" ".join(rng.choice(words, size=6)) for _ in range(300)]
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = evaluate_t9(corpus, max_sentences=20)
    assert r["layout"] == "en" and r["words"] == 120
    assert 0.0 <= r["top1_without_context"] <= 1.0 and 0.0 <= r["top1_in_context"] <= 1.0
    assert r["in_vocab"] == 1.0  # every word of the held-out lines was seen in training
    assert t9_table([r])[2].startswith("| c.txt | en | 120 |")
    assert pick_layout([RU.split()]) == "ru"
