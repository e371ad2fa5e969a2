"""The SFT objective: next-token loss on assistant tokens of packed conversations.

Batches come from `lmforge.data.sft.PackedChatBatches`: `ids`, `targets` (-100
where nothing is trained: prompts, role headers, padding, the first token of the
next conversation) and `doc_ids` (the model keeps attention inside each
conversation and restarts positions). The loss is summed over trained tokens and
`n_tokens` counts them, so the loop averages over assistant tokens across
micro-batches and ranks, however the rows are packed.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .objective import LossOutput, count_targets


class SFTObjective:
    """Summed cross-entropy over the trained (assistant) targets of a packed batch."""

    def compute_loss(self, model: nn.Module, batch: dict[str, Any]) -> LossOutput:
        ids, targets = batch["ids"], batch["targets"]  # (B, T), (B, T)
        # Only the trained positions reach the output layer (most of a row is prompt).
        _, loss = model(
            ids, targets=targets, doc_ids=batch.get("doc_ids"), reduction="sum", targets_only=True
        )
        return LossOutput(loss, count_targets(targets))
