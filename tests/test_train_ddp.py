"""torchrun on CPU (gloo): 2 processes × batch B train like 1 process × batch 2B.

Tolerance: per-step training loss within 1e-4 relative (measured ~1e-7: only the
order of float sums differs between the gloo all-reduce and one process's batch).
"""

# ruff: noqa: F811 (pytest fixtures imported from test_pretrain_helpers are redefined as arguments)
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_pretrain_helpers import TINY, pretrain_proc, tiny_shards  # noqa: F401 (fixture)

STEPS = ["--max-steps", "8", "--eval-every", "4", "--eval-batches", "2", "--save-every", "4"]


def losses(run):
    recs = [json.loads(x) for x in (run / "metrics.jsonl").open()]
    return [r["loss"] for r in recs if "loss" in r], [
        r["val_loss"] for r in recs if "val_loss" in r
    ]


def torchrun(*args, extra_env=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(extra_env or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lmforge", "pretrain", *map(str, args)]  # fmt: skip
    # start_new_session: a timeout kills the launcher and both workers together.
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          start_new_session=True) as p:  # fmt: skip
        try:
            out, err = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            raise
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def check_same_curve(tiny_shards, tmp_path, parallel):
    base = [*TINY, *STEPS, "--data", tiny_shards]
    args = [*base, "--batch-size", "2", "--out", tmp_path / parallel, "--parallel", parallel]
    r = torchrun(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    one = pretrain_proc(*base, "--batch-size", "4", "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    (t2, v2), (t1, v1) = losses(tmp_path / parallel), losses(tmp_path / "one")
    assert len(t2) == len(t1) == 8
    assert t2 == pytest.approx(t1, rel=1e-4)
    assert v2 == pytest.approx(v1, rel=1e-4)
    state = json.loads((tmp_path / parallel / "checkpoints/step_8/trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["tokens_seen"] == 8 * 4 * 32


@pytest.mark.slow  # one of the longest default tests (kept under 15 min); CI runs it in test-slow
def test_ddp_two_processes_match_one(tiny_shards, tmp_path):
    # ~15 s on an idle 2-core machine: the contract every later stage relies on.
    check_same_curve(tiny_shards, tmp_path, "ddp")


@pytest.mark.slow
def test_fsdp_two_processes_match_one(tiny_shards, tmp_path):
    # FSDP2 on CPU (gloo): the same sharding code path the GPU runs take.
    check_same_curve(tiny_shards, tmp_path, "fsdp")
