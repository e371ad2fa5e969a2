"""Continuous batching (inference/scheduler.py, batch_cache.py): rows join and leave a running
batch, and what a row generates never depends on the rest of the batch."""

from __future__ import annotations

import random
import threading

import pytest
import torch

from lmforge.common import LmforgeError
from lmforge.inference import SamplingConfig, generate_full
from lmforge.inference.batch_cache import BatchCache
from lmforge.inference.scheduler import QueueFull, Request, Scheduler, SchedulerClosed
from lmforge.models import build_model

V = 97


def make(arch: str = "llama", block: int = 64):
    torch.manual_seed(0)
    cfg = dict(vocab_size=V, block_size=block, n_layer=2, n_head=4, d_model=32, init_std=0.5)
    return build_model(arch, cfg).eval()


def prompts(k: int, seed: int = 0, longest: int = 24) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(1, V) for _ in range(rng.randint(1, longest))] for _ in range(k)]


class Collect:
    """The events of one ticket, by sample."""

    def __init__(self, n: int = 1):
        self.tokens = [[] for _ in range(n)]
        self.logprobs = [[] for _ in range(n)]
        self.reasons = [None] * n
        self.text = [""] * n

    def __call__(self, events):
        for e in events:
            self.text[e.row] += e.text_delta
            if e.token is None:
                self.reasons[e.row] = e.finish_reason
            else:
                self.tokens[e.row].append(e.token)
                self.logprobs[e.row].append(e.logprob)


@pytest.mark.parametrize("arch", ["llama", "gpt"])
@pytest.mark.parametrize("columns", [None, 64])  # 64 = the context: rows move left often
def test_greedy_output_does_not_depend_on_the_batch(arch, columns):
    model = make(arch)
    ps = prompts(12)
    alone = [
        generate_full(model, [p], SamplingConfig(max_new_tokens=30, temperature=0))[0] for p in ps
    ]
    sch = Scheduler(model, slots=4, columns=columns)  # fewer slots than requests: a queue forms
    got = []
    for i, p in enumerate(ps):
        got.append(Collect())
        sch.submit(Request(p, max_tokens=30, temperature=0), got[-1])
        if i % 3 == 0:  # requests arrive while others decode
            sch.step()
        assert sch.stats()["running"] <= 4
    sch.run_until_idle()
    for a, g in zip(alone, got):
        assert g.tokens[0] == a.tokens
        assert g.reasons[0] == "length"
    assert sch.stats()["running"] == 0 and sch.cache.rows == 0


def test_a_row_stops_at_the_context():
    model = make(block=32)
    sch = Scheduler(model, slots=2)
    c = Collect()
    sch.submit(Request(list(range(1, 21)), max_tokens=100, temperature=0), c)
    sch.run_until_idle()
    assert len(c.tokens[0]) == 12 and c.reasons[0] == "length"


def test_seeded_samples_match_the_engine_rows_and_share_one_prefill():
    model = make()
    p = prompts(3, seed=1)
    cfg = SamplingConfig(max_new_tokens=20, temperature=0.9, top_p=0.9, top_k=30, seed=5, n=3)
    ref = generate_full(model, [p[0]], cfg, logprobs=True)
    sch = Scheduler(model, slots=8)
    other = Collect()
    sch.submit(Request(p[1], max_tokens=25, temperature=0.0), other)  # greedy, mixed in
    sch.step()
    c = Collect(3)
    sch.submit(
        Request(p[0], 20, temperature=0.9, top_p=0.9, top_k=30, seed=5, n=3, logprobs=True), c
    )
    before = sch.prefill_tokens
    sch.run_until_idle()
    assert sch.prefill_tokens - before == len(p[0])  # one prefill for the three samples
    for j in range(3):
        assert c.tokens[j] == ref[j].tokens
        assert c.logprobs[j] == pytest.approx(ref[j].logprobs, abs=1e-4)
    greedy = generate_full(model, [p[1]], SamplingConfig(max_new_tokens=25, temperature=0))[0]
    assert other.tokens[0] == greedy.tokens


