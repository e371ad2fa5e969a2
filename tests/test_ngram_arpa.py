"""ARPA export/import, checked against the `kenlm` module (KenLM's own ARPA loader and scorer)."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest

from lmforge.common import LmforgeError
from lmforge.ngram.arpa import read_arpa, write_arpa
from lmforge.ngram.config import NgramConfig
from lmforge.ngram.files import load_model
from lmforge.ngram.scoring import score_sentences
from lmforge.ngram.text import encode_sentences
from lmforge.ngram.train import train_from_corpus, train_ngram
from lmforge.ngram.vocab import Vocab

kenlm = pytest.importorskip("kenlm")


def zipf_sentences(seed, n, n_words=40):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(n_words)]
    p = 1.0 / np.arange(1, n_words + 1)
    p /= p.sum()
    return [
        [words[i] for i in rng.choice(n_words, size=rng.integers(1, 14), p=p)] for _ in range(n)
    ]


def synthetic_model(smoothing="mkn", order=3, prune=()):
    train = zipf_sentences(0, 1500)
    vocab = Vocab(["<unk>", "<s>", "</s>", *sorted({w for s in train for w in s})])
    cfg = NgramConfig(order=order, smoothing=smoothing, prune=list(prune))
    return train_from_corpus(encode_sentences(train, vocab), vocab, cfg)


def kenlm_token_scores(path, sentences):
    """Per-token log10 p from KenLM (summed by the caller in float64: kenlm's own
    `score()` accumulates in float32 and drifts by ~1e-4 on long sentences)."""
    k = kenlm.Model(str(path))
    return np.array([p for s in sentences for p, _, _ in k.full_scores(" ".join(s))])


def assert_same_scores(model, path, sentences):
    ours = score_sentences(model, sentences)
    theirs = kenlm_token_scores(path, sentences)
    assert len(theirs) == ours.n_tokens
    np.testing.assert_allclose(ours.logp, theirs, atol=1e-5)
    sentence_of = ours.sentence
    per_sentence = np.bincount(sentence_of, weights=theirs, minlength=ours.n_sentences)
    np.testing.assert_allclose(ours.sentence_totals(), per_sentence, atol=1e-4)


@pytest.mark.parametrize(
    "smoothing,order,prune",
    [("mkn", 3, ()), ("mkn", 5, ()), ("kn", 4, ()), ("addk", 3, ()), ("mkn", 4, (0, 0, 1))],
)
def test_lmforge_arpa_scores_the_same_in_kenlm(tmp_path, smoothing, order, prune):
    model = synthetic_model(smoothing, order, prune)
    path = write_arpa(model, tmp_path / "m.arpa")
    held_out = zipf_sentences(1, 200, n_words=45)  # with OOVs
    assert_same_scores(model, path, held_out)
    # ... and reads back into lmforge with the same scores and meta.
    again = read_arpa(path)
    assert again.smoothing == smoothing and again.tokenizer == model.tokenizer
    assert again.ngram_counts() == model.ngram_counts()
    np.testing.assert_array_equal(
        score_sentences(again, held_out).logp, score_sentences(model, held_out).logp
    )


def test_npz_round_trip_is_exact(tmp_path):
    model = synthetic_model("mkn", 4)
    model.save(tmp_path / "m.npz")
    again = load_model(tmp_path / "m.npz")
    held_out = zipf_sentences(3, 50)
    np.testing.assert_array_equal(
        score_sentences(again, held_out).logp, score_sentences(model, held_out).logp
    )
    assert again.meta == model.meta


def test_gzip_arpa(tmp_path):
    model = synthetic_model("kn", 3)
    path = write_arpa(model, tmp_path / "m.arpa.gz")
    assert gzip.open(path, "rt").readline().startswith("# lmforge-meta:")
    again = load_model(path)
    held_out = zipf_sentences(4, 30)
    np.testing.assert_array_equal(
        score_sentences(again, held_out).logp, score_sentences(model, held_out).logp
    )


KENLM_STYLE = """\\data\\
ngram 1=6
ngram 2=5
ngram 3=2

\\1-grams:
-1.3	<unk>	0
0	<s>	-0.5
-0.6	</s>	0
-0.7	a	-0.3
-0.8	b	-0.2
-1.1	c	-0.1

\\2-grams:
-0.3	<s> a	-0.2
-0.5	a b	-0.25
-0.4	b </s>
-0.6	b c	0
-0.2	c </s>

\\3-grams:
-0.1	<s> a b
-0.05	a b </s>

