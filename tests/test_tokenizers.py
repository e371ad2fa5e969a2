"""Tokenizer training: special ids, each kind's behaviour, save/load, Hugging Face parity."""

from __future__ import annotations

import json
import pickle

import pytest
from test_tokenizers_corpus import EN_WORDS, write_corpus

from lmforge.common import ConfigError, LmforgeError
from lmforge.config import build_config
from lmforge.tokenizers import (
    SPECIAL_TOKENS,
    Tokenizer,
    TokenizerConfig,
    save_tokenizer_dir,
    train_tokenizer,
)
from lmforge.tokenizers.stats import display_token, text_stats, vocabulary_summary

KINDS = ("word", "char", "bpe", "unigram")
VOCAB = 500
SAMPLE = "The king spoke 12345 words, и король говорил!\n\n  Twice  spaced\tand 東京です。"


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def trained(corpus_file, tmp_path_factory):
    """One tokenizer of each kind, trained on the tiny corpus and saved."""
    out = {}
    for kind in KINDS:
        tok = train_tokenizer(TokenizerConfig(kind=kind, vocab_size=VOCAB), [corpus_file])
        folder = save_tokenizer_dir(tok, tmp_path_factory.mktemp(kind) / "tok")
        out[kind] = (tok, folder)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_special_tokens_take_the_first_ids(trained, kind):
    tok, _ = trained[kind]
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(t) == i
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    # Special tokens in trusted text (special=True) are their ids; bos/eos only when asked.
    ids = tok.encode("<|user|>hi", bos=True, eos=True, special=True)
    assert ids[0] == tok.bos_id and ids[1] == tok.user_id and ids[-1] == tok.eos_id
    # By default they are plain text (tests/test_special_tokens.py covers this fully).
    assert tok.user_id not in tok.encode("<|user|>hi")


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_keep_encoding_hash_and_config(trained, kind):
    tok, folder = trained[kind]
    loaded = Tokenizer.load(folder)
    assert loaded.kind == kind
    assert loaded.encode(SAMPLE) == tok.encode(SAMPLE)
    assert loaded.hash == tok.hash
    assert loaded.vocab_size == tok.vocab_size
    meta = json.loads((folder / "lmforge.json").read_text())
    assert meta["config"]["kind"] == kind and meta["config"]["vocab_size"] == VOCAB
    assert pickle.loads(pickle.dumps(tok)).encode(SAMPLE) == tok.encode(SAMPLE)


@pytest.mark.parametrize("kind", KINDS)
def test_hugging_face_encodes_the_saved_file_identically(trained, corpus_file, kind):
    from tokenizers import Tokenizer as HFTokenizer
    from transformers import PreTrainedTokenizerFast

    tok, folder = trained[kind]
    file = str(folder / "tokenizer.json")
    hf = HFTokenizer.from_file(file)
    fast = PreTrainedTokenizerFast(tokenizer_file=file)
    for text in [SAMPLE, corpus_file.read_text(encoding="utf-8")[:20000]]:
        ids = tok.encode(text)
        assert hf.encode(text, add_special_tokens=False).ids == ids
        assert fast.encode(text, add_special_tokens=False) == ids


def test_training_is_deterministic(corpus_file, trained):
    for kind in KINDS:
        again = train_tokenizer(TokenizerConfig(kind=kind, vocab_size=VOCAB), [corpus_file])
        assert again.hash == trained[kind][0].hash, kind


# -- bpe -----------------------------------------------------------------------


def test_bpe_has_every_byte_and_never_unk(trained):
    tok, _ = trained["bpe"]
    assert tok.vocab_size == VOCAB
    text = "never seen: 🦜 ß Ω \x00 \U0010fffd" + SAMPLE
    ids = tok.encode(text)
    assert tok.unk_id not in ids
    assert tok.decode(ids) == text
    summary = vocabulary_summary(tok, top=3)
    first = json.loads(tok.engine.to_str())["model"]["merges"][0]
    assert summary["top_merges"][0] == [display_token(tok, t) for t in first]