def test_stop_ids_and_stop_strings_with_text(tiny_tokenizer):
    tok = tiny_tokenizer
    torch.manual_seed(0)
    model = build_model(
        "llama",
        dict(
            vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=4, d_model=32, init_std=0.5
        ),
    ).eval()
    p = tok.encode("the cat sat on the mat")
    free = generate_full(
        model, [p], SamplingConfig(max_new_tokens=20, temperature=0), decode=tok.decode
    )[0]
    stop_tok = free.tokens[5]
    text = tok.decode(free.tokens)
    stop_str = text[len(text) // 2 : len(text) // 2 + 2]
    sch = Scheduler(model, tok, slots=4)
    a, b = Collect(), Collect()
    sch.submit(Request(p, 20, temperature=0, stop_ids=[stop_tok]), a)
    sch.submit(Request(p, 20, temperature=0, stop_strings=[stop_str]), b)
    sch.run_until_idle()
    cut = free.tokens.index(stop_tok)
    assert (
        a.tokens[0] == free.tokens[:cut] and a.reasons[0] == "stop"
    )  # the stop token is not emitted
    ref = generate_full(
        model,
        [p],
        SamplingConfig(max_new_tokens=20, temperature=0, stop_strings=[stop_str]),
        decode=tok.decode,
    )[0]
    assert b.tokens[0] == ref.tokens and b.reasons[0] == ref.finish_reason == "stop"
    assert a.text[0] == tok.decode(a.tokens[0])  # text deltas join to the decoded tokens


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    from test_tokenizers_corpus import write_corpus

    from lmforge.tokenizers import TokenizerConfig, train_tokenizer

    corpus = write_corpus(tmp_path_factory.mktemp("corpus"))
    return train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300), [corpus])


def test_cancel_frees_the_slot_at_the_next_step_and_others_go_on():
    model = make()
    ps = prompts(3, seed=2)
    sch = Scheduler(model, slots=2)
    a, b, c = Collect(), Collect(), Collect()
    ta = sch.submit(Request(ps[0], 40, temperature=0), a)
    sch.submit(Request(ps[1], 10, temperature=0), b)
    tc = sch.submit(Request(ps[2], 10, temperature=0), c)  # waits for a slot
    sch.step()
    sch.step()
    sch.cancel(ta)
    sch.step()
    assert a.reasons[0] == "cancelled" and ta.done.is_set() and len(a.tokens[0]) == 2
    assert sch.stats()["running"] == 2  # c took a's slot in the same step
    sch.run_until_idle()
    ref = generate_full(model, [ps[2]], SamplingConfig(max_new_tokens=10, temperature=0))[0]
    assert c.tokens[0] == ref.tokens and tc.done.is_set()
    queued = Collect()
    t = sch.submit(Request(ps[0], 5, temperature=0), queued)
    sch.cancel(t)  # cancelled while still queued
    sch.run_until_idle()
    assert queued.reasons[0] == "cancelled" and queued.tokens[0] == [] and t.done.is_set()


def test_bad_requests_queue_full_and_closed():
    model = make(block=32)
    sch = Scheduler(model, slots=2, max_queue=1)
    with pytest.raises(LmforgeError, match="context is 32"):
        sch.submit(Request(list(range(1, 33))), Collect())
    with pytest.raises(LmforgeError, match=r"'7' is not a token id of this model \(0\.\.96\)"):
        sch.submit(Request([1, "7"]), Collect())
    with pytest.raises(LmforgeError, match="97 is not a token id"):
        sch.submit(Request([1, 97]), Collect())
    with pytest.raises(LmforgeError, match="empty"):
        sch.submit(Request([]), Collect())
    with pytest.raises(LmforgeError, match="n: must be between 1 and 2"):
        sch.submit(Request([1], n=3), Collect())
    with pytest.raises(LmforgeError, match="top_p"):
        sch.submit(Request([1], top_p=0.0), Collect())
    sch.submit(Request([1, 2], 3), Collect())
    with pytest.raises(QueueFull):
        sch.submit(Request([1, 2], 3), Collect())
    sch.shutdown()  # no thread: drains on the caller's
    assert sch.stats()["queued"] == 0
    with pytest.raises(SchedulerClosed):
        sch.submit(Request([1, 2], 3), Collect())


