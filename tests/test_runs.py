"""Run folders: `load_run` (one loader, one set of checks) and `--from` (a stage's parent)."""
# ruff: noqa: F811 (pytest fixtures imported from test_pretrain_helpers are redefined as arguments)

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import assert_clean_error
from test_pretrain_helpers import (  # noqa: F401 (fixtures)
    TINY,
    cli,
    make_shards,
    tiny_run,
    tiny_shards,
    weights,
)

from lmforge.common import LmforgeError
from lmforge.runs import RunLayout, load_run, read_run_config
from lmforge.runs.checkpoint import latest_checkpoint, open_checkpoint

SHORT = ["--max-steps", "3", "--save-every", "0", "--eval-every", "0", "--eval-batches", "1"]


def test_layout_names_every_part(tmp_path):
    lay = RunLayout(tmp_path / "r")
    assert lay.config.name == "config.yaml" and lay.tokenizer.name == "tokenizer"
    assert lay.step(12) == tmp_path / "r" / "checkpoints" / "step_12"
    assert lay.latest.name == "latest" and lay.metrics.name == "metrics.jsonl"
    assert not lay.looks_like_run()


def test_load_run_opens_model_tokenizer_config(tiny_run):
    run = load_run(tiny_run)
    assert run.step == 12 and run.arch == "llama" and run.stage == "pretrain"
    assert run.tokenizer.hash == run.checkpoint.state["tokenizer_hash"]
    assert run.config["arch"] == "llama" and not run.model.training
    early = load_run(tiny_run, step=8)
    assert early.step == 8
    assert not torch.equal(early.model.lm_head.weight, run.model.lm_head.weight)
    assert load_run(tiny_run, checkpoint="step_8").step == 8


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda p: p.mkdir(), "not a run folder"),
        (lambda p: None, "no such run folder"),
    ],
)
def test_load_run_refuses_non_runs(tmp_path, make, needle):
    make(tmp_path / "x")
    with pytest.raises(LmforgeError, match=needle):
        load_run(tmp_path / "x")


def test_load_run_names_a_missing_step(tiny_run):
    with pytest.raises(LmforgeError, match="step_5: no such checkpoint .*step_12"):
        load_run(tiny_run, step=5)


@pytest.fixture
def swapped_run(tiny_run, tmp_path):
    """A copy of the tiny run whose tokenizer/ was replaced by another corpus's tokenizer."""
    run = tmp_path / "swapped"
    shutil.copytree(tiny_run, run)
    other = make_shards(tmp_path / "other", vocab_size=300, seed=7)
    shutil.rmtree(run / "tokenizer")
    shutil.copytree(other.parent / "tok", run / "tokenizer")
    return run


def test_a_swapped_tokenizer_is_refused_by_every_verb(swapped_run, tmp_path, capsys):
    with pytest.raises(LmforgeError, match="not the tokenizer the checkpoint was trained with"):
        load_run(swapped_run)
    r = cli(capsys, "sample", "--run", swapped_run, "--prompt", "Anna")
    assert_clean_error(r, "tokenizer", "restore")
    r = cli(capsys, "export", "hf", "--run", swapped_run, "--out", tmp_path / "hf")
    assert_clean_error(r, "tokenizer", "restore")
    assert not (tmp_path / "hf").exists()


def test_sample_refuses_a_bert_run_before_generating(tiny_shards, tmp_path, capsys):
    bert = tmp_path / "bert"
    r = cli(capsys, "pretrain", *TINY, *SHORT, "--arch", "bert", "--data", tiny_shards,
            "--out", bert)  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = cli(capsys, "sample", "--run", bert, "--prompt", "Anna went")
    assert_clean_error(r, "bert", "fill-mask")
    assert r.stdout == ""  # nothing streamed before the error
    r = cli(capsys, "fill-mask", "--run", tmp_path / "nope", "a [MASK]")
    assert_clean_error(r, "no such run folder")


def test_fill_mask_refuses_a_decoder_run(tiny_run, capsys):
    r = cli(capsys, "fill-mask", "--run", tiny_run, "Anna went to [MASK].")
    assert_clean_error(r, "llama", "needs a BERT")


