"""LoRA: the spec, module surgery on the fused q|k|v and gate|up matrices, merge/unmerge,
self-describing checkpoints, and `--lora` on `lmforge sft` / `lmforge pretrain`.

Unit tests use tiny random models; stage tests start from the tiny LLaMA run of
`test_pretrain_helpers.tiny_run` and go through the CLI in this process.
"""
# ruff: noqa: F811 (pytest fixtures imported from test_pretrain_helpers are redefined as arguments)

from __future__ import annotations

import signal

import pytest
import torch
from conftest import assert_clean_error
from sft_helpers import SFT, chat_records, train_losses, write_jsonl
from test_pretrain_helpers import (  # noqa: F401 (fixtures)
    TINY,
    assert_same_weights,
    cli,
    tiny_run,
    tiny_shards,
    weights,
)

from lmforge.common import ConfigError
from lmforge.models import build_model, load_model, save_model
from lmforge.models.lora import (
    LoraConfig,
    LoraLinear,
    apply_lora,
    count_trainable,
    lora_parameters,
    merge_lora,
    parse_lora_spec,
    resolve_targets,
    unload_lora,
    unmerge_lora,
)
from lmforge.runs import load_run
from lmforge.runs.checkpoint import latest_checkpoint, open_checkpoint

V = 97
SMALL = dict(vocab_size=V, block_size=32, n_layer=2, n_head=4, d_model=32)


def make(arch: str = "llama", seed: int = 0, **kw):
    torch.manual_seed(seed)
    return build_model(arch, {**SMALL, **kw}).eval()


def ids(seed: int = 1, b: int = 2, t: int = 12) -> torch.Tensor:
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


