"""Hugging Face interop: export -> transformers and transformers -> import give the same logits.

Tiny random models only, nothing is downloaded.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
from conftest import assert_clean_error, run_lmforge_inprocess

from lmforge.common import LmforgeError
from lmforge.inference import SamplingConfig, generate
from lmforge.models import build_model, load_model, save_model
from lmforge.tokenizers.base import SPECIAL_TOKENS, Tokenizer

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
logging.getLogger("transformers").setLevel(logging.ERROR)

from lmforge.export.hf import export_hf, import_hf  # noqa: E402

cli = run_lmforge_inprocess


V = 320
TINY = dict(vocab_size=V, block_size=40, n_layer=2, n_head=4, d_model=32, init_std=0.3)
CORPUS = ["the cat sat on the mat.", "a dog ran in the park!", "hello world, 123 + 45 = 168"]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    """A small byte-level BPE with lmforge's special tokens first (ids 0..8)."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    engine = HFTokenizer(models.BPE())
    engine.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    engine.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    engine.train_from_iterator(CORPUS * 20, trainer)
    return Tokenizer(engine, "bpe", {})


def make(arch: str, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return build_model(arch, {**TINY, **kw}).eval()


VARIANTS = [
    ("llama", {}, "LlamaForCausalLM"),
    ("llama", {"n_kv_head": 2}, "LlamaForCausalLM"),  # grouped-query attention
    ("llama", {"tie_embeddings": True, "bias": True}, "LlamaForCausalLM"),
    ("gpt", {}, "GPT2LMHeadModel"),
    ("gpt", {"tie_embeddings": False, "mlp": "gelu"}, "GPT2LMHeadModel"),
    ("gpt", {"bias": False}, "GPT2LMHeadModel"),
    ("gpt", {"prenorm": False}, "OpenAIGPTLMHeadModel"),  # GPT-1
]


@pytest.mark.parametrize("arch,kw,hf_class", VARIANTS)
def test_export_logits_match_transformers(tmp_path, arch, kw, hf_class):
    model = make(arch, **kw)
    export_hf(model, None, tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert type(hf).__name__ == hf_class
    ids = torch.randint(0, V, (3, 25), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(ids)[0], hf(ids).logits
    assert (ours - theirs).abs().max().item() <= 1e-4


@pytest.mark.parametrize("arch,kw", [("llama", {"n_kv_head": 2}), ("gpt", {})])
def test_greedy_generation_matches_transformers_generate(tmp_path, arch, kw):
    model = make(arch, **kw)
    export_hf(model, None, tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    prompt = [11, 57, 203, 9, 140]
    ours = generate(model, [prompt], SamplingConfig(max_new_tokens=20, temperature=0.0))[0]
    with torch.no_grad():
        out = hf.generate(
            torch.tensor([prompt]), max_new_tokens=20, do_sample=False, min_new_tokens=20
        )
    assert ours == out[0, len(prompt) :].tolist()
    assert len(set(ours)) > 2


def test_export_tokenizer_loads_in_autotokenizer(tmp_path, tokenizer):
    model = make("llama")
    export_hf(model, tokenizer, tmp_path / "hf")
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = "the cat ran, 123 <|eos|>"
    # transformers parses special-token strings in text; lmforge does so only when asked.
    assert hf_tok(text, add_special_tokens=False).input_ids == tokenizer.encode(text, special=True)
    assert hf_tok.decode(tokenizer.encode("hello world"), skip_special_tokens=True) == "hello world"
    for role in ("bos", "eos", "pad", "unk"):
        assert getattr(hf_tok, f"{role}_token_id") == tokenizer.special_id(role)
    gen = json.loads((tmp_path / "hf" / "generation_config.json").read_text())
    assert gen["pad_token_id"] == tokenizer.pad_id
    assert gen["eos_token_id"] == [tokenizer.eos_id, tokenizer.end_id]
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["eos_token_id"] == tokenizer.eos_id and config["max_position_embeddings"] == 40


def _hf_tiny(kind: str, folder, tokenizer: Tokenizer):
    """A tiny random transformers model of `kind`, saved with a tokenizer."""
    torch.manual_seed(3)
    if kind == "llama":
        cfg = transformers.LlamaConfig(
            vocab_size=V,
            hidden_size=32,
            intermediate_size=72,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=40,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 500.0},
            initializer_range=0.3,
            bos_token_id=1,
            eos_token_id=2,
        )
        model = transformers.LlamaForCausalLM(cfg)
    elif kind == "gpt2":
        cfg = transformers.GPT2Config(
            vocab_size=V, n_positions=40, n_embd=32, n_layer=2, n_head=4, initializer_range=0.3
        )
        model = transformers.GPT2LMHeadModel(cfg)
    else:
        cfg = transformers.OpenAIGPTConfig(
            vocab_size=V, n_positions=40, n_embd=32, n_layer=2, n_head=4, initializer_range=0.3
        )
        model = transformers.OpenAIGPTLMHeadModel(cfg)
    # LLaMA is written in shards (model.safetensors.index.json) to cover that reader too.
    model.eval().save_pretrained(folder, max_shard_size="100KB" if kind == "llama" else "5GB")
    hf_tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer.engine, bos_token="<|bos|>", eos_token="<|eos|>"
    )
    hf_tok.save_pretrained(folder)
    return model


@pytest.mark.parametrize("kind", ["llama", "gpt2", "openai-gpt"])
def test_import_logits_match_transformers(tmp_path, tokenizer, kind):
    hf = _hf_tiny(kind, tmp_path / "src", tokenizer)
    run = import_hf(tmp_path / "src", tmp_path / "run")
    assert (run / "latest").read_text().strip() == "step_0"
    model = load_model(run / "checkpoints" / "step_0" / "model.safetensors").eval()
    ids = torch.randint(0, V, (2, 30), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (model(ids)[0] - hf(ids).logits).abs().max().item() <= 1e-4
    tok = Tokenizer.load(run / "tokenizer")
    assert tok.eos_id == 2 and tok.bos_id == 1 and tok.pad_id is None
    assert tok.encode("the cat") == tokenizer.encode("the cat")
    import yaml

    described = yaml.safe_load((run / "config.yaml").read_text())
    # The run opens like a trained one (`lmforge sample`, evaluation).
    from lmforge.runs import load_run

    opened = load_run(run)
    assert opened.checkpoint.path.name == "step_0" and opened.model.config == model.config
    assert opened.stage == "import" and opened.step == 0
    assert described["arch"] == ("llama" if kind == "llama" else "gpt")
    assert described["model"]["n_layer"] == 2


def test_import_then_export_roundtrip(tmp_path, tokenizer):
    hf = _hf_tiny("llama", tmp_path / "src", tokenizer)
    import_hf(tmp_path / "src", tmp_path / "run")
    r = cli("export", "hf", "--run", tmp_path / "run", "--out", tmp_path / "back")
    assert r.returncode == 0, r.stderr
    again = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back").eval()
    ids = torch.randint(0, V, (1, 20), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.allclose(again(ids).logits, hf(ids).logits, atol=1e-5)


def test_unexportable_combination_fails_before_writing(tmp_path):
    model = make("gpt", pos="rope")
    with pytest.raises(LmforgeError, match="no Hugging Face equivalent"):
        export_hf(model, None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _run_folder(tmp_path, tokenizer):
    from lmforge.runs.checkpoint import save_checkpoint

    run = tmp_path / "run"
    model = make("llama")
    save_checkpoint(
        run,
        5,
        write_weights=lambda path: save_model(model, path),
        optimizer_state={},
        trainer_state={"tokenizer_hash": tokenizer.hash},
    )
    tokenizer.save(run / "tokenizer")
    return run


def test_cli_export_errors(tmp_path, tokenizer):
    run = _run_folder(tmp_path, tokenizer)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_clean_error(cli("export", "hf", "--run", run, "--out", out), "--force")
    assert (out / "keep.txt").read_text() == "mine"
    weights = run / "checkpoints" / "step_5" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    r = cli("export", "hf", "--run", run, "--out", tmp_path / "new")
    assert_clean_error(r, "model.safetensors")
    assert not (tmp_path / "new").exists()
    r = cli("export", "hf", "--run", tmp_path / "nope", "--out", tmp_path / "new")
    assert_clean_error(r, "no such run")


def test_cli_import_errors(tmp_path, tokenizer):
    src = tmp_path / "src"
    src.mkdir()
    assert_clean_error(cli("import", "hf", "--src", src, "--out", tmp_path / "run"), "config.json")
    (src / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert_clean_error(cli("import", "hf", "--src", src, "--out", tmp_path / "run"), "bert")
    assert not (tmp_path / "run").exists()
    _hf_tiny("gpt2", src, tokenizer)
    (src / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes()[:300])
    assert_clean_error(
        cli("import", "hf", "--src", src, "--out", tmp_path / "run"), "model.safetensors"
    )
    assert not (tmp_path / "run").exists()


def test_export_names_a_silently_corrupted_checkpoint(tmp_path, tokenizer):
    """Same size, one flipped byte in the tensors: the trainer's sha256 catches it."""
    _hf_tiny("gpt2", tmp_path / "src", tokenizer)
    run = import_hf(tmp_path / "src", tmp_path / "run")
    weights = run / "checkpoints" / "step_0" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    r = cli("export", "hf", "--run", run, "--out", tmp_path / "out")
    assert_clean_error(r, "model.safetensors", "corrupted")
    assert not (tmp_path / "out").exists()
