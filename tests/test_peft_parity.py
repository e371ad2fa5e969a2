"""Peers: lmforge's LoRA and prompt tuning against PEFT (pinned 0.21.0) on the same tiny model.

* the same r/targets give the same trainable-parameter counts as PEFT on the exported
  model (LoRA on LLaMA's separate q/k/v/o/gate/up/down, on GPT-2's fused modules; 20
  soft tokens);
* `lmforge export peft` writes a base model and an adapter that
  `PeftModel.from_pretrained` loads to the logits lmforge computes (<= 1e-4);
* what PEFT cannot express is refused in one line.

Skipped when peft or transformers is not installed.
"""
# ruff: noqa: F811 (pytest fixtures imported from test_pretrain_helpers are redefined as arguments)

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error
from test_pretrain_helpers import TINY, cli, tiny_run, tiny_shards  # noqa: F401 (fixtures)

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
logging.getLogger("transformers").setLevel(logging.ERROR)

from lmforge.export.hf import export_hf  # noqa: E402
from lmforge.models import build_model, save_model  # noqa: E402
from lmforge.models.lora import apply_lora, count_trainable, lora_parameters, parse_lora_spec  # noqa: E402
from lmforge.models.soft_prompt import attach_soft_prompt  # noqa: E402
from lmforge.runs import RunLayout, load_run  # noqa: E402
from lmforge.runs.checkpoint import save_checkpoint  # noqa: E402

V = 320  # the tiny run's tokenizer
SMALL = dict(vocab_size=V, block_size=48, n_layer=2, n_head=4, d_model=32, init_std=0.2)
HF_NAMES = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj",
            "up": "up_proj", "down": "down_proj"}  # fmt: skip


def make(arch: str = "llama", seed: int = 0, **kw):
    torch.manual_seed(seed)
    return build_model(arch, {**SMALL, **kw}).eval()


def x_ids(b: int = 3, t: int = 17) -> torch.Tensor:
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(7))


def hf_base(model, folder: Path):
    export_hf(model, None, folder)
    return transformers.AutoModelForCausalLM.from_pretrained(folder).eval()


def write_run(model, tiny_run: Path, out: Path, stage: str = "pretrain") -> Path:
    """A run folder holding `model` (adapters and all) at step 0, with the tiny run's tokenizer."""
    tok = load_run(tiny_run).tokenizer
    layout = RunLayout(out)
    tok.save(layout.tokenizer)
    save_checkpoint(out, 0, write_weights=lambda p: save_model(model, p), optimizer_state={},
                    trainer_state={"stage": stage, "tokenizer_hash": tok.hash})  # fmt: skip
    return out


def randomize(model, seed: int = 3, std: float = 0.3) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora_parameters(model):
            p.copy_(torch.randn(p.shape, generator=g) * std)


# --- trainable-parameter counts ------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, targets",
    [
        ({}, ("q", "v")),
        ({"n_kv_head": 2}, ("q", "k", "v", "o")),
        ({"n_kv_head": 2}, ("q", "k", "v", "o", "gate", "up", "down")),
        ({"tie_embeddings": True}, ("v", "down")),
    ],
)
def test_lora_trainable_counts_equal_peft(kw, targets, tmp_path):
    ours = make(**kw)
    hf = hf_base(ours, tmp_path / "hf")
    apply_lora(ours, parse_lora_spec("r=8,alpha=16,targets=" + ",".join(targets)))
    theirs = peft.get_peft_model(
        hf, peft.LoraConfig(r=8, lora_alpha=16, target_modules=[HF_NAMES[t] for t in targets])
    )
    n_theirs, _ = theirs.get_nb_trainable_parameters()
    assert count_trainable(ours)[0] == n_theirs


def test_gpt2_whole_module_counts_equal_peft(tmp_path):
    ours = make("gpt")
    hf = hf_base(ours, tmp_path / "hf")
    apply_lora(ours, parse_lora_spec("r=4,targets=attn.qkv,mlp.fc"))
    theirs = peft.get_peft_model(
        hf, peft.LoraConfig(r=4, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True)
    )
    assert count_trainable(ours)[0] == theirs.get_nb_trainable_parameters()[0]


def test_prompt_tuning_trainable_count_equals_peft_for_20_tokens(tmp_path):
    ours = make()
    hf = hf_base(ours, tmp_path / "hf")
    soft = attach_soft_prompt(ours, 10, 10)
    theirs = peft.get_peft_model(
        hf, peft.PromptTuningConfig(task_type=peft.TaskType.CAUSAL_LM, num_virtual_tokens=20)
    )
    assert count_trainable(ours)[0] == soft.weight.numel() == 20 * 32
    assert theirs.get_nb_trainable_parameters()[0] == count_trainable(ours)[0]


# --- export peft: logits through PeftModel -------------------------------------------------


def peft_model(folder: Path):
    base = transformers.AutoModelForCausalLM.from_pretrained(folder / "base").eval()
    return peft.PeftModel.from_pretrained(base, folder / "adapter").eval()


