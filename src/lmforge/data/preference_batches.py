"""Preference pairs rendered through the chat template, and the pairwise batch source.

`render_pairs` turns each `PreferencePair` into two token rows that share one
prompt: ``render_chat(prompt + [assistant answer])`` for each side, the prompt
ending with its ``<|assistant|>`` header (`PairTokens.prompt_len` tokens).
A pair longer than `max_len` loses the oldest whole turns of its prompt
(`fit_to_context`: the system prompt stays while it fits), then, if the last user
turn is still too long, the prompt's first tokens; an answer is never cut: a
pair whose longer answer leaves no room for one prompt token is dropped. All
counted in `PairStats`.

`PreferenceBatches` is the batch source of the reward-model and DPO stages.
A micro-batch of B pairs is one (2B, T) tensor: rows 0..B-1 the chosen sides,
rows B..2B-1 the rejected sides (pair i at rows i and B+i), right-padded to the
longest row, so both sides go through the model in one forward. With
``share_prompt`` (the stages' default on attention decoders) it is one (B, T)
tensor instead, a row per pair holding its prompt once and both answers as
branches (`collate_shared_pairs`). Either way ``sides`` numbers the answers the
same (chosen of pair i: side i, rejected: side B+i), and the objectives read
scores and log-probabilities per side, so they never ask which layout they got. Every epoch
shuffles the pairs (seeded by seed and epoch); ranks take consecutive slices of
each global batch of the same order (as `PackedChatBatches`), so the global
batch is the same for any number of processes; the cursor (epoch, pair) is the
whole resumable state.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..common import LmforgeError
from ..tokenizers.chat import ChatTokens, Message, chat_token_ids, fit_to_context, render_chat
from .preference_formats import PreferencePair
from .sft import take_across_epochs


@dataclass
class PairTokens:
    prompt_len: int  # tokens of the rendered prompt incl. the trailing <|assistant|> header
    chosen: list[int]  # full ids: prompt + chosen content + <|end|>
    rejected: list[int]  # full ids: prompt + rejected content + <|end|>
    margin: float
    where: str


@dataclass
class PairStats:
    pairs: int = 0  # given
    kept: int = 0
    truncated: int = 0  # the prompt lost turns or tokens on the left to fit
    dropped: int = 0  # an answer alone (+1 prompt token) does not fit
    identical: int = 0  # both sides render to the same ids (nothing to prefer): left out

    def to_dict(self) -> dict[str, int]:
        return dict(vars(self))


def render_response(tok: Any, prompt: Sequence[Message], response: str) -> tuple[list[int], int]:
    """Ids of `prompt` (as a generation prompt) + `response` content + <|end|>, and the prompt length.

    Equal to `render_chat` of the whole conversation: it is that rendering.
    """
    chat = render_chat(tok, [*prompt, Message("assistant", response)])
    return chat.ids, chat.message_spans[-1][0] + 1  # the answer's span starts at its header


def _fit_prompt(chat: ChatTokens, budget: int) -> tuple[list[int], bool] | None:
    """The prompt's ids in at most `budget` tokens (whole turns first, then a left cut)."""
    if len(chat.ids) <= budget:
        return chat.ids, False
    if budget < 1:
        return None
    fitted = fit_to_context(chat, max_len=budget)
    if fitted is not None:
        return fitted.chat.ids, True
    # Even the last user turn is too long: keep its end, next to the answer.
    return chat.ids[-budget:], True


