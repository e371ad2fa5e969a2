"""prepare(): dedup, split, shards and meta.json agree with the documents; atomic output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_data_helpers import CORPUS, make_big_word_tokenizer, make_bpe_tokenizer, write_jsonl

from lmforge.common import ConfigError, LmforgeError
from lmforge.config import build_config
from lmforge.data.prepare import PrepareConfig, prepare
from lmforge.data.shards import TokenShards, read_meta
from lmforge.tokenizers import Tokenizer


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory):
    """A folder holding the fixture BPE tokenizer."""
    folder = tmp_path_factory.mktemp("bpe")
    make_bpe_tokenizer(folder)
    return folder


def make_corpus(tmp_path, n=60):
    """A .txt and a .jsonl with unique, duplicate and empty documents."""
    texts = [f"{CORPUS[i % len(CORPUS)]} (number {i})" for i in range(n)]
    (tmp_path / "a.txt").write_text("\n\n".join(texts[: n // 2]) + "\n", encoding="utf-8")
    rows = [{"text": t} for t in texts[n // 2 :]]
    rows += [{"text": texts[0]}, {"text": texts[-1]}, {"text": "  "}, {"text": ""}]
    write_jsonl(tmp_path / "b.jsonl", rows)
    return texts


def run(tmp_path, tok_dir, name="out", **kw):
    cfg = PrepareConfig(
        tokenizer=str(tok_dir),
        input=kw.pop("input", [str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl")]),
        out=str(tmp_path / name),
        **kw,
    )
    return prepare(cfg), tmp_path / name


def split_documents(folder, split, tok):
    """Decode a split back into its documents (cut at EOS)."""
    shards = TokenShards(folder, split)
    ids = shards.window(0, len(shards)) if len(shards) else np.zeros(0, np.int64)
    assert len(ids) == 0 or ids[-1] == tok.eos_id  # every document ends with EOS
    cuts = np.flatnonzero(ids == tok.eos_id)
    out, start = [], 0
    for c in cuts:
        out.append(tok.decode(ids[start:c].tolist()))
        start = c + 1
    return out


def test_shards_decode_back_to_the_documents(tmp_path, bpe_dir):
    texts = make_corpus(tmp_path)
    meta, out = run(tmp_path, bpe_dir, val_fraction=0.2, seed=3)
    tok = Tokenizer.load(out / "tokenizer")
    train, val = split_documents(out, "train", tok), split_documents(out, "val", tok)
    assert sorted(train + val) == sorted(texts)  # every unique document exactly once
    assert not set(train) & set(val)
    assert len(val) == round(len(texts) * 0.2) == meta["splits"]["val"]["documents"]
    assert train == [t for t in texts if t in set(train)]  # corpus order kept
    assert meta["documents"] == len(texts)
    assert meta["documents_read"] == len(texts) + 4
    assert meta["duplicates_dropped"] == 2 and meta["empty_dropped"] == 2
    for split, docs in (("train", train), ("val", val)):
        entry = meta["splits"][split]
        assert entry["chars"] == sum(len(d) for d in docs)
        assert entry["bytes"] == sum(len(d.encode()) for d in docs)
        assert entry["tokens"] == sum(len(tok.encode(d)) + 1 for d in docs)
        assert entry["tokens"] == sum(s["tokens"] for s in entry["shards"])
    assert meta["dtype"] == "uint16" and meta["tokenizer_hash"] == tok.hash
    assert [s["documents"] for s in meta["sources"]] == [30, 30]
    assert read_meta(out) == meta
    assert (out / "config.yaml").is_file()
    assert TokenShards(out, "train").tokenizer().hash == meta["tokenizer_hash"]


def test_same_seed_same_bytes_other_seed_other_split(tmp_path, bpe_dir):
    make_corpus(tmp_path)
    m1, a = run(tmp_path, bpe_dir, name="a", seed=1)
    m2, b = run(tmp_path, bpe_dir, name="b", seed=1)
    m3, c = run(tmp_path, bpe_dir, name="c", seed=2)
    for f in ("train_00000.bin", "val_00000.bin"):
        assert (a / f).read_bytes() == (b / f).read_bytes()
    assert (a / "val_00000.bin").read_bytes() != (c / "val_00000.bin").read_bytes()
    assert m1["splits"]["val"]["documents"] == m3["splits"]["val"]["documents"]


def test_dedup_can_be_turned_off(tmp_path, bpe_dir):
    texts = make_corpus(tmp_path)
    meta, _ = run(tmp_path, bpe_dir, dedup=False)
    assert meta["duplicates_dropped"] == 0 and meta["documents"] == len(texts) + 2


def test_small_shards_and_windows_across_files(tmp_path, bpe_dir):
    make_corpus(tmp_path, n=200)
    meta, out = run(tmp_path, bpe_dir, shard_tokens=1024, val_fraction=0.05)
    shards = meta["splits"]["train"]["shards"]
    assert len(shards) > 2 and all(s["tokens"] == 1024 for s in shards[:-1])
    assert meta["split_rule"] == "documents" and meta["splits"]["val"]["documents"] == 10
    stream = np.concatenate([np.fromfile(out / s["file"], dtype="<u2") for s in shards]).astype(
        np.int64
    )
    ts = TokenShards(out, "train")
    assert len(ts) == len(stream)
    for start in (0, 1000, 1023, 2040, len(stream) - 50):
        assert np.array_equal(ts.window(start, 50), stream[start : start + 50])
    with pytest.raises(IndexError):
        ts.window(len(stream) - 10, 11)


def test_uint32_when_the_vocabulary_exceeds_uint16(tmp_path):
    tok = make_big_word_tokenizer(tmp_path / "tok")
    (tmp_path / "a.txt").write_text("w1 w69990 w5\n\nw69000 w2\n", encoding="utf-8")
    meta, out = run(tmp_path, tmp_path / "tok", input=[str(tmp_path / "a.txt")])
    assert meta["dtype"] == "uint32" and meta["vocab_size"] == 70_000
    train, val = TokenShards(out, "train"), TokenShards(out, "val")
    got = sorted([train.window(0, len(train)).tolist(), val.window(0, len(val)).tolist()])
    assert got == sorted([tok.encode("w1 w69990 w5", eos=True), tok.encode("w69000 w2", eos=True)])
    assert max(max(g) for g in got) > 65535


def test_one_document_is_split_at_a_line_break_near_the_tail(tmp_path, bpe_dir):
    lines = [f"line {i}: {CORPUS[i % len(CORPUS)]}" for i in range(50)]
    text = "\n".join(lines) + "\n"
    (tmp_path / "book.txt").write_text(text, encoding="utf-8")
    meta, out = run(
        tmp_path, bpe_dir, input=[str(tmp_path / "book.txt")], txt_docs="file", val_fraction=0.1
    )
    tok = Tokenizer.load(bpe_dir)
    (train,), (val,) = split_documents(out, "train", tok), split_documents(out, "val", tok)
    assert meta["split_rule"] == "tail"
    assert train + val == text
    assert train.endswith("\n") and val.split("\n")[0] in text.split("\n")  # at a line break
    assert 0.05 < len(val) / len(text) < 0.15
    assert meta["splits"]["val"]["chars"] == len(val)


def test_strip_html_documents(tmp_path, bpe_dir):
    write_jsonl(
        tmp_path / "web.jsonl",
        [{"text": "<p>Hello <i>there</i></p><script>x=1</script>"}, {"text": "<br><br>"}],
    )
    meta, out = run(tmp_path, bpe_dir, input=[str(tmp_path / "web.jsonl")], strip_html=True)
    tok = Tokenizer.load(bpe_dir)
    (train,), (val,) = split_documents(out, "train", tok), split_documents(out, "val", tok)
    assert train + val == "Hello there"
    assert meta["empty_dropped"] == 1 and meta["strip_html"] is True


def test_existing_output_is_kept_on_failure_and_needs_force(tmp_path, bpe_dir):
    make_corpus(tmp_path)
    _, out = run(tmp_path, bpe_dir)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(LmforgeError, match="--force"):
        run(tmp_path, bpe_dir)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"text": "b"}\n{oops\n', encoding="utf-8")
    with pytest.raises(LmforgeError, match="bad.jsonl:3"):
        run(tmp_path, bpe_dir, input=[str(tmp_path / "a.txt"), str(bad)], force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.jsonl", "bad.jsonl", "out"]
    meta, _ = run(tmp_path, bpe_dir, force=True, val_fraction=0.5)
    assert (
        json.loads((out / "meta.json").read_text())["val_fraction"] == 0.5 == meta["val_fraction"]
    )


def test_refuses_a_folder_that_is_not_a_data_folder(tmp_path, bpe_dir):
    make_corpus(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(LmforgeError, match="replaces only what it wrote"):
        run(tmp_path, bpe_dir, force=True)
    assert (tmp_path / "out" / "precious.txt").read_text() == "keep me"


def test_no_documents_is_an_error(tmp_path, bpe_dir):
    write_jsonl(tmp_path / "e.jsonl", [{"text": " "}])
    with pytest.raises(LmforgeError, match="no documents found"):
        run(tmp_path, bpe_dir, input=[str(tmp_path / "e.jsonl")])
    assert not (tmp_path / "out").exists()


def test_config_requires_fields_and_checks_bounds():
    with pytest.raises(ConfigError, match="tokenizer"):
        build_config(PrepareConfig, overrides={"input": ["x"], "out": "o"})
    with pytest.raises(ConfigError, match="val_fraction"):
        build_config(
            PrepareConfig,
            overrides={"tokenizer": "t", "input": ["x"], "out": "o", "val_fraction": 0.9},
        )
    with pytest.raises(ConfigError, match="txt_docs"):
        build_config(
            PrepareConfig,
            overrides={"tokenizer": "t", "input": ["x"], "out": "o", "txt_docs": "para"},
        )


def test_tiny_shakespeare(tmp_path, bpe_dir, shared_data):
    meta, out = run(tmp_path, bpe_dir, input=[str(shared_data / "corpora" / "tinyshakespeare.txt")])
    text = (shared_data / "corpora" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    blocks = [b.strip("\n") for b in text.split("\n\n") if b.strip()]
    assert meta["documents_read"] == len(blocks)
    assert meta["documents"] == len(set(blocks))
    assert meta["splits"]["train"]["chars"] + meta["splits"]["val"]["chars"] == sum(
        len(b) for b in set(blocks)
    )
    assert 0.07 < meta["splits"]["val"]["tokens"] / meta["splits"]["train"]["tokens"] < 0.15


# ---------------------------------------------------------------------------
# Long documents: read and encoded in pieces, ids exactly those of the whole


PIECE_KINDS = {
    "bpe": dict(kind="bpe", vocab_size=400),
    "bpe-digits-lower": dict(kind="bpe", vocab_size=400, split_digits=True, lowercase=True),
    "word": dict(kind="word", vocab_size=300),
    "char": dict(kind="char", vocab_size=120),
    "unigram": dict(kind="unigram", vocab_size=600),
    "unigram-span-spaces": dict(kind="unigram", vocab_size=700, span_spaces=True),
}


@pytest.fixture(scope="module")
def piece_tokenizers(tmp_path_factory):
    """One small tokenizer folder per PIECE_KINDS entry, trained by lmforge."""
    from test_tokenizers_corpus import write_corpus

    from lmforge.tokenizers.train import TokenizerConfig, save_tokenizer_dir, train_tokenizer

    root = tmp_path_factory.mktemp("piece_toks")
    corpus_file = write_corpus(root, n=300)
    out = {}
    for name, kw in PIECE_KINDS.items():
        tok = train_tokenizer(TokenizerConfig(min_frequency=1, threads=1, **kw), [corpus_file])
        out[name] = save_tokenizer_dir(tok, root / name)
    return out


def long_line(n_words=6000, seed=4):
    """A single line of random words, numbers and punctuation; a few double spaces."""
    import random

    from test_tokenizers_corpus import EN_WORDS, RU_WORDS

    rng = random.Random(seed)
    words = []
    for _ in range(n_words):
        r = rng.random()
        w = str(rng.randint(0, 9999)) if r < 0.1 else rng.choice(EN_WORDS + RU_WORDS)
        words.append(w + ("," if r > 0.95 else "") + (" " if r > 0.98 else ""))
    return " ".join(words).capitalize()


@pytest.mark.parametrize("name", list(PIECE_KINDS))
def test_long_line_in_pieces_gives_the_ids_of_the_whole(
    tmp_path, piece_tokenizers, name, monkeypatch
):
    import lmforge.data.prepare as prep
    import lmforge.data.readers as readers

    monkeypatch.setattr(prep, "PIECE_CHARS", 1500)
    monkeypatch.setattr(readers, "_READ_BYTES", 4096)
    text = long_line()
    (tmp_path / "one.txt").write_text(text, encoding="utf-8")
    tok = Tokenizer.load(piece_tokenizers[name])
    # One document (tail split from the id stream) and the same plus a short one.
    for extra in ("", "\n\nA short second document."):
        (tmp_path / "one.txt").write_text(text + extra, encoding="utf-8")
        meta, out = run(
            tmp_path, piece_tokenizers[name], input=[str(tmp_path / "one.txt")], force=True
        )
        ids = []
        for split in ("train", "val"):
            shards = TokenShards(out, split)
            ids.append(shards.window(0, len(shards)).tolist())
        if not extra:
            assert meta["split_rule"] == "tail" and ids[0][-1] == ids[1][-1] == tok.eos_id
            got = ids[0][:-1] + ids[1][:-1]
            assert meta["splits"]["train"]["chars"] + meta["splits"]["val"]["chars"] == len(text)
            assert 0.02 < meta["splits"]["val"]["chars"] / len(text) < 0.2
        else:
            long_ids = max(ids, key=len)
            assert long_ids[-1] == tok.eos_id
            got = long_ids[:-1]
        assert got == tok.encode(text)


def test_a_long_duplicate_is_taken_back(tmp_path, bpe_dir, monkeypatch):
    import lmforge.data.prepare as prep

    monkeypatch.setattr(prep, "PIECE_CHARS", 1000)
    text = long_line(2000)
    write_jsonl(tmp_path / "d.jsonl", [{"text": text}, {"text": "short"}, {"text": text}])
    meta, out = run(tmp_path, bpe_dir, input=[str(tmp_path / "d.jsonl")], val_fraction=0.5)
    tok = Tokenizer.load(bpe_dir)
    assert meta["duplicates_dropped"] == 1 and meta["documents"] == 2
    docs = split_documents(out, "train", tok) + split_documents(out, "val", tok)
    assert sorted(docs) == sorted([text, "short"])
    total = sum(meta["splits"][s]["tokens"] for s in ("train", "val"))
    assert total == len(tok.encode(text)) + len(tok.encode("short")) + 2


def test_five_megabyte_line_prepares_in_bounded_memory(tmp_path, bpe_dir):
    """A 5 MB line with no newline, in a fresh process, peaks at about the RSS of a
    1.5 MB one: memory follows the piece size, not the line (50 MB took 7.1 GB
    before pieces; encoding 5 MB whole takes about 0.7 GB)."""
    import subprocess
    import sys

    line = long_line(20_000)

    def peak_mb(size: int, name: str) -> int:
        with open(tmp_path / f"{name}.txt", "w", encoding="utf-8") as f:
            while f.tell() < size:
                f.write(line + " ")
        code = (
            "import resource\n"
            "from lmforge.data.prepare import PrepareConfig, prepare\n"
            f"m = prepare(PrepareConfig(tokenizer={str(bpe_dir)!r}, "
            f"input=[{str(tmp_path / (name + '.txt'))!r}], out={str(tmp_path / name)!r}, "
            "workers=1))\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, m['documents'])\n"
        )
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        peak, documents = map(int, r.stdout.split())
        assert documents == 1
        return peak

    small, big = peak_mb(1_500_000, "small"), peak_mb(5_000_000, "big")
    assert big < small * 1.25 + 40, f"peak RSS {big} MB for 5 MB vs {small} MB for 1.5 MB"
    meta = read_meta(tmp_path / "big")
    assert meta["split_rule"] == "tail" and meta["splits"]["val"]["tokens"] > 1000


def test_val_fraction_zero_is_refused(tmp_path, bpe_dir):
    make_corpus(tmp_path)
    with pytest.raises(ConfigError, match="val_fraction.*pretrain"):
        run(tmp_path, bpe_dir, val_fraction=0)
    with pytest.raises(ConfigError, match="val_fraction.*validation split"):
        build_config(
            PrepareConfig,
            overrides={"tokenizer": "t", "input": ["x"], "out": "o", "val_fraction": 0},
        )


def test_unigram_pieces_never_cut_inside_a_piece_that_spans_a_space(piece_tokenizers):
    from lmforge.data.prepare import piece_rule
    from lmforge.tokenizers.corpus import split_pieces

    tok = Tokenizer.load(piece_tokenizers["unigram-span-spaces"])
    drop, can_cut = piece_rule(tok)
    assert drop and can_cut is not None
    vocab = tok.engine.get_vocab()
    spanning = max((t for t in vocab if t.startswith("▁") and "▁" in t[1:]), key=len)
    text = " ".join([spanning.replace("▁", " ").strip()] * 3000)

    def piecewise(cut):
        pieces = list(split_pieces([text], 1000, spaces_only=True, can_cut=cut))
        assert len(pieces) > 10
        return [i for k, p in enumerate(pieces) for i in tok.encode(p[1:] if k else p)]

    assert piecewise(can_cut) == tok.encode(text)
    assert piecewise(None) != tok.encode(text)  # the check is what keeps it exact
