"""SFT data: conversations rendered through the chat template and packed into training rows.

`render_examples` turns Conversations into `ChatTokens` (ids + loss mask) that
fit the context: a conversation longer than `seq_len + 1` tokens loses whole
oldest turns (`fit_to_context`), or is dropped when even its last exchange does
not fit; both are counted, never cut mid-answer.

`PackedChatBatches` is the batch source of the SFT stage. Every epoch the
examples are shuffled (seeded by seed and epoch), packed best-fit decreasing
into rows of `seq_len + 1` tokens, and the rows shuffled; a row's inputs are its first
`seq_len` tokens and its targets the next token at each position, with -100
where the next token is not trained (prompt, role header, padding) or belongs
to the next conversation. `doc_ids` tells the model where each conversation
starts, so attention never crosses conversations and positions restart at 0:
the loss of a packed row equals the sum of its conversations' losses run one
by one (tests/test_sft.py). Ranks take interleaved rows of the same plan, so
the global batch is the same for any number of processes. The cursor (epoch,
row) is the whole resumable state.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..common import LmforgeError
from ..tokenizers.chat import ChatTokens, Conversation, fit_to_context, render_chat

IGNORE = -100


@dataclass
class RenderStats:
    conversations: int = 0  # given
    kept: int = 0
    truncated: int = 0  # lost oldest turns to fit
    dropped: int = 0  # even the last exchange did not fit
    no_target: int = 0  # nothing to train on (no assistant turn)
    tokens: int = 0  # of the kept examples
    targets: int = 0  # trained tokens (assistant content + end of turn)
    examples_dropped: list[str] = field(default_factory=list)  # first few, for the report

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "examples_dropped"}


def render_examples(
    tok: Any, conversations: Sequence[Conversation], seq_len: int
) -> tuple[list[ChatTokens], RenderStats]:
    """Render and fit every conversation to `seq_len + 1` tokens (one row of inputs+targets)."""
    stats = RenderStats(conversations=len(conversations))
    out: list[ChatTokens] = []
    for i, conv in enumerate(conversations):
        where = conv.meta.get("where") or f"conversation {i + 1}"
        chat = render_chat(tok, conv, where=where)
        if chat.n_targets == 0:
            stats.no_target += 1
            continue
        if len(chat.ids) > seq_len + 1:
            fitted = fit_to_context(chat, max_len=seq_len + 1)
            if fitted is None or fitted.chat.n_targets == 0:
                stats.dropped += 1
                if len(stats.examples_dropped) < 3:
                    stats.examples_dropped.append(f"{where} ({len(chat.ids)} tokens)")
                continue
            chat = fitted.chat
            stats.truncated += 1
        out.append(chat)
        stats.kept += 1
        stats.tokens += len(chat.ids)
        stats.targets += chat.n_targets
    if not out:
        raise LmforgeError(
            f"no conversation fits a context of {seq_len + 1} tokens with something to train on "
            f"({stats.dropped} too long, {stats.no_target} without an assistant turn); raise "
            "--seq-len or check the data"
        )
    return out, stats


def pack(lengths: Sequence[int], order: Sequence[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing packing of examples into rows of at most `capacity` tokens.

    Longest first (ties in `order`), each into the fullest row it still fits, else
    a new row. Next-fit in shuffled order leaves about 12% of the world's rows empty;
    this fills them to 99% (benchmarks/sft.py). Rows come out longest-first: the
    caller shuffles them.
    """
    import bisect

    rank = {i: k for k, i in enumerate(order)}
    items = sorted(order, key=lambda i: (-lengths[i], rank[i]))
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, row index), sorted
    for i in items:
        n = lengths[i]
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            room, r = free.pop(k)
            rows[r].append(i)
            room -= n
        else:
            r, room = len(rows), capacity - n
            rows.append([i])
        if room > 0:
            bisect.insort(free, (room, r))
    return rows


def collate_rows(
    examples: Sequence[ChatTokens], rows: Sequence[Sequence[int]], seq_len: int, pad_id: int
) -> dict[str, torch.Tensor]:
    """{"ids", "targets", "doc_ids"} (B, seq_len) int64 for packed rows of example indices."""
    B, T = len(rows), seq_len
    ids = np.full((B, T + 1), pad_id, dtype=np.int64)
    train = np.zeros((B, T + 1), dtype=bool)  # is token t a trained target?
    doc = np.full((B, T + 1), -1, dtype=np.int64)
    for b, row in enumerate(rows):
        pos = 0
        for d, i in enumerate(row):
            ex = examples[i]
            n = len(ex.ids)
            ids[b, pos : pos + n] = ex.ids
            train[b, pos : pos + n] = np.asarray(ex.loss_mask, dtype=bool)
            doc[b, pos : pos + n] = d
            pos += n
        doc[b, pos:] = len(row)  # padding: a document of its own, never a target
    targets = np.where(train[:, 1:], ids[:, 1:], IGNORE)
    # A target is trained only inside its own conversation (a first token is never one,
    # as every rendering starts with a role header; this guards the rule anyway).
    targets = np.where(doc[:, 1:] == doc[:, :-1], targets, IGNORE)
    return {
        "ids": torch.from_numpy(ids[:, :T].copy()),
        "targets": torch.from_numpy(targets),
        "doc_ids": torch.from_numpy(doc[:, :T].copy()),
    }


