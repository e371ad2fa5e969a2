"""Packed documents, padding and per-row positions in the training forward (models/masks.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmforge.models import build_model
from lmforge.models.masks import document_mask, document_positions, padding_positions

SMALL = dict(vocab_size=61, block_size=40, n_layer=2, n_head=4, d_model=32, init_std=0.2)
ARCHS = [
    ("gpt", {}),  # learned positions, MHA
    ("llama", {"n_kv_head": 2}),  # RoPE, grouped-query attention
]


def make(arch: str, **kw):
    torch.manual_seed(0)
    return build_model(arch, {**SMALL, **kw}).eval()


def docs(lengths: list[int], seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 61, (n,), generator=g) for n in lengths]


def test_document_positions_and_mask():
    doc_ids = torch.tensor([[0, 0, 1, 1, 1, 0, 0], [5, 5, 5, 5, 5, 5, 5]])
    assert document_positions(doc_ids).tolist() == [[0, 1, 0, 1, 2, 0, 1], list(range(7))]
    m = document_mask(doc_ids)[:, 0]  # (B, T, T)
    # Row 0: three documents (the repeated id 0 after id 1 starts a new one).
    expected = torch.zeros(7, 7, dtype=torch.bool)
    for a, b in [(0, 2), (2, 5), (5, 7)]:
        expected[a:b, a:b] = torch.ones(b - a, b - a, dtype=torch.bool).tril()
    assert torch.equal(m[0], expected)
    assert torch.equal(m[1], torch.ones(7, 7, dtype=torch.bool).tril())
    # Padding keys are hidden; each padding query keeps exactly itself (no empty row).
    pad = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
    m = document_mask(doc_ids, pad)[:, 0]
    assert not m[0, :5, 5:].any()
    assert m[0, 5:].equal(torch.eye(7, dtype=torch.bool)[5:])
    assert m.any(dim=-1).all()
    assert padding_positions(torch.tensor([[0, 0, 1, 1, 1]])).tolist() == [[0, 0, 0, 1, 2]]


@pytest.mark.parametrize("arch,kw", ARCHS)
def test_packed_loss_sum_equals_documents_alone(arch, kw):
    model = make(arch, **kw)
    lengths = [[7, 12, 5], [15, 9]]  # two packed rows of 24 tokens
    rows = [docs(ls, seed=i) for i, ls in enumerate(lengths)]
    ids = torch.stack([torch.cat(r) for r in rows])  # (2, 24)
    doc_ids = torch.stack(
        [torch.cat([torch.full((len(d),), j) for j, d in enumerate(r)]) for r in rows]
    )
    # Each document predicts its own next tokens; no target crosses a boundary.
    targets = torch.full_like(ids, -100)
    for b, r in enumerate(rows):
        at = 0
        for d in r:
            targets[b, at : at + len(d) - 1] = d[1:]
            at += len(d)
    _, packed = model(ids, targets, doc_ids=doc_ids, reduction="sum")
    alone = sum(model(d[None, :-1], d[None, 1:], reduction="sum")[1] for r in rows for d in r)
    # A float32 sum of ~40 terms near 200 is exact to its rounding (1 ulp = 1.5e-5), so the
    # sums are compared relatively and every per-token loss absolutely.
    torch.testing.assert_close(packed, alone, atol=0, rtol=1e-6)
    logits, _ = model(ids, doc_ids=doc_ids)
    per_token = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, T)
    for b, r in enumerate(rows):
        at = 0
        for d in r:
            ref, _ = model(d[None])
            torch.testing.assert_close(logits[b, at : at + len(d)], ref[0], atol=1e-5, rtol=0)
            ref_loss = F.cross_entropy(ref[0, :-1], d[1:], reduction="none")
            got = per_token[b, at : at + len(d) - 1]
            torch.testing.assert_close(got, ref_loss, atol=1e-5, rtol=0)
            at += len(d)
    # The mean is the sum over the counted targets.
    _, mean = model(ids, targets, doc_ids=doc_ids)
    torch.testing.assert_close(mean, packed / (targets != -100).sum(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("arch,kw", ARCHS)
def test_position_ids_equal_a_left_trimmed_run(arch, kw):
    model = make(arch, **kw)
    (x,) = docs([20])
    ref, _ = model(x[None, 6:])  # the row without its first 6 tokens, alone
    # The full row, its first 6 tokens hidden as left padding, positions from 0 at token 6.
    pos = (torch.arange(20) - 6).clamp_min(0)[None]
    mask = (torch.arange(20) >= 6)[None]
    out, _ = model(x[None], position_ids=pos, attn_mask=mask)
    torch.testing.assert_close(out[0, 6:], ref[0], atol=1e-5, rtol=0)
    # attn_mask alone counts positions from each row's first real token.
    out2, _ = model(x[None], attn_mask=mask)
    torch.testing.assert_close(out2[0, 6:], ref[0], atol=1e-5, rtol=0)
    # Other positions change the result (the test is not vacuous): a gap of 5 after token 3
    # (RoPE is relative, so a uniform shift alone would not show).
    gap = torch.arange(14) + 5 * (torch.arange(14) > 3)
    out3, _ = model(x[None, 6:], position_ids=gap[None])
    assert not torch.allclose(out3[0], ref[0], atol=1e-3)


@pytest.mark.parametrize("arch,kw", ARCHS)
def test_padding_never_changes_a_result(arch, kw):
    model = make(arch, **kw)
    seqs = docs([9, 14, 4], seed=3)
    T = 16
    ids = torch.zeros(3, T, dtype=torch.long)
    mask = torch.zeros(3, T, dtype=torch.bool)
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = s
        ids[b, len(s) :] = 7  # padding id: any value
        mask[b, : len(s)] = True
    logits, _ = model(ids, attn_mask=mask)
    assert torch.isfinite(logits).all()
    for b, s in enumerate(seqs):
        ref, _ = model(s[None])
        torch.testing.assert_close(logits[b, : len(s)], ref[0], atol=1e-5, rtol=0)
    # More padding (other pad values) changes nothing on real positions.
    ids2 = torch.cat([ids, torch.full((3, 8), 33)], dim=1)
    mask2 = torch.cat([mask, torch.zeros(3, 8, dtype=torch.bool)], dim=1)
    logits2, _ = model(ids2, attn_mask=mask2)
    for b, s in enumerate(seqs):
        torch.testing.assert_close(logits2[b, : len(s)], logits[b, : len(s)], atol=1e-5, rtol=0)
    # With packed documents and padding together, no NaN, and the loss ignores padding.
    doc_ids = torch.zeros(3, T, dtype=torch.long)
    doc_ids[:, 5:] = 1
    targets = torch.where(mask, ids, -100)
    _, loss = model(ids, targets, doc_ids=doc_ids, attn_mask=mask, reduction="sum")
    assert torch.isfinite(loss)


@pytest.mark.parametrize("arch,kw", ARCHS)
def test_gradients_flow_through_the_masked_path(arch, kw):
    model = make(arch, **kw).train()
    ids = torch.randint(0, 61, (2, 12))
    doc_ids = torch.tensor([[0] * 5 + [1] * 7, [0] * 12])
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 9:] = False
    targets = torch.where(mask, torch.roll(ids, -1, 1), -100)
    _, loss = model(ids, targets, doc_ids=doc_ids, attn_mask=mask)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.tok_emb.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("arch,kw", ARCHS)
def test_plain_path_is_unchanged(arch, kw, monkeypatch):
    model = make(arch, **kw)
    ids = torch.randint(0, 61, (2, 12))
    logits, _ = model(ids)
    # forward is features + lm_head, bitwise.
    assert torch.equal(logits, model.lm_head(model.features(ids)))
    # Without masks or positions attention runs is_causal with no mask (the fast path).
    seen = []
    sdpa = F.scaled_dot_product_attention

    def spy(*a, **k):
        seen.append((k.get("attn_mask"), k.get("is_causal")))
        return sdpa(*a, **k)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    again, _ = model(ids)
    assert torch.equal(again, logits)
    assert seen and all(m is None and c is True for m, c in seen)
    # An all-real mask gives the same logits through the masked path.
    masked, _ = model(ids, attn_mask=torch.ones(2, 12, dtype=torch.bool))
    torch.testing.assert_close(masked, logits, atol=1e-5, rtol=0)


def test_masks_with_a_kv_cache_are_refused():
    model = make("gpt")
    cache = model.new_kv_cache(1, 8)
    with pytest.raises(ValueError, match="cache-free"):
        model(torch.zeros(1, 3, dtype=torch.long), kv_cache=cache, doc_ids=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="reduction"):
        model(
            torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long), reduction="x"
        )


@pytest.mark.parametrize("arch", ["rnn", "bert"])
def test_sum_reduction_in_rnn_and_bert(arch):
    torch.manual_seed(0)
    cfg = dict(vocab_size=61, d_model=32, n_layer=1, n_head=4)
    if arch == "bert":
        cfg.update(d_ff=64, dropout=0.0)
    else:
        cfg.update(d_embed=32)
    model = build_model(arch, cfg).eval()
    ids = torch.randint(0, 61, (2, 10))
    targets = ids.clone()
    targets[:, :4] = -100
    logits, mean = model(ids, targets)
    _, total = model(ids, targets, reduction="sum")
    torch.testing.assert_close(total, mean * 12, atol=1e-5, rtol=1e-6)
    feats = model.features(ids)
    assert feats.shape == (2, 10, 32)
