"""Soft prompts: the wrapper in front of the embedding, its inits, the engine with virtual
ids, the small file beside a run and its checks.

Tiny random models; the file tests use the tiny LLaMA run of `test_pretrain_helpers`.
"""
# ruff: noqa: F811 (pytest fixtures imported from test_pretrain_helpers are redefined as arguments)

from __future__ import annotations

import pytest
import torch
from conftest import assert_clean_error
from test_pretrain_helpers import cli, tiny_run, tiny_shards  # noqa: F401 (fixtures)

from lmforge.common import ConfigError, LmforgeError
from lmforge.inference import SamplingConfig, generate
from lmforge.inference.engine import generate_full, sequence_logprobs
from lmforge.models import build_model, load_model, save_model
from lmforge.models.soft_prompt import (
    SoftLayout,
    SoftPromptEmbedding,
    attach_soft_prompt,
    detach_soft_prompt,
    load_soft_prompt,
    read_soft_prompt,
    save_soft_prompt,
    soft_prompt_of,
)
from lmforge.runs import load_run, parent_record

V = 61
SMALL = dict(vocab_size=V, block_size=48, n_layer=2, n_head=2, d_model=16, init_std=0.3)


def make(arch: str = "llama", seed: int = 0, **kw):
    torch.manual_seed(seed)
    return build_model(arch, {**SMALL, **kw}).eval()


def ids(seed: int = 1, b: int = 2, t: int = 10) -> torch.Tensor:
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch, kw", [("llama", {}), ("gpt", {}), ("llama", {"n_kv_head": 1})])
def test_the_frozen_model_is_unchanged_for_real_ids(arch, kw):
    m = make(arch, **kw)
    x = ids()
    with torch.no_grad():
        before = m(x)[0]
    table = m.tok_emb.weight
    soft = attach_soft_prompt(m, 3, 2)
    assert isinstance(m.tok_emb, SoftPromptEmbedding) and m.tok_emb.weight is table
    if m.config.tie_embeddings:
        assert m.lm_head.weight is table  # still tied: not a copy
    with torch.no_grad():
        assert torch.equal(m(x)[0], before)
    assert [n for n, p in m.named_parameters() if p.requires_grad] == ["tok_emb.soft"]
    assert soft.weight.shape == (5, 16) and soft.n_virtual == 5 and soft.vocab == V
    # The output layer scores only real ids: nothing can generate a virtual id.
    assert m(x)[0].shape[-1] == V


def test_virtual_ids_read_the_soft_table_and_only_it_trains():
    m = make()
    soft = attach_soft_prompt(m, 2, 2, init="random", seed=3)
    seq = soft.surround([5, 6, 7], [8])
    assert seq == [V, V + 1, 5, 6, 7, V + 2, V + 3, 8]
    x = torch.tensor([seq])
    emb = m.tok_emb(x)[0]
    torch.testing.assert_close(emb[[0, 1, 5, 6]], soft.weight.detach(), rtol=0, atol=0)
    torch.testing.assert_close(emb[[2, 3, 4, 7]], m.tok_emb.weight[[5, 6, 7, 8]].detach())
    m.train()
    _, loss = m(x[:, :-1], targets=x[:, 1:].masked_fill(x[:, 1:] >= V, -100))
    loss.backward()
    assert soft.weight.grad is not None and soft.weight.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in m.named_parameters() if n != "tok_emb.soft")
    with pytest.raises(IndexError):  # an id past the soft table is an error, as past the vocab
        m.tok_emb(torch.tensor([[V + 4]]))


def test_inits():
    m = make()
    table = m.tok_emb.weight.detach().clone()
    s = attach_soft_prompt(m, 3, 3, init="vocab", seed=1).weight.detach()
    rows = [(table == r).all(dim=1).nonzero().flatten().tolist() for r in s]
    assert all(len(r) == 1 for r in rows)  # every soft token is a row of the table
    again = attach_soft_prompt(make(), 3, 3, init="vocab", seed=1).weight.detach()
    assert torch.equal(s, again)  # seeded
    pool = attach_soft_prompt(make(), 2, 2, init="vocab", init_ids=[7, 9]).weight.detach()
    assert all(any(torch.equal(r, table[i]) for i in (7, 9)) for r in pool)
    rnd = attach_soft_prompt(make(), 50, 50, init="random").weight.detach()
    assert 0.5 < rnd.std().item() / table.std().item() < 1.5  # the table's scale, not N(0, 1)
    lab = attach_soft_prompt(make(), 2, 3, init="labels", init_ids=[11, 12]).weight.detach()
    want = [11, 12, 11]  # after the query, cycled; the tokens before are sampled words
    assert all(torch.equal(lab[2 + i], table[j]) for i, j in enumerate(want))
    for kw, needle in [(dict(init="labels"), "init_ids"), (dict(init="nope"), "init"),
                       (dict(init="labels", init_ids=[V]), "token ids")]:  # fmt: skip
        with pytest.raises(ConfigError, match=needle):
            attach_soft_prompt(make(), 2, 2, **kw)
    with pytest.raises(ConfigError, match="at least one soft token"):
        attach_soft_prompt(make(), 0, 0)


