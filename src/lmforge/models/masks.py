"""Attention masks and position ids for packed and padded training batches.

The training forward of a decoder (``GPT.forward(..., doc_ids=, attn_mask=,
position_ids=)``) builds its mask here. Conventions:

* ``doc_ids`` (B, T) int: the document of each token in a packed row. A new
  document starts wherever the id changes from one token to the next, so ids
  only need to differ between neighbours (``[0, 0, 1, 1, 1, 0, 0]`` is three
  documents). Attention is block-diagonal causal: a token attends to the earlier
  tokens of its own document only.
* ``attn_mask`` (B, T) bool or 0/1: True (1) for real tokens, False (0) for
  padding. Padding keys are never attended to.
* The mask is boolean, True = may attend, shaped (B, 1, T, T) for
  ``F.scaled_dot_product_attention``. Every query may attend to itself, so no
  softmax row is empty (a padding query's row would be; empty rows give NaN).

Everything is tensor ops on the whole batch: no Python loop over rows or tokens.

It also holds the answer-target helpers that the heads (`models.heads`) and the
objectives (`train.logprobs`, `train.reward`) share: next-token targets for the
masked positions, and per-row means over them.
"""

from __future__ import annotations

import torch

IGNORE = -100  # the cross-entropy's ignored target


def shifted_targets(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T) next-token targets: position t predicts ids[t+1] where mask[t+1], else -100."""
    targets = torch.full_like(ids, IGNORE)
    targets[:, :-1] = torch.where(mask[:, 1:].bool(), ids[:, 1:], IGNORE)
    return targets


def row_means(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """(B,) float32 mean per row of `values` (N,), one per True of `keep` (B, T) in
    row-major order (0 for a row with none)."""
    B = keep.shape[0]
    rows = torch.arange(B, device=keep.device)[:, None].expand_as(keep)[keep]  # (N,)
    total = torch.zeros(B, device=values.device).index_add_(0, rows, values.float())  # (B,)
    return total / keep.sum(dim=1).clamp(min=1)


def document_starts(doc_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: True at the first token of each document (and at column 0)."""
    starts = torch.ones_like(doc_ids, dtype=torch.bool)
    starts[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]
    return starts


def document_segments(doc_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) int64: 0, 1, 2, ... numbering the documents of each row left to right."""
    return document_starts(doc_ids).cumsum(dim=1)


def document_positions(doc_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) int64 positions that restart at 0 at each document start."""
    B, T = doc_ids.shape
    idx = torch.arange(T, device=doc_ids.device).expand(B, T)
    # The column where the current document started: a running maximum of start columns.
    start_col = torch.where(document_starts(doc_ids), idx, 0).cummax(dim=1).values
    return idx - start_col


def padding_positions(attn_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) int64 positions counting real tokens only (0 on the first real token).

    For right padding this is 0..n-1 on the real tokens; left padding is handled
    too (padding columns get position 0, they are never attended to).
    """
    return (attn_mask.long().cumsum(dim=1) - 1).clamp_min(0)


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(T, T) bool lower-triangular mask (query row i sees keys 0..i)."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def document_mask(
    doc_ids: torch.Tensor | None, attn_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, 1, T, T) bool mask: causal, within each document, never onto padding keys.

    Either argument may be None (not both): without ``doc_ids`` the whole row is
    one document; without ``attn_mask`` every token is real.
    """
    ref = doc_ids if doc_ids is not None else attn_mask
    if ref is None:
        raise ValueError("document_mask needs doc_ids or attn_mask")
    B, T = ref.shape
    device = ref.device
    causal = causal_mask(T, device)  # (T, T)
    if doc_ids is not None:
        seg = document_segments(doc_ids)  # (B, T)
        mask = (seg[:, :, None] == seg[:, None, :]) & causal  # (B, T, T)
    else:
        mask = causal.expand(B, T, T)
    if attn_mask is not None:
        key_ok = attn_mask.bool()[:, None, :]  # (B, 1, T)
        # Padding keys hidden; the diagonal put back so a padding query keeps one key.
        mask = (mask & key_ok) | torch.eye(T, dtype=torch.bool, device=device)
    return mask[:, None]  # (B, 1, T, T)


def last_token_index(
    T: int,
    *,
    lengths: torch.Tensor | None = None,
    attn_mask: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor | None:
    """(B,) index of each row's last real token, from lengths or a padding mask.

    ``lengths`` (B,) counts real tokens of right-padded rows; ``attn_mask`` (B, T)
    may be right- or left-padded (the last True column is taken). None when
    neither is given (every row ends at T - 1).
    """
    if lengths is not None:
        return torch.as_tensor(lengths, device=device).long() - 1
    if attn_mask is not None:
        cols = torch.arange(T, device=attn_mask.device)
        return torch.where(attn_mask.bool(), cols, -1).max(dim=1).values
    return None