def render_pairs(
    tok: Any, pairs: Sequence[PreferencePair], max_len: int
) -> tuple[list[PairTokens], PairStats]:
    """Render every pair into rows of at most `max_len` tokens (see the module docstring)."""
    if max_len < 2:
        raise LmforgeError(
            f"max_len must be at least 2 (a prompt token and <|end|>), got {max_len}"
        )
    stats = PairStats(pairs=len(pairs))
    end = chat_token_ids(tok)["end"]
    # Answers are encoded as render_chat encodes contents (plain text, each on its own).
    answers = tok.encode_batch([t for p in pairs for t in (p.chosen, p.rejected)])
    out: list[PairTokens] = []
    for i, pair in enumerate(pairs):
        chat = render_chat(tok, pair.prompt, add_generation_prompt=True, where=pair.where or None)
        chosen, rejected = answers[2 * i] + [end], answers[2 * i + 1] + [end]
        if chosen == rejected:
            stats.identical += 1
            continue
        fit = _fit_prompt(chat, max_len - max(len(chosen), len(rejected)))
        if fit is None:
            stats.dropped += 1
            continue
        prompt, truncated = fit
        stats.truncated += int(truncated)
        stats.kept += 1
        out.append(
            PairTokens(len(prompt), prompt + chosen, prompt + rejected, pair.margin, pair.where)
        )
    if not out:
        raise LmforgeError(
            f"no preference pair fits {max_len} tokens ({stats.dropped} with an answer too long, "
            f"{stats.identical} with identical sides); raise the sequence length or check the data"
        )
    return out, stats


def collate_pairs(
    pairs: Sequence[PairTokens], indices: Sequence[int], pad_id: int
) -> dict[str, torch.Tensor]:
    """The two-row batch of `indices` (see the module docstring); B = 0 gives empty
    tensors of width 1."""
    B = len(indices)
    rows = [pairs[i].chosen for i in indices] + [pairs[i].rejected for i in indices]
    starts = [pairs[i].prompt_len for i in indices] * 2
    T = max((len(r) for r in rows), default=1)
    ids = np.full((2 * B, T), pad_id, dtype=np.int64)  # (2B, T)
    sides = np.full((2 * B, T), -1, dtype=np.int64)  # (2B, T) row r's answer is side r
    for r, (row, start) in enumerate(zip(rows, starts)):
        ids[r, : len(row)] = row
        sides[r, start : len(row)] = r
    return _batch(pairs, indices, ids, sides, [len(r) for r in rows])


def branched_rows(
    groups: Sequence[tuple[Sequence[int], Sequence[tuple[int, Sequence[int]]]]], pad_id: int
) -> dict[str, torch.Tensor]:
    """Rows that hold a prompt once and several answers after it, each a branch.

    `groups`: per row, (prompt ids, [(side, answer ids), ...]). Row r is the prompt
    without its last token (the shared prefix, branch 0), then for each answer the
    prompt's last token and the answer (branch 1, 2, ...), right-padded with `pad_id`
    (branch -1). The last prompt token repeats because it predicts each answer's first
    token, and one position cannot hold two targets. With ``branch_ids`` every answer
    is computed exactly as in its own row prompt + answer (`models.masks.branch_mask`).
    ``sides`` (R, T) holds each answer token's `side`, -1 elsewhere; ``lengths`` (R,)
    the real tokens of each row.
    """
    rows, layouts = [], []
    for prompt, answers in groups:
        row, branch, side = list(prompt[:-1]), [0] * (len(prompt) - 1), [-1] * (len(prompt) - 1)
        for k, (number, answer) in enumerate(answers, start=1):
            row += [prompt[-1], *answer]
            branch += [k] * (1 + len(answer))
            side += [-1] + [number] * len(answer)
        rows.append(row)
        layouts.append((branch, side))
    T = max((len(r) for r in rows), default=1)
    R = len(rows)
    ids = np.full((R, T), pad_id, dtype=np.int64)  # (R, T)
    branch_ids = np.full((R, T), -1, dtype=np.int64)  # (R, T)
    sides = np.full((R, T), -1, dtype=np.int64)  # (R, T)
    for r, (row, (branch, side)) in enumerate(zip(rows, layouts)):
        ids[r, : len(row)], branch_ids[r, : len(row)], sides[r, : len(row)] = row, branch, side
    return {
        "ids": torch.from_numpy(ids),
        "branch_ids": torch.from_numpy(branch_ids),
        "sides": torch.from_numpy(sides),
        "lengths": torch.tensor([len(r) for r in rows], dtype=torch.int64),
    }