def test_reattach_and_detach_keep_the_model():
    m = make()
    x = ids()
    with torch.no_grad():
        before = m(x)[0]
    attach_soft_prompt(m, 2, 2)
    attach_soft_prompt(m, 4, 0)  # replaces the first one
    assert soft_prompt_of(m).n_virtual == 4
    detach_soft_prompt(m)
    assert type(m.tok_emb).__name__ == "Embedding" and soft_prompt_of(m) is None
    with torch.no_grad():
        assert torch.equal(m(x)[0], before)


def test_the_engine_runs_prompts_with_virtual_ids():
    """Cached generation, a left-padded batch and teacher-forced scoring all take them."""
    m = make()
    soft = attach_soft_prompt(m, 3, 2, init="random")
    with torch.no_grad():
        soft.weight.mul_(5)  # soft tokens that change what comes next
    prompts = [soft.surround([4, 5, 6]), soft.surround([7, 8, 9, 10, 11, 12])]
    cfg = SamplingConfig(max_new_tokens=6, temperature=0.0)
    cached = generate(m, prompts, cfg)
    alone = [generate(m, [p], cfg)[0] for p in prompts]
    plain = [generate(m, [p], cfg, use_cache=False)[0] for p in prompts]
    assert cached == alone == plain
    assert all(t < V for row in cached for t in row)
    bare = generate(m, [[4, 5, 6]], cfg)[0]
    assert bare != cached[0]  # the soft tokens matter
    # logprobs of the generation equal a teacher-forced forward with the soft tokens in front.
    g = generate_full(m, prompts[:1], cfg, logprobs=True)[0]
    seq = torch.tensor([prompts[0] + g.tokens])
    with torch.no_grad():
        logp = m(seq[:, :-1])[0].log_softmax(-1)[0]
    n = len(prompts[0])
    forced = sum(logp[n - 1 + i, t].item() for i, t in enumerate(g.tokens))
    assert abs(sum(g.logprobs) - forced) < 1e-4


def test_label_scoring_takes_soft_prompts():
    """`prompting.scoring` (KV-cache prefill, left padding) on soft-prompted prompts equals a
    plain forward of prompt + label."""
    from lmforge.prompting.scoring import score_labels

    m = make()
    soft = attach_soft_prompt(m, 3, 2, init="random", seed=4)
    with torch.no_grad():
        soft.weight.mul_(5)
    prompts = [soft.surround([4, 5, 6]), soft.surround([7, 8, 9, 10, 11])]
    labels = {"a": [12], "b": [13, 14]}
    got = score_labels(m, prompts, [[v] for v in labels.values()], list(labels)).scores
    for i, p in enumerate(prompts):
        for j, lab in enumerate(labels.values()):
            seq = torch.tensor([p + lab])
            with torch.no_grad():
                logp = m(seq[:, :-1])[0].log_softmax(-1)[0]
            want = sum(logp[len(p) - 1 + k, t].item() for k, t in enumerate(lab))
            assert abs(got[i, j].item() - want) < 1e-5


# Two engine functions read prompt ids as indices into the vocabulary; the fixes (one line
# each, in inference/engine.py, not this package's file) are in the lead's report. These
# tests pass once they are in (strict: an XPASS fails, a reminder to drop the marks).


def test_sequence_logprobs_with_virtual_ids():
    m = make()
    soft = attach_soft_prompt(m, 2, 2, init="random")
    prompt, completion = soft.surround([4, 5, 6]), [7, 8]
    seq = torch.tensor([prompt + completion])
    with torch.no_grad():
        logp = m(seq[:, :-1])[0].log_softmax(-1)[0]
    want = logp[len(prompt) - 1, 7].item() + logp[len(prompt), 8].item()
    assert abs(sequence_logprobs(m, [prompt], [completion])[0] - want) < 1e-4


def test_repetition_penalty_with_virtual_ids():
    m = make()
    soft = attach_soft_prompt(m, 2, 2)
    cfg = SamplingConfig(max_new_tokens=4, temperature=0.0, repetition_penalty=1.3)
    out = generate(m, [soft.surround([4, 5, 6])], cfg)
    assert len(out[0]) == 4


