"""`lmforge tokenizer train|encode|decode|stats`, and its clean errors on bad input."""

from __future__ import annotations

import json

import pytest
from conftest import assert_clean_error, run_lmforge
from test_tokenizers_corpus import write_corpus

from lmforge.tokenizers import SPECIAL_TOKENS


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("cli-corpus"))


@pytest.fixture(scope="module")
def bpe_dir(corpus_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "bpe"
    r = run_lmforge(
        "tokenizer",
        "train",
        "--kind",
        "bpe",
        "--vocab-size",
        "400",
        "--split-digits",
        "--input",
        corpus_file,
        "--out",
        out,
    )
    assert r.returncode == 0, r.stderr
    assert "vocab size 400" in r.stdout
    return out


def test_tokenizer_alone_prints_its_help():
    r = run_lmforge("tokenizer")
    for sub in ("train", "encode", "decode", "stats"):
        assert sub in r.stdout
    assert "Traceback" not in r.stderr


def test_train_writes_tokenizer_and_meta(bpe_dir, corpus_file):
    assert sorted(p.name for p in bpe_dir.iterdir()) == ["lmforge.json", "tokenizer.json"]
    meta = json.loads((bpe_dir / "lmforge.json").read_text())
    assert meta["kind"] == "bpe" and meta["config"]["split_digits"] is True
    assert meta["inputs"] == [str(corpus_file)]
    vocab = json.loads((bpe_dir / "tokenizer.json").read_text())["model"]["vocab"]
    assert [vocab[t] for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))


def test_encode_then_decode_round_trips(bpe_dir):
    text = "The king spoke 12345 слов!"
    r = run_lmforge("tokenizer", "encode", "-t", bpe_dir, "--text", text, "--bos")
    assert r.returncode == 0, r.stderr
    ids = r.stdout.split()
    assert ids[0] == "1" and all(i.isdigit() for i in ids)
    r = run_lmforge("tokenizer", "decode", "-t", bpe_dir, *ids)
    assert r.returncode == 0 and r.stdout == text + "\n"
    # ids on standard input, comma separated, special tokens shown on request
    r = run_lmforge("tokenizer", "decode", "-t", bpe_dir, "--keep-special", input=",".join(ids))
    assert r.stdout == "<|bos|>" + text + "\n"
    r = run_lmforge("tokenizer", "encode", "-t", bpe_dir, "--tokens", input="12345 слов")
    assert json.loads(r.stdout)[:5] == ["1", "2", "3", "4", "5"]
    assert "".join(json.loads(r.stdout)) == "12345 слов"