\\end\\
"""


def test_foreign_arpa_layout_reads_and_scores_like_kenlm(tmp_path):
    # KenLM's layout: tabs, <s> with log10 p 0, backoffs omitted where they are 0.
    path = tmp_path / "k.arpa"
    path.write_text(KENLM_STYLE, encoding="utf-8")
    model = load_model(path)
    assert model.order == 3 and model.tokenizer == "whitespace"
    sentences = [["a", "b"], ["a", "b", "c"], ["c", "a", "x"], ["b"], []]
    assert_same_scores(model, path, sentences)
    # Fields separated by spaces (as some tools write) read the same.
    spaced = tmp_path / "spaced.arpa"
    spaced.write_text(KENLM_STYLE.replace("\t", "  "), encoding="utf-8")
    np.testing.assert_array_equal(
        score_sentences(load_model(spaced), sentences).logp, score_sentences(model, sentences).logp
    )


def test_missing_suffixes_are_added_with_backoff_probability(tmp_path):
    model = synthetic_model("mkn", 3)
    path = write_arpa(model, tmp_path / "m.arpa")
    lines = path.read_text(encoding="utf-8").split("\n")
    i2, i3 = lines.index("\\2-grams:"), lines.index("\\3-grams:")
    trigrams = [ln.split("\t")[1].split() for ln in lines[i3 + 1 :] if "\t" in ln]
    contexts = {" ".join(t[:2]) for t in trigrams}
    suffixes = {" ".join(t[1:]) for t in trigrams}
    drop = [
        j
        for j in range(i2 + 1, i3)
        if "\t" in lines[j]
        and lines[j].split("\t")[1] in suffixes - contexts  # KenLM needs every context
    ][:6]
    assert len(drop) == 6
    kept = [ln for j, ln in enumerate(lines) if j not in drop]
    kept = [re.sub(r"^ngram 2=(\d+)$", lambda m: f"ngram 2={int(m[1]) - 6}", ln) for ln in kept]
    pruned = tmp_path / "pruned.arpa"
    pruned.write_text("\n".join(kept), encoding="utf-8")
    loaded = load_model(pruned)
    assert loaded.meta["inserted_ngrams"] == [0, 6, 0]
    assert_same_scores(loaded, pruned, zipf_sentences(5, 200))


MALFORMED = [
    ("no data", "hello\n", r"not an ARPA file"),
    ("bad count", "\\data\\\nngram 1=x\n", r":2: expected 'ngram N=COUNT'"),
    (
        "bad float",
        "\\data\\\nngram 1=3\n\n\\1-grams:\n-1\t<s>\nzz\t</s>\n-1\t<unk>\n\n\\end\\\n",
        r":6: probability 'zz'",
    ),
    (
        "short section",
        "\\data\\\nngram 1=4\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n-1\t<unk>\n\n\\end\\\n",
        r":8: expected 4 1-grams, found 3",
    ),
    (
        "fields",
        "\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\t0\t1\n-1\t</s>\n\n\\end\\\n",
        r":5: expected log10 p",
    ),
    (
        "positive",
        "\\data\\\nngram 1=2\n\n\\1-grams:\n0.5\t<s>\n-1\t</s>\n\n\\end\\\n",
        r":5: log10 probability 0.5",
    ),
    ("no end", "\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n", r"expected '\\end\\'"),
    (
        "unknown word",
        "\\data\\\nngram 1=2\nngram 2=1\n\n\\1-grams:\n-1\t<s>\t0\n-1\t</s>\t0\n\n\\2-grams:\n-1\t<s> q\n\n\\end\\\n",
        r":10: word 'q'",
    ),
    (
        "twice",
        "\\data\\\nngram 1=3\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n-2\t</s>\n\n\\end\\\n",
        r":7: unigram '</s>' is listed twice",
    ),
    ("no eos", "\\data\\\nngram 1=1\n\n\\1-grams:\n-1\t<s>\n\n\\end\\\n", r"do not list </s>"),
]


@pytest.mark.parametrize("text,pattern", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_arpa_names_file_and_line(tmp_path, text, pattern):
    path = tmp_path / "bad.arpa"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LmforgeError, match=pattern) as err:
        read_arpa(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_duplicate_ngram_is_named(tmp_path):
    text = (
        "\\data\\\nngram 1=3\nngram 2=2\n\n\\1-grams:\n-1\t<s>\t0\n-1\t</s>\t0\n-1\ta\t0\n\n"
        "\\2-grams:\n-1\t<s> a\n-2\t<s> a\n\n\\end\\\n"
    )
    path = tmp_path / "dup.arpa"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LmforgeError, match=r"dup.arpa:12: the 2-gram '<s> a' is listed twice"):
        read_arpa(path)


def test_word_with_whitespace_cannot_be_written(tmp_path):
    vocab = Vocab(["<unk>", "<s>", "</s>", "new york"])
    model = train_from_corpus(
        encode_sentences([["new york"]], vocab), vocab, NgramConfig(order=2, smoothing="mle")
    )
    with pytest.raises(LmforgeError, match="whitespace"):
        write_arpa(model, tmp_path / "x.arpa")
    assert not (tmp_path / "x.arpa").exists()


def shared_split(shared_data, name, tmp_path):
    """The issue's recipe: lowercase, \\w+|[^\\w\\s] tokens, first 90% of lines train."""
    pat = re.compile(r"\w+|[^\w\s]")
    text = (shared_data / "corpora" / name).read_text(encoding="utf-8")
    lines = [" ".join(pat.findall(ln.lower())) for ln in text.split("\n") if ln.strip()]
    cut = int(0.9 * len(lines))
    train = tmp_path / "train.txt"
    train.write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    return train, [ln.split() for ln in lines[cut:]]


@pytest.mark.slow
@pytest.mark.parametrize("corpus", ["tinyshakespeare.txt", "war_and_peace_ru.txt"])
@pytest.mark.parametrize("order", [3, 5])
def test_shared_corpora_round_trip_through_kenlm(shared_data, tmp_path, corpus, order):
    train, held_out = shared_split(shared_data, corpus, tmp_path)
    model = train_ngram(NgramConfig(order=order, smoothing="mkn", tokenizer="whitespace"), [train])
    path = write_arpa(model, tmp_path / "m.arpa")
    assert_same_scores(model, path, held_out)
    assert_same_scores(read_arpa(path), path, held_out)
