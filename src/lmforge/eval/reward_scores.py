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

from ..models.heads import head_kind, is_reward_model


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, T) right-padded with `pad_id`, lengths (B,)) of token lists."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
    return ids, torch.tensor([len(r) for r in rows], dtype=torch.long)


def _context(model: nn.Module) -> int | None:
    return getattr(model, "max_seq_len", None) or getattr(model.config, "block_size", None)


def _by_length(rows: Sequence[Sequence[int]], batch_size: int, fn) -> list[float]:
    """`fn(indices)` -> one float per index, over batches of rows of similar length; the
    results in the order of `rows` (sorting first keeps the padding of a batch small)."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out = [0.0] * len(rows)
    for start in range(0, len(order), batch_size):
        take = order[start : start + batch_size]
        for i, s in zip(take, fn(take)):
            out[i] = s
    return out


@torch.no_grad()
def score_ids(
    model: nn.Module,
    rows: Sequence[Sequence[int]],
    *,
    pad_id: int,
    batch_size: int = 32,
    starts: Sequence[int] | None = None,
) -> list[float]:
    """The reward head's score of each token row (any order; returned in the given order).

    `starts`: where each row's answer begins (a likelihood head scores those tokens;
    required for one, ignored by a scalar head)."""
    device = next(model.parameters()).device
    limit = _context(model)
    cut = [max(0, len(r) - limit) if limit else 0 for r in rows]
    rows = [list(r)[c:] for r, c in zip(rows, cut)]
    if starts is None:
        if head_kind(model) == "likelihood":
            raise ValueError("a likelihood head scores the answer: pass starts")
        starts = [0] * len(rows)
    starts = [max(1, s - c) for s, c in zip(starts, cut)]  # token 0 has no context

    def scores(take: list[int]) -> list[float]:
        ids, lengths = pad_rows([rows[i] for i in take], pad_id)  # (b, T), (b,)
        cols = torch.arange(ids.shape[1])[None, :]
        first = torch.tensor([starts[i] for i in take])[:, None]
        answer = (cols >= first) & (cols < lengths[:, None])  # (b, T)
        out = model(ids.to(device), lengths=lengths.to(device), response_mask=answer.to(device))
        return out.float().cpu().tolist()  # (b,)

    return _by_length(rows, batch_size, scores)


@torch.no_grad()
def loglik_ids(
    model: nn.Module,
    rows: Sequence[Sequence[int]],
    starts: Sequence[int],
    *,
    pad_id: int,
    batch_size: int = 32,
) -> list[float]:
    """Σ log p(token | the tokens before it) over each row's answer, ``rows[i][starts[i]:]``,
    under a plain language model (a row longer than the context keeps its last tokens)."""
    device = next(model.parameters()).device
    limit = _context(model)
    cut = [max(0, len(r) - limit) if limit else 0 for r in rows]
    rows = [list(r)[c:] for r, c in zip(rows, cut)]
    starts = [max(1, s - c) for s, c in zip(starts, cut)]  # token 0 has no context

    def logliks(take: list[int]) -> list[float]:
        ids, _ = pad_rows([rows[i] for i in take], pad_id)  # (b, T)
        targets = torch.full_like(ids, -100)  # position t predicts token t + 1
        for b, i in enumerate(take):
            targets[b, starts[i] - 1 : len(rows[i]) - 1] = ids[b, starts[i] : len(rows[i])]
        _, nll = model(ids.to(device), targets=targets.to(device), targets_only=True,
                       reduction="none")  # (N,) in row-major order  # fmt: skip
        per_row = (targets != -100).sum(dim=1).tolist()
        return [-float(x.sum()) for x in torch.split(nll.float().cpu(), per_row)]

    return _by_length(rows, batch_size, logliks)


def score_responses(
    model: nn.Module,
    tok: Any,
    items: Sequence[tuple[Sequence[Any], str]],
    *,
    batch_size: int = 32,
    likelihood: bool = False,
) -> list[float]:
    """Reward of each (prompt messages, answer text) pair, in the order given; with
    `likelihood`, the answer's log-probability under `model`, a plain language model."""
    from ..data.preference_batches import render_response

    rendered = [render_response(tok, prompt, answer) for prompt, answer in items]
    rows = [ids for ids, _ in rendered]
    pad = tok.pad_id if tok.pad_id is not None else tok.eos_id
    starts = [start for _, start in rendered]
    if likelihood:
        return loglik_ids(model, rows, starts, pad_id=pad, batch_size=batch_size)
    return score_ids(model, rows, pad_id=pad, batch_size=batch_size, starts=starts)


def open_reward_model(
    run: Any,
    *,
    step: int | None = None,
    device: str = "cpu",
    flag: str = "--run",
    likelihood: bool = False,
):
    """`load_run` of a reward-model run (a scalar or likelihood head); a policy run is
    refused, saying so.
    With `likelihood` the other way round: a policy run, whose log-probabilities score."""
    from ..common import LmforgeError
    from ..runs import load_run

    opened = load_run(run, step=step, device=device, need="transformer-decoder")
    if likelihood and head_kind(opened.model) is not None:
        raise LmforgeError(
            f"{flag} {run}: is a reward model (a {head_kind(opened.model)} head); --likelihood "
            "scores with a language model: give a policy run (pretrain, SFT, RS, DPO)"
        )
    if not likelihood and not is_reward_model(opened.model):
        raise LmforgeError(
            f"{flag} {run}: is a policy run (a language model, no reward head), not a reward "
            "model; train one with `lmforge reward train --from RUN --data PAIRS --out RM`, "
            "or rank pairs by the policy's own log-probabilities with --likelihood"
        )
    return opened