def collate_shared_pairs(
    pairs: Sequence[PairTokens], indices: Sequence[int], pad_id: int
) -> dict[str, torch.Tensor]:
    """The shared-prompt batch of `indices`: one row per pair, the prompt once.

    Row i is ``prompt | chosen answer | <|assistant|> | rejected answer`` (`branched_rows`:
    the chosen answer of pair i is side i, the rejected one side B + i), so every score
    and log-probability is the two-row one (tests/test_shared_prompt.py), from
    P + |y_c| + |y_r| + 1 tokens instead of 2P + |y_c| + |y_r|.
    """
    B = len(indices)
    groups = []
    for r, i in enumerate(indices):
        p = pairs[i]
        P = p.prompt_len
        groups.append((p.chosen[:P], [(r, p.chosen[P:]), (B + r, p.rejected[P:])]))
    rows = branched_rows(groups, pad_id)
    sides = rows["sides"].numpy()
    batch = _batch(pairs, indices, rows["ids"].numpy(), sides, rows["lengths"].tolist())
    batch["branch_ids"] = rows["branch_ids"]
    return batch


def _batch(pairs, indices, ids, sides, lengths) -> dict[str, torch.Tensor]:
    return {
        "ids": torch.from_numpy(ids),
        "lengths": torch.tensor(lengths, dtype=torch.int64),  # (rows,) real tokens
        "sides": torch.from_numpy(sides),  # (rows, T) each answer token's side, -1 elsewhere
        "response_mask": torch.from_numpy(sides >= 0),  # answer content and its <|end|>
        "margin": torch.tensor([pairs[i].margin for i in indices], dtype=torch.float32),  # (B,)
        "index": torch.tensor(list(indices), dtype=torch.int64),  # (B,)
    }


class PreferenceBatches:
    """The pairwise batch source: `next_batch()` -> this rank's B pairs as 2B rows; resumable."""

    def __init__(
        self,
        pairs: list[PairTokens],
        batch_size: int,
        *,
        pad_id: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        share_prompt: bool = False,
    ):
        if not pairs:
            raise LmforgeError("no preference pairs to batch")
        if batch_size < 1:
            raise LmforgeError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise LmforgeError(f"rank {rank} is outside world_size {world_size}")
        self.pairs = list(pairs)
        self.batch_size, self.pad_id = batch_size, pad_id
        self.seed, self.rank, self.world_size, self.shuffle = seed, rank, world_size, shuffle
        self.collate = collate_shared_pairs if share_prompt else collate_pairs
        self.epoch_index, self.cursor = 0, 0  # the next global pair
        self._order_epoch: int | None = None
        self._order: list[int] = []

    def order(self, epoch: int) -> list[int]:
        """The pair order of `epoch` (cached for the current one)."""
        if self._order_epoch != epoch:
            self._order = list(range(len(self.pairs)))
            if self.shuffle:
                random.Random(self.seed * 1_000_003 + epoch).shuffle(self._order)
            self._order_epoch = epoch
        return self._order

    @property
    def pairs_per_epoch(self) -> int:
        return len(self.pairs)

    @property
    def epoch(self) -> float:
        return self.epoch_index + self.cursor / len(self.pairs)

    def _take(self, n: int) -> list[int]:
        """The next `n` global pairs, moving into the next epoch as needed."""
        out, self.epoch_index, self.cursor = take_across_epochs(
            self.order, n, self.epoch_index, self.cursor
        )
        return out

    def next_batch(self) -> dict[str, torch.Tensor]:
        step = self._take(self.batch_size * self.world_size)
        mine = step[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        return self.collate(self.pairs, mine, self.pad_id)

    def eval_batches(self) -> list[dict[str, torch.Tensor]]:
        """Every pair once, in order, this rank's share of each global batch.

        The last global batch may be short; a rank left without pairs in it gets an
        empty batch (B = 0), so every rank runs the same number of forwards.
        """
        step = self.batch_size * self.world_size
        out = []
        for s in range(0, len(self.pairs), step):
            lo = min(s + self.rank * self.batch_size, len(self.pairs))
            hi = min(lo + self.batch_size, s + step, len(self.pairs))
            out.append(self.collate(self.pairs, range(lo, hi), self.pad_id))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch_index, "cursor": self.cursor, "n_pairs": len(self.pairs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("n_pairs") != len(self.pairs):
            raise LmforgeError(
                f"the checkpoint was trained on {state.get('n_pairs')} preference pairs but the "
                f"data now gives {len(self.pairs)}; resume with the same data and max length"
            )
        self.epoch_index, self.cursor = int(state["epoch"]), int(state["cursor"])
