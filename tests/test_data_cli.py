"""`lmforge data prepare|info` end to end, and the error contract for bad corpus files."""

from __future__ import annotations

import json

import pytest
from conftest import assert_clean_error, run_lmforge
from test_data_helpers import CORPUS, make_bpe_tokenizer, write_jsonl


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory):
    """A folder holding the fixture BPE tokenizer."""
    folder = tmp_path_factory.mktemp("bpe")
    make_bpe_tokenizer(folder)
    return folder


def prepare(tok, out, *inputs, extra=()):
    return run_lmforge(
        "data", "prepare", "--tokenizer", tok, "--input", *inputs, "--out", out, *extra
    )


def test_prepare_then_info(tmp_path, bpe_dir):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(CORPUS + CORPUS[:2]) + "\n", encoding="utf-8")
    r = prepare(bpe_dir, tmp_path / "out", corpus, extra=("--val-fraction", "0.25", "--quiet"))
    assert r.returncode == 0, r.stderr
    assert "2 duplicates dropped" in r.stdout and "tokens/s" in r.stdout
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["documents"] == len(CORPUS) and meta["splits"]["val"]["documents"] == 2
    info = run_lmforge("data", "info", tmp_path / "out")
    assert info.returncode == 0, info.stderr
    assert f"{meta['splits']['train']['tokens']:,} tokens" in info.stdout
    assert meta["tokenizer_hash"] in info.stdout and "uint16" in info.stdout
    raw = run_lmforge("data", "info", tmp_path / "out", "--json")
    assert json.loads(raw.stdout) == meta


def test_data_alone_prints_help():
    r = run_lmforge("data")
    assert "prepare" in r.stdout and "info" in r.stdout


def _bad_inputs(tmp_path):
    cp1251 = tmp_path / "ru.txt"
    cp1251.write_bytes("Война и мир\n".encode("cp1251"))
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\x01\x02binary\x00")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c",\n', encoding="utf-8")
    return {
        "missing": (tmp_path / "missing.txt", ["missing.txt", "no such file"]),
        "empty": (empty, ["empty.txt", "empty"]),
        "binary": (binary, ["blob.txt", "binary"]),
        "cp1251": (cp1251, ["ru.txt", "not UTF-8", "iconv"]),
        "jsonl": (jsonl, ["bad.jsonl:3", "malformed"]),
    }


@pytest.mark.parametrize(
    "case",
    ["missing", "empty"]
    + [pytest.param(c, marks=pytest.mark.slow) for c in ("binary", "cp1251", "jsonl")],
)
def test_bad_input_is_one_clear_line_and_keeps_the_old_output(tmp_path, bpe_dir, case):
    good = write_jsonl(tmp_path / "good.jsonl", [{"text": t} for t in CORPUS])
    out = tmp_path / "out"
    assert prepare(bpe_dir, out, good).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    path, needles = _bad_inputs(tmp_path)[case]
    r = prepare(bpe_dir, out, good, path, extra=("--overwrite",))
    assert_clean_error(r, *needles)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temp folder


@pytest.mark.slow  # one of the longest default tests (kept under 15 min); CI runs it in test-slow
def test_flag_and_folder_errors(tmp_path, bpe_dir, monkeypatch):
    assert_clean_error(
        run_lmforge("data", "prepare", "--input", "x.txt", "--out", tmp_path / "o"), "tokenizer"
    )
    r = prepare(bpe_dir, tmp_path / "o", "x.txt", extra=("--txt-docs", "para"))
    assert_clean_error(r, "txt_docs", "blank-line")
    assert_clean_error(prepare(tmp_path / "notok", tmp_path / "o", "x.txt"), "tokenizer.json")
    assert_clean_error(run_lmforge("data", "info", tmp_path), "not a prepared data folder")
    # With `datasets` installed (the peers extra) a Hub name is looked up: offline here, so
    # fail at once instead of after the client's retries (their log lines are silenced).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_clean_error(prepare(bpe_dir, tmp_path / "o", "hf:some/dataset"), "hf:some/dataset")


def test_val_fraction_zero_is_refused_at_prepare_time(tmp_path, bpe_dir):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(CORPUS) + "\n", encoding="utf-8")
    r = prepare(bpe_dir, tmp_path / "out", corpus, extra=("--val-fraction", "0"))
    assert_clean_error(r, "val_fraction", "lmforge pretrain", "--val-fraction 0.05")
    assert not (tmp_path / "out").exists()


def test_missing_text_field_names_the_flag_and_the_fields(tmp_path, bpe_dir):
    bad = tmp_path / "rows.jsonl"
    bad.write_text('{"body": "x", "id": 1}\n', encoding="utf-8")
    r = prepare(bpe_dir, tmp_path / "out", bad)
    assert_clean_error(r, "rows.jsonl:1", '"body", "id"', "--text-field")
