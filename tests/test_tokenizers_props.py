"""Property tests (hypothesis) of the trained tokenizers."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_tokenizers_corpus import EN_WORDS, JA_WORDS, write_corpus

from lmforge.tokenizers import SPECIAL_TOKENS, Tokenizer, TokenizerConfig, train_tokenizer
from lmforge.tokenizers.stopwords import ENGLISH

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def corpus() -> Path:
    # hypothesis runs a test many times, so the corpus and tokenizers are made once per session.
    return write_corpus(Path(tempfile.mkdtemp(prefix="lmforge-tok-props-")))


@functools.cache
def trained(kind: str, **kw) -> Tokenizer:
    return train_tokenizer(TokenizerConfig(kind=kind, vocab_size=500, **kw), [corpus()])


# Any Unicode text, sometimes with a special token's text inside it.
ANY_TEXT = st.one_of(
    st.text(),
    st.tuples(st.text(max_size=20), st.sampled_from(SPECIAL_TOKENS), st.text(max_size=20)).map(
        "".join
    ),
)


@PROPS
@given(ANY_TEXT)
def test_bpe_round_trip_is_exact_on_any_unicode(text):
    tok = trained("bpe")
    ids = tok.encode(text)
    # A special token's text encodes as that special token (as in Hugging Face), so
    # the exact round trip keeps special tokens; plain text needs nothing more.
    assert tok.decode(ids, skip_special=False) == text
    if not any(t in text for t in SPECIAL_TOKENS):
        assert tok.unk_id not in ids
        assert tok.decode(ids) == text


@PROPS
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=50))
def test_bpe_with_split_digits_round_trips_too(text):
    tok = trained("bpe", split_digits=True)
    assert tok.decode(tok.encode(text), skip_special=False) == text


def shown_tokens(tok: Tokenizer, ids: list[int]) -> list[str]:
    """Each id decoded on its own, spaces (and unigram's lone `▁` dummy prefix) dropped."""
    shown = [tok.decode([i]).strip() for i in ids]
    return [s for s in shown if s]


@PROPS
@given(st.from_regex(r"[0-9]{1,30}", fullmatch=True))
def test_split_digits_makes_one_token_per_digit(number):
    for kind in ("bpe", "unigram", "word", "char"):
        tok = trained(kind, split_digits=True)
        ids = tok.encode(number)
        assert shown_tokens(tok, ids) == list(number), kind
        extra = 1 if kind == "unigram" else 0  # the `▁` of the dummy prefix
        assert len(ids) == len(number) + extra, kind


def test_split_digits_12345_is_five_digit_tokens():
    for kind in ("bpe", "unigram", "word", "char"):
        tok = trained(kind, split_digits=True)
        assert shown_tokens(tok, tok.encode("12345")) == ["1", "2", "3", "4", "5"], kind
        shown = shown_tokens(tok, tok.encode("king42 spoke 12345 words"))
        digits = [s for s in shown if any(ch.isdigit() for ch in s)]
        assert digits == ["4", "2", "1", "2", "3", "4", "5"], kind


JAPANESE = st.lists(
    st.one_of(
        st.sampled_from(JA_WORDS),
        st.sampled_from(list("、。「」？！ 　")),
        st.characters(min_codepoint=0x3041, max_codepoint=0x30FF),
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
    ),
    min_size=1,
    max_size=30,
).map("".join)


@PROPS
@given(JAPANESE)
def test_unigram_round_trips_japanese(text):
    tok = trained("unigram")
    ids = tok.encode(text)
    assert tok.unk_id not in ids  # unseen characters are spelled in bytes
    assert tok.decode(ids) == text


@PROPS
@given(st.lists(st.sampled_from(EN_WORDS + JA_WORDS), min_size=1, max_size=12))
def test_unigram_pieces_carry_meta_space(words):
    tok = trained("unigram")
    text = " ".join(words)
    pieces = tok.tokens(text)
    # The pieces spell the text with `▁` for every space and one in front (no pre-split).
    assert "".join(pieces) == "▁" + text.replace(" ", "▁")
    # Each word's `▁` starts a piece, and no piece spans a space (no --span-spaces).
    assert sum(p.startswith("▁") for p in pieces) == len(words)
    assert all("▁" not in p[1:] for p in pieces)


CASED_WORDS = st.lists(
    st.sampled_from(EN_WORDS).flatmap(lambda w: st.sampled_from([w, w.upper(), w.capitalize()])),
    min_size=1,
    max_size=15,
).map(" ".join)


@PROPS
@given(CASED_WORDS)
def test_word_lowercase_setting(text):
    lower = trained("word", lowercase=True)
    assert lower.encode(text) == lower.encode(text.lower())
    assert all(t == t.lower() for t in lower.tokens(text))
    cased = trained("word", lowercase=False)
    seen = cased.engine.get_vocab()
    assert cased.tokens(text) == [w if w in seen else "<|unk|>" for w in text.split()]
    assert cased.token_to_id("The") != cased.token_to_id("the")


@PROPS
@given(CASED_WORDS)
def test_word_stop_words_setting(text):
    tok = trained("word", stop_words="english")
    kept = [w for w in text.split() if w.lower() not in ENGLISH]
    assert tok.tokens(text) == [w.lower() for w in kept]
    assert all(tok.token_to_id(w) is None for w in ENGLISH)
