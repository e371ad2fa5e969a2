"""BERT encoder: bidirectionality, segments, masked-LM training, Hugging Face parity."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from lmforge.common import ConfigError, LmforgeError
from lmforge.config import build_config
from lmforge.models import get_preset
from lmforge.models.bert import BertConfig, BertMLM
from lmforge.train.masked_lm import MaskedLMObjective


def tiny(**kw) -> BertMLM:
    torch.manual_seed(0)
    return BertMLM(dataclasses.replace(get_preset("bert-tiny")[1], **kw))


def test_attention_is_bidirectional_and_segments_matter():
    model = tiny().eval()
    ids = torch.randint(9, 512, (1, 10), generator=torch.Generator().manual_seed(1))
    base, _ = model(ids)
    later = ids.clone()
    later[0, 8] = 11
    changed, _ = model(later)
    # Unlike a decoder, earlier positions see later tokens.
    assert not torch.allclose(changed[0, :8], base[0, :8])
    seg = torch.zeros_like(ids)
    seg[0, 5:] = 1
    with_seg, _ = model(ids, token_type_ids=seg)
    assert not torch.allclose(with_seg, base)
    zeros, _ = model(ids, token_type_ids=torch.zeros_like(ids))
    torch.testing.assert_close(zeros, base)


def test_padding_mask_hides_padded_keys():
    model = tiny().eval()
    ids = torch.randint(9, 512, (1, 12), generator=torch.Generator().manual_seed(2))
    short, _ = model(ids[:, :7])
    padded = ids.clone()
    padded[0, 7:] = 0
    mask = torch.zeros_like(ids)
    mask[0, :7] = 1
    out, _ = model(padded, attention_mask=mask)
    torch.testing.assert_close(out[:, :7], short, atol=1e-5, rtol=0)


def test_errors_are_clear():
    model = tiny()
    with pytest.raises(LmforgeError, match="block_size"):
        model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(LmforgeError, match="fill-mask"):
        model(torch.zeros(1, 4, dtype=torch.long), kv_cache=object())
    with pytest.raises(ConfigError, match="n_head"):
        build_config(BertConfig, overrides={"d_model": 30, "n_head": 4})


def test_head_is_tied_to_the_embedding():
    model = tiny()
    names = dict(model.named_parameters())
    assert "lm_head.weight" not in names and "head_bias" in names
    ids = torch.randint(9, 512, (2, 8), generator=torch.Generator().manual_seed(3))
    _, loss = model(ids, ids)
    loss.backward()
    assert model.tok_emb.weight.grad is not None and model.tok_emb.weight.grad.abs().sum() > 0


def test_tiny_bert_masked_lm_loss_falls():
    # Sentences "a b c ... " from a few fixed templates: a blanked token is predictable
    # from both sides, which a masked LM learns in a few dozen steps.
    g = torch.Generator().manual_seed(4)
    templates = torch.randint(9, 512, (6, 24), generator=g)
    model = tiny()
    model.train()
    obj = MaskedLMObjective(mask_id=8, vocab_size=512, special_ids=range(9), seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        x = templates[torch.randint(6, (16,), generator=g)]  # (16, 24)
        out = obj.compute_loss(model, (x, x))
        loss, metrics = out.mean, out.metrics
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 5.5  # ~ln(512)
    # Well below the templates' unigram entropy (ln ~140 = 4.9): context is used.
    assert sum(losses[-5:]) / 5 < 3.2, losses
    assert 0.0 <= float(metrics["mlm_acc"]) <= 1.0


# --- Hugging Face parity ------------------------------------------------------------


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh"])
def test_export_matches_transformers_bert_for_masked_lm(tmp_path, activation):
    transformers = pytest.importorskip("transformers")
    from lmforge.export.hf_bert import export_bert_hf

    cfg = BertConfig(
        vocab_size=101,
        block_size=24,
        n_layer=2,
        n_head=4,
        d_model=32,
        d_ff=48,
        dropout=0.1,
        layer_norm_eps=1e-12,
        activation=activation,
    )
    torch.manual_seed(5)
    model = BertMLM(cfg).eval()
    with torch.no_grad():  # move every weight (biases, LayerNorms too) off its init
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    export_bert_hf(model, None, tmp_path, force=True)
    conf = json.loads((tmp_path / "config.json").read_text())
    assert conf["architectures"] == ["BertForMaskedLM"] and conf["max_position_embeddings"] == 24
    hf = transformers.BertForMaskedLM.from_pretrained(tmp_path).eval()
    assert hf.cls.predictions.decoder.weight.data_ptr() == (
        hf.bert.embeddings.word_embeddings.weight.data_ptr()
    )
    g = torch.Generator().manual_seed(6)
    ids = torch.randint(0, 101, (3, 20), generator=g)
    seg = torch.randint(0, 2, (3, 20), generator=g)
    mask = torch.ones(3, 20, dtype=torch.long)
    mask[1, 14:] = 0
    with torch.no_grad():
        ours, _ = model(ids, token_type_ids=seg, attention_mask=mask)
        theirs = hf(input_ids=ids, token_type_ids=seg, attention_mask=mask).logits
        plain, _ = model(ids)
        plain_hf = hf(input_ids=ids).logits
    assert (ours - theirs).abs().max().item() <= 1e-4
    assert (plain - plain_hf).abs().max().item() <= 1e-4


@pytest.mark.parametrize("preset,published", [("bert-base", 110e6), ("bert-large", 340e6)])
def test_published_sizes_match_transformers(preset, published):
    transformers = pytest.importorskip("transformers")
    from lmforge.export.hf_bert import bert_hf_config

    _, cfg = get_preset(preset)
    with torch.device("meta"):  # shapes only: no memory, no init cost
        ours = BertMLM(cfg).num_params()
        hf = transformers.BertForMaskedLM(transformers.BertConfig(**bert_hf_config(cfg)))
    theirs = sum(p.numel() for p in hf.parameters())
    assert ours == theirs
    # The paper rounds (and counts the pooler instead of the MLM head transform).
    assert abs(ours - published) / published < 0.02


def test_encode_with_masks_frames_the_text_and_handles_spaces(tmp_path):
    from lmforge.models.bert import encode_with_masks
    from lmforge.tokenizers.train import TokenizerConfig, train_tokenizer

    corpus = tmp_path / "c.txt"
    corpus.write_text("tom lives in paris. anna lives in oslo.\n\n" * 50, encoding="utf-8")
    bpe = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300), [corpus])
    ids = encode_with_masks(bpe, "tom lives in [MASK].")
    assert ids[0] == ids[-1] == bpe.eos_id
    # The space before the blank belongs to the hidden word (" paris"), not a token of its own.
    assert ids[1:-1] == [*bpe.encode("tom lives in"), bpe.mask_id, *bpe.encode(".")]
    assert encode_with_masks(bpe, "tom lives in <|mask|>.") == ids  # the literal token works too
    char = train_tokenizer(TokenizerConfig(kind="char", vocab_size=64, min_frequency=1), [corpus])
    # Characters: the space is a token of its own and stays.
    assert encode_with_masks(char, "in [MASK]")[1:-1] == [*char.encode("in "), char.mask_id]
    with pytest.raises(LmforgeError, match="no \\[MASK\\]"):
        encode_with_masks(bpe, "no blank")
