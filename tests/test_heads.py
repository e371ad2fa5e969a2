"""Scalar (reward) and value heads, their self-describing checkpoints, embedding resize."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors import safe_open

from lmforge.common import LmforgeError
from lmforge.models import (
    arch_of,
    build_model,
    config_to_dict,
    load_model,
    resize_token_embeddings,
    save_model,
    weights_metadata,
)
from lmforge.models.heads import HeadModel, WithScalarHead, WithValueHead, head_kind, row_sides

SMALL = dict(vocab_size=61, block_size=32, n_layer=2, n_head=4, d_model=32, init_std=0.2)
BASES = {
    "gpt": SMALL,
    "llama": {**SMALL, "n_kv_head": 2},
    "rnn": dict(vocab_size=61, d_model=32, d_embed=32, n_layer=1),
    "bert": dict(vocab_size=61, d_model=32, n_layer=1, n_head=4, d_ff=64, dropout=0.0),
}


def base(arch: str = "gpt"):
    torch.manual_seed(0)
    return build_model(arch, BASES[arch]).eval()


def padded(seqs: list[torch.Tensor], T: int, pad: int = 9):
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.bool)
    for b, s in enumerate(seqs):
        ids[b, : len(s)], mask[b, : len(s)] = s, True
    return ids, mask


def test_head_init_and_shapes():
    model = WithScalarHead(base())
    assert model.head.weight.shape == (1, 32) and torch.equal(model.head.bias, torch.zeros(1))
    torch.manual_seed(1)
    big = HeadModel(build_model("gpt", {**SMALL, "d_model": 256, "n_head": 4}), "scalar")
    std = big.head.weight.std().item()
    assert abs(std - 1 / math.sqrt(257)) < 0.3 / math.sqrt(257)
    ids = torch.randint(0, 61, (3, 7))
    assert model(ids).shape == (3,)
    assert WithValueHead(base())(ids).shape == (3, 7)
    with pytest.raises(ValueError, match="scalar, value"):
        HeadModel(base(), "q")


@pytest.mark.parametrize("arch", list(BASES))
def test_score_is_the_head_at_the_last_real_token(arch):
    model = WithScalarHead(base(arch)).eval()
    g = torch.Generator().manual_seed(2)
    seqs = [torch.randint(0, 61, (n,), generator=g) for n in (5, 9, 3)]
    ids, mask = padded(seqs, 12)
    scores = model(ids, attn_mask=mask)
    for b, s in enumerate(seqs):
        h = model.base.features(s[None])  # the row alone, unpadded
        torch.testing.assert_close(scores[b], model.head(h[0, -1])[0], atol=1e-5, rtol=0)
    # lengths say the same as the mask; more (and other) padding changes nothing.
    lengths = torch.tensor([len(s) for s in seqs])
    torch.testing.assert_close(model(ids, lengths=lengths), scores, atol=1e-5, rtol=0)
    ids2, mask2 = padded(seqs, 20, pad=44)
    torch.testing.assert_close(model(ids2, attn_mask=mask2), scores, atol=1e-5, rtol=0)
    # Value head: one value per position, equal to the head on each position's features.
    value = HeadModel(model.base, "value")
    values = value(ids, attn_mask=mask)
    for b, s in enumerate(seqs):
        ref = value.head(model.base.features(s[None]))[0, :, 0]
        torch.testing.assert_close(values[b, : len(s)], ref, atol=1e-5, rtol=0)


def test_gradients_reach_base_and_head():
    model = WithScalarHead(base("llama")).train()
    ids, mask = padded([torch.arange(5), torch.arange(8)], 8)
    model(ids, attn_mask=mask).sum().backward()
    assert model.head.weight.grad.abs().sum() > 0
    assert model.base.tok_emb.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", ["gpt", "llama", "bert"])
@pytest.mark.parametrize("kind", ["scalar", "value"])
def test_head_checkpoint_round_trip(tmp_path, arch, kind):
    model = HeadModel(base(arch), kind).eval()
    with torch.no_grad():
        model.head.bias.fill_(0.25)
    meta = weights_metadata(model)
    assert meta["lmforge_head"] == kind and meta["lmforge_arch"] == arch
    assert arch_of(model) == arch and config_to_dict(model) == config_to_dict(model.base.config)
    assert json.loads(meta["lmforge_model_config"]) == config_to_dict(model.config)
    path = save_model(model, tmp_path / "rm")
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["lmforge_head"] == kind
    loaded = load_model(path).eval()
    assert head_kind(loaded) == kind
    ids = torch.randint(0, 61, (2, 6))
    torch.testing.assert_close(loaded(ids), model(ids), atol=0, rtol=0)
    # Only the base (initialise a policy from a reward model): the same base weights.
    plain = load_model(path, head=False).eval()
    assert head_kind(plain) is None
    sd = model.base.state_dict()
    assert all(torch.equal(v, sd[k]) for k, v in plain.state_dict().items())
    # The other kind on the same base: a fresh head (bias 0), the base weights kept.
    other = "value" if kind == "scalar" else "scalar"
    swapped = load_model(path, head=other)
    assert head_kind(swapped) == other and torch.equal(swapped.head.bias, torch.zeros(1))
    assert torch.equal(swapped.base.tok_emb.weight, model.base.tok_emb.weight)


def test_plain_checkpoint_into_a_fresh_head_model(tmp_path):
    b = base("gpt")
    path = save_model(b, tmp_path / "base")
    assert "lmforge_head" not in weights_metadata(b)
    critic = load_model(path, head="value")
    assert head_kind(critic) == "value"
    assert torch.equal(critic.base.lm_head.weight, b.lm_head.weight)
    assert critic.base.lm_head.weight is critic.base.tok_emb.weight  # still tied
    # And by composition, without a file: the same thing.
    assert WithValueHead(load_model(path)).base.config == b.config
    with pytest.raises(LmforgeError, match="no head"):
        load_model(path, head=True)
    # A head checkpoint saved and reloaded keeps its base loadable as a plain model.
    rm = save_model(WithScalarHead(b), tmp_path / "rm")
    assert head_kind(load_model(rm, head=True)) == "scalar"


@pytest.mark.parametrize(
    "arch,kw", [("gpt", {}), ("llama", {}), ("llama", {"tie_embeddings": True})]
)
def test_resize_token_embeddings(tmp_path, arch, kw):
    model = build_model(arch, {**SMALL, **kw}).eval()
    ids = torch.randint(0, 61, (2, 9))
    before, _ = model(ids)
    old_emb = model.tok_emb.weight.detach().clone()
    resize_token_embeddings(model, 64)
    assert model.config.vocab_size == 64 and model.tok_emb.weight.shape == (64, 32)
    assert model.lm_head.weight.shape == (64, 32)
    assert (model.lm_head.weight is model.tok_emb.weight) == model.config.tie_embeddings
    assert torch.equal(model.tok_emb.weight[:61], old_emb)
    torch.testing.assert_close(model.tok_emb.weight[61:], old_emb.mean(0).expand(3, -1))
    after, _ = model(torch.cat([ids, torch.tensor([[63], [62]])], dim=1))
    assert after.shape == (2, 10, 64)
    torch.testing.assert_close(after[:, :9, :61], before, atol=1e-5, rtol=0)
    loaded = load_model(save_model(model, tmp_path / "m"))
    assert loaded.config.vocab_size == 64


def test_resize_bert_rnn_and_head_models():
    bert = base("bert")
    resize_token_embeddings(bert, 70)
    assert bert.head_bias.shape == (70,) and bert(torch.tensor([[69, 1]]))[0].shape == (1, 2, 70)
    rnn = base("rnn")
    resize_token_embeddings(rnn, 65)
    assert rnn(torch.tensor([[64, 1]]))[0].shape == (1, 2, 65)
    rm = WithScalarHead(base("gpt"))
    resize_token_embeddings(rm, 66)
    assert rm.config.vocab_size == 66 and rm(torch.tensor([[65, 3]])).shape == (1,)


@pytest.mark.parametrize("arch", ["llama", "rnn"])
def test_reward_lm_coef_adds_the_chosen_answers_mean_cross_entropy(arch):
    """RewardObjective(lm_coef=λ): per pair, the ranking loss + λ · the mean cross-entropy
    of the chosen answer under the base's own forward; rejected answers are not modelled."""
    from lmforge.train.reward import RewardObjective, ranking_loss

    model = WithScalarHead(base(arch)).eval()
    g = torch.Generator().manual_seed(4)
    prompts = [torch.randint(0, 61, (n,), generator=g) for n in (4, 6)]
    answers = [torch.randint(0, 61, (n,), generator=g) for n in (3, 5, 2, 4)]  # c0 c1 r0 r1
    rows = [torch.cat([prompts[i % 2], a]) for i, a in enumerate(answers)]
    ids, _ = padded(rows, 12)
    lengths = torch.tensor([len(r) for r in rows])
    resp = torch.zeros(4, 12, dtype=torch.bool)
    for i, a in enumerate(answers):
        start = len(prompts[i % 2])
        resp[i, start : start + len(a)] = True
    batch = {"ids": ids, "lengths": lengths, "response_mask": resp, "sides": row_sides(resp),
             "margin": torch.tensor([0.5, 0.0])}  # fmt: skip
    plain = RewardObjective().compute_loss(model, batch)
    out = RewardObjective(lm_coef=0.3).compute_loss(model, batch)
    scores = model(ids, lengths=lengths)  # (4,)
    expect = ranking_loss(scores[:2], scores[2:], batch["margin"])  # (2,)
    torch.testing.assert_close(plain.loss_sum, expect.sum(), atol=1e-5, rtol=0)
    nll = []
    for b in range(2):  # the chosen rows alone, through the plain language model
        logits, _ = model.base(rows[b][None])
        start = len(prompts[b])
        logp = torch.log_softmax(logits[0, start - 1 : -1].float(), -1)  # predicts the answer
        nll.append(-logp.gather(1, answers[b][:, None]).mean())
    torch.testing.assert_close(
        out.loss_sum, (expect + 0.3 * torch.stack(nll)).sum(), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        out.metrics["chosen_nll"], torch.stack(nll).mean(), atol=1e-5, rtol=0
    )
    # The rejected answers' tokens do not enter the language-model term.
    batch2 = {**batch, "ids": ids.clone()}
    batch2["ids"][2, len(prompts[0])] = (ids[2, len(prompts[0])] + 1) % 61
    d_rank = RewardObjective().compute_loss(model, batch2).loss_sum - plain.loss_sum
    d_lm = RewardObjective(lm_coef=0.3).compute_loss(model, batch2).loss_sum - out.loss_sum
    torch.testing.assert_close(d_lm, d_rank, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["llama", "rnn"])
