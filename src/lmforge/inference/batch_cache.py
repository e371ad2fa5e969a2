"""The KV cache of a continuous batch: a fixed pool of slots that rows join and leave.

`KVCache` (models/kv_cache.py) holds one batch from its prefill to its end. A
server's batch never ends: requests join while others decode and leave when
they finish. `BatchCache` is one preallocated pool for that,
``(n_layer, slots, n_kv_head, columns, head_dim)`` for keys and for values, of
which the first ``rows`` slots are live (the decode batch is exactly the live
rows: a finished request stops costing compute at once).

All live rows end at one shared column ``pos`` (the next token's column): row
``b`` holds its tokens in columns ``first[b] .. pos`` and left padding before,
so one decode step writes one column for every row, as `KVCache` does. Each
row's positions start at 0 on its first token (``column - first[b]``), so where
a row sits in the pool never changes what it computes.

Moving rows costs only the columns they use:

* `add` copies a freshly prefilled prompt (a `KVCache` row) into the next free
  slot, right-aligned at ``pos``; when the prompt is longer than ``pos`` every
  live row first moves right (`_shift`);
* `remove` fills a leaving row's slot with the last live row (swap-remove);
* when ``pos`` reaches the last column, `make_room` moves all rows left by the
  padding they all share (at least one column: a row as long as the context has
  finished).

``columns`` may exceed the model's context (more columns, fewer moves): the
model then reads the per-row positions this cache always supplies, and the
context limit is the scheduler's to keep.

The pool is zero-filled once: padding columns hold zeros or the finite values of
an earlier row, never NaN, so the masked attention weights (exactly 0) leave no
trace. The model sees the `KVCache` interface: ``pos``, ``layers``,
``positions(start, T)``, ``attn_mask(start, T)`` (one query per row: decode
steps only; prompts are prefilled in a `KVCache` of their own).
"""

from __future__ import annotations

import torch

from ..models.kv_cache import KVCache


class BatchCache:
    """``slots`` rows of up to ``columns`` cached tokens; the first ``rows`` are live."""

    def __init__(
        self,
        n_layer: int,
        slots: int,
        n_kv_head: int,
        head_dim: int,
        columns: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        shape = (n_layer, slots, n_kv_head, columns, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.slots, self.columns = slots, columns
        self.rows = 0
        self.pos = 0
        self.first: list[int] = []  # first column of each live row
        self._first: torch.Tensor | None = None  # (rows,) the same, on the device, when padded
        self._cols = torch.arange(columns, device=device)  # (columns,)
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []

    @property
    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2

    def _relink(self) -> None:
        # Views of the live rows, per layer: (rows, n_kv_head, columns, head_dim), contiguous.
        n = self.rows
        self.layers = [(self.k[i, :n], self.v[i, :n]) for i in range(self.k.size(0))]
        self._first = None
        if any(self.first):
            self._first = torch.tensor(self.first, dtype=torch.long, device=self.k.device)

    # -- what the model reads -------------------------------------------------------

    def positions(self, start: int, T: int) -> torch.Tensor | None:
        """(rows, T) position ids: columns counted from each row's first token.

        None when no live row is padded (one request, or all started together): the
        columns are then the positions, and the model takes its fast path. Such a row
        is at most as long as the context, so ``start + T`` fits it.
        """
        if self._first is None:
            return None
        return self._cols[start : start + T][None, :] - self._first[:, None]

    def attn_mask(self, start: int, T: int) -> torch.Tensor | None:
        """(rows, 1, 1, start + 1) boolean mask: each row's own columns (None: all of them)."""
        if T != 1:
            raise ValueError("BatchCache serves decode steps (one token per row); prefill apart")
        if self._first is None:
            return None
        end = start + 1
        return (self._cols[:end][None, :] >= self._first[:, None])[:, None, None, :]

    # -- rows joining and leaving ------------------------------------------------------

    def room(self) -> int:
        """Columns left after ``pos`` (decode steps possible before `make_room`)."""
        return self.columns - self.pos

    def add(self, src: KVCache, src_row: int, length: int) -> int:
        """Copy the last `length` cached tokens of `src` row `src_row` into a new live row.

        `src` was prefilled with its prompts left-padded to ``src.pos`` columns, so a
        prompt's tokens are its last ``length`` columns. Returns the new row's index.
        """
        if self.rows >= self.slots:
            raise RuntimeError("BatchCache is full")
        if length > self.columns:
            raise ValueError(f"a prompt of {length} tokens does not fit {self.columns} columns")
        if self.rows == 0:
            self.pos = length
        elif length > self.pos:
            self._shift(length - self.pos)
        b, end = self.rows, self.pos
        s0 = src.pos - length
        self.k[:, b, :, end - length : end].copy_(src.k[:, src_row, :, s0 : src.pos])
        self.v[:, b, :, end - length : end].copy_(src.v[:, src_row, :, s0 : src.pos])
        self.first.append(end - length)
        self.rows += 1
        self._relink()
        return b

    def remove(self, rows: list[int]) -> None:
        """Free the live rows `rows`: in descending order, the last live row fills each gap."""
        for b in sorted(set(rows), reverse=True):
            last = self.rows - 1
            f = self.first.pop()
            if b != last:
                self.k[:, b, :, f : self.pos].copy_(self.k[:, last, :, f : self.pos])
                self.v[:, b, :, f : self.pos].copy_(self.v[:, last, :, f : self.pos])
                self.first[b] = f
            self.rows = last
        if self.rows == 0:
            self.pos = 0
        self._relink()

    def make_room(self) -> None:
        """Move every live row left by the padding all of them share (frees that many columns)."""
        if self.rows == 0:
            self.pos = 0
            return
        d = min(self.first)
        if d == 0:
            raise RuntimeError(
                "BatchCache: a row fills every column (the context limit was not kept)"
            )
        self._shift(-d)
        self._relink()

    def _shift(self, d: int) -> None:
        """Move every live row's tokens by `d` columns (right if positive); ``pos`` moves too."""
        new_pos = self.pos + d
        if not 0 <= new_pos <= self.columns:
            raise ValueError(f"BatchCache: cannot move rows to end at column {new_pos}")
        for b, f in enumerate(self.first):
            n = self.pos - f
            # Overlapping ranges: copy through a clone.
            self.k[:, b, :, f + d : f + d + n].copy_(self.k[:, b, :, f : self.pos].clone())
            self.v[:, b, :, f + d : f + d + n].copy_(self.v[:, b, :, f : self.pos].clone())
        self.first = [f + d for f in self.first]
        self.pos = new_pos
