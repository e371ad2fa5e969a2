"""`lmforge pretrain`: exact resume after SIGKILL, kill during a checkpoint write, clean errors."""
# ruff: noqa: F811 (pytest fixtures imported from test_pretrain_helpers are redefined as arguments)

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_clean_error
from test_pretrain_helpers import (  # noqa: F401 (fixtures)
    RUN_STEPS,
    TINY,
    assert_same_weights,
    cli,
    make_shards,
    pretrain_proc,
    tiny_run,
    tiny_shards,
)

from lmforge.runs.checkpoint import latest_checkpoint, open_checkpoint

KILLED = -signal.SIGKILL
KILLABLE = Path(__file__).with_name("_killable.py")


def killed_proc(*args: str, after_step: int | None = None, in_checkpoint: int | None = None):
    """`lmforge pretrain ARGS` in a subprocess that SIGKILLs itself at the point asked for
    (tests/_killable.py: a loop hook or a wrapped torch.save; lmforge has no test switch)."""
    kill = []
    if after_step is not None:
        kill += ["--after-step", str(after_step)]
    if in_checkpoint is not None:
        kill += ["--in-checkpoint", str(in_checkpoint)]
    cmd = [sys.executable, str(KILLABLE), *kill, "--", "pretrain", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_run_folder_is_complete(tiny_run):
    for name in (
        "config.yaml",
        "tokenizer/tokenizer.json",
        "metrics.jsonl",
        "report.md",
        "plots/loss.png",
        "latest",
    ):
        assert (tiny_run / name).exists(), name
    assert any((tiny_run / "tb").iterdir())
    ck = open_checkpoint(latest_checkpoint(tiny_run))
    assert ck.step == 12 and ck.state["tokens_seen"] == 12 * 4 * 32
    recs = [json.loads(x) for x in (tiny_run / "metrics.jsonl").open()]
    train = [r for r in recs if "loss" in r]
    assert [r["step"] for r in train] == list(range(1, 13))
    assert train[-1]["loss"] < train[0]["loss"] - 0.5
    val = [r for r in recs if "val_loss" in r]
    assert [r["step"] for r in val] == [6, 12] and val[0]["val_bpb"] > 0
    report = (tiny_run / "report.md").read_text()
    assert "validation bits per byte" in report and "Sample 1" in report


@pytest.mark.slow  # one of the longest default tests (kept under 15 min); CI runs it in test-slow
def test_killed_three_times_then_resumed_is_bitwise_exact(tiny_shards, tiny_run, tmp_path):
    """SIGKILL after step 6, during the write of checkpoint 8, after step 10; then finish."""
    out = tmp_path / "run"
    args = [*TINY, *RUN_STEPS, "--data", tiny_shards, "--out", out]
    r = killed_proc(*args, after_step=6)
    assert r.returncode == KILLED, r.stderr
    assert latest_checkpoint(out).name == "step_4"

    r = killed_proc("--out", out, "--resume", in_checkpoint=8)
    assert r.returncode == KILLED, r.stderr
    half = out / "checkpoints" / "step_8.tmp"
    assert (half / "model.safetensors").is_file() and not (half / "optimizer.pt").exists()
    assert (out / "latest").read_text().strip() == "step_4"
    assert open_checkpoint(latest_checkpoint(out)).step == 4  # verified: sizes and sha256

    r = killed_proc("--out", out, "--resume", after_step=10)
    assert r.returncode == KILLED, r.stderr
    assert latest_checkpoint(out).name == "step_8" and not half.exists()

    r = pretrain_proc("--out", out, "--resume")
    assert r.returncode == 0, r.stderr
    assert_same_weights(out / "checkpoints" / "step_12", tiny_run / "checkpoints" / "step_12")
    # The metrics read as one run: what the killed runs logged past their checkpoint is gone.
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").open() if '"loss":' in x]
    assert steps == list(range(1, 13))


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(tiny_run, dst)
    return dst


def test_truncated_weights_are_named(run_copy, capsys):
    f = run_copy / "checkpoints" / "step_12" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:1000])
    r = cli(capsys, "pretrain", "--out", run_copy, "--resume", "--max-steps", "16")
    assert_clean_error(r, "step_12/model.safetensors", "truncated")


def test_corrupted_optimizer_state_is_named(run_copy, capsys):
    f = run_copy / "checkpoints" / "step_12" / "optimizer.pt"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    f.write_bytes(bytes(data))
    r = cli(capsys, "pretrain", "--out", run_copy, "--resume", "--max-steps", "16")
    assert_clean_error(r, "step_12/optimizer.pt", "corrupted")


def test_resume_continues_past_the_old_budget(run_copy, capsys):
    r = cli(capsys, "pretrain", "--out", run_copy, "--resume", "--max-steps", "14", "--quiet")
    assert r.returncode == 0, r.stderr
    assert latest_checkpoint(run_copy).name == "step_14"


def test_resume_with_another_tokenizer_is_refused(run_copy, tmp_path, capsys):
    other = make_shards(tmp_path / "other", vocab_size=300, seed=1)
    r = cli(capsys, "pretrain", "--out", run_copy, "--resume", "--data", other)
    assert_clean_error(r, "trainer_state.json", "tokenizer")


def test_bad_input_gives_one_line(tiny_shards, tiny_run, tmp_path, capsys):
    base = ["pretrain", *TINY, "--data", tiny_shards, "--max-steps", "2"]
    cases = [
        (["--out", tmp_path / "a", "--model.vocab-size", "100"], ["model.vocab_size", "320"]),
        (["--out", tmp_path / "b", "--seq-len", "65"], ["seq_len", "block_size=64"]),
        (["--out", tmp_path / "c", "--preset", "nope"], ["unknown preset", "llama-tiny"]),
        (["--out", tiny_run], ["already holds checkpoints", "--resume"]),
        (["--out", tmp_path / "d", "--resume"], ["no such run folder"]),
        (["--out", tmp_path / "e", "--lr", "-1"], ["lr"]),
    ]
    for extra, needles in cases:
        assert_clean_error(cli(capsys, *base, *extra), *needles)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_production_code_carries_no_test_switches():
    """Kills come from tests/_killable.py (a hook, a wrapped torch.save), not from lmforge."""
    import lmforge

    src = Path(lmforge.__file__).parent
    assert [p for p in src.rglob("*.py") if "LMFORGE_TEST" in p.read_text()] == []
