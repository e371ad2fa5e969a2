"""Prompt-tuning batches: labelled examples as soft-prompted rows, the loss on the label only.

`task_rows(task, tok, layout, examples, max_len)` renders each example as
``virtual_before + query + virtual_after + label`` (`models.soft_prompt.SoftLayout`;
the query is `task.query_text(example)`, the label `task.label_text(label)`).
`SoftPromptBatches` is the batch source of `lmforge prompt-tune`: a seeded
per-epoch shuffle of the rows, each batch right-padded to its longest row (a
causal model never attends forward, so padding at the end changes nothing and
needs no mask: the plain causal attention path runs), targets -100 everywhere
but on the label tokens. Under torchrun rank r takes rows r*B..(r+1)*B-1 of
each global batch, so N processes see what one process with N*B rows sees. Its
cursor (epoch, row) is the resumable state, with a fingerprint of the rows so
that a resume on other data is refused.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..common import LmforgeError

IGNORE = -100


@dataclass(frozen=True)
class LabelledRow:
    """One soft-prompted example: its ids, and how many of the last ones are the label."""

    ids: tuple[int, ...]
    n_label: int

    def __len__(self) -> int:
        return len(self.ids)


def label_ids(task: Any, tok: Any) -> dict[str, list[int]]:
    """{label: token ids of `task.label_text(label)`}; a label that tokenizes to nothing is
    refused (one line: the label, its text, what to do)."""
    out: dict[str, list[int]] = {}
    for label in task.labels:
        text = task.label_text(label)
        ids = tok.encode(text)
        if not ids:
            raise LmforgeError(
                f"task {task.name}: label {label!r} (text {text!r}) tokenizes to nothing; give "
                "it a label word the tokenizer can spell"
            )
        out[label] = list(ids)
    return out


def task_rows(
    task: Any,
    tok: Any,
    layout: Any,
    examples: Sequence[Any],
    max_len: int,
    *,
    split: str = "train",
    labels: dict[str, list[int]] | None = None,
) -> list[LabelledRow]:
    """Each example as a `LabelledRow` of at most `max_len` ids (a longer one is refused,
    naming the example and the limit)."""
    labels = labels if labels is not None else label_ids(task, tok)
    rows = []
    for i, ex in enumerate(examples):
        if ex.label not in labels:
            raise LmforgeError(
                f"task {task.name}: {split} example {i} has label {ex.label!r}, not one of "
                f"{', '.join(labels)}"
            )
        query = tok.encode(task.query_text(ex))
        ids = layout.surround(query, labels[ex.label])
        if len(ids) > max_len:
            raise LmforgeError(
                f"task {task.name}: {split} example {i} is {len(ids)} tokens with its soft "
                f"prompt and label, above the limit of {max_len} (--seq-len + 1, at most the "
                "model's context + 1); shorten the text or use fewer soft tokens"
            )
        rows.append(LabelledRow(tuple(ids), len(labels[ex.label])))
    return rows


def collate(rows: Sequence[LabelledRow], pad_id: int, width: int | None = None) -> dict:
    """{"ids", "targets"} (B, T): rows right-padded to `width` inputs (default: the longest
    row - 1); targets[t] = ids[t+1] on label tokens, -100 elsewhere."""
    T = width if width is not None else max(len(r) for r in rows) - 1
    ids = torch.full((len(rows), T + 1), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), T), IGNORE, dtype=torch.long)
    for b, r in enumerate(rows):
        n = len(r)
        ids[b, :n] = torch.tensor(r.ids, dtype=torch.long)
        # The label's tokens are ids[n - n_label .. n-1], predicted at positions one before.
        targets[b, n - 1 - r.n_label : n - 1] = ids[b, n - r.n_label : n]
    return {"ids": ids[:, :-1].contiguous(), "targets": targets}


def fingerprint(rows: Sequence[LabelledRow]) -> str:
    """A short digest of the rows (the data a checkpoint's cursor refers to)."""
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.n_label}:{','.join(map(str, r.ids))};".encode())
    return h.hexdigest()[:16]


class SoftPromptBatches:
    """The prompt-tuning batch source: shuffled labelled rows, padded, loss on labels only."""

    def __init__(
        self,
        rows: Sequence[LabelledRow],
        batch_size: int,
        pad_id: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ):
        if not rows:
            raise LmforgeError("prompt tuning needs at least one training example")
        self.rows = list(rows)
        self.batch_size, self.pad_id, self.seed = batch_size, pad_id, seed
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.epoch_index, self.cursor = 0, 0
        self.digest = fingerprint(self.rows)
        self._plans: dict[int, list[int]] = {}

    @property
    def rows_per_epoch(self) -> int:
        return len(self.rows)

    def plan(self, epoch: int) -> list[int]:
        """The row order of `epoch` (the same on every rank)."""
        if epoch not in self._plans:
            order = list(range(len(self.rows)))
            if self.shuffle:
                random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
            self._plans = {epoch: order}  # only the current epoch is kept
        return self._plans[epoch]

    def next_batch(self) -> dict[str, torch.Tensor]:
        """This rank's share of the next global batch (batch_size * world_size rows)."""
        take = []
        for _ in range(self.batch_size * self.world_size):
            take.append(self.rows[self.plan(self.epoch_index)[self.cursor]])
            self.cursor += 1
            if self.cursor == len(self.rows):
                self.epoch_index, self.cursor = self.epoch_index + 1, 0
        width = max(len(r) for r in take) - 1  # one width on every rank
        mine = take[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        return collate(mine, self.pad_id, width)

    @property
    def epoch(self) -> float:
        return self.epoch_index + self.cursor / len(self.rows)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch_index, "cursor": self.cursor, "rows": len(self.rows),
                "fingerprint": self.digest}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("rows") != len(self.rows) or state.get("fingerprint") != self.digest:
            raise LmforgeError(
                f"the checkpoint's data position is for {state.get('rows')} other training "
                f"rows (fingerprint {state.get('fingerprint')}), these are {len(self.rows)} "
                f"({self.digest}); resume with the same --task, --world, --fmt and soft tokens"
            )
        self.epoch_index, self.cursor = int(state["epoch"]), int(state["cursor"])

    def eval_batches(self) -> list[dict[str, torch.Tensor]]:
        """Every row once, in order, this rank's share; every rank gets as many batches."""
        mine = self.rows[self.rank :: self.world_size]
        per_rank = -(-len(self.rows) // self.world_size)
        n_batches = -(-per_rank // self.batch_size)
        out = []
        for b in range(n_batches):
            chunk = mine[b * self.batch_size : (b + 1) * self.batch_size]
            if not chunk:  # a rank with fewer rows: one pad-only row, nothing to score
                chunk = [LabelledRow((self.pad_id, self.pad_id), 0)]
            out.append(collate(chunk, self.pad_id))
        return out
