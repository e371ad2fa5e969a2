"""Attention masks and position ids for packed and padded training batches.

The training forward of a decoder (``GPT.forward(..., doc_ids=, attn_mask=,
position_ids=, branch_ids=)``) builds its mask here. Conventions:

* ``doc_ids`` (B, T) int: the document of each token in a packed row. A new
  document starts wherever the id changes from one token to the next, so ids
  only need to differ between neighbours (``[0, 0, 1, 1, 1, 0, 0]`` is three
  documents). Attention is block-diagonal causal: a token attends to the earlier
  tokens of its own document only.
* ``attn_mask`` (B, T) bool or 0/1: True (1) for real tokens, False (0) for
  padding. Padding keys are never attended to.
* ``branch_ids`` (B, T) int: a shared prefix and the branches that continue it,
  in one row (prompt | chosen answer | rejected answer: the prompt runs once
  for both). 0 marks the prefix, which must come first; k >= 1 marks branch k;
  -1 marks padding. A branch token attends to the prefix and to the earlier tokens of its own
  branch, never to another branch, and its positions continue from the end of
  the prefix, so every branch computes exactly what it would as prefix + branch
  alone (tests/test_masks.py).
* The mask is boolean, True = may attend, shaped (B, 1, T, T) for
  ``F.scaled_dot_product_attention``. Every query may attend to itself, so no
  softmax row is empty (a padding query's row would be; empty rows give NaN).

Everything is tensor ops on the whole batch: no Python loop over rows or tokens.

It also holds the answer-target helpers that the heads (`models.heads`) and the
objectives (`train.logprobs`, `train.reward`) share: next-token targets for the
masked positions, and per-answer ends and sums over ``sides`` (B, T), which
numbers the answers of a batch (each answer token holds its answer's number
0..K-1, every other token -1), in whatever row layout they came.
"""

from __future__ import annotations

import torch

IGNORE = -100  # the cross-entropy's ignored target


def shifted_targets(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T) next-token targets: position t predicts ids[t+1] where mask[t+1], else -100."""
    targets = torch.full_like(ids, IGNORE)
    targets[:, :-1] = torch.where(mask[:, 1:].bool(), ids[:, 1:], IGNORE)
    return targets


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


def branch_positions(branch_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) int64: prefix tokens (branch 0) count 0, 1, ...; each branch k >= 1 counts on
    from the end of its row's prefix, as if it followed the prefix alone; padding
    (branch -1) gets 0."""
    ids = branch_ids.long()
    prefix = ids == 0  # (B, T)
    n_prefix = prefix.sum(dim=1, keepdim=True)  # (B, 1)
    # How many earlier tokens of the same branch each token has: one-hot over branches,
    # a running count, read back at each token's own branch.
    k = int(ids.max()) + 1 if ids.numel() else 1
    own = ids.clamp(min=0)  # (B, T)
    onehot = torch.nn.functional.one_hot(own, k)  # (B, T, K)
    earlier = (onehot.cumsum(dim=1) - onehot).gather(2, own[..., None]).squeeze(-1)  # (B, T)
    positions = torch.where(prefix, earlier, n_prefix + earlier)
    return torch.where(ids < 0, 0, positions)


def branch_mask(branch_ids: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 1, T, T) bool mask: causal by column; a branch sees the prefix and itself only;
    never padding keys (branch -1, or ``attn_mask`` False); the diagonal always, so no
    softmax row is empty."""
    B, T = branch_ids.shape
    device = branch_ids.device
    q, k = branch_ids[:, :, None], branch_ids[:, None, :]  # (B, T, 1), (B, 1, T)
    mask = causal_mask(T, device) & ((k == 0) | ((k == q) & (k > 0)))  # (B, T, T)
    if attn_mask is not None:
        mask = mask & attn_mask.bool()[:, None, :]
    mask = mask | torch.eye(T, dtype=torch.bool, device=device)
    return mask[:, None]  # (B, 1, T, T)


def n_sides(sides: torch.Tensor) -> int:
    """How many answers `sides` numbers (its largest entry + 1; 0 when it has none)."""
    return int(sides.max()) + 1 if sides.numel() else 0


def side_ends(sides: torch.Tensor, n_sides: int) -> torch.Tensor:
    """(K,) flat index (row * T + column) of the last token of each side 0..K-1 of `sides`
    (B, T) int (-1: no side): where a scalar head reads a side's score."""
    flat = sides.reshape(-1)
    cols = torch.arange(flat.numel(), device=sides.device)
    keep = flat >= 0
    out = torch.full((n_sides,), -1, dtype=torch.long, device=sides.device)
    return out.scatter_reduce(0, flat[keep], cols[keep], reduce="amax")


def target_sides(sides: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B, T) the side of each counted target of `shifted_targets`: the target at t-1
    predicts token t, so it counts for t's side; -1 where the target is ignored."""
    out = torch.full_like(sides, -1)
    out[:, :-1] = torch.where(targets[:, :-1] != IGNORE, sides[:, 1:], -1)
    return out


def side_sums(values: torch.Tensor, sides: torch.Tensor, n_sides: int) -> torch.Tensor:
    """(K,) float32 sum of `values` (B, T) over the tokens of each side of `sides` (B, T)."""
    keep = sides >= 0
    out = torch.zeros(n_sides, dtype=torch.float32, device=values.device)
    return out.index_add_(0, sides[keep], values[keep].float())


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