def take_across_epochs(
    plan: Callable[[int], Sequence[Any]], n: int, epoch: int, cursor: int
) -> tuple[list[Any], int, int]:
    """The next `n` items of a per-epoch order `plan(epoch)` from (epoch, cursor), moving
    into the next epoch as needed; returns (items, epoch, cursor) after them. The cursor
    state every lmforge batch source with epochs resumes from."""
    out: list[Any] = []
    while len(out) < n:
        order = plan(epoch)
        take = order[cursor : cursor + (n - len(out))]
        out.extend(take)
        cursor += len(take)
        if cursor >= len(order):
            epoch, cursor = epoch + 1, 0
    return out, epoch, cursor


class PackedChatBatches:
    """The SFT batch source: `next_batch()` -> this rank's packed rows; resumable."""

    def __init__(
        self,
        examples: Sequence[ChatTokens],
        batch_size: int,
        seq_len: int,
        *,
        pad_id: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ):
        self.examples = list(examples)
        self.lengths = [len(e.ids) for e in self.examples]
        self.batch_size, self.seq_len, self.pad_id = batch_size, seq_len, pad_id
        self.seed, self.rank, self.world_size, self.shuffle = seed, rank, world_size, shuffle
        self.epoch_index, self.cursor = 0, 0  # the next global row
        self._plan_epoch: int | None = None
        self._plan: list[list[int]] = []

    def plan(self, epoch: int) -> list[list[int]]:
        """The packed rows of `epoch` (cached for the current one)."""
        if self._plan_epoch != epoch:
            order = list(range(len(self.examples)))
            rng = random.Random(self.seed * 1_000_003 + epoch)
            if self.shuffle:
                rng.shuffle(order)
            self._plan = pack(self.lengths, order, self.seq_len + 1)
            if self.shuffle:
                rng.shuffle(self._plan)  # packing sorts by length: mix the rows again
            self._plan_epoch = epoch
        return self._plan

    @property
    def rows_per_epoch(self) -> int:
        return len(self.plan(0))

    def rows_in_epochs(self, epochs: float) -> int:
        """Global rows in the first `epochs` passes, a fractional last pass by its share.

        Each epoch packs its own shuffle, so epochs can differ by a row or two; this
        counts each one's own rows (`--epochs 2` ends exactly at the end of epoch 2).
        """
        whole = int(epochs)
        rows = sum(len(self.plan(e)) for e in range(whole))
        if epochs > whole:
            rows += math.ceil((epochs - whole) * len(self.plan(whole)))
        return rows

    @property
    def epoch(self) -> float:
        return self.epoch_index + self.cursor / max(1, len(self.plan(self.epoch_index)))

    def _take(self, n: int) -> list[list[int]]:
        """The next `n` global rows, moving into the next epoch as needed."""
        out, self.epoch_index, self.cursor = take_across_epochs(
            self.plan, n, self.epoch_index, self.cursor
        )
        return out

    def next_batch(self) -> dict[str, torch.Tensor]:
        rows = self._take(self.batch_size * self.world_size)
        mine = rows[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        return collate_rows(self.examples, mine, self.seq_len, self.pad_id)

    def eval_batches(self) -> list[dict[str, torch.Tensor]]:
        """Every row of one unshuffled pass, this rank's share.

        Padded with empty rows (no targets) to whole global steps, so every rank runs
        the same number of forwards and every example counts once.
        """
        order = list(range(len(self.examples)))
        rows: list[list[int]] = pack(self.lengths, order, self.seq_len + 1)
        step = self.batch_size * self.world_size
        n = -(-len(rows) // step) * step
        rows = rows + [[] for _ in range(n - len(rows))]
        out = []
        for s in range(0, n, step):
            mine = rows[s + self.rank * self.batch_size : s + (self.rank + 1) * self.batch_size]
            out.append(collate_rows(self.examples, mine, self.seq_len, self.pad_id))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch_index, "cursor": self.cursor, "n_examples": len(self.examples)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("n_examples") != len(self.examples):
            raise LmforgeError(
                f"the checkpoint was trained on {state.get('n_examples')} conversations but the "
                f"data now gives {len(self.examples)}; resume with the same --data"
            )
        self.epoch_index, self.cursor = int(state["epoch"]), int(state["cursor"])
