"""A preallocated key/value cache for decoder generation.

Keys and values of every layer live in two tensors allocated once,
``(n_layer, B, n_kv_head, max_len, head_dim)``; each forward writes its new
positions in place (no ``torch.cat`` per step) and attends over the filled
prefix, so a decode step allocates nothing that grows with the sequence.

Batched prompts of different lengths are left-padded: row ``b`` starts with
``pad_lens[b]`` padding slots. The cache then supplies

* ``positions(start, T)``: position ids that start at 0 on each row's first real
  token (learned positions and RoPE both read them), and
* ``attn_mask(start, T)``: a boolean mask (True = attend) that is causal and hides
  padding keys, so a padded row computes exactly what it computes alone.

Without padding both return ``None`` and the model takes its fast path (plain
slices, ``is_causal`` attention, no mask).

``keep_rows(index)`` selects (and may repeat) batch rows: the engine uses it to
copy one prefilled prompt to the ``n`` rows that sample from it, and to drop rows
that have finished.
"""

from __future__ import annotations

import torch


class KVCache:
    """Per-layer (key, value) buffers, the number of filled positions, padding facts."""

    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_kv_head: int,
        head_dim: int,
        max_len: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        pad_lens: list[int] | None = None,
    ):
        shape = (n_layer, batch_size, n_kv_head, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        # Views made once: the model indexes a Python list per layer, not the big tensor.
        self.layers = [(self.k[i], self.v[i]) for i in range(n_layer)]
        self.batch_size, self.max_len = batch_size, max_len
        self.pos = 0  # positions filled so far (the next token's column)
        self._key_ok: torch.Tensor | None = None
        self._position_ids: torch.Tensor | None = None
        self._causal: torch.Tensor | None = None
        if pad_lens is not None and any(pad_lens):
            self.set_padding(pad_lens)

    def set_padding(self, pad_lens: list[int]) -> None:
        """Mark the first pad_lens[b] columns of row b as left padding."""
        if len(pad_lens) != self.batch_size:
            raise ValueError(f"pad_lens has {len(pad_lens)} rows, the cache {self.batch_size}")
        device = self.k.device
        cols = torch.arange(self.max_len, device=device)  # (max_T,)
        pads = torch.tensor(pad_lens, device=device)[:, None]  # (B, 1)
        self._key_ok = cols[None, :] >= pads  # (B, max_T)
        self._position_ids = (cols[None, :] - pads).clamp_min(0)  # (B, max_T)
        self._causal = torch.ones(
            self.max_len, self.max_len, dtype=torch.bool, device=device
        ).tril()

    @property
    def padded(self) -> bool:
        return self._key_ok is not None

    def keep_rows(self, index: torch.Tensor) -> KVCache:
        """Keep the batch rows ``index`` (a 1-D long tensor; rows may repeat or reorder).

        Keys, values and the padding facts are index-selected on the batch dim (new
        buffers of ``len(index)`` rows, ``max_len`` columns). When no kept row has
        left padding the padding facts are dropped, so the model is back on its fast
        path (positions are then the columns themselves, which is exact).
        """
        index = index.to(self.k.device)
        self.k = self.k.index_select(1, index)
        self.v = self.v.index_select(1, index)
        self.layers = [(self.k[i], self.v[i]) for i in range(self.k.size(0))]
        self.batch_size = int(index.numel())
        if self._key_ok is not None:
            key_ok = self._key_ok.index_select(0, index)
            if bool(key_ok.all()):
                self._key_ok = self._position_ids = None
            else:
                self._key_ok = key_ok
                self._position_ids = self._position_ids.index_select(0, index)
        return self

    def reset(self) -> None:
        """Forget the cached tokens (buffers are reused; padding is cleared)."""
        self.pos = 0
        self._key_ok = self._position_ids = self._causal = None

    def positions(self, start: int, T: int) -> torch.Tensor | None:
        """(B, T) position ids of columns start..start+T, or None when rows are unpadded."""
        if self._position_ids is None:
            return None
        return self._position_ids[:, start : start + T]

    def attn_mask(self, start: int, T: int) -> torch.Tensor | None:
        """(B, 1, T, start+T) boolean mask, or None when is_causal (or one query) is exact."""
        end = start + T
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions, asked for {end}")
        if self._key_ok is None:
            if start == 0 or T == 1:
                return None
            if self._causal is None:
                self._causal = torch.ones(
                    self.max_len, self.max_len, dtype=torch.bool, device=self.k.device
                ).tril()
            return self._causal[start:end, :end][None, None]  # (1, 1, T, end)
        causal = self._causal[start:end, :end]  # (T, end)
        key_ok = self._key_ok[:, None, None, :end]  # (B, 1, 1, end)
        # A padding query sees only padding; let it attend causally so its (unused)
        # softmax row is never empty, which would give NaN.
        query_pad = ~self._key_ok[:, None, start:end, None]  # (B, 1, T, 1)
        return causal & (key_ok | query_pad)  # (B, 1, T, end)
