"""Masked-LM objective (BERT): choose 15% of tokens, corrupt them 80/10/10, predict the originals.

``mask_tokens`` does the corruption. Per row it picks ``mlm_prob * n`` positions
(rounded up or down at random, at least one) uniformly among the ``n`` ordinary
tokens, like BERT's data generator, so every row has a loss term and the rate
holds per row to within one token, not only on average. Special tokens (pad, bos, eos, ..., the mask
itself) are never chosen. Of the chosen positions 80% become the mask id, 10% a
random ordinary token and 10% stay unchanged; the targets are the original ids
there and -100 everywhere else.

All randomness comes from one CPU ``torch.Generator`` owned by the objective,
whose state is saved in checkpoints (``state_dict``), so a resumed run masks the
same positions as an uninterrupted one, on any device.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..common import LmforgeError
from .objective import LossOutput


def mask_tokens(
    ids: torch.Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    special_ids: Iterable[int],
    generator: torch.Generator,
    mlm_prob: float = 0.15,
    mask_frac: float = 0.8,
    random_frac: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (B, T) int64 -> (corrupted inputs (B, T), targets (B, T) with -100 where not chosen).

    ``generator`` is a CPU generator; the results are on ``ids.device``.
    """
    if not 0.0 < mlm_prob <= 1.0:
        raise LmforgeError(f"mlm_prob must be in (0, 1], got {mlm_prob}")
    if mask_frac < 0 or random_frac < 0 or mask_frac + random_frac > 1.0:
        raise LmforgeError(
            f"mask_frac ({mask_frac}) + random_frac ({random_frac}) must be within [0, 1]"
        )
    device = ids.device
    B, T = ids.shape
    special = torch.tensor(sorted(set(special_ids) | {mask_id}), dtype=torch.int64)
    # Random replacements come from ordinary tokens only: a random <|eos|> would
    # teach the model about a document boundary that is not there.
    ordinary = torch.ones(vocab_size, dtype=torch.bool)
    ordinary[special[special < vocab_size]] = False
    pool = ordinary.nonzero().squeeze(1)  # (n_ordinary,)
    if len(pool) == 0:
        raise LmforgeError("the vocabulary has no ordinary tokens to draw random replacements from")
    # Every random number is drawn up front on the CPU, independent of the ids, so
    # the generator advances the same way on any device and the rest runs on the
    # ids' device without a host sync.
    scores = torch.rand(B, T, generator=generator).to(device)
    u = torch.rand(B, T, generator=generator).to(device)
    r = torch.rand(B, generator=generator).to(device)
    rand_ids = pool[torch.randint(len(pool), (B, T), generator=generator)].to(device)

    eligible = ~torch.isin(ids, special.to(device))  # (B, T)
    n_eligible = eligible.sum(dim=1)  # (B,)
    # k = p * n positions per row, rounded up or down at random so that the rate is
    # exact on average (plain rounding would bias it by up to 0.5 / n); at least one.
    k = torch.clamp(torch.floor(n_eligible.float() * mlm_prob + r).long(), min=1)
    k = torch.minimum(k, n_eligible)
    # Rank eligible positions in a random order; ineligible ones sort last (score 2 > any rand).
    scores = scores.masked_fill(~eligible, 2.0)
    ranks = scores.argsort(dim=1).argsort(dim=1)  # (B, T) rank of each position
    chosen = (ranks < k.unsqueeze(1)) & eligible  # (B, T)

    targets = ids.masked_fill(~chosen, -100)
    to_mask = chosen & (u < mask_frac)
    to_random = chosen & (u >= mask_frac) & (u < mask_frac + random_frac)
    inputs = ids.masked_fill(to_mask, mask_id)
    inputs = torch.where(to_random, rand_ids, inputs)
    return inputs, targets


class MaskedLMObjective:
    """The loop's objective for a BERT: corrupt the batch, then cross-entropy on chosen tokens.

    ``compute_loss(model, batch) -> LossOutput`` takes the ``(x, y)`` windows of
    the batch reader and uses ``x`` only (the next-token targets ``y`` are
    meaningless to a masked LM). The loss is summed over the chosen positions
    only, so ``n_tokens`` (and the loop's tokens_seen) counts those, not every
    token read.
    """

    def __init__(
        self,
        *,
        mask_id: int,
        vocab_size: int,
        special_ids: Iterable[int],
        seed: int = 0,
        mlm_prob: float = 0.15,
        mask_frac: float = 0.8,
        random_frac: float = 0.1,
    ):
        self.mask_id, self.vocab_size = mask_id, vocab_size
        self.special_ids = sorted(set(special_ids))
        self.mlm_prob, self.mask_frac, self.random_frac = mlm_prob, mask_frac, random_frac
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, vocab_size: int, seed: int = 0, **kw: Any):
        """Build from an lmforge Tokenizer: its mask id and every special id it has."""
        mask_id = tokenizer.mask_id
        if mask_id is None:
            raise LmforgeError(
                "the tokenizer has no <|mask|> token, which a masked LM needs; retrain it with "
                "`lmforge tokenizer train` (current versions add <|mask|> as id 8)"
            )
        roles = ["pad", "bos", "eos", "unk", "system", "user", "assistant", "end", "mask"]
        special = {i for r in roles if (i := tokenizer.special_id(r)) is not None}
        return cls(mask_id=mask_id, vocab_size=vocab_size, special_ids=special, seed=seed, **kw)

    def corrupt(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mask_tokens(
            ids,
            mask_id=self.mask_id,
            vocab_size=self.vocab_size,
            special_ids=self.special_ids,
            generator=self.generator,
            mlm_prob=self.mlm_prob,
            mask_frac=self.mask_frac,
            random_frac=self.random_frac,
        )

    def compute_loss(
        self, model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> LossOutput:
        """Loss summed over the chosen positions; `n_tokens` is their number (about 15%)."""
        x = batch[0]  # (B, T)
        inputs, targets = self.corrupt(x)
        logits, loss = model(inputs, targets)
        with torch.no_grad():
            chosen = targets != -100
            n = chosen.sum()
            correct = ((logits.argmax(-1) == targets) & chosen).sum()
            # Tensors, not floats: .item() here would stall the GPU every step.
            acc = correct.float() / n.clamp(min=1)
        return LossOutput.from_mean(loss, n, {"mlm_acc": acc})

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