def randomize(model, seed: int = 2, std: float = 0.2) -> None:
    """Nonzero adapters (a fresh B is zero, which would hide every placement error)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora_parameters(model):
            p.copy_(torch.randn(p.shape, generator=g) * std)


# --- the spec ------------------------------------------------------------------------


def test_spec_parses_with_targets_last_and_defaults():
    cfg = parse_lora_spec("r=8,alpha=16,dropout=0.05,targets=q,v")
    assert (cfg.r, cfg.alpha, cfg.dropout, cfg.targets) == (8, 16.0, 0.05, ("q", "v"))
    assert cfg.scale == 2.0
    assert parse_lora_spec("r=4") == LoraConfig(r=4, alpha=16.0, dropout=0.0, targets=("q", "v"))
    assert parse_lora_spec("targets=q_proj,mlp.fc").targets == ("q_proj", "mlp.fc")
    again = parse_lora_spec(cfg.spec())
    assert again == cfg and LoraConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("", "empty"),
        ("r=0", "r must be"),
        ("r=2.5", "whole number"),
        ("r=eight", "whole number"),
        ("alpha=-1", "alpha"),
        ("alpha=x", "not a number"),
        ("dropout=1", "dropout"),
        ("rank=8", "unknown key 'rank'"),
        ("r=8,r=4", "twice"),
        ("r=8,alpha", "key=value"),
        ("targets=", "comma list"),
        ("targets=q,,v", "comma list"),
        ("targets=q,r=8", "comma list"),
    ],
)
def test_bad_specs_are_config_errors(spec, needle):
    with pytest.raises(ConfigError, match="lora") as e:
        parse_lora_spec(spec)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_bad_spec_on_the_cli_is_one_line_and_writes_nothing(tiny_run, data, tmp_path, capsys):
    out = tmp_path / "out"
    r = cli(capsys, "sft", "--from", tiny_run, "--data", tmp_path / "missing.jsonl", "--out", out,
            "--lora", "r=8,alpha=sixteen,targets=q,v")  # fmt: skip
    assert_clean_error(r, "lora", "alpha='sixteen'")  # before the data is even looked at
    assert not out.exists()
    r = cli(capsys, "sft", "--from", tiny_run, "--data", data, "--out", out, *SFT, *STEPS,
            "--lora", "targets=q,nope")  # fmt: skip
    assert_clean_error(r, "lora", "'nope'", "matches no linear layer")
    assert not out.exists()


# --- surgery -------------------------------------------------------------------------


def test_targets_resolve_to_slices_of_the_fused_matrices():
    m = make(n_kv_head=2)
    plan = resolve_targets(m, ("q", "v", "gate", "down"))
    assert plan == {
        "blocks.0.attn.qkv": ["q", "v"], "blocks.0.mlp.fc": ["gate"], "blocks.0.mlp.proj": ["all"],
        "blocks.1.attn.qkv": ["q", "v"], "blocks.1.mlp.fc": ["gate"], "blocks.1.mlp.proj": ["all"],
    }  # fmt: skip
    assert resolve_targets(m, ("q_proj", "o_proj")) == resolve_targets(m, ("q", "o"))
    assert set(resolve_targets(m, ("blocks.1.attn.qkv",))) == {"blocks.1.attn.qkv"}
    assert set(resolve_targets(m, ("proj",))) == {f"blocks.{i}.{k}.proj" for i in (0, 1)
                                                  for k in ("attn", "mlp")}  # fmt: skip
    gelu = make("gpt")
    assert resolve_targets(gelu, ("up",)) == {f"blocks.{i}.mlp.fc": ["all"] for i in (0, 1)}
    for bad, needle in [(("gate",), "'gate' is not in this model"),
                        (("nope",), "matches no linear layer")]:  # fmt: skip
        with pytest.raises(ConfigError, match=needle):
            resolve_targets(gelu, bad)
    with pytest.raises(ConfigError, match="whole and by slices"):
        resolve_targets(m, ("q", "attn.qkv"))


def test_a_fresh_adapter_changes_nothing_and_freezes_the_base():
    m = make(n_kv_head=2)
    x = ids()
    with torch.no_grad():
        before = m(x)[0]
    names = apply_lora(m, parse_lora_spec("r=4,alpha=8,targets=q,v"))
    assert names == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    assert isinstance(m.blocks[0].attn.qkv, LoraLinear)
    with torch.no_grad():
        assert torch.equal(m(x)[0], before)  # B starts at zero: bitwise the same
    trainable = [n for n, p in m.named_parameters() if p.requires_grad]
    assert trainable == [f"blocks.{i}.attn.qkv.lora_{ab}.{s}" for i in (0, 1)
                         for ab in ("A", "B") for s in ("q", "v")]  # fmt: skip
    # q: A (4, 32), B (32, 4); v (2 kv heads of 8): A (4, 32), B (16, 4); per layer, 2 layers.
    assert count_trainable(m)[0] == 2 * (4 * 32 + 32 * 4 + 4 * 32 + 16 * 4)
    # The base tensors keep their names (a checkpoint of the base loads into the LoRA model).
    assert "blocks.0.attn.qkv.weight" in m.state_dict()


def test_each_slice_adapts_only_its_rows_of_qkv():
    """A LoRA model equals the base with W[q rows] += s B_q A_q and W[v rows] += s B_v A_v."""
    m = make(n_kv_head=2)
    ref = make(n_kv_head=2)
    apply_lora(m, parse_lora_spec("r=3,alpha=6,targets=q,v,gate,up,o"))
    randomize(m)
    s = 2.0
    H, Hkv, hd, ff = 4, 2, 8, m.config.ffn_hidden
    with torch.no_grad():
        for i in range(2):
            qkv = m.blocks[i].attn.qkv
            w = ref.blocks[i].attn.qkv.weight
            w[: H * hd] += s * qkv.lora_B["q"] @ qkv.lora_A["q"]
            w[(H + Hkv) * hd :] += s * qkv.lora_B["v"] @ qkv.lora_A["v"]
            fc = m.blocks[i].mlp.fc
            ref.blocks[i].mlp.fc.weight[:ff] += s * fc.lora_B["gate"] @ fc.lora_A["gate"]
            ref.blocks[i].mlp.fc.weight[ff:] += s * fc.lora_B["up"] @ fc.lora_A["up"]
            o = m.blocks[i].attn.proj
            ref.blocks[i].attn.proj.weight += s * o.lora_B["all"] @ o.lora_A["all"]
        x = ids()
        torch.testing.assert_close(m(x)[0], ref(x)[0], rtol=0, atol=1e-5)
        assert (m(x)[0] - make(n_kv_head=2)(x)[0]).abs().max() > 1e-2  # the adapters matter


def test_only_adapters_get_gradients():
    m = make()
    apply_lora(m, parse_lora_spec("r=2,targets=q,v,down"))
    randomize(m)
    m.train()
    _, loss = m(ids(), targets=ids(seed=5))
    loss.backward()
    for name, p in m.named_parameters():
        if "lora_" in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_merge_unmerge_round_trip_and_unload():
    m = make(n_kv_head=2)
    base = {k: v.clone() for k, v in m.state_dict().items()}
    apply_lora(m, parse_lora_spec("r=4,alpha=8,targets=all-linear"))
    randomize(m)
    x = ids()
    with torch.no_grad():
        live = m(x)[0]
        merge_lora(m)
        merged = m(x)[0]
        assert m.blocks[0].attn.qkv.merged
        torch.testing.assert_close(merged, live, rtol=0, atol=1e-5)
        unmerge_lora(m)
        for k, v in base.items():  # the base weights come back (fp32 rounding only)
            torch.testing.assert_close(m.state_dict()[k], v, rtol=0, atol=1e-6)
        torch.testing.assert_close(m(x)[0], live, rtol=0, atol=1e-6)
    plain = unload_lora(m, merge=True)
    assert not any(isinstance(mod, LoraLinear) for mod in plain.modules())
    assert sorted(plain.state_dict()) == sorted(base)
    with torch.no_grad():
        torch.testing.assert_close(plain(x)[0], live, rtol=0, atol=1e-5)


def test_dropout_applies_to_the_adapter_input_only_in_training():
    m = make()
    apply_lora(m, parse_lora_spec("r=2,dropout=0.5,targets=q"))
    randomize(m)
    x = ids()
    with torch.no_grad():
        a, b = m(x)[0], m(x)[0]
        assert torch.equal(a, b)  # eval: no dropout
        m.train()
        assert not torch.equal(m(x)[0], m(x)[0])


def test_checkpoints_are_self_describing(tmp_path):
    m = make()
    apply_lora(m, parse_lora_spec("r=2,alpha=4,targets=v,up"))
    randomize(m)
    x = ids()
    with torch.no_grad():
        want = m(x)[0]
    path = save_model(m, tmp_path / "m")
    back = load_model(path)
    assert isinstance(back.blocks[1].mlp.fc, LoraLinear)
    assert back.lora_config == LoraConfig(r=2, alpha=4.0, targets=("v", "up"))
    assert [n for n, p in back.named_parameters() if p.requires_grad] == [
        n for n, p in m.named_parameters() if p.requires_grad
    ]
    merged = load_model(path, lora="merge")
    assert not any(isinstance(mod, LoraLinear) for mod in merged.modules())
    with torch.no_grad():
        assert torch.equal(back(x)[0], want)
        torch.testing.assert_close(merged(x)[0], want, rtol=0, atol=1e-5)


# --- --lora on the training verbs ------------------------------------------------------


STEPS = ["--max-steps", "6", "--save-every", "3"]
LORA = ["--lora", "r=4,alpha=8,targets=q,v,down", "--lr", "1e-2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("lora_data") / "chat.jsonl", chat_records())


@pytest.fixture(scope="module")
def lora_run(tiny_run, data, tmp_path_factory):
    """6 steps of `lmforge sft --lora` (checkpoints 3 and 6)."""
    from conftest import run_lmforge_inprocess

    out = tmp_path_factory.mktemp("lora_sft") / "run"
    r = run_lmforge_inprocess("sft", "--from", tiny_run, "--data", data, "--out", out, *SFT,
                              *STEPS, *LORA)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def test_sft_with_lora_trains_only_the_adapters(lora_run, tiny_run):
    parent = weights(latest_checkpoint(tiny_run))
    got = weights(latest_checkpoint(lora_run))
    adapters = sorted(k for k in got if "lora_" in k)
    assert len(adapters) == 2 * 2 * 3  # 2 layers x (A, B) x (q, v, down)
    assert sorted(set(got) - set(adapters)) == sorted(parent)
    for k, v in parent.items():  # the frozen base is bitwise the parent's
        assert torch.equal(got[k], v), k
    assert all(got[k].abs().sum() > 0 for k in adapters if "lora_B" in k)  # B has moved
    ck = open_checkpoint(latest_checkpoint(lora_run))
    opt = ck.optimizer_state()
    n_state = sum(s["exp_avg"].numel() for s in opt["state"].values())
    assert n_state == sum(got[k].numel() for k in adapters)  # Adam moments: adapters only
    losses = [x for _, x in train_losses(lora_run)]
    assert len(losses) == 6 and losses[-1] < losses[0]


def test_a_lora_run_opens_merged_samples_and_exports_to_hf(lora_run, tmp_path, capsys):
    keep = load_run(lora_run, lora="keep").model
    merged = load_run(lora_run).model
    assert any(isinstance(m, LoraLinear) for m in keep.modules())
    assert not any(isinstance(m, LoraLinear) for m in merged.modules())
    x = torch.randint(0, 300, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = keep(x)[0]
        torch.testing.assert_close(merged(x)[0], want, rtol=0, atol=1e-5)
    r = cli(capsys, "sample", "--run", lora_run, "--prompt", "Where did Anna go?",
            "--max-new-tokens", "4", "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    transformers = pytest.importorskip("transformers")
    r = cli(capsys, "export", "hf", "--run", lora_run, "--out", tmp_path / "hf")
    assert r.returncode == 0, r.stderr
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        assert (hf(x).logits - want).abs().max().item() <= 1e-4  # the adapters are in it


def test_lora_resume_after_sigint_is_bitwise(lora_run, tiny_run, data, tmp_path, capsys,
                                             monkeypatch):  # fmt: skip
    from _killable import SignalAfterStep

    import lmforge.stages.sft as stage

    real = stage.train

    def train(*a, hooks=(), **kw):
        return real(*a, hooks=[*hooks, SignalAfterStep(3, signal.SIGINT)], **kw)

    monkeypatch.setattr(stage, "train", train)
    out = tmp_path / "run"
    args = ["sft", "--from", tiny_run, "--data", data, "--out", out, *SFT, *STEPS, *LORA]
    r = cli(capsys, *args)
    monkeypatch.undo()
    assert r.returncode == 130, r.stderr
    assert latest_checkpoint(out).name == "step_4"
    # Resuming with other adapters is refused before anything is written.
    r = cli(capsys, "sft", "--out", out, "--resume", "--lora", "r=2,targets=q")
    assert_clean_error(r, "trained with --lora r=4", "r=2")
    r = cli(capsys, "sft", "--out", out, "--resume", "--quiet")
    assert r.returncode == 0, r.stderr
    assert_same_weights(out / "checkpoints" / "step_6", lora_run / "checkpoints" / "step_6")
    assert train_losses(out) == train_losses(lora_run)


def test_pretrain_with_lora_from_a_run(tiny_run, tiny_shards, tmp_path, capsys):
    out = tmp_path / "run"
    r = cli(capsys, "pretrain", *TINY, "--from", tiny_run, "--data", tiny_shards, "--out", out,
            "--max-steps", "2", "--lora", "r=2,targets=o", "--lr", "1e-2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    parent, got = weights(latest_checkpoint(tiny_run)), weights(latest_checkpoint(out))
    assert sorted(k for k in got if "lora_" in k) == [
        f"blocks.{i}.attn.proj.lora_{ab}.all" for i in (0, 1) for ab in ("A", "B")
    ]
    assert all(torch.equal(got[k], v) for k, v in parent.items())
    # A run without adapters refuses a --resume that asks for some.
    import shutil

    plain = shutil.copytree(tiny_run, tmp_path / "plain")
    r = cli(capsys, "pretrain", *TINY, "--data", tiny_shards, "--out", plain, "--resume",
            "--max-steps", "13", "--lora", "r=2,targets=o")  # fmt: skip
    assert_clean_error(r, "no --lora", "r=2")


@pytest.mark.slow
def test_lora_under_two_processes_trains_like_one(lora_run, tiny_run, data, tmp_path):
    """torchrun (gloo): frozen base parameters are no obstacle to DDP."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lmforge", "sft", "--from", str(tiny_run), "--data", str(data), "--out", str(out),
           *SFT, *STEPS, *LORA, "--batch-size", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    two, one = train_losses(out), train_losses(lora_run)
    assert [x for _, x in two] == pytest.approx([x for _, x in one], rel=1e-4)
