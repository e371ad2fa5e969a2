"""Batches of (B, T) token windows from prepared shards: seeded, resumable, sharded by rank.

``BatchReader(data, split, batch_size, seq_len, seed=, rank=, world_size=, mode=)``
returns ``(x, y)`` int64 tensors of shape (B, T) from ``next_batch()``, where
``y`` is ``x`` shifted by one token (each window reads T + 1 tokens).

Global rows. A step reads ``R = world_size × batch_size`` rows; rank ``r`` owns
rows ``r·B … r·B + B − 1``. Which window a row reads depends only on (seed, step,
row), never on the rank count, so:

* the rows of all ranks in a step, concatenated in rank order, are exactly the
  batch that one process with ``batch_size = R`` reads in that step (the
  training loop relies on this to make 1-process and torchrun runs see the same
  data), and
* different ranks never read the same window in a step (see the modes).

Modes.

* ``random``: each epoch cuts the split into ``M = (N − T) // T`` non-overlapping
  windows on a grid shifted by a seeded random offset in [0, T) (so every token
  lands at every window position over the epochs) and visits them in a seeded
  random order, ``E = max(1, M // R)`` steps per epoch (the ``M mod R`` windows
  left over are skipped that epoch). When ``M ≥ R`` the rows of a step are
  distinct, non-overlapping windows.
* ``sequential``: the split is cut into R contiguous stretches, one per global
  row; step ``k`` of an epoch reads window ``k`` of every stretch, so each row
  continues its text from the previous batch (truncated backprop for RNNs
  carrying hidden state, as in char-rnn); each epoch shifts the windows by a
  seeded offset in [0, T). ``continues_previous`` is False at the
  start of every epoch, when rows jump back: reset the hidden state then.

Resuming. The position is just the step count: ``state_dict()`` after k
batches, loaded into a fresh reader, makes it yield exactly batches k+1, k+2, …
of the uninterrupted reader. Every rank holds the same state, so rank 0's copy
resumes all ranks, also under another world size as long as the global batch R
stays the same.

Evaluation. ``eval_batches(n_batches)`` walks the non-overlapping windows
0, T, 2T, … from the start of the split, the same windows on every call, split
across ranks the same way (every rank gets the same number and size of batches,
so sharded forwards stay in step); it does not move the training position. Sum
loss and token counts locally and all-reduce them once after the loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..common import LmforgeError
from .shards import TokenShards

MODES = ("random", "sequential")
_STATE_VERSION = 1


class BatchReader:
    """(B, T) next-token batches from one split of a prepared data folder.

    `data` is a folder written by `lmforge data prepare` or an open TokenShards (whose
    split is then used instead of `split`). `rank`/`world_size` come from
    `common.dist_info()` under torchrun; every rank passes the same seed.
    """

    def __init__(
        self,
        data: str | Path | TokenShards,
        split: str = "train",
        batch_size: int = 8,
        seq_len: int = 128,
        *,
        seed: int = 1337,
        rank: int = 0,
        world_size: int = 1,
        mode: str = "random",
    ):
        self.shards = data if isinstance(data, TokenShards) else TokenShards(data, split)
        if mode not in MODES:
            raise LmforgeError(f"mode: got {mode!r}; allowed: {', '.join(MODES)}")
        if batch_size < 1 or seq_len < 1:
            raise LmforgeError(f"batch_size and seq_len must be >= 1, got {batch_size}, {seq_len}")
        if not 0 <= rank < world_size:
            raise LmforgeError(f"rank {rank} outside world_size {world_size}")
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        self.rank, self.world_size, self.mode = rank, world_size, mode
        self.rows = world_size * batch_size  # global rows per step, R
        self.step = 0
        self.continues_previous = False
        n, t = len(self.shards), seq_len
        where = f"{self.shards.folder} split {self.shards.split!r}"
        if n < t + 1:
            raise LmforgeError(
                f"{where} has {n:,} tokens, fewer than seq_len + 1 = {t + 1}; "
                f"lower --seq-len or prepare more data"
            )
        self.windows = (n - 1) // t  # M: non-overlapping windows of T + 1 tokens from 0
        if mode == "random":
            self._epoch_windows, self._max_offset = _grid(n, t)
            self.steps_per_epoch = max(1, self._epoch_windows // self.rows)
        else:
            self.stretch = n // self.rows  # L: tokens per row's stretch
            per_row, self._max_offset = _grid(self.stretch, t)
            self.steps_per_epoch = per_row
            if per_row < 1:
                raise LmforgeError(
                    f"{where} has {n:,} tokens: too few for {self.rows} sequential rows "
                    f"(batch_size × world_size) of seq_len + 1 = {t + 1} tokens; "
                    f"lower --batch-size or --seq-len"
                )
        self._epochs: dict[int, tuple[int, np.ndarray | None]] = {}

    # -- positions ------------------------------------------------------------
    @property
    def epoch(self) -> float:
        """Epochs completed so far (fractional)."""
        return self.step / self.steps_per_epoch

    def _epoch_plan(self, epoch: int) -> tuple[int, np.ndarray | None]:
        """(grid offset, window order) of an epoch; depends only on (seed, epoch, mode)."""
        plan = self._epochs.get(epoch)
        if plan is None:
            seed = self.seed % (1 << 64)  # SeedSequence takes non-negative ints only
            rng = np.random.default_rng([seed, epoch, MODES.index(self.mode)])
            offset = int(rng.integers(0, self._max_offset + 1))
            order = None
            if self.mode == "random":
                # uint32 halves the memory of a large split's permutation.
                idx_dtype = np.uint32 if self._epoch_windows < 1 << 32 else np.int64
                order = rng.permutation(np.arange(self._epoch_windows, dtype=idx_dtype))
            self._epochs = {epoch: (offset, order)}  # a step never spans two epochs
            plan = self._epochs[epoch]
        return plan

    def _starts(self, step: int) -> np.ndarray:
        """Window start of each of this rank's rows at `step`, shape (B,)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        offset, order = self._epoch_plan(epoch)
        rows = self.rank * self.batch_size + np.arange(self.batch_size)  # global row ids
        t = self.seq_len
        if self.mode == "random":
            # Wraps only when the split has fewer windows than a step has rows.
            slots = (k * self.rows + rows) % self._epoch_windows
            return offset + order[slots].astype(np.int64) * t
        return rows * self.stretch + offset + k * t

    def _read(self, starts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.seq_len
        buf = np.empty((len(starts), t + 1), dtype=np.int64)  # (B, T + 1)
        for i, start in enumerate(starts):
            buf[i] = self.shards.window(int(start), t + 1)
        x = torch.from_numpy(buf[:, :-1].copy())  # (B, T)
        y = torch.from_numpy(buf[:, 1:].copy())  # (B, T)
        return x, y

    # -- training batches -------------------------------------------------------
    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next (x, y) pair, each int64 of shape (B, T); y[:, i] is the token after x[:, i]."""
        starts = self._starts(self.step)
        self.continues_previous = self.mode == "sequential" and self.step % self.steps_per_epoch > 0
        self.step += 1
        return self._read(starts)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield self.next_batch()

    # -- resume -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-able position: load it into a fresh reader to continue with the next batch."""
        return {
            "version": _STATE_VERSION,
            "mode": self.mode,
            "step": self.step,
            "rows": self.rows,
            "seq_len": self.seq_len,
            "seed": self.seed,
            "split": self.shards.split,
            "tokens": len(self.shards),
            "tokenizer_hash": self.shards.tokenizer_hash,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state` (from `state_dict()`); raises if it belongs to other data."""
        want = {
            "version": _STATE_VERSION,
            "mode": self.mode,
            "rows": self.rows,
            "seq_len": self.seq_len,
            "seed": self.seed,
            "split": self.shards.split,
            "tokens": len(self.shards),
            "tokenizer_hash": self.shards.tokenizer_hash,
        }
        for key, value in want.items():
            if state.get(key) != value:
                what = "batch_size × world_size" if key == "rows" else key
                raise LmforgeError(
                    f"data position: {what} is {state.get(key)!r} in the saved state but "
                    f"{value!r} now; resume with the same data and batch settings"
                )
        step = state.get("step")
        if not isinstance(step, int) or step < 0:
            raise LmforgeError(f"data position: step must be a non-negative integer, got {step!r}")
        self.step = step
        self.continues_previous = False

    # -- evaluation ---------------------------------------------------------------
    def eval_batches(
        self, n_batches: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's share of the first `n_batches` global steps over windows 0, T, 2T, …

        All windows (one pass over the split) when `n_batches` is None. Deterministic:
        every call yields the same batches; the training position is not touched.
        Every rank yields the same number of batches of the same size (DDP/FSDP
        forwards must match across ranks): a final partial step is shared evenly,
        which drops the last ``M mod world_size`` windows of a fully read split.
        """
        w = self.world_size
        usable = self.windows - self.windows % w
        if usable == 0:
            raise LmforgeError(
                f"{self.shards.folder} split {self.shards.split!r} has {self.windows} windows "
                f"of seq_len {self.seq_len}, fewer than the {w} processes; lower --seq-len"
            )
        full, rest = divmod(usable, self.rows)
        steps = full + (rest > 0)
        if n_batches is not None:
            steps = min(steps, n_batches)
        return self._eval_steps(steps, full, rest // w)

    def _eval_steps(
        self, steps: int, full: int, share: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        b = self.batch_size
        for step in range(steps):
            if step < full:
                rows = step * self.rows + self.rank * b + np.arange(b)
            else:  # the last, partial step: `share` rows for every rank, in rank order
                rows = full * self.rows + self.rank * share + np.arange(share)
            yield self._read(rows * self.seq_len)

    def __repr__(self) -> str:
        return (
            f"BatchReader({self.shards!r}, B={self.batch_size}, T={self.seq_len}, "
            f"mode={self.mode!r}, rank={self.rank}/{self.world_size}, step={self.step})"
        )


def _grid(n: int, t: int) -> tuple[int, int]:
    """(windows, largest offset) of a grid of T + 1-token windows, stride T, in n tokens.

    One window fewer than fits buys a free offset in [0, T − 1], so that across
    epochs every token gets to sit at every position of a window.
    """
    if n - t >= t:
        return (n - t) // t, t - 1
    windows = (n - 1) // t
    return windows, max(0, min(t - 1, n - 1 - windows * t))