def test_likelihood_head_scores_beta_times_the_answers_mean_log_probability(arch, tmp_path):
    """kind="likelihood": w · mean_t log p(answer_t | before) + b, w starting at `scale`,
    computed from the base's own logits; padding and the prompt's tokens change nothing
    but the context; the head survives save/load and a bert base is refused."""
    model = HeadModel(base(arch), "likelihood", scale=2.5).eval()
    assert model.head.weight.item() == 2.5 and model.head.bias.item() == 0.0
    g = torch.Generator().manual_seed(7)
    prompts = [torch.randint(0, 61, (n,), generator=g) for n in (5, 3)]
    answers = [torch.randint(0, 61, (n,), generator=g) for n in (4, 6)]
    rows = [torch.cat([p, a]) for p, a in zip(prompts, answers)]
    ids, real = padded(rows, 12)
    resp = torch.zeros(2, 12, dtype=torch.bool)
    for b, p in enumerate(prompts):
        resp[b, len(p) : len(rows[b])] = True
    scores = model(ids, lengths=real.sum(1), response_mask=resp)  # (2,)
    expect = []
    for b in range(2):
        logits, _ = model.base(rows[b][None])
        logp = torch.log_softmax(logits[0, len(prompts[b]) - 1 : -1].float(), -1)
        expect.append(2.5 * logp.gather(1, answers[b][:, None]).mean())
    torch.testing.assert_close(scores, torch.stack(expect), atol=1e-5, rtol=0)
    other = ids.clone()
    other[~real] = 3  # another padding token
    torch.testing.assert_close(model(other, response_mask=resp), scores, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="response_mask"):
        model(ids)
    with torch.no_grad():
        model.head.weight.fill_(1.25)
        model.head.bias.fill_(0.5)
    save_model(model, tmp_path / "m.safetensors")
    back = load_model(tmp_path / "m.safetensors").eval()
    assert head_kind(back) == "likelihood"
    torch.testing.assert_close(back(ids, response_mask=resp), 0.5 * scores + 0.5, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="decoder"):
        HeadModel(base("bert"), "likelihood")
