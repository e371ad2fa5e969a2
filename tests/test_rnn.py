"""RNN/LSTM/GRU language model: carried state, generation as a cache, TBPTT objective, training."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lmforge.common import ConfigError
from lmforge.config import build_config
from lmforge.models import get_preset
from lmforge.models.rnn import RNNLM, RNNConfig, RNNState
from lmforge.train.recurrent_lm import RecurrentLMObjective

CELLS = ["rnn", "lstm", "gru"]


def make(cell: str, attention: bool, **kw) -> RNNLM:
    torch.manual_seed(0)
    _, base = get_preset("rnn-tiny-attn" if attention else "rnn-tiny")
    return RNNLM(dataclasses.replace(base, cell=cell, **kw))


@pytest.mark.parametrize("attention", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_state_carried_over_two_windows_equals_one_window(cell, attention):
    # A window shorter than T so that the second window's attention reaches into memory.
    model = make(cell, attention, attn_window=6).eval()
    ids = torch.randint(0, 512, (3, 20), generator=torch.Generator().manual_seed(1))
    full, _ = model(ids)  # (3, 20, V)
    state = model.init_state(3)
    a, _ = model(ids[:, :10], kv_cache=state)
    b, _ = model(ids[:, 10:], kv_cache=state)
    assert state.pos == 20
    torch.testing.assert_close(torch.cat([a, b], dim=1), full, atol=1e-5, rtol=0)
    # A zero state is the same as no state.
    fresh, _ = model(ids[:, :10], kv_cache=model.init_state(3))
    torch.testing.assert_close(fresh, a, atol=1e-6, rtol=0)


@pytest.mark.parametrize("attention", [False, True])
def test_token_by_token_decoding_matches_full_window(attention):
    # What a generation engine does: prefill the prompt, then feed one token at a time.
    model = make("lstm", attention, attn_window=4).eval()
    ids = torch.randint(0, 512, (2, 12), generator=torch.Generator().manual_seed(2))
    full, _ = model(ids)
    state = model.init_state(2)
    pre, _ = model(ids[:, :5], kv_cache=state)
    steps = [model(ids[:, i : i + 1], kv_cache=state)[0] for i in range(5, 12)]
    torch.testing.assert_close(torch.cat([pre, *steps], dim=1), full, atol=1e-5, rtol=0)
    if attention:
        assert state.memory.shape == (2, 3, 64)  # only attn_window - 1 past outputs are kept


def test_attention_sees_only_its_window():
    model = make("gru", True, attn_window=3).eval()
    attn = model.attn
    h = torch.randn(1, 10, 64, generator=torch.Generator().manual_seed(3))
    out, _ = attn(h, None)
    h2 = h.clone()
    h2[0, 2] += 5.0  # position 2 is outside the window of position 6 (sees 4, 5, 6)
    out2, _ = attn(h2, None)
    torch.testing.assert_close(out2[0, 5:], out[0, 5:])
    assert not torch.allclose(out2[0, 2:5], out[0, 2:5])


def test_reorder_selects_rows():
    model = make("lstm", True).eval()
    ids = torch.randint(0, 512, (3, 8), generator=torch.Generator().manual_seed(4))
    state = model.init_state(3)
    model(ids, kv_cache=state)
    nxt = torch.randint(0, 512, (3, 2), generator=torch.Generator().manual_seed(5))
    ref = [model(nxt, kv_cache=RNNState.from_state_dict(state.state_dict()))[0]]
    state.reorder_(torch.tensor([2, 0]))
    got, _ = model(nxt[[2, 0]], kv_cache=state)
    torch.testing.assert_close(got, ref[0][[2, 0]])


def test_mismatched_state_rows_is_an_error():
    model = make("gru", False)
    with pytest.raises(ValueError, match="state has 2 rows"):
        model(torch.zeros(3, 4, dtype=torch.long), kv_cache=model.init_state(2))


def test_loss_ignores_minus_100():
    model = make("rnn", False).eval()
    ids = torch.randint(0, 512, (2, 6), generator=torch.Generator().manual_seed(6))
    tgt = ids.roll(-1, dims=1)
    tgt[:, -1] = -100
    logits, loss = model(ids, tgt)
    ref = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 512), tgt[:, :-1].reshape(-1)
    )
    torch.testing.assert_close(loss, ref)


def test_tied_embeddings_with_projection():
    cfg = RNNConfig(vocab_size=100, d_model=48, d_embed=16, n_layer=1, tie_embeddings=True)
    model = RNNLM(cfg)
    assert model.lm_head.weight is model.tok_emb.weight
    assert model.proj.weight.shape == (16, 48)
    untied = RNNLM(dataclasses.replace(cfg, tie_embeddings=False))
    assert untied.proj is None and untied.lm_head.weight.shape == (100, 48)
    assert untied.num_params() > model.num_params()


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="n_head"):
        build_config(RNNConfig, overrides={"attention": True, "d_model": 30, "n_head": 4})
    with pytest.raises(ConfigError, match="cell"):
        build_config(RNNConfig, overrides={"cell": "transformer"})


def test_tbptt_objective_carries_values_but_not_gradients():
    model = make("lstm", True, attn_window=6)
    model.eval()  # no dropout in the tiny preset anyway; eval for exactness
    ids = torch.randint(0, 512, (2, 17), generator=torch.Generator().manual_seed(7))
    x, y = ids[:, :-1], ids[:, 1:]
    obj = RecurrentLMObjective(carry_state=True)
    loss1 = obj.compute_loss(model, (x[:, :8], y[:, :8])).mean
    assert not obj.state.h.requires_grad and not obj.state.memory.requires_grad
    loss2 = obj.compute_loss(model, (x[:, 8:], y[:, 8:])).mean
    # The two windows' mean losses equal the loss of the whole sequence in one window.
    _, whole = model(x, y)
    torch.testing.assert_close((loss1 + loss2) / 2, whole, atol=1e-5, rtol=0)
    # Backward of the second window does not reach the first window's graph (truncation).
    loss2.backward()
    loss1.backward()  # would fail with "backward through the graph a second time" if shared

    # The carried state round-trips through a checkpoint's objective state.
    saved = obj.state_dict()
    other = RecurrentLMObjective()
    other.load_state_dict(saved)
    torch.testing.assert_close(other.state.h, obj.state.h)
    torch.testing.assert_close(other.state.memory, obj.state.memory)
    assert RecurrentLMObjective().state_dict() == {}


def _pattern_batches(vocab: int, B: int, T: int, steps: int, seed: int):
    """Windows over a repeating random token pattern: learnable in a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    pattern = torch.randint(9, vocab, (23,), generator=g)
    stream = pattern.repeat(B * (steps + 1) * T // 23 + 2)
    rows = stream[: B * ((len(stream) - 1) // B)].view(B, -1)  # each row continues its own text
    for s in range(steps):
        x = rows[:, s * T : (s + 1) * T]
        y = rows[:, s * T + 1 : (s + 1) * T + 1]
        yield x, y


@pytest.mark.parametrize(
    "cell,attention",
    [("rnn", False), ("lstm", False), ("gru", False), ("rnn", True), ("lstm", True), ("gru", True)],
)
def test_tiny_rnn_loss_falls(cell, attention):
    model = make(cell, attention)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    obj = RecurrentLMObjective(carry_state=True)
    losses = []
    for x, y in _pattern_batches(512, 4, 16, 30, seed=8):
        loss = obj.compute_loss(model, (x, y)).mean
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    last = sum(losses[-5:]) / 5
    assert losses[0] > 5.5  # ~ln(512) at the start
    # From ~ln(512) to well below ln(23) (the unigram entropy of the pattern): the
    # model uses its input and state, not just token frequencies.
    assert last < 1.5, (cell, attention, losses)


@pytest.mark.parametrize("attention", [False, True])
def test_generation_engine_uses_the_state_as_its_cache(attention):
    from lmforge.inference.engine import generate
    from lmforge.inference.sampling import SamplingConfig

    model = make("gru", attention, attn_window=4).eval()
    prompts = [[10, 11, 12, 13, 14], [20, 21, 22]]  # different lengths: rows run one by one
    for temperature in (0.0, 1.0):
        cfg = SamplingConfig(max_new_tokens=8, temperature=temperature, seed=3)
        cached = generate(model, prompts, cfg)
        reference = generate(model, prompts, cfg, use_cache=False)  # re-reads the whole text
        assert cached == reference and all(len(g) == 8 for g in cached)
    same_len = generate(
        model, [[1, 2, 3], [4, 5, 6]], SamplingConfig(max_new_tokens=5, temperature=0)
    )
    assert same_len == [
        generate(model, [p], SamplingConfig(max_new_tokens=5, temperature=0))[0]
        for p in ([1, 2, 3], [4, 5, 6])
    ]
