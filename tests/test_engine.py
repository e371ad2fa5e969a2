"""The generation engine for many answers: shared prefills, per-row seeds and stops,
compaction of finished rows, log-probabilities, cancellable streaming, incremental
detokenization."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tokenizers_corpus import write_corpus

from lmforge.inference import (
    SamplingConfig,
    default_stop_ids,
    generate,
    generate_full,
    per_prompt,
    row_seeds,
    stream_generate,
    token_logprobs,
)
from lmforge.models import build_model
from lmforge.tokenizers import TokenizerConfig, train_tokenizer
from lmforge.tokenizers.detok import IncrementalDecoder

V = 101
PROMPTS = [[5, 17, 33, 2, 8, 9, 60], [7], [40, 41, 42, 43]]
SAMPLE = SamplingConfig(max_new_tokens=14, temperature=0.9, top_k=20, top_p=0.9, seed=11)


def make(arch: str = "llama", vocab: int = V, **kw):
    torch.manual_seed(0)
    cfg = dict(vocab_size=vocab, block_size=48, n_layer=2, n_head=4, d_model=32, init_std=0.5)
    return build_model(arch, {**cfg, **kw}).eval()


class Forwards:
    """Records the (batch, length) of every model forward (a forward pre-hook)."""

    def __init__(self, model):
        self.shapes: list[tuple[int, int]] = []
        model.register_forward_pre_hook(lambda m, args: self.shapes.append(tuple(args[0].shape)))

    @property
    def prefills(self) -> list[tuple[int, int]]:
        return [s for s in self.shapes if s[1] > 1]


def batch_of_8(p):
    others = [[3, 4, 5, 6, 7, 8, 9, 10, 11], [12], [13, 14], [15, 16, 17, 18, 19, 20], [21, 22, 23]]
    return [others[0], others[1], p, others[2], others[3], [30, 31, 32, 33, 34], others[4], [99]]


@pytest.mark.parametrize("arch,kw", [("llama", {"n_kv_head": 2}), ("gpt", {})])
def test_a_row_samples_the_same_alone_and_in_a_padded_batch_of_8(arch, kw):
    model = make(arch, **kw)
    p = [40, 41, 42, 43]
    alone = generate(model, [p], SAMPLE, seeds=[1234])[0]
    batch = batch_of_8(p)
    seeds = [7, 8, 1234, 9, 10, 11, 12, 13]
    assert generate(model, batch, SAMPLE, seeds=seeds)[2] == alone
    assert len(alone) == 14 and len(set(alone)) > 3  # sampling, not a degenerate model
    # Default seeds: prompt i uses cfg.seed + i, so the first prompt of a batch samples as alone.
    assert generate(model, [p, *batch[:7]], SAMPLE)[0] == generate(model, [p], SAMPLE)[0]
    # Another seed gives another sample.
    assert generate(model, [p], SAMPLE, seeds=[99])[0] != alone


def test_row_seeds_are_documented_and_explicit_seeds_accepted():
    cfg = SamplingConfig(seed=5, n=3)
    assert row_seeds(cfg, 2) == [5, 5 + 1_000_003, 5 + 2_000_006, 6, 6 + 1_000_003, 6 + 2_000_006]
    assert row_seeds(cfg, 2, seeds=[10, 20])[3:] == [20, 20 + 1_000_003, 20 + 2_000_006]
    assert row_seeds(cfg, 2, seeds=list(range(6))) == list(range(6))
    with pytest.raises(Exception, match="one per prompt"):
        row_seeds(cfg, 2, seeds=[1, 2, 3])


def test_n_samples_share_one_prefill_and_equal_separate_calls():
    model = make("llama")
    forwards = Forwards(model)
    p = [5, 17, 33, 2, 8, 9, 60]
    cfg = SamplingConfig(max_new_tokens=10, temperature=1.0, seed=3, n=8)
    out = generate_full(model, [p], cfg)
    assert forwards.prefills == [(1, 7)]  # one prefill of the prompt, for 8 samples
    assert {s[0] for s in forwards.shapes if s[1] == 1} == {8}  # then 8 rows decode together
    assert [(g.prompt_index, g.sample_index) for g in out] == [(0, j) for j in range(8)]
    one = SamplingConfig(max_new_tokens=10, temperature=1.0)
    for j, seed in enumerate(row_seeds(cfg, 1)):
        assert generate(model, [p], one, seeds=[seed])[0] == out[j].tokens
    assert len({tuple(g.tokens) for g in out}) > 1  # the samples differ
    # Two prompts, 3 samples each: one padded prefill of 2 rows, prompt-major output.
    forwards.shapes.clear()
    cfg = SamplingConfig(max_new_tokens=6, temperature=1.0, seed=3, n=3)
    two = generate(model, PROMPTS[:2], cfg)
    assert forwards.prefills == [(2, 7)]
    seeds = row_seeds(cfg, 2)
    for r, tokens in enumerate(two):
        alone = generate(
            model, [PROMPTS[r // 3]], SamplingConfig(max_new_tokens=6), seeds=[seeds[r]]
        )
        assert alone[0] == tokens
    assert [len(g) for g in per_prompt(two, 3)] == [3, 3]


def test_identical_prompts_are_prefilled_once():
    model = make("gpt")
    forwards = Forwards(model)
    cfg = SamplingConfig(max_new_tokens=5, temperature=1.0, seed=0)
    out = generate(model, [[1], [1], [1], [2, 3]], cfg)
    assert forwards.prefills == [(2, 2)] and forwards.shapes[0] == (2, 2)
    assert len({tuple(o) for o in out[:3]}) > 1  # different seeds, different samples


def test_logprobs_equal_a_teacher_forced_forward():
    model = make("llama", n_kv_head=2)
    cfg = SamplingConfig(max_new_tokens=12, temperature=0.7, top_k=10, seed=2, n=2,
                         repetition_penalty=1.3)  # fmt: skip
    out = generate_full(model, PROMPTS, cfg, logprobs=True)
    for g in out:
        prompt = PROMPTS[g.prompt_index]
        ids = torch.tensor([prompt + g.tokens])
        with torch.no_grad():
            ref = token_logprobs(model, ids)[0, len(prompt) - 1 :]
        assert len(g.logprobs) == len(g.tokens)
        # 1e-4, not 1e-5: the cached decode multiplies (1, d) rows where the teacher-forced
        # forward multiplies (T, d) blocks, and CPU kernels sum those in a different order
        # (CI's machine differed by ~2e-5 in float32); a wrong logprob is off by >1e-2.
        assert torch.allclose(torch.tensor(g.logprobs), ref, atol=1e-4, rtol=0)
    plain = generate_full(model, PROMPTS, cfg)
    assert plain[0].logprobs is None and [g.tokens for g in plain] == [g.tokens for g in out]
    uncached = generate_full(model, PROMPTS[:1], cfg, logprobs=True, use_cache=False)
    assert uncached[0].tokens == out[0].tokens
    assert uncached[0].logprobs == pytest.approx(out[0].logprobs, abs=1e-4)


@pytest.fixture(scope="module")
def bpe():
    return _tokenizers()["bpe"]


def test_stream_text_equals_the_returned_text(bpe):
    model = make("llama", vocab=bpe.vocab_size)
    cfg = SamplingConfig(max_new_tokens=20, temperature=1.2, seed=4, n=3)
    prompts = [bpe.encode("The cat"), bpe.encode("Привет, мир")]
    full = generate_full(model, prompts, cfg)
    texts = [""] * len(full)
    tokens: list[list[int]] = [[] for _ in full]
    reasons = [None] * len(full)
    for ev in stream_generate(model, prompts, cfg, tokenizer=bpe):
        texts[ev.row] += ev.text_delta
        if ev.token is None:
            reasons[ev.row] = ev.finish_reason
        else:
            tokens[ev.row].append(ev.token)
    assert tokens == [g.tokens for g in full]
    assert reasons == [g.finish_reason for g in full]
    assert texts == [bpe.decode(g.tokens) for g in full]


def test_closing_the_stream_stops_the_computation():
    model = make("gpt")
    forwards = Forwards(model)
    model.train()
    it = stream_generate(model, PROMPTS, SamplingConfig(max_new_tokens=30, temperature=1.0))
    first = [next(it) for _ in range(7)]  # 2 steps of 3 rows, and one more event
    assert [e.row for e in first] == [0, 1, 2, 0, 1, 2, 0]
    assert not torch.is_inference_mode_enabled()  # never leaks into the consumer's code
    seen = len(forwards.shapes)
    assert seen == 3  # prefill + 2 decoding steps
    it.close()
    assert len(forwards.shapes) == seen and model.training  # no more forwards; mode restored
    for n, _ in enumerate(stream_generate(model, PROMPTS, SamplingConfig(max_new_tokens=30))):
        if n == 4:
            break
    assert len(forwards.shapes) == seen + 2  # breaking out of a for loop stops it too


def test_finished_rows_are_dropped_from_the_batch():
    model = make("llama")
    greedy = SamplingConfig(max_new_tokens=16, temperature=0.0)
    sampled = SamplingConfig(max_new_tokens=16, temperature=1.0, seed=1)
    for cfg in (greedy, sampled):
        free = generate(model, PROMPTS * 2, cfg)
        # Rows 0 and 3 stop by their 3rd token, the others run 16: a third of the batch ends.
        stops = [[free[i][2]] if i in (0, 3) else [] for i in range(6)]
        forwards = Forwards(model)
        kept = generate_full(model, PROMPTS * 2, cfg, stop_ids=stops)
        sizes = [b for b, t in forwards.shapes if t == 1]
        assert sizes[0] == 6 and sizes[-1] == 4 and len(sizes) == 15, sizes  # the batch shrank
        model._forward_pre_hooks.clear()
        ref = generate_full(model, PROMPTS * 2, cfg, stop_ids=stops, compact=False)
        assert [(g.tokens, g.finish_reason) for g in kept] == [
            (g.tokens, g.finish_reason) for g in ref
        ]
        assert [g.finish_reason for g in kept] == ["stop", "length", "length"] * 2
        assert kept[1].tokens == free[1] and kept[0].tokens == free[0][: free[0].index(free[0][2])]
    # All rows but one finish early: the decoding batch ends at 1 row.
    first = generate(model, [[7]], greedy)[0][0]
    forwards = Forwards(model)
    out = generate_full(model, [[1, 2]] + [[7]] * 4, greedy, stop_ids=[[]] + [[first]] * 4)
    assert [g.finish_reason for g in out] == ["length"] + ["stop"] * 4
    assert [b for b, t in forwards.shapes if t == 1] == [1] * 15


def test_per_row_stop_tokens():
    model = make("llama")
    greedy = SamplingConfig(max_new_tokens=12, temperature=0.0)
    full = generate(model, PROMPTS, greedy)
    stops = [[full[0][3]], [], [full[2][5], full[2][1]]]
    out = generate_full(model, PROMPTS, greedy, stop_ids=stops)
    assert out[0].tokens == full[0][: full[0].index(full[0][3])] and out[0].finish_reason == "stop"
    assert out[1].tokens == full[1] and out[1].finish_reason == "length"
    end = min(full[2].index(t) for t in stops[2])
    assert out[2].tokens == full[2][:end] and out[2].finish_reason == "stop"
    # Per-prompt stops add to cfg.stop_token_ids; with n they hold for every sample.
    cfg = SamplingConfig(max_new_tokens=12, temperature=0.0, stop_token_ids=[full[1][2]], n=2)
    both = generate_full(model, PROMPTS, cfg, stop_ids=stops)
    end = full[1].index(full[1][2])
    assert [g.tokens for g in both[2:4]] == [full[1][:end]] * 2
    with pytest.raises(Exception, match="stop_ids"):
        generate(model, PROMPTS, greedy, stop_ids=[[1]])


def test_default_stop_ids():
    tok = _tokenizers()["char"]
    assert default_stop_ids(tok) == [tok.eos_id, tok.special_id("end")] == [2, 7]

    class NoEnd:
        eos_id = 50256

        def special_id(self, role):
            return None

    assert default_stop_ids(NoEnd()) == [50256]


def test_rnn_shares_the_prefill_through_its_state():
    torch.manual_seed(0)
    rnn = {"vocab_size": V, "cell": "gru", "n_layer": 2, "d_model": 32, "d_embed": 32}
    model = build_model("rnn", rnn).eval()
    forwards = Forwards(model)
    cfg = SamplingConfig(max_new_tokens=6, temperature=1.0, seed=5, n=3)
    out = generate(model, PROMPTS, cfg)  # unequal lengths: one unpadded batch per length
    assert sorted(forwards.prefills) == [(1, 4), (1, 7)]
    seeds = row_seeds(cfg, 3)
    one = SamplingConfig(max_new_tokens=6, temperature=1.0)
    for r in (0, 4, 8):
        assert generate(model, [PROMPTS[r // 3]], one, seeds=[seeds[r]])[0] == out[r]


@pytest.mark.slow
def test_compiled_generation_with_samples_and_compaction_equals_eager():
    model = make("llama", n_kv_head=2)
    cfg = SamplingConfig(max_new_tokens=10, temperature=1.0, seed=0, n=2)
    eager = generate(model, PROMPTS, cfg)
    stops = [[eager[0][2]], [], []]
    ref = generate(model, PROMPTS, cfg, stop_ids=stops)
    assert generate(model, PROMPTS, cfg, stop_ids=stops, compile=True) == ref
    assert generate(model, PROMPTS, cfg, stop_ids=stops, compile=True, compact=True) == ref


# ---------------------------------------------------------------------------
# Incremental detokenizer

_TOKS: dict = {}


def _tokenizers() -> dict:
    """One tokenizer of each kind, trained once on the tiny corpus."""
    if not _TOKS:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as d:
            corpus = write_corpus(Path(d), n=150)
            for kind in ("word", "char", "bpe", "unigram"):
                cfg = TokenizerConfig(kind=kind, vocab_size=500, min_frequency=1)
                _TOKS[kind] = train_tokenizer(cfg, [corpus])
    return _TOKS


def _pushed(tok, ids) -> str:
    dec = IncrementalDecoder(tok)
    return "".join(dec.push(i) for i in ids) + dec.flush()


KINDS = ("word", "char", "bpe", "unigram")
TEXT = st.text(
    alphabet=st.sampled_from(list("the king спит 東京です, ой!\n\t  Café 🙂éàx") + ["\ufffd"]),
    max_size=60,
)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_incremental_decoder_equals_decode_of_random_ids(kind, data):
    tok = _tokenizers()[kind]
    ids = data.draw(st.lists(st.integers(0, tok.vocab_size - 1), max_size=40))
    assert _pushed(tok, ids) == tok.decode(ids)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=100, deadline=None)
@given(text=TEXT)
def test_incremental_decoder_equals_decode_of_random_texts(kind, text):
    tok = _tokenizers()[kind]
    ids = tok.encode(text)
    assert _pushed(tok, ids) == tok.decode(ids)


def test_incremental_decoder_holds_back_a_split_character_and_stays_short():
    tok = _tokenizers()["bpe"]
    ids = tok.encode("🙂")  # 4 bytes: several byte-level tokens
    dec = IncrementalDecoder(tok)
    pieces = [dec.push(i) for i in ids]
    assert pieces[-1] == "🙂" and all(p == "" for p in pieces[:-1]) and dec.flush() == ""
    dec = IncrementalDecoder(tok)
    long = tok.encode("the king " * 200)
    assert "".join(dec.push(i) for i in long) + dec.flush() == tok.decode(long)
    dec = IncrementalDecoder(tok)
    for i in long:
        dec.push(i)
        assert len(dec.ids) <= 40  # the window stays short: O(1) per token