def test_a_soft_prompted_model_saves_and_loads_whole(tmp_path):
    m = make()
    soft = attach_soft_prompt(m, 2, 3, init="random")
    x = torch.tensor([soft.surround([1, 2, 3, 4])])
    with torch.no_grad():
        want = m(x)[0]
    back = load_model(save_model(m, tmp_path / "m"))
    assert soft_prompt_of(back).n_before == 2 and soft_prompt_of(back).n_after == 3
    with torch.no_grad():
        assert torch.equal(back(x)[0], want)


# --- the small file ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tiny_run):
    return load_run(tiny_run)


def test_file_round_trip_and_it_names_its_base(base, tmp_path):
    model = base.model
    soft = attach_soft_prompt(model, 4, 2, init="random", seed=5)
    path = save_soft_prompt(tmp_path / "sp.safetensors", soft, parent_record(base))
    table = soft.weight.detach().clone()
    detach_soft_prompt(model)
    assert path.stat().st_size < 4096  # (6, 64) floats and a header: small
    got, info = read_soft_prompt(path)
    assert torch.equal(got, table)
    assert info["base_weights_sha256"] == parent_record(base)["weights_sha256"]
    assert (info["n_before"], info["n_after"], info["vocab_size"]) == (4, 2, 320)
    loaded = load_soft_prompt(path, model, base)
    try:
        assert torch.equal(loaded.weight.detach(), table) and loaded.n_before == 4
    finally:
        detach_soft_prompt(model)


def test_a_file_for_another_model_is_refused_naming_both(base, tmp_path):
    model = base.model
    soft = attach_soft_prompt(model, 2, 2)
    path = save_soft_prompt(tmp_path / "sp.safetensors", soft, base)
    detach_soft_prompt(model)
    other = make()  # d_model 16, vocab 61
    with pytest.raises(LmforgeError, match="d_model 64 and vocabulary 320.*d_model 16") as e:
        load_soft_prompt(path, other)
    assert "\n" not in str(e.value)
    record = {**parent_record(base), "weights_sha256": "0" * 64, "run": "/elsewhere"}
    stale = save_soft_prompt(tmp_path / "stale.safetensors", attach_soft_prompt(model, 2, 2),
                             record)  # fmt: skip
    detach_soft_prompt(model)
    with pytest.raises(LmforgeError, match="000000000000.*elsewhere|elsewhere.*000000000000"):
        load_soft_prompt(stale, model, base)
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(LmforgeError, match="junk.safetensors"):
        read_soft_prompt(tmp_path / "junk.safetensors")
    save_model(make(), tmp_path / "plain")  # a model file is not a soft prompt
    with pytest.raises(LmforgeError, match="not a soft-prompt file"):
        read_soft_prompt(tmp_path / "plain" / "model.safetensors")


def test_sample_with_a_soft_prompt(base, tiny_run, tmp_path, capsys):
    model = base.model
    soft = attach_soft_prompt(model, 3, 3, init="random", seed=2)
    with torch.no_grad():
        soft.weight.mul_(20)  # loud soft tokens: the greedy text must change
    path = save_soft_prompt(tmp_path / "sp.safetensors", soft, base)
    detach_soft_prompt(model)
    args = ["sample", "--run", tiny_run, "--prompt", "Anna went", "--temperature", "0",
            "--max-new-tokens", "8"]  # fmt: skip
    plain = cli(capsys, *args)
    tuned = cli(capsys, *args, "--soft-prompt", path)
    assert plain.returncode == 0 and tuned.returncode == 0, tuned.stderr
    assert tuned.stdout.startswith("Anna went") and tuned.stdout != plain.stdout
    # A soft prompt of another model: one line, exit 2.
    other = make()
    osoft = attach_soft_prompt(other, 2, 2)
    bad = save_soft_prompt(tmp_path / "other.safetensors", osoft, {"run": "/x"})
    r = cli(capsys, *args, "--soft-prompt", bad)
    assert_clean_error(r, "other.safetensors", "d_model 16", "d_model 64")
    r = cli(capsys, *args, "--soft-prompt", tmp_path / "missing.safetensors")
    assert_clean_error(r, "missing.safetensors", "no such soft-prompt file")


def test_layout_without_a_model():
    lay = SoftLayout(100, 2, 1)
    assert lay.surround([5], [6, 7]) == [100, 101, 5, 102, 6, 7]
    assert lay.n_virtual == 3 and lay.ids_after == [102]
