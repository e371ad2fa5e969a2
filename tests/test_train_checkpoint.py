"""Checkpoint folders: atomic writes, `latest`, pruning, and damage named on load."""

from __future__ import annotations

import json

import pytest
import torch

from lmforge.common import LmforgeError
from lmforge.runs.checkpoint import (
    find_resume_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    open_checkpoint,
    save_checkpoint,
)
from lmforge.train.rng import get_rng_state, set_rng_state


def save(run, step, keep_last=2):
    def weights(path):
        path.write_bytes(b"weights-%d" % step)

    return save_checkpoint(
        run,
        step,
        write_weights=weights,
        optimizer_state={"state": {0: {"exp_avg": torch.full((3,), float(step))}}},
        trainer_state={"note": "x"},
        keep_last=keep_last,
    )


def test_latest_pruning_and_round_trip(tmp_path):
    for step in (2, 4, 6):
        save(tmp_path, step)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_4", "step_6"]
    assert (tmp_path / "latest").read_text().strip() == "step_6"
    ck = find_resume_checkpoint(tmp_path)
    assert ck.step == 6 and ck.state["note"] == "x"
    assert torch.equal(ck.optimizer_state()["state"][0]["exp_avg"], torch.full((3,), 6.0))
    assert set(ck.state["files"]) == {"model.safetensors", "optimizer.pt"}


def test_a_half_written_folder_is_ignored_and_replaced(tmp_path):
    save(tmp_path, 2)
    half = tmp_path / "checkpoints" / "step_4.tmp"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"partial")
    assert latest_checkpoint(tmp_path).name == "step_2"
    save(tmp_path, 4)
    assert not half.exists() and latest_checkpoint(tmp_path).name == "step_4"


def test_latest_falls_back_when_its_folder_was_deleted(tmp_path):
    save(tmp_path, 2)
    save(tmp_path, 4)
    import shutil

    shutil.rmtree(tmp_path / "checkpoints" / "step_4")
    assert latest_checkpoint(tmp_path).name == "step_2"


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda d: (d / "model.safetensors").write_bytes(b"weights"), "truncated"),
        (lambda d: (d / "model.safetensors").write_bytes(b"weightz-2"), "corrupted"),
        (lambda d: (d / "optimizer.pt").unlink(), "missing"),
        (lambda d: (d / "trainer_state.json").write_text("{"), "malformed"),
    ],
)
def test_damage_is_named(tmp_path, damage, needle):
    folder = save(tmp_path, 2)
    damage(folder)
    with pytest.raises(LmforgeError, match=needle) as e:
        open_checkpoint(folder)
    assert str(folder) in str(e.value)


def test_errors_without_a_checkpoint(tmp_path):
    with pytest.raises(LmforgeError, match="no such run folder"):
        find_resume_checkpoint(tmp_path / "nope")
    with pytest.raises(LmforgeError, match="no checkpoint to resume"):
        find_resume_checkpoint(tmp_path)


def test_rng_state_is_json_and_restores_every_generator():
    import random

    import numpy as np

    state = json.loads(json.dumps(get_rng_state()))
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
