"""Masked-LM corruption: 15% chosen, 80/10/10 split, specials untouched, exact resume."""

from __future__ import annotations

import pytest
import torch

from lmforge.common import LmforgeError
from lmforge.train.masked_lm import MaskedLMObjective, mask_tokens

V = 300
SPECIAL = list(range(9))  # lmforge's fixed special ids 0..8, <|mask|> = 8
MASK = 8


def _batch(seed: int, B: int = 32, T: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(9, V, (B, T), generator=g)
    # Sprinkle document boundaries and padding: they must never be chosen.
    ids[:, ::13] = 2
    ids[:, -3:] = 0
    return ids


def test_masking_statistics_over_many_batches():
    g = torch.Generator().manual_seed(0)
    chosen = eligible = masked = randomised = kept = 0
    per_row_fracs = []
    for step in range(200):
        ids = _batch(step)
        inputs, targets = mask_tokens(
            ids, mask_id=MASK, vocab_size=V, special_ids=SPECIAL, generator=g
        )
        c = targets != -100
        is_special = ids < 9
        # Specials are never chosen or altered; targets are the originals.
        assert not (c & is_special).any()
        assert torch.equal(inputs[is_special], ids[is_special])
        assert torch.equal(targets[c], ids[c])
        # Positions not chosen are left as they were.
        assert torch.equal(inputs[~c], ids[~c])
        # Random replacements are ordinary tokens.
        assert (inputs[c & (inputs != MASK)] >= 9).all()
        chosen += int(c.sum())
        eligible += int((~is_special).sum())
        masked += int((c & (inputs == MASK)).sum())
        kept += int((c & (inputs == ids)).sum())
        randomised += int((c & (inputs != MASK) & (inputs != ids)).sum())
        per_row_fracs.append(c.sum(1).float() / (~is_special).sum(1).float())
    n = chosen
    # Over 200 x 32 rows (~54k chosen tokens) the binomial standard error of each split
    # is below 0.0018; the tolerances are 4-5 standard errors.
    assert abs(chosen / eligible - 0.15) < 0.005
    assert abs(masked / n - 0.80) < 0.007
    assert abs(randomised / n - 0.10) < 0.006
    # A random draw equal to the original counts as kept: expected 0.1 + 0.1 / 291.
    assert abs(kept / n - 0.10) < 0.006
    # The rate holds per row to within one token, not only on average (56 eligible per row).
    fr = torch.cat(per_row_fracs)
    assert (fr - 0.15).abs().max() < 1 / 56


def test_every_row_with_ordinary_tokens_gets_a_target():
    g = torch.Generator().manual_seed(1)
    ids = torch.full((4, 6), 2)
    ids[0, 3] = 50  # one ordinary token: 0.15 of a token rounds to 0 or 1; at least one
    ids[2, :] = 77
    inputs, targets = mask_tokens(ids, mask_id=MASK, vocab_size=V, special_ids=SPECIAL, generator=g)
    assert (targets != -100).sum(1).tolist() == [1, 0, 1, 0]
    assert targets[0, 3] == 50


def test_same_seed_same_masks_and_exact_resume():
    a = MaskedLMObjective(mask_id=MASK, vocab_size=V, special_ids=SPECIAL, seed=5)
    b = MaskedLMObjective(mask_id=MASK, vocab_size=V, special_ids=SPECIAL, seed=5)
    for step in range(3):
        ia, ta = a.corrupt(_batch(step))
        ib, tb = b.corrupt(_batch(step))
        assert torch.equal(ia, ib) and torch.equal(ta, tb)
    saved = a.state_dict()
    after = [a.corrupt(_batch(10 + i)) for i in range(2)]
    # A fresh objective (different seed) restored from the checkpointed state continues identically.
    c = MaskedLMObjective(mask_id=MASK, vocab_size=V, special_ids=SPECIAL, seed=99)
    c.load_state_dict(saved)
    for i, (ia, ta) in enumerate(after):
        ic, tc = c.corrupt(_batch(10 + i))
        assert torch.equal(ia, ic) and torch.equal(ta, tc)
    # A different seed masks differently.
    seed5 = MaskedLMObjective(mask_id=MASK, vocab_size=V, special_ids=SPECIAL, seed=5)
    seed6 = MaskedLMObjective(mask_id=MASK, vocab_size=V, special_ids=SPECIAL, seed=6)
    assert not torch.equal(seed5.corrupt(_batch(0))[0], seed6.corrupt(_batch(0))[0])


def test_objective_loss_counts_only_chosen_tokens():
    class Probe(torch.nn.Module):
        """Records what the objective feeds the model."""

        def forward(self, ids, targets=None, kv_cache=None):
            self.ids, self.targets = ids, targets
            logits = torch.zeros(*ids.shape, V, requires_grad=True)
            loss = torch.nn.functional.cross_entropy(
                logits.view(-1, V), targets.view(-1), ignore_index=-100
            )
            return logits, loss

    obj = MaskedLMObjective(mask_id=MASK, vocab_size=V, special_ids=SPECIAL, seed=0)
    x = _batch(0, B=4, T=40)
    model = Probe()
    out = obj.compute_loss(model, (x, x.roll(-1, 1)))
    assert out.mean.item() == pytest.approx(torch.log(torch.tensor(float(V))).item(), rel=1e-5)
    assert (model.targets != -100).any() and (model.ids == MASK).any()
    assert isinstance(out.metrics["mlm_acc"], torch.Tensor)
    # The loss is summed over the chosen positions only, and n_tokens counts them.
    chosen = int((model.targets != -100).sum())
    assert 0 < chosen < 160 and int(out.n_tokens) == chosen
    assert out.loss_sum.item() == pytest.approx(chosen * out.mean.item(), rel=1e-6)


def test_tokenizer_without_mask_token_is_a_clear_error():
    class OldTokenizer:
        mask_id = None

    with pytest.raises(LmforgeError, match="no <\\|mask\\|> token"):
        MaskedLMObjective.for_tokenizer(OldTokenizer(), vocab_size=V)


def test_bad_fractions_are_refused():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(LmforgeError, match="mlm_prob"):
        mask_tokens(
            _batch(0), mask_id=MASK, vocab_size=V, special_ids=SPECIAL, generator=g, mlm_prob=0.0
        )
    with pytest.raises(LmforgeError, match="mask_frac"):
        mask_tokens(
            _batch(0),
            mask_id=MASK,
            vocab_size=V,
            special_ids=SPECIAL,
            generator=g,
            mask_frac=0.9,
            random_frac=0.2,
        )