def test_display_token_undoes_the_byte_alphabet(trained):
    from tokenizers.pre_tokenizers import ByteLevel

    from lmforge.tokenizers.stats import _byte_decoder

    tok, _ = trained["bpe"]
    table = _byte_decoder()
    assert set(table) == set(ByteLevel.alphabet()) and sorted(table.values()) == list(range(256))
    to_bytes = ByteLevel(add_prefix_space=False, use_regex=False)
    for text in ["A z~", " к", "東京", "🦜", "\n\t\x00"]:
        ((shown, _),) = to_bytes.pre_tokenize_str(text)
        assert display_token(tok, shown) == text
    # Half a character is shown as its byte.
    assert display_token(tok, "Ð") == "\\xd0"


# -- word ----------------------------------------------------------------------


def word_tok(corpus_file, **kw) -> Tokenizer:
    return train_tokenizer(TokenizerConfig(kind="word", vocab_size=300, **kw), [corpus_file])


def test_word_lowercases_by_default_and_splits_punctuation(trained):
    tok, _ = trained["word"]
    assert tok.tokens("The KING, spoke!") == ["the", "king", ",", "spoke", "!"]
    assert tok.encode("The King") == tok.encode("the king")
    assert tok.encode("zebra")[0] == tok.unk_id


def test_word_without_lowercase_keeps_case(corpus_file):
    tok = word_tok(corpus_file, lowercase=False)
    assert tok.tokens("The the") == ["The", "the"]
    assert tok.encode("The") != tok.encode("the")


def test_word_stop_words_are_removed_inside_the_pipeline(corpus_file, tmp_path):
    tok = word_tok(corpus_file, stop_words="english")
    assert tok.tokens("The king and THE queen") == ["king", "queen"]
    assert tok.token_to_id("the") is None
    custom = tmp_path / "stop.txt"
    custom.write_text("# mine\nking\nкороль\n")
    tok = word_tok(corpus_file, stop_words=str(custom))
    assert tok.tokens("the King и король") == ["the", "и"]


def test_word_base_forms_share_an_id(corpus_file, tmp_path):
    tok = word_tok(corpus_file, base_form="stem")
    run = tok.encode("run")
    assert tok.encode("runs") == tok.encode("running") == run
    assert tok.decode(tok.encode("Running speaks")) == "run speak"
    lemma = word_tok(corpus_file, base_form="lemma")
    assert lemma.encode("ran") == lemma.encode("run") == lemma.encode("running")
    ru = word_tok(corpus_file, base_form="lemma", language="ru")
    assert ru.encode("говорит") == ru.encode("говорил") == ru.encode("говорить")
    # Ids count once however many forms share them, and survive save/load/pickle.
    assert tok.vocab_size < len(tok.engine.get_vocab())
    loaded = Tokenizer.load(save_tokenizer_dir(tok, tmp_path / "stem"))
    assert loaded.encode("runs ran walking") == tok.encode("runs ran walking")
    assert loaded.decode(run) == "run" and loaded.hash == tok.hash
    assert pickle.loads(pickle.dumps(loaded)).encode("walked") == tok.encode("walked")


def test_word_min_frequency_and_vocab_size_cap(corpus_file):
    big = word_tok(corpus_file, min_frequency=1)
    assert big.vocab_size <= 300
    small = train_tokenizer(
        TokenizerConfig(kind="word", vocab_size=len(SPECIAL_TOKENS) + 5), [corpus_file]
    )
    assert small.vocab_size == len(SPECIAL_TOKENS) + 5
    s = text_stats(small, [corpus_file.read_text(encoding="utf-8")], "x")
    assert 0.5 < s.unk_share < 1.0
    assert text_stats(big, [" ".join(EN_WORDS)], "x").unk_share == 0.0


# -- char ----------------------------------------------------------------------


