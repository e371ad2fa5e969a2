"""Scores from a reward model: one number per (prompt, answer), in batches.

`score_responses(model, tok, items)` renders each prompt (chat messages) and
answer through the one chat template, exactly as `reward train` saw its pairs
(`data.preference_batches.render_response`: the answer ends with ``<|end|>``,
where the scalar head reads), pads the rows on the right and runs the head
model without gradients. Rows are sorted by length first so a batch pads
little; the scores come back in the order given. A row longer than the model's
context keeps its last tokens (the answer and the end of the prompt).

Used by `lmforge reward score`, `lmforge eval reward` and rejection sampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, T) right-padded with `pad_id`, lengths (B,)) of token lists."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
    return ids, torch.tensor([len(r) for r in rows], dtype=torch.long)


@torch.no_grad()
def score_ids(
    model: nn.Module, rows: Sequence[Sequence[int]], *, pad_id: int, batch_size: int = 32
) -> list[float]:
    """The scalar head's score of each token row (any order; returned in the given order)."""
    device = next(model.parameters()).device
    limit = getattr(model, "max_seq_len", None) or getattr(model.config, "block_size", None)
    rows = [list(r)[-limit:] if limit else list(r) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out = [0.0] * len(rows)
    for start in range(0, len(order), batch_size):
        take = order[start : start + batch_size]
        ids, lengths = pad_rows([rows[i] for i in take], pad_id)
        scores = model(ids.to(device), lengths=lengths.to(device)).float().cpu()  # (b,)
        for i, s in zip(take, scores.tolist()):
            out[i] = s
    return out


def score_responses(
    model: nn.Module, tok: Any, items: Sequence[tuple[Sequence[Any], str]], *, batch_size: int = 32
) -> list[float]:
    """Reward of each (prompt messages, answer text) pair, in the order given."""
    from ..data.preference_batches import render_response

    rows = [render_response(tok, prompt, answer)[0] for prompt, answer in items]
    pad = tok.pad_id if tok.pad_id is not None else tok.eos_id
    return score_ids(model, rows, pad_id=pad, batch_size=batch_size)


def open_reward_model(
    run: Any, *, step: int | None = None, device: str = "cpu", flag: str = "--run"
):
    """`load_run` of a reward-model run (a scalar head); a policy run is refused, saying so."""
    from ..models.heads import head_kind
    from ..runs import load_run

    opened = load_run(run, step=step, device=device, need="transformer-decoder")
    if head_kind(opened.model) != "scalar":
        from ..common import LmforgeError

        raise LmforgeError(
            f"{flag} {run}: is a policy run (a language model, no reward head), not a reward "
            "model; train one with `lmforge reward train --from RUN --data PAIRS --out RM`"
        )
    return opened
