"""Checkpoints: `RUN/checkpoints/step_<N>/` written atomically, found through `RUN/latest`.

A checkpoint folder holds `model.safetensors` (self-describing weights),
`optimizer.pt` (the optimizer's state dict), optionally `objective.pt` (a stateful
objective's tensors, e.g. an RNN's carried hidden state) and `hooks.pt` (the
loop hooks' state, e.g. a rollout buffer), and `trainer_state.json`
(step, data position, RNG states, counters, and the size and sha256 of every
other file, so a truncated or corrupted file is named on load instead of
silently resuming from garbage).

Writing goes to `step_<N>.tmp/`, which is renamed to `step_<N>/`; `latest` is
rewritten atomically only after the rename. A crash at any moment leaves
`latest` naming a complete checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..common import LmforgeError, atomic_write_text

CHECKPOINTS = "checkpoints"
LATEST = "latest"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
OBJECTIVE_FILE = "objective.pt"
HOOKS_FILE = "hooks.pt"
STATE_FILE = "trainer_state.json"


def step_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step_{step}"


def _step_of(p: Path) -> int | None:
    name = p.name
    if not name.startswith("step_") or name.endswith(".tmp"):
        return None
    try:
        return int(name[len("step_") :])
    except ValueError:
        return None


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders (those with a trainer_state.json), oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [
        (s, p)
        for p in root.iterdir()
        if p.is_dir() and (s := _step_of(p)) is not None and (p / STATE_FILE).is_file()
    ]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The folder `RUN/latest` names; if that was deleted, the newest complete one; else None."""
    run = Path(run_dir)
    marker = run / LATEST
    if marker.is_file():
        name = marker.read_text(encoding="utf-8").strip()
        cand = run / CHECKPOINTS / name
        if name and (cand / STATE_FILE).is_file():
            return cand
    ckpts = list_checkpoints(run)
    return ckpts[-1] if ckpts else None


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    write_weights: Callable[[Path], None],
    optimizer_state: dict[str, Any],
    trainer_state: dict[str, Any],
    objective_state: dict[str, Any] | None = None,
    hooks_state: dict[str, Any] | None = None,
    keep_last: int = 2,
) -> Path:
    """Write checkpoint `step` atomically, point `latest` at it, prune to `keep_last`.

    `write_weights(path)` writes model.safetensors (the caller knows the model's
    format and metadata); `objective_state` and `hooks_state`, when given, go to
    objective.pt and hooks.pt (torch.save; load with `weights_only`, so tensors
    and plain values only). Call on one process only.
    """
    final = step_dir(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():  # left by a crash during an earlier write
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        write_weights(tmp / MODEL_FILE)
        torch.save(optimizer_state, tmp / OPTIMIZER_FILE)
        if objective_state:
            torch.save(objective_state, tmp / OBJECTIVE_FILE)
        if hooks_state:
            torch.save(hooks_state, tmp / HOOKS_FILE)
        files = {
            p.name: {"bytes": p.stat().st_size, "sha256": _file_digest(p)}
            for p in sorted(tmp.iterdir())
        }
        state = {**trainer_state, "step": step, "files": files}
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
        _fsync_dir_files(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk or an error: no .tmp left
        raise
    if final.exists():  # a rename that happened before a crash, with `latest` not yet moved
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_text(Path(run_dir) / LATEST, final.name + "\n")
    _prune(run_dir, keep_last, keep=final)
    return final


def _fsync_dir_files(folder: Path) -> None:
    # Data reaches the disk before the rename makes the folder visible as complete.
    for p in folder.iterdir():
        with open(p, "rb") as f:
            os.fsync(f.fileno())


def _prune(run_dir: str | Path, keep_last: int, keep: Path) -> None:
    ckpts = list_checkpoints(run_dir)
    for p in ckpts[: max(len(ckpts) - keep_last, 0)]:
        if p != keep:
            shutil.rmtree(p, ignore_errors=True)


@dataclass
class Checkpoint:
    """A verified checkpoint on disk: its folder and parsed trainer state."""

    path: Path
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    def optimizer_state(self) -> dict[str, Any]:
        return _torch_load(self.path / OPTIMIZER_FILE)

    def objective_state(self) -> dict[str, Any] | None:
        p = self.path / OBJECTIVE_FILE
        return _torch_load(p) if p.is_file() else None

    def hooks_state(self) -> dict[str, Any] | None:
        p = self.path / HOOKS_FILE
        return _torch_load(p) if p.is_file() else None


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and EOF errors all mean the same to the user
        raise LmforgeError(
            f"{path}: cannot be read ({type(e).__name__}); the checkpoint is damaged — "
            f"delete {path.parent} to resume from the previous one"
        ) from None


def open_checkpoint(path: str | Path) -> Checkpoint:
    """Read trainer_state.json and check every file's size and sha256; errors name the file."""
    folder = Path(path)
    state_file = folder / STATE_FILE
    if not state_file.is_file():
        raise LmforgeError(f"{state_file}: missing; {folder} is not a complete checkpoint")
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        files = state["files"]
        int(state["step"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
        raise LmforgeError(
            f"{state_file}: malformed; delete {folder} to resume from the previous checkpoint"
        ) from None
    for name in (MODEL_FILE, OPTIMIZER_FILE):
        if name not in files:
            raise LmforgeError(f"{state_file}: lists no {name}; the checkpoint is incomplete")
    for name, info in files.items():
        p = folder / name
        if not p.is_file():
            raise LmforgeError(
                f"{p}: missing from the checkpoint; delete {folder} to resume from the previous one"
            )
        size = p.stat().st_size
        if size != info["bytes"]:
            raise LmforgeError(
                f"{p}: truncated or overwritten ({size} bytes, expected {info['bytes']}); "
                f"delete {folder} to resume from the previous checkpoint"
            )
        if _file_digest(p) != info["sha256"]:
            raise LmforgeError(
                f"{p}: corrupted (sha256 mismatch); delete {folder} to resume from the "
                "previous checkpoint"
            )
    return Checkpoint(folder, state)


def find_resume_checkpoint(run_dir: str | Path) -> Checkpoint:
    """The checkpoint `--resume` continues from, verified; a clear error when there is none."""
    run = Path(run_dir)
    if not run.is_dir():
        raise LmforgeError(f"{run}: no such run folder to resume")
    ckpt = latest_checkpoint(run)
    if ckpt is None:
        raise LmforgeError(
            f"{run / CHECKPOINTS}: no checkpoint to resume from; start without --resume"
        )
    return open_checkpoint(ckpt)