def test_char_tokens_are_characters(trained):
    tok, _ = trained["char"]
    text = "King 12\nкороль 東京"
    assert tok.tokens(text) == list(text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("🦜") == [tok.unk_id]
    s = text_stats(tok, [text], "x")
    assert s.tokens_per_char == 1.0 and s.unk_share == 0.0


def test_char_rare_characters_become_unk(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("aaaa bbbb c\n")
    tok = train_tokenizer(TokenizerConfig(kind="char", vocab_size=100), [path])
    assert tok.encode("abc") == [tok.token_to_id("a"), tok.token_to_id("b"), tok.unk_id]


# -- unigram -------------------------------------------------------------------


def test_unigram_meta_space_and_byte_fallback(trained):
    tok, _ = trained["unigram"]
    pieces = tok.tokens("the king spoke")
    assert pieces[0].startswith("▁") and any(p.startswith("▁") for p in pieces[1:])
    for text in [SAMPLE, "🦜 <0x41> literal", "  lead and trail  ", "東京です"]:
        ids = tok.encode(text)
        assert tok.unk_id not in ids
        assert tok.decode(ids) == text


def assert_same_as_sentencepiece(tok, sp, docs) -> int:
    """Every doc encodes as sentencepiece encodes it, up to ties; returns how many tied.

    A tie is two orders of the same pieces ("..." as "." + ".." or ".." + "."):
    equal scores, broken by float32 rounding in sentencepiece and float64 in
    `tokenizers`, so either may come out.
    """
    from lmforge.tokenizers.unigram import sentencepiece_to_lmforge_id

    scores = [score for _, score in json.loads(tok.engine.to_str())["model"]["vocab"]]
    ties = 0
    for doc, ours in zip(docs, tok.encode_batch(docs)):
        theirs = [sentencepiece_to_lmforge_id(i) for i in sp.encode(doc)]
        if ours != theirs:
            ties += 1
            assert sorted(ours) == sorted(theirs), doc
            assert sum(scores[i] for i in ours) == pytest.approx(
                sum(scores[i] for i in theirs), abs=1e-4
            )
    return ties


def test_unigram_equals_sentencepiece(corpus_file):
    import sentencepiece as spm

    from lmforge.tokenizers.corpus import iter_documents
    from lmforge.tokenizers.unigram import train_sentencepiece, unigram_from_sentencepiece

    cfg = TokenizerConfig(kind="unigram", vocab_size=VOCAB, split_digits=True)
    proto = train_sentencepiece(cfg, iter_documents([corpus_file]))
    tok = unigram_from_sentencepiece(proto, cfg)
    sp = spm.SentencePieceProcessor(model_proto=proto)
    lines = corpus_file.read_text(encoding="utf-8").split("\n")
    docs = lines + [SAMPLE, " x", "🦜\n", "<0x41>"]
    ties = assert_same_as_sentencepiece(tok, sp, docs)
    assert ties < len(docs) // 20


# -- config and output folder ----------------------------------------------------


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"kind": "bpe", "vocab_size": 200}, "vocab_size: bpe needs at least 266"),
        ({"kind": "unigram", "vocab_size": 265}, "vocab_size: unigram needs at least 266"),
        ({"kind": "char", "vocab_size": 5}, "vocab_size: char needs at least 10"),
        ({"kind": "sentencepiece"}, "kind: got 'sentencepiece'; allowed: word, char"),
        ({"kind": "bpe", "base_form": "stem"}, "base_form: only --kind word"),
        ({"kind": "word", "stop_words": "/no/such/list"}, "stop_words: /no/such/list: no such"),
    ],
)
def test_impossible_configs_fail_at_parse_time(overrides, needle):
    needle = needle.replace("266", str(256 + len(SPECIAL_TOKENS) + 1))
    needle = needle.replace("at least 10", f"at least {len(SPECIAL_TOKENS) + 1}")
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        build_config(TokenizerConfig, overrides=overrides)


