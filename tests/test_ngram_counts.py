"""N-gram counting: tokenizers, vocabulary, padded stream, sorted key tables, pruning."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from lmforge.common import LmforgeError
from lmforge.ngram.counts import continuation_counts, count_ngrams
from lmforge.ngram.prune import compact_counts, expand_thresholds, prune_masks
from lmforge.ngram.text import (
    encode_sentences,
    input_files,
    make_tokenizer,
    read_training_corpus,
)
from lmforge.ngram.vocab import BOS_ID, EOS_ID, UNK_ID, Vocab


def write(tmp_path, text, name="c.txt"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_default_tokenizer_lowercases_and_splits_punctuation():
    tok = make_tokenizer("default")
    assert tok("Hello, World! Привет…") == ["hello", ",", "world", "!", "привет", "…"]
    assert make_tokenizer("whitespace")("Hello, World!") == ["Hello,", "World!"]


def test_unknown_tokenizer_spec_is_a_clean_error(tmp_path):
    with pytest.raises(LmforgeError, match="tokenizer"):
        make_tokenizer(str(tmp_path / "missing"))


def test_vocab_order_min_count_and_max_size():
    counts = {"b": 3, "a": 3, "c": 1, "d": 2}
    v, dropped = Vocab.from_counts(counts)
    assert v.words == ["<unk>", "<s>", "</s>", "a", "b", "d", "c"] and dropped == 0
    v, dropped = Vocab.from_counts(counts, min_count=2)
    assert v.words[3:] == ["a", "b", "d"] and dropped == 1
    v, dropped = Vocab.from_counts(counts, max_size=2)
    assert v.words[3:] == ["a", "b"] and dropped == 2
    assert v.id("zzz") == UNK_ID
    assert list(v.prefix_range("a")) == [3] and len(v.prefix_range("q")) == 0


def test_stream_has_one_bos_and_eos_per_sentence_and_skips_blank_lines(tmp_path):
    p = write(tmp_path, "a b\n\n   \nb a c\n")
    corpus, vocab, stats = read_training_corpus(input_files([p]), make_tokenizer("whitespace"))
    assert stats["sentences"] == 2 and stats["words"] == 5
    a, b, c = (vocab.id(w) for w in "abc")
    assert corpus.stream.tolist() == [BOS_ID, a, b, EOS_ID, BOS_ID, b, a, c, EOS_ID]
    assert corpus.starts.tolist() == [0, 4, 9]
    assert corpus.n_predicted == 7  # 5 words + 2 </s>
    assert corpus.remaining().tolist() == [3, 2, 1, 0, 4, 3, 2, 1, 0]


def test_literal_sentence_markers_are_dropped_and_unk_is_unk(tmp_path):
    p = write(tmp_path, "<s> a </s> <unk>\n")
    corpus, vocab, stats = read_training_corpus(input_files([p]), make_tokenizer("whitespace"))
    assert corpus.stream.tolist() == [BOS_ID, vocab.id("a"), UNK_ID, EOS_ID]
    assert stats["specials_dropped"] == 2


def test_min_count_maps_rare_words_to_unk(tmp_path):
    p = write(tmp_path, "a a b\na c\n")
    corpus, vocab, stats = read_training_corpus(
        input_files([p]), make_tokenizer("whitespace"), min_count=2
    )
    assert vocab.words == ["<unk>", "<s>", "</s>", "a"]
    assert stats["types_mapped_to_unk"] == 2
    assert corpus.stream.tolist() == [1, 3, 3, 0, 2, 1, 3, 0, 2]


def test_empty_corpus_is_a_clean_error(tmp_path):
    p = write(tmp_path, "\n  \n\n")
    with pytest.raises(LmforgeError, match="no sentences"):
        read_training_corpus(input_files([p]), make_tokenizer("default"))


def brute_force_counts(sentences, n):
    out = Counter()
    for s in sentences:
        toks = ["<s>", *s, "</s>"]
        for i in range(len(toks) - n + 1):
            out[tuple(toks[i : i + n])] += 1
    return out


def test_counts_match_brute_force_for_orders_1_to_6():
    rng = np.random.default_rng(0)
    words = list("abcdefg")
    sentences = [
        [words[i] for i in rng.integers(0, len(words), size=rng.integers(1, 9))] for _ in range(60)
    ]
    vocab = Vocab(["<unk>", "<s>", "</s>", *words])
    corpus = encode_sentences(sentences, vocab)
    counts = count_ngrams(corpus, 6, len(vocab))
    for n in range(1, 7):
        expected = brute_force_counts(sentences, n)
        rows = counts.rows(n)
        got = {
            tuple(vocab.words[i] for i in row): int(c)
            for row, c in zip(rows, counts.counts[n - 1])
            if c > 0 or n > 1
        }
        assert got == dict(expected), n
        assert np.all(np.diff(counts.keys[n - 1]) > 0)  # sorted, unique
        if n > 1:
            # suffix points at the same n-gram without its first word
            lower = counts.rows(n - 1)
            assert np.array_equal(lower[counts.suffix[n - 1]], rows[:, 1:])


def test_continuation_counts_are_distinct_left_neighbours():
    sentences = [["a", "b"], ["c", "b"], ["a", "b"], ["b"]]
    vocab = Vocab(["<unk>", "<s>", "</s>", "a", "b", "c"])
    counts = count_ngrams(encode_sentences(sentences, vocab), 2, len(vocab))
    cont = continuation_counts(counts, 1)
    # b follows a, c and <s>; </s> follows only b; a and c follow only <s>.
    assert cont[vocab.id("b")] == 3 and cont[EOS_ID] == 1 and cont[vocab.id("a")] == 1
    assert cont[BOS_ID] == 0


def test_pruning_keeps_contexts_and_suffixes_of_kept_ngrams():
    rng = np.random.default_rng(1)
    sentences = [[str(i) for i in rng.integers(0, 6, size=rng.integers(2, 8))] for _ in range(80)]
    vocab = Vocab(["<unk>", "<s>", "</s>", *map(str, range(6))])
    counts = count_ngrams(encode_sentences(sentences, vocab), 4, len(vocab))
    keep = prune_masks(counts, [0, 1, 2])
    assert keep[0] is None and expand_thresholds([0, 1, 2], 4) == [0, 1, 2, 2]
    pruned = compact_counts(counts, keep)
    for n in range(2, 5):
        assert np.all(pruned.counts[n - 1] > [0, 1, 2, 2][n - 1])
        rows, lower = pruned.rows(n), {tuple(r) for r in pruned.rows(n - 1)}
        assert all(tuple(r[:-1]) in lower and tuple(r[1:]) in lower for r in rows)
        before = {tuple(r): c for r, c in zip(counts.rows(n), counts.counts[n - 1])}
        assert all(before[tuple(r)] == c for r, c in zip(rows, pruned.counts[n - 1]))


def test_a_trained_tokenizer_folder_can_be_the_tokenizer(tmp_path):
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    from lmforge.ngram.config import NgramConfig
    from lmforge.ngram.sample import detokenize
    from lmforge.ngram.train import train_ngram

    lines = ["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog"] * 5
    engine = HFTokenizer(models.BPE(unk_token="<|unk|>"))
    engine.pre_tokenizer = pre_tokenizers.Whitespace()
    engine.train_from_iterator(
        lines, trainers.BpeTrainer(vocab_size=40, special_tokens=["<|unk|>"])
    )
    folder = tmp_path / "tok"
    folder.mkdir()
    engine.save(str(folder / "tokenizer.json"))
    corpus = write(tmp_path, "\n".join(lines) + "\n")

    model = train_ngram(NgramConfig(order=3, smoothing="kn", tokenizer=str(folder)), [corpus])
    pieces = make_tokenizer(str(folder))("the cat")
    assert pieces == engine.encode("the cat").tokens and len(model.vocab) > 3
    assert all(p in model.vocab for p in pieces)
    assert model.tokenizer == str(folder.resolve())
    assert detokenize(pieces, model.tokenizer).replace(" ", "") == "thecat"