def test_stats_reports_fertility_unk_and_merges(bpe_dir, corpus_file, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("An unseen text: 🦜🦜 with ŋew letters.\n")
    r = run_lmforge("tokenizer", "stats", "-t", bpe_dir, "--input", corpus_file, other)
    assert r.returncode == 0, r.stderr
    for needle in (
        "vocab size: 400",
        "tokens/word",
        "tokens/char",
        "unk share",
        "longest tokens:",
        "top merges:",
        "corpus.txt",
        "other.txt",
    ):
        assert needle in r.stdout
    r = run_lmforge("tokenizer", "stats", "-t", bpe_dir, "--input", other, "--json")
    data = json.loads(r.stdout)
    (row,) = data["inputs"]
    assert row["words"] == 7 and row["chars"] == len(other.read_text())
    assert row["unk_share"] == 0.0 and row["tokens_per_word"] == row["tokens"] / 7
    assert len(data["top_merges"]) == 10 and data["vocab_size"] == 400


def test_train_each_kind_from_yaml_config(corpus_file, tmp_path):
    for kind in ("word", "char", "unigram"):
        cfg = tmp_path / f"{kind}.yaml"
        cfg.write_text(f"kind: {kind}\nvocab_size: 600\n")
        out = tmp_path / kind
        r = run_lmforge(
            "tokenizer",
            "train",
            "--config",
            cfg,
            "--input",
            corpus_file,
            "--out",
            out,
            "--min-frequency",
            "1",
        )
        assert r.returncode == 0, r.stderr
        meta = json.loads((out / "lmforge.json").read_text())
        assert meta["kind"] == kind and meta["config"]["min_frequency"] == 1


def bad_input_cases(tmp_path):
    """(name, file, extra flags, words the one error line must contain)."""
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "data.txt"
    binary.write_bytes(bytes(range(256)) * 4)
    cp1251 = tmp_path / "russian.txt"
    cp1251.write_bytes("Привет, как дела? Это текст в cp1251.\n".encode("cp1251"))
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text('{"text": "one"}\n{"text": "two"}\n{"text": "three"\n{"text": "four"}\n')
    good = tmp_path / "good.txt"
    good.write_text("some good text\n")
    return [
        ("empty", empty, [], ["empty.txt", "empty"]),
        ("binary", binary, [], ["data.txt", "binary"]),
        ("cp1251", cp1251, [], ["russian.txt", "not UTF-8", "iconv -f cp1251 -t utf-8"]),
        ("jsonl", jsonl, [], ["docs.jsonl:3", "malformed"]),
        (
            "vocab",
            good,
            ["--vocab-size", "100"],
            ["vocab_size", f"at least {256 + len(SPECIAL_TOKENS) + 1}", "256 bytes"],
        ),
        ("kind", good, ["--kind", "wordpiece"], ["kind", "wordpiece", "bpe", "unigram"]),
    ]


@pytest.mark.parametrize("case", ["empty", "binary", "cp1251", "jsonl", "vocab", "kind"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
    cases = {c[0]: c[1:] for c in bad_input_cases(tmp_path)}
    path, flags, needles = cases[case]
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    r = run_lmforge("tokenizer", "train", "--input", path, "--out", out, *flags)
    assert_clean_error(r, *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # not even a temp folder


def test_failed_train_leaves_the_old_tokenizer_intact(bpe_dir, tmp_path):
    bad = tmp_path / "docs.jsonl"
    bad.write_text('{"text": "fine"}\nnot json\n')
    before = {p.name: p.read_bytes() for p in bpe_dir.iterdir()}
    r = run_lmforge("tokenizer", "train", "--input", bad, "--out", bpe_dir, "--force")
    assert_clean_error(r, "docs.jsonl:2")
    assert {p.name: p.read_bytes() for p in bpe_dir.iterdir()} == before
    assert not [p for p in bpe_dir.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "args, needles",
    [
        (["decode", "1", "x"], ["'x' is not an integer"]),
        (["decode", "99999"], ["99999 is outside"]),
        (["encode", "--input", "/no/such.txt"], ["/no/such.txt", "no such file"]),
    ],
)
def test_encode_decode_errors_are_clean(bpe_dir, args, needles):
    verb, *rest = args
    assert_clean_error(run_lmforge("tokenizer", verb, "-t", bpe_dir, *rest), *needles)


def test_missing_tokenizer_folder_is_clean(tmp_path):
    r = run_lmforge("tokenizer", "encode", "-t", tmp_path / "nope", "--text", "x")
    assert_clean_error(r, "nope", "no tokenizer.json", "lmforge tokenizer train")


def test_a_vocabulary_smaller_than_asked_is_said_and_recorded(corpus_file, tmp_path):
    out = tmp_path / "big"
    r = run_lmforge(
        "tokenizer", "train", "--kind", "bpe", "--vocab-size", "20000", "--input", corpus_file,
        "--out", out,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if "smaller than --vocab-size" in ln]
    assert len(lines) == 1 and "20,000" in lines[0] and "too few distinct byte pairs" in lines[0]
    meta = json.loads((out / "lmforge.json").read_text())
    assert "smaller than --vocab-size 20,000" in meta["vocab_note"]
    r = run_lmforge("tokenizer", "train", "--kind", "bpe", "--vocab-size", "300",
                    "--input", corpus_file, "--out", tmp_path / "small")  # fmt: skip
    assert "smaller than" not in r.stdout + r.stderr
    assert "vocab_note" not in json.loads((tmp_path / "small" / "lmforge.json").read_text())
