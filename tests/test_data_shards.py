"""TokenShards and ShardWriter: file layout, windows, and clear errors for broken folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_data_helpers import make_bpe_tokenizer, make_position_folder

from lmforge.common import LmforgeError
from lmforge.data.shards import ShardWriter, TokenShards, check_tokenizer, dtype_for_vocab
from lmforge.tokenizers import Tokenizer


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory):
    """A folder holding the fixture BPE tokenizer."""
    folder = tmp_path_factory.mktemp("bpe")
    make_bpe_tokenizer(folder)
    return folder


def test_dtype_choice_boundary():
    assert dtype_for_vocab(65_536) == "uint16"  # ids 0..65535 fit
    assert dtype_for_vocab(65_537) == "uint32"


def test_writer_cuts_files_and_reader_joins_them(tmp_path):
    writer = ShardWriter(tmp_path, "train", "uint16", shard_tokens=10)
    for piece in (np.arange(7), np.arange(7, 25), np.arange(25, 26)):
        writer.write(piece)
    shards = writer.close()
    assert [s["tokens"] for s in shards] == [10, 10, 6]
    assert (tmp_path / "train_00002.bin").stat().st_size == 12  # raw little-endian uint16
    make_position_folder(tmp_path / "d", {"train": 26}, shard_tokens=10)
    ts = TokenShards(tmp_path / "d", "train")
    assert len(ts) == 26 and ts.window(8, 5).tolist() == [8, 9, 10, 11, 12]
    assert ts.window(0, 26).tolist() == list(range(26))
    assert ts.window(20, 0).tolist() == []


def test_missing_and_corrupt_folders_are_clear_errors(tmp_path):
    with pytest.raises(LmforgeError, match="no such data folder"):
        TokenShards(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LmforgeError, match="not a prepared data folder"):
        TokenShards(tmp_path / "empty")
    folder = make_position_folder(tmp_path / "d", {"train": 100}, shard_tokens=40)
    meta_path = folder / "meta.json"
    good = meta_path.read_text()
    meta_path.write_text(good[:-5])
    with pytest.raises(LmforgeError, match="meta.json: corrupt"):
        TokenShards(folder)
    meta_path.write_text(json.dumps({**json.loads(good), "format_version": 99}))
    with pytest.raises(LmforgeError, match="format_version 99 is not supported"):
        TokenShards(folder)
    meta_path.write_text(good)
    with pytest.raises(LmforgeError, match="no split 'val'"):
        TokenShards(folder, "val")
    shard = folder / "train_00001.bin"
    shard.write_bytes(shard.read_bytes()[:-4])
    with pytest.raises(LmforgeError, match="train_00001.bin: 156 bytes, meta.json says 160"):
        TokenShards(folder)
    shard.unlink()
    with pytest.raises(LmforgeError, match="train_00001.bin: shard missing"):
        TokenShards(folder)


def test_tokenizer_mismatch_is_detected(tmp_path, bpe_dir):
    folder = make_position_folder(tmp_path / "d", {"train": 10})
    meta = json.loads((folder / "meta.json").read_text())
    with pytest.raises(LmforgeError, match="tokenizer mismatch"):
        check_tokenizer(meta, Tokenizer.load(bpe_dir))