def test_whitespace_only_input_is_refused(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text("   \n\n\t\n")
    for kind in KINDS:
        with pytest.raises(LmforgeError, match="no text to train on"):
            train_tokenizer(TokenizerConfig(kind=kind), [path])


def test_save_replaces_a_tokenizer_folder_but_nothing_else(trained, tmp_path, monkeypatch):
    bpe, _ = trained["bpe"]
    char, _ = trained["char"]
    out = tmp_path / "tok"
    save_tokenizer_dir(bpe, out)
    with pytest.raises(LmforgeError, match="--force"):
        save_tokenizer_dir(char, out)  # replaced only when asked
    save_tokenizer_dir(char, out, force=True)
    assert Tokenizer.load(out).kind == "char"
    before = (out / "tokenizer.json").read_bytes()

    def broken_save(self, folder):
        raise OSError("disk full")

    monkeypatch.setattr(Tokenizer, "save", broken_save)
    with pytest.raises(OSError):
        save_tokenizer_dir(bpe, out, force=True)
    assert (out / "tokenizer.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]  # no temp folder left
    other = tmp_path / "run"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(LmforgeError, match="replaces only what it wrote"):
        save_tokenizer_dir(bpe, other, force=True)


def test_split_digits_stops_number_merges(tmp_path):
    path = tmp_path / "numbers.txt"
    path.write_text("In 12345 days and 2024 years, 12345 more.\n" * 50)
    merged = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300), [path])
    assert len(merged.encode("12345")) < 5
    split = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300, split_digits=True), [path])
    assert split.tokens("12345") == ["1", "2", "3", "4", "5"]


# -- parity on the reference corpora ---------------------------------------------------

PARITY_CHARS = 200_000


@pytest.fixture(scope="module")
def corpus_slices(shared_data, tmp_path_factory):
    """The first 200k characters of Tiny Shakespeare and of War and Peace, as files."""
    folder = tmp_path_factory.mktemp("slices")
    out = []
    for name in ("tinyshakespeare.txt", "war_and_peace_ru.txt"):
        text = (shared_data / "corpora" / name).read_text(encoding="utf-8")[:PARITY_CHARS]
        path = folder / name
        path.write_text(text, encoding="utf-8")
        out.append(path)
    return out


@pytest.fixture(scope="module")
def corpus_unigram(corpus_slices):
    """(tokenizer, sentencepiece model) trained once on the slices (unigram training is the
    slow one); `train_unigram` is exactly these two steps."""
    from lmforge.tokenizers.corpus import iter_documents
    from lmforge.tokenizers.unigram import train_sentencepiece, unigram_from_sentencepiece

    cfg = TokenizerConfig(kind="unigram", vocab_size=1000)
    proto = train_sentencepiece(cfg, iter_documents(corpus_slices))
    return unigram_from_sentencepiece(proto, cfg), proto


@pytest.mark.parametrize("kind", KINDS)
def test_parity_with_hugging_face_on_shakespeare_and_war_and_peace(
    corpus_slices, corpus_unigram, kind, tmp_path
):
    from tokenizers import Tokenizer as HFTokenizer
    from transformers import PreTrainedTokenizerFast

    from lmforge.tokenizers.corpus import iter_documents

    if kind == "unigram":
        tok = corpus_unigram[0]
    else:
        cfg = TokenizerConfig(kind=kind, vocab_size=1000, split_digits=kind == "bpe")
        tok = train_tokenizer(cfg, corpus_slices)
    file = str(save_tokenizer_dir(tok, tmp_path / kind) / "tokenizer.json")
    hf = HFTokenizer.from_file(file)
    fast = PreTrainedTokenizerFast(tokenizer_file=file)
    for path in corpus_slices:
        docs = list(iter_documents([path]))
        ours = tok.encode_batch(docs)
        assert sum(map(len, ours)) > 30_000, path.name
        assert [e.ids for e in hf.encode_batch(docs, add_special_tokens=False)] == ours
        assert fast(docs, add_special_tokens=False)["input_ids"] == ours


def test_unigram_equals_sentencepiece_on_the_corpora(corpus_slices, corpus_unigram):
    import sentencepiece as spm

    tok, proto = corpus_unigram
    sp = spm.SentencePieceProcessor(model_proto=proto)
    for path in corpus_slices:
        lines = path.read_text(encoding="utf-8").split("\n")
        assert assert_same_as_sentencepiece(tok, sp, lines) == 0, path.name