def test_pretrain_from_a_parent_run(tiny_run, tiny_shards, tmp_path, capsys):
    child = tmp_path / "child"
    r = cli(capsys, "pretrain", *TINY, *SHORT, "--data", tiny_shards, "--from", tiny_run,
            "--out", child)  # fmt: skip
    assert r.returncode == 0, r.stderr
    state = open_checkpoint(latest_checkpoint(child)).state
    parent_ckpt = open_checkpoint(latest_checkpoint(tiny_run))
    assert state["step"] == 3 and state["stage"] == "pretrain"
    assert state["parent"]["run"] == str(tiny_run.resolve()) and state["parent"]["step"] == 12
    sha = parent_ckpt.state["files"]["model.safetensors"]["sha256"]
    assert state["parent"]["weights_sha256"] == sha
    assert read_run_config(child)["init_from"] == str(tiny_run)
    # Step 0 of the child is the parent: three small steps stay close to its weights,
    # far closer than a fresh initialisation is.
    p, c = weights(latest_checkpoint(tiny_run)), weights(latest_checkpoint(child))
    fresh = tmp_path / "fresh"
    r = cli(capsys, "pretrain", *TINY, *SHORT, "--data", tiny_shards, "--out", fresh)
    assert r.returncode == 0, r.stderr
    f = weights(latest_checkpoint(fresh))
    k = "tok_emb.weight"
    assert (c[k] - p[k]).norm() < 0.5 * (f[k] - p[k]).norm()
    # The optimizer is new: its step count starts again.
    opt = torch.load(latest_checkpoint(child) / "optimizer.pt", weights_only=True)
    assert all(int(s["step"]) == 3 for s in opt["state"].values())
    # --resume of the child continues it (the parent is not reopened).
    shutil.move(str(tiny_run), str(tiny_run) + ".away")
    try:
        r = cli(capsys, "pretrain", "--out", child, "--resume", "--max-steps", "4", "--quiet")
        assert r.returncode == 0, r.stderr
    finally:
        shutil.move(str(tiny_run) + ".away", str(tiny_run))
    assert open_checkpoint(latest_checkpoint(child)).state["parent"]["step"] == 12


def test_from_refuses_shape_changes_and_other_tokenizers(tiny_run, tiny_shards, tmp_path, capsys):
    other = make_shards(tmp_path / "other", vocab_size=300, seed=7)
    r = cli(capsys, "pretrain", *TINY, *SHORT, "--data", other, "--from", tiny_run,
            "--out", tmp_path / "c1")  # fmt: skip
    assert_clean_error(r, "parent run", "--tokenizer")
    r = cli(capsys, "pretrain", *TINY, *SHORT, "--data", tiny_shards, "--from", tiny_run,
            "--model.n-layer", "4", "--out", tmp_path / "c2")  # fmt: skip
    assert_clean_error(r, "model.n_layer", "--from")
    r = cli(capsys, "pretrain", *TINY, *SHORT, "--data", tiny_shards, "--from", tiny_run,
            "--out", tiny_run)  # fmt: skip
    assert_clean_error(r, "init_from")


def test_an_imported_run_trains_further_with_from(tiny_run, tiny_shards, tmp_path, capsys):
    transformers = pytest.importorskip("transformers")  # noqa: F841
    hf = tmp_path / "hf"
    imported = tmp_path / "imported"
    assert cli(capsys, "export", "hf", "--run", tiny_run, "--out", hf).returncode == 0
    assert cli(capsys, "import", "hf", "--src", hf, "--out", imported).returncode == 0
    r = cli(capsys, "pretrain", "--out", imported, "--resume", "--quiet")
    assert_clean_error(r, "import hf", "--from")
    child = tmp_path / "child"
    r = cli(capsys, "pretrain", *TINY, *SHORT, "--data", tiny_shards, "--from", imported,
            "--out", child)  # fmt: skip
    assert r.returncode == 0, r.stderr
    parent = open_checkpoint(latest_checkpoint(child)).state["parent"]
    assert parent["stage"] == "import" and parent["step"] == 0