def test_a_failing_step_fails_its_requests_and_the_scheduler_serves_on():
    model = make()
    sch = Scheduler(model, slots=2)
    real = model.forward
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("out of memory (simulated)")
        return real(*args, **kwargs)

    model.forward = flaky
    a = Collect()
    ta = sch.submit(Request([1, 2, 3], 10, temperature=0), a)
    sch.run_until_idle()
    assert a.reasons[0] == "error" and "out of memory" in ta.error and ta.done.is_set()
    model.forward = real
    b = Collect()
    sch.submit(Request([1, 2, 3], 10, temperature=0), b)
    sch.run_until_idle()
    ref = generate_full(model, [[1, 2, 3]], SamplingConfig(max_new_tokens=10, temperature=0))[0]
    assert b.tokens[0] == ref.tokens


def test_background_thread_serves_many_threads_and_drains_on_shutdown():
    model = make()
    ps = prompts(10, seed=3)
    sch = Scheduler(model, slots=3)
    sch.start()
    got = [Collect() for _ in ps]
    tickets = [None] * len(ps)

    def client(i):
        tickets[i] = sch.submit(Request(ps[i], 12, temperature=0), got[i])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(ps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sch.shutdown(drain=True, timeout=60)
    assert all(t.done.is_set() for t in tickets)
    for p, g in zip(ps, got):
        ref = generate_full(model, [p], SamplingConfig(max_new_tokens=12, temperature=0))[0]
        assert g.tokens[0] == ref.tokens
    assert sch.stats()["running"] == 0


def test_batch_cache_moves_keep_each_rows_tokens():
    n_layer, heads, hd = 2, 2, 4
    cache = BatchCache(n_layer, 3, heads, hd, 10)
    srcs = []
    for length in (3, 6, 2):
        src = KV(n_layer, heads, hd, length)
        srcs.append(src)
        cache.add(src, 0, length)
    assert cache.pos == 6  # the second prompt moved the first right

    def row_tokens(b):
        f = cache.first[b]
        return cache.k[:, b, :, f : cache.pos]

    for b, src in enumerate(srcs):
        assert torch.equal(row_tokens(b), src.k[:, 0])
    cache.remove([0])  # row 2 fills slot 0
    assert cache.rows == 2 and torch.equal(row_tokens(0), srcs[2].k[:, 0])
    assert torch.equal(row_tokens(1), srcs[1].k[:, 0])
    cache.remove([1])
    cache.k[:, 0, :, 6:10] = 7.0  # as if 4 decode steps had filled columns 6..9
    cache.pos = 10
    before = cache.k[:, 0, :, 4:10].clone()
    cache.make_room()  # the only row starts at column 4: everything moves 4 left
    assert cache.pos == 6 and cache.first == [0]
    assert torch.equal(cache.k[:, 0, :, 0:6], before)
    assert cache.positions(5, 1) is None and cache.attn_mask(5, 1) is None  # unpadded: fast path
    cache.add(srcs[0], 0, 3)  # joins right-aligned at column 6
    assert cache.positions(6, 1).tolist() == [[6], [3]]
    mask = cache.attn_mask(6, 1)
    assert mask.shape == (2, 1, 1, 7) and mask[0].sum() == 7 and mask[1].sum() == 4


class KV:
    """A prefilled `KVCache` stand-in: one row of `length` distinct tokens."""

    def __init__(self, n_layer, heads, hd, length):
        self.k = torch.randn(n_layer, 1, heads, length, hd)
        self.v = torch.randn(n_layer, 1, heads, length, hd)
        self.pos = length
