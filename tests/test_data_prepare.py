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
    meta, out = run(tmp_path, bpe_dir, shard_tokens=1024, val_fraction=0.0)
    shards = meta["splits"]["train"]["shards"]
    assert len(shards) > 2 and all(s["tokens"] == 1024 for s in shards[:-1])
    assert meta["splits"]["val"] == {
        "tokens": 0,
        "documents": 0,
        "chars": 0,
        "bytes": 0,
        "shards": [],
    }
    assert meta["split_rule"] == "none"
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
    meta, out = run(tmp_path, tmp_path / "tok", input=[str(tmp_path / "a.txt")], val_fraction=0)
    assert meta["dtype"] == "uint32" and meta["vocab_size"] == 70_000
    ts = TokenShards(out, "train")
    assert ts.window(0, len(ts)).tolist() == [
        *tok.encode("w1 w69990 w5", eos=True),
        *tok.encode("w69000 w2", eos=True),
    ]
    assert max(ts.window(0, len(ts))) > 65535


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
    meta, out = run(
        tmp_path, bpe_dir, input=[str(tmp_path / "web.jsonl")], strip_html=True, val_fraction=0
    )
    assert split_documents(out, "train", Tokenizer.load(bpe_dir)) == ["Hello there"]
    assert meta["empty_dropped"] == 1 and meta["strip_html"] is True


def test_existing_output_is_kept_on_failure_and_needs_overwrite(tmp_path, bpe_dir):
    make_corpus(tmp_path)
    _, out = run(tmp_path, bpe_dir)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(LmforgeError, match="--overwrite"):
        run(tmp_path, bpe_dir)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"text": "b"}\n{oops\n', encoding="utf-8")
    with pytest.raises(LmforgeError, match="bad.jsonl:3"):
        run(tmp_path, bpe_dir, input=[str(tmp_path / "a.txt"), str(bad)], overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.jsonl", "bad.jsonl", "out"]
    meta, _ = run(tmp_path, bpe_dir, overwrite=True, val_fraction=0.5)
    assert (
        json.loads((out / "meta.json").read_text())["val_fraction"] == 0.5 == meta["val_fraction"]
    )


def test_refuses_a_folder_that_is_not_a_data_folder(tmp_path, bpe_dir):
    make_corpus(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(LmforgeError, match="not an lmforge data folder"):
        run(tmp_path, bpe_dir, overwrite=True)
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