@pytest.mark.parametrize(
    "arch, kw, spec",
    [
        ("llama", {"n_kv_head": 2}, "r=4,alpha=8,targets=q,v"),
        ("llama", {"n_kv_head": 2}, "r=3,alpha=5,dropout=0.1,targets=all-linear"),
        ("llama", {"tie_embeddings": True}, "r=2,targets=k,gate,lm_head"),
        ("llama", {}, "r=2,targets=blocks.1.attn.proj"),  # one layer: PEFT gets full names
        ("gpt", {}, "r=4,alpha=8,targets=attn.qkv,attn.proj,mlp.fc,mlp.proj"),
    ],
)
def test_exported_lora_logits_equal_lmforge(arch, kw, spec, tiny_run, tmp_path, capsys):
    model = make(arch, **kw)
    lcfg = parse_lora_spec(spec)
    apply_lora(model, lcfg)
    randomize(model)
    run = write_run(model, tiny_run, tmp_path / "run")
    r = cli(capsys, "export", "peft", "--run", run, "--out", tmp_path / "peft")
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "peft" / "adapter" / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == lcfg.r and cfg["lora_alpha"] == lcfg.alpha
    theirs = peft_model(tmp_path / "peft")
    x = x_ids()
    with torch.no_grad():
        ours = model(x)[0]
        got = theirs(input_ids=x).logits
        plain = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "peft" / "base")
        assert (plain(x).logits - ours).abs().max() > 1e-3  # the adapters matter...
    assert (got - ours).abs().max().item() <= 1e-4  # ...and PEFT applies them as lmforge does


def test_export_from_a_lora_training_run(tiny_run, tiny_shards, tmp_path, capsys):
    """The real path: `pretrain --lora`, then `export peft`, then PEFT."""
    out = tmp_path / "run"
    r = cli(capsys, "pretrain", *TINY, "--from", tiny_run, "--data", tiny_shards, "--out", out,
            "--max-steps", "3", "--lora", "r=4,alpha=8,targets=q,v,down", "--lr", "3e-2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = cli(capsys, "export", "peft", "--run", out, "--out", tmp_path / "peft")
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "peft" / "adapter" / "adapter_config.json").read_text())
    assert sorted(cfg["target_modules"]) == ["down_proj", "q_proj", "v_proj"]
    ours = load_run(out, lora="keep").model
    x = x_ids()
    with torch.no_grad():
        diff = (peft_model(tmp_path / "peft")(input_ids=x).logits - ours(x)[0]).abs().max()
    assert diff.item() <= 1e-4
    # Its own earlier output is replaced only with --force.
    capsys.readouterr()  # transformers' loading bars
    r = cli(capsys, "export", "peft", "--run", out, "--out", tmp_path / "peft")
    assert_clean_error(r, "--force")


def test_exported_soft_prompt_logits_equal_lmforge(tiny_run, tmp_path, capsys):
    model = make()
    soft = attach_soft_prompt(model, 6, 0, init="random", seed=1)
    with torch.no_grad():
        soft.weight.mul_(4)
    run = write_run(model, tiny_run, tmp_path / "run", stage="prompt-tune")
    r = cli(capsys, "export", "peft", "--run", run, "--out", tmp_path / "peft")
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "peft" / "adapter" / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "PROMPT_TUNING" and cfg["num_virtual_tokens"] == 6
    x = x_ids()
    with torch.no_grad():
        ours = model(torch.cat([torch.tensor(soft.ids_before).expand(3, 6), x], 1))[0][:, 6:]
        got = peft_model(tmp_path / "peft")(input_ids=x).logits[:, 6:]
        bare = model(x)[0]
    assert (ours - bare).abs().max() > 1e-3
    assert (got - ours).abs().max().item() <= 1e-4


def test_what_peft_cannot_express_is_refused(tiny_run, tmp_path, capsys):
    cases = [
        ("whole fused qkv of a LLaMA", make(), "r=2,targets=attn.qkv", "q,k,v"),
        ("a slice of GPT-2's c_attn", make("gpt"), "r=2,targets=q", "attn.qkv whole"),
    ]
    for i, (_, model, spec, needle) in enumerate(cases):
        apply_lora(model, parse_lora_spec(spec))
        run = write_run(model, tiny_run, tmp_path / f"run{i}")
        r = cli(capsys, "export", "peft", "--run", run, "--out", tmp_path / f"out{i}")
        assert_clean_error(r, "no PEFT equivalent", needle)
        assert not (tmp_path / f"out{i}").exists()
    model = make()
    attach_soft_prompt(model, 3, 2)
    run = write_run(model, tiny_run, tmp_path / "pt", stage="prompt-tune")
    r = cli(capsys, "export", "peft", "--run", run, "--out", tmp_path / "o")
    assert_clean_error(r, "2 tokens after the input", "--n-after 0")
    r = cli(capsys, "export", "peft", "--run", tiny_run, "--out", tmp_path / "o")
    assert_clean_error(r, "neither LoRA adapters nor a soft prompt", "export hf")
    assert not (tmp_path / "o").exists()
    shutil.rmtree(tmp_path / "pt")
