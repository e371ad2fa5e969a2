"""Scores from a reward model: one number per (prompt, answer), in batches.

`score_responses(model, tok, items)` renders each prompt (chat messages) and
answer through the one chat template, exactly as `reward train` saw its pairs
(`data.preference_batches.render_response`: the answer ends with ``<|end|>``,
where the scalar head reads), pads the rows on the right and runs the head
model without gradients. Rows are sorted by length first so a batch pads
little; the scores come back in the order given. A row longer than the model's
context keeps its last tokens (the answer and the end of the prompt).

Rows that share a prompt (rejection sampling's N samples, a pair's two sides)
run the prompt once, their answers as branches of one row (`branched_rows`),
on GPT and LLaMA reward models.

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
    branches: bool = True,
) -> list[float]:
    """The reward head's score of each token row (any order; returned in the given order).

    `starts`: where each row's answer begins (a likelihood head scores those tokens;
    required for one). With `starts` on a GPT or LLaMA reward model, rows that share a
    prompt are scored as branches of one row, the prompt run once (`branches`; the
    same scores, fewer tokens: rejection sampling's N answers per prompt, a pair's two
    sides); `batch_size` then counts answers."""
    device = next(model.parameters()).device
    limit = _context(model)
    cut = [max(0, len(r) - limit) if limit else 0 for r in rows]
    rows = [list(r)[c:] for r, c in zip(rows, cut)]
    branches = branches and starts is not None  # without answer starts there is no prompt
    if starts is None:
        if head_kind(model) == "likelihood":
            raise ValueError("a likelihood head scores the answer: pass starts")
        starts = [0] * len(rows)
    starts = [max(1, s - c) for s, c in zip(starts, cut)]  # token 0 has no context

    if branches and can_branch(model) and all(len(r) > s for r, s in zip(rows, starts)):
        return _score_branched(rows, starts, pad_id, batch_size, limit, _head_scores(model))

    def scores(take: list[int]) -> list[float]:
        ids, lengths = pad_rows([rows[i] for i in take], pad_id)  # (b, T), (b,)
        cols = torch.arange(ids.shape[1])[None, :]
        first = torch.tensor([starts[i] for i in take])[:, None]
        answer = (cols >= first) & (cols < lengths[:, None])  # (b, T)
        out = model(ids.to(device), lengths=lengths.to(device), response_mask=answer.to(device))
        return out.float().cpu().tolist()  # (b,)

    return _by_length(rows, batch_size, scores)


def can_branch(model: nn.Module) -> bool:
    """Whether a model (or a head model's base) lays several answers after one prompt
    (`branch_ids`)."""
    from ..models.registry import arch_of, supports_branches

    base = getattr(model, "base", model)
    return supports_branches(arch_of(getattr(base, "_orig_mod", base)))


def prompt_groups(
    rows: Sequence[Sequence[int]], starts: Sequence[int], budget: int | None
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, [row indices]) for the rows that share a prompt (``row[:start]``),
    first-seen order; a group is split so that prompt + its answers stays within
    `budget` tokens (None: no limit)."""
    by_prompt: dict[tuple[int, ...], list[int]] = {}
    for i, (r, s) in enumerate(zip(rows, starts)):
        by_prompt.setdefault(tuple(r[:s]), []).append(i)
    out = []
    for prompt, members in by_prompt.items():
        chunk, length = [], len(prompt) - 1
        for i in members:
            add = 1 + len(rows[i]) - starts[i]  # the prompt's last token again + the answer
            if chunk and budget is not None and length + add > budget:
                out.append((list(prompt), chunk))
                chunk, length = [], len(prompt) - 1
            chunk.append(i)
            length += add
        out.append((list(prompt), chunk))
    return out


def _score_branched(rows, starts, pad_id: int, batch_size: int, limit, score) -> list[float]:
    """One number per row with each prompt run once for all of its answers: rows that
    share a prompt become one row of branches (`data.preference_batches.branched_rows`),
    `score(batch)` gives (K,) for a batch's K answers; the numbers are the
    one-row-per-answer ones (tests/test_shared_prompt.py)."""
    from ..data.preference_batches import branched_rows

    # Rows of at most twice the context: the masked attention grows with the square.
    groups = prompt_groups(rows, starts, 2 * limit if limit else None)
    groups.sort(key=lambda g: len(g[0]) + sum(1 + len(rows[i]) - starts[i] for i in g[1]))
    out = [0.0] * len(rows)
    start = 0
    while start < len(groups):
        take, answers = [], 0  # whole groups until about `batch_size` answers
        while start < len(groups) and (not take or answers + len(groups[start][1]) <= batch_size):
            take.append(groups[start])
            answers += len(groups[start][1])
            start += 1
        order = [i for _, members in take for i in members]
        number = {i: k for k, i in enumerate(order)}
        batch = branched_rows(
            [(p, [(number[i], rows[i][starts[i] :]) for i in members]) for p, members in take],
            pad_id,
        )
        for i, v in zip(order, score(batch).float().cpu().tolist()):
            out[i] = v
    return out


def _head_scores(model: nn.Module):
    """`_score_branched`'s scorer for a reward model: the head's score of each answer."""
    device = next(model.parameters()).device

    def score(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(
            batch["ids"].to(device), branch_ids=batch["branch_ids"].to(device),
            sides=batch["sides"].to(device),
        )  # (K,)  # fmt: skip

    return score


def _answer_logliks(model: nn.Module):
    """`_score_branched`'s scorer for a plain language model: each answer's summed
    log-probability."""
    from ..models.masks import IGNORE, n_sides, shifted_targets, side_sums, target_sides

    device = next(model.parameters()).device

    def score(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids, sides = batch["ids"].to(device), batch["sides"].to(device)  # (R, T) each
        targets = shifted_targets(ids, sides >= 0)  # (R, T): t-1 predicts answer token t
        _, nll = model(ids, targets=targets, targets_only=True, reduction="none",
                       branch_ids=batch["branch_ids"].to(device))  # (N,)  # fmt: skip
        keep = targets != IGNORE
        logp = torch.zeros(keep.shape, dtype=torch.float32, device=device)
        logp[keep] = -nll.float()
        return side_sums(logp, target_sides(sides, targets), n_sides(sides))  # (K,)

    return score


@torch.no_grad()
def loglik_ids(
    model: nn.Module,
    rows: Sequence[Sequence[int]],
    starts: Sequence[int],
    *,
    pad_id: int,
    batch_size: int = 32,
    branches: bool = True,
) -> list[float]:
    """Σ log p(token | the tokens before it) over each row's answer, ``rows[i][starts[i]:]``,
    under a plain language model (a row longer than the context keeps its last tokens).
    Rows that share a prompt run it once on GPT and LLaMA (`branches`, as `score_ids`)."""
    device = next(model.parameters()).device
    limit = _context(model)
    cut = [max(0, len(r) - limit) if limit else 0 for r in rows]
    rows = [list(r)[c:] for r, c in zip(rows, cut)]
    starts = [max(1, s - c) for s, c in zip(starts, cut)]  # token 0 has no context
    if branches and can_branch(model) and all(len(r) > s for r, s in zip(rows, starts)):
        return _score_branched(rows, starts, pad_id, batch_size, limit, _answer_logliks(model))

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
