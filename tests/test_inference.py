"""Generation engine: KV cache vs no cache, padded batches, sampling controls, stops, scoring."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmforge.common import ConfigError, LmforgeError
from lmforge.config import build_config
from lmforge.inference import (
    KVCache,
    SamplingConfig,
    generate,
    generate_full,
    sequence_logprobs,
    stream_generate,
    token_logprobs,
    truncate_at_stop,
)
from lmforge.inference.sampling import apply_repetition_penalty, filter_top_k, filter_top_p
from lmforge.models import build_model

V = 101


def make(arch: str, **kw):
    torch.manual_seed(0)
    cfg = dict(vocab_size=V, block_size=48, n_layer=2, n_head=4, d_model=32, init_std=0.5)
    return build_model(arch, {**cfg, **kw}).eval()


MODELS = [("gpt", {}), ("gpt", {"prenorm": False}), ("llama", {}), ("llama", {"n_kv_head": 2})]
GREEDY = SamplingConfig(max_new_tokens=12, temperature=0.0)
PROMPTS = [[5, 17, 33, 2, 8, 9, 60], [7], [40, 41, 42, 43]]


@pytest.mark.parametrize("arch,kw", MODELS)
def test_kv_cache_equals_no_cache_greedy(arch, kw):
    model = make(arch, **kw)
    cached = generate(model, PROMPTS, GREEDY)
    plain = generate(model, PROMPTS, GREEDY, use_cache=False)
    assert cached == plain
    assert all(len(o) == 12 for o in cached)
    assert len({tuple(o) for o in cached}) > 1  # the model is not degenerate


@pytest.mark.parametrize("arch,kw", MODELS)
def test_padded_batch_equals_each_prompt_alone(arch, kw):
    model = make(arch, **kw)
    batch = generate(model, PROMPTS, GREEDY, pad_id=3)
    alone = [generate(model, [p], GREEDY)[0] for p in PROMPTS]
    assert batch == alone


def test_padded_cache_logits_match_unpadded():
    model = make("llama", n_kv_head=2)
    prompt = [4, 9, 16, 25, 36]
    with torch.inference_mode():
        ref = model(torch.tensor([prompt]))[0][0, -1]
        cache = model.new_kv_cache(2, 12, pad_lens=[3, 0])
        ids = torch.tensor([[0, 0, 0, *prompt], [1, 2, 3, 4, 5, 6, 7, 8]])
        out = model(ids, kv_cache=cache)[0]
    assert torch.allclose(out[0, -1], ref, atol=1e-5)
    assert torch.isfinite(out).all()  # padding queries never see an empty softmax row


def test_kv_cache_writes_in_place():
    model = make("llama")
    cache = model.new_kv_cache(1, 20)
    ptr = cache.k.data_ptr()
    with torch.inference_mode():
        model(torch.tensor([[1, 2, 3]]), kv_cache=cache)
        model(torch.tensor([[4]]), kv_cache=cache)
    assert cache.pos == 4 and cache.k.data_ptr() == ptr
    assert cache.k[:, :, :, :4].abs().sum() > 0 and cache.k[:, :, :, 4:].abs().sum() == 0
    cache.reset()
    assert cache.pos == 0 and not cache.padded
    assert isinstance(cache, KVCache)


def test_seeded_sampling_is_reproducible():
    model = make("llama")
    cfg = SamplingConfig(max_new_tokens=16, temperature=1.0, seed=123)
    a = generate(model, PROMPTS, cfg)
    assert a == generate(model, PROMPTS, cfg)
    b = generate(model, PROMPTS, SamplingConfig(max_new_tokens=16, temperature=1.0, seed=7))
    assert a != b


def test_top_k_one_and_tiny_top_p_are_greedy():
    model = make("gpt")
    greedy = generate(model, PROMPTS, GREEDY)
    assert generate(model, PROMPTS, SamplingConfig(max_new_tokens=12, top_k=1, seed=5)) == greedy
    assert generate(model, PROMPTS, SamplingConfig(max_new_tokens=12, top_p=1e-6, seed=5)) == greedy


def test_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = filter_top_p(logits, 0.8)  # 0.5 + 0.3 reaches 0.8
    assert torch.isfinite(kept).tolist() == [[True, True, False, False]]
    kept = filter_top_p(logits, 0.81)
    assert torch.isfinite(kept).tolist() == [[True, True, True, False]]
    assert torch.isfinite(filter_top_k(logits, 3)).sum() == 3
    seen = torch.tensor([[True, False, True, False]])
    pen = apply_repetition_penalty(torch.tensor([[2.0, 2.0, -2.0, -2.0]]), seen, 2.0)
    assert pen.tolist() == [[1.0, 2.0, -4.0, -2.0]]


def test_repetition_penalty_discourages_repeats():
    model = make("gpt")
    plain = generate(model, [[1, 2, 3]], SamplingConfig(max_new_tokens=30, temperature=0.0))[0]
    cfg = SamplingConfig(max_new_tokens=30, temperature=0.0, repetition_penalty=1e4)
    penalised = generate(model, [[1, 2, 3]], cfg)[0]
    assert len(set(plain)) < len(plain)  # greedy alone repeats itself
    assert len(set(penalised)) == len(penalised) and not {1, 2, 3} & set(penalised)


def test_stop_tokens_and_streaming():
    model = make("llama")
    full = generate(model, PROMPTS, GREEDY)
    stop = full[0][4]
    cfg = SamplingConfig(max_new_tokens=12, temperature=0.0, stop_token_ids=[stop])
    out = generate_full(model, PROMPTS, cfg)
    streamed = [
        (e.row, e.token) for e in stream_generate(model, PROMPTS, cfg) if e.token is not None
    ]
    first = full[0].index(stop)
    assert out[0].tokens == full[0][:first] and out[0].finish_reason == "stop"
    for row, g in enumerate(out):
        assert [t for r, t in streamed if r == row] == g.tokens
        if stop not in full[row]:
            assert g.tokens == full[row] and g.finish_reason == "length"
    kept = generate(model, PROMPTS[:1], cfg, include_stop=True)[0]
    assert kept == full[0][: first + 1]


def test_stop_strings():
    model = make("gpt")
    full = generate(model, [[1, 2]], SamplingConfig(max_new_tokens=20, temperature=0.0))[0]

    def decode(ids):
        return "".join(f"<{i}>" for i in ids)

    target = f"<{full[5]}><{full[6]}>"
    cfg = SamplingConfig(max_new_tokens=20, temperature=0.0, stop_strings=[target])
    out = generate_full(model, [[1, 2]], cfg, decode=decode)[0]
    end = decode(full).index(target) + len(target)
    assert decode(out.tokens) == decode(full)[:end] and out.finish_reason == "stop"
    assert truncate_at_stop(decode(out.tokens), [target]) == decode(full)[: end - len(target)]
    with pytest.raises(LmforgeError, match="decode"):
        generate(model, [[1]], cfg)


def test_context_limit_and_bad_prompts():
    model = make("gpt")  # block_size 48
    out = generate_full(model, [[1] * 40], SamplingConfig(max_new_tokens=30, temperature=0.0))
    assert len(out[0].tokens) == 8 and out[0].finish_reason == "length"
    with pytest.raises(LmforgeError, match="prompt 1 is empty"):
        generate(model, [[1], []], GREEDY)
    with pytest.raises(LmforgeError, match="context is 48"):
        generate(model, [[1] * 48], GREEDY)


def test_sampling_config_validation():
    with pytest.raises(ConfigError, match="top_p"):
        build_config(SamplingConfig, overrides={"top_p": 0})
    with pytest.raises(ConfigError, match="temperature"):
        build_config(SamplingConfig, overrides={"temperature": -1})
    cfg = build_config(SamplingConfig, overrides={"stop_token_ids": "2,7", "seed": "none"})
    assert cfg.stop_token_ids == [2, 7] and cfg.seed is None


def test_sequence_logprobs_match_a_manual_forward():
    model = make("llama")
    prompts, completions = [[1, 2, 3], [4, 5], [6]], [[7, 8], [9], [10, 11, 12]]
    scores = sequence_logprobs(model, prompts, completions, batch_size=2)
    for p, c, s in zip(prompts, completions, scores):
        ids = torch.tensor([p + c])
        with torch.no_grad():
            logp = F.log_softmax(model(ids)[0][0], dim=-1)
        manual = sum(logp[len(p) - 1 + j, t].item() for j, t in enumerate(c))
        assert s == pytest.approx(manual, abs=1e-4)
    assert sequence_logprobs(model, prompts, completions, batch_size=1) == pytest.approx(
        scores, abs=1e-5
    )


def test_token_logprobs_is_differentiable():
    model = make("gpt")
    model.train()
    lp = token_logprobs(model, torch.tensor([[1, 2, 3, 4]]))
    assert lp.shape == (1, 3) and (lp <= 0).all()
    lp.sum().backward()
    assert model.tok_emb.weight.grad is not None


def test_generate_restores_training_mode():
    model = make("gpt", dropout=0.1)
    model.train()
    generate(model, [[1, 2]], GREEDY)
    assert model.training


def test_models_whose_cache_cannot_pad_run_row_by_row():
    """A cache without left-padding support (an RNN state, say) still serves a batch."""
    model = make("llama")
    calls = []

    class NoPadding(type(model)):
        def new_kv_cache(self, batch_size, max_len, pad_lens=None):
            calls.append((batch_size, pad_lens))
            if pad_lens is not None:
                raise NotImplementedError("no left padding")
            return super().new_kv_cache(batch_size, max_len)

    model.__class__ = NoPadding
    assert generate(model, PROMPTS, GREEDY) == [generate(model, [p], GREEDY)[0] for p in PROMPTS]
    assert calls[0] == (3, [0, 6, 3]) and all(b == 1 for b, _ in calls[1:])


@pytest.mark.slow
@pytest.mark.parametrize("arch,kw", [("llama", {"n_kv_head": 2}), ("gpt", {})])
def test_compiled_generation_equals_eager(arch, kw):
    """torch.compile'd decoding: the same tokens, alone, padded, and at new prompt lengths."""
    model = make(arch, **kw)
    for prompts in ([PROMPTS[0]], PROMPTS, [PROMPTS[2]]):
        assert generate(model, prompts, GREEDY, compile=True) == generate(model, prompts, GREEDY)
