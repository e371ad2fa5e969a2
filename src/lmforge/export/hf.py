"""GPT-1/2/3 and LLaMA checkpoints to and from Hugging Face ``transformers`` folders.

``export_hf(model, tokenizer, out)`` writes ``config.json``, ``model.safetensors``,
``generation_config.json`` and the tokenizer files that
``AutoModelForCausalLM`` / ``AutoTokenizer`` load; ``import_hf(src, run)``
brings such a folder in as an lmforge run (step 0) to train further.

Which HF class a model maps to follows from its switches, not its name:

* pre-norm LayerNorm + GELU + learned positions -> ``GPT2LMHeadModel``;
* post-norm LayerNorm + tanh-GELU + learned positions -> ``OpenAIGPTLMHeadModel``;
* RMSNorm + SwiGLU + RoPE (pre-norm) -> ``LlamaForCausalLM``.

Weight layouts: HF's GPT-2/GPT-1 use ``Conv1D`` whose weight is the transpose of
``nn.Linear``'s; lmforge's fused q|k|v matrix is HF LLaMA's q/k/v projections
stacked, and its fused SwiGLU ``fc`` is gate|up stacked. lmforge's RoPE already
uses HF's rotate-half convention, so q and k need no permutation either way.
A model without biases exports to GPT-2 with zero biases (HF's layers always
have them), which computes the same function.

transformers itself is not needed to export or import; tests use it to check
that both sides compute the same logits.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..common import LmforgeError, atomic_write_text, replace_folder
from ..config import to_dict
from ..models.gpt import GPT, GPTConfig, LlamaConfig

HF_CLASS = {
    "gpt2": "GPT2LMHeadModel",
    "openai-gpt": "OpenAIGPTLMHeadModel",
    "llama": "LlamaForCausalLM",
}
DTYPES = ("float32", "bfloat16", "float16")


# ---------------------------------------------------------------------------
# Which HF model type


def hf_model_type(cfg: GPTConfig) -> str:
    """ "gpt2", "openai-gpt" or "llama" for a config; LmforgeError when none computes the same."""
    if cfg.norm == "rmsnorm" and cfg.mlp == "swiglu" and cfg.pos == "rope" and cfg.prenorm:
        return "llama"
    if cfg.norm == "layernorm" and cfg.pos == "learned" and cfg.kv_heads == cfg.n_head:
        if cfg.prenorm and cfg.mlp in ("gelu", "gelu_tanh"):
            return "gpt2"
        if not cfg.prenorm and cfg.mlp == "gelu_tanh" and cfg.ffn_hidden == 4 * cfg.d_model:
            return "openai-gpt"
    raise LmforgeError(
        f"model (norm={cfg.norm}, mlp={cfg.mlp}, pos={cfg.pos}, prenorm={cfg.prenorm}, "
        f"n_kv_head={cfg.kv_heads}/{cfg.n_head}) has no Hugging Face equivalent; export needs "
        "GPT-2 (layernorm, gelu, learned, pre-norm), GPT-1 (post-norm, gelu_tanh, d_ff=4d) "
        "or LLaMA (rmsnorm, swiglu, rope)"
    )


def to_hf_config(cfg: GPTConfig, special_ids: dict[str, int] | None = None) -> dict[str, Any]:
    """config.json contents for `cfg` (special_ids: {bos, eos, pad, unk: id})."""
    kind = hf_model_type(cfg)
    # Unknown ids are written as null: HF's class defaults (e.g. GPT-2's 50256) would be wrong.
    ids = {f"{r}_token_id": (special_ids or {}).get(r) for r in ("bos", "eos", "pad")}
    common = {
        "architectures": [HF_CLASS[kind]],
        "model_type": kind,
        "vocab_size": cfg.vocab_size,
        "tie_word_embeddings": cfg.tie_embeddings,
        "dtype": "float32",
        **ids,
    }
    if kind == "llama":
        return {
            **common,
            "hidden_size": cfg.d_model,
            "intermediate_size": cfg.ffn_hidden,
            "num_hidden_layers": cfg.n_layer,
            "num_attention_heads": cfg.n_head,
            "num_key_value_heads": cfg.kv_heads,
            "head_dim": cfg.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": cfg.block_size,
            "rms_norm_eps": cfg.norm_eps,
            "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
            "attention_bias": cfg.bias,
            "mlp_bias": cfg.bias,
            "attention_dropout": cfg.dropout,
            "initializer_range": cfg.init_std,
        }
    shared = {
        "n_positions": cfg.block_size,
        "n_embd": cfg.d_model,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "layer_norm_epsilon": cfg.norm_eps,
        "resid_pdrop": cfg.dropout,
        "embd_pdrop": cfg.dropout,
        "attn_pdrop": cfg.dropout,
        "initializer_range": cfg.init_std,
    }
    if kind == "gpt2":
        act = "gelu_new" if cfg.mlp == "gelu_tanh" else "gelu"
        return {**common, **shared, "n_inner": cfg.ffn_hidden, "activation_function": act}
    # HF's OpenAI GPT maps "gelu" to the tanh approximation (as the original code did).
    return {**common, **shared, "afn": "gelu"}


def from_hf_config(hf: dict[str, Any], where: str = "config.json") -> tuple[str, GPTConfig]:
    """(arch, config) for a transformers config.json of a GPT-2, OpenAI GPT or LLaMA model."""
    kind = hf.get("model_type")

    def need(key: str) -> Any:
        if key not in hf:
            raise LmforgeError(f"{where}: missing {key!r} for model_type {kind!r}")
        return hf[key]

    def refuse(cond: bool, what: str) -> None:
        if cond:
            raise LmforgeError(f"{where}: {what} is not supported by lmforge's {kind} import")

    if kind == "llama":
        n_head, d = need("num_attention_heads"), need("hidden_size")
        rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
        refuse(rope.get("rope_type", rope.get("type", "default")) != "default", "rope scaling")
        refuse(hf.get("head_dim") not in (None, d // n_head), "head_dim != hidden_size/heads")
        refuse(hf.get("hidden_act", "silu") != "silu", f"hidden_act {hf.get('hidden_act')!r}")
        bias = bool(hf.get("attention_bias", False))
        refuse(bool(hf.get("mlp_bias", False)) != bias, "mlp_bias different from attention_bias")
        n_kv = hf.get("num_key_value_heads") or n_head
        cfg = LlamaConfig(
            vocab_size=need("vocab_size"),
            block_size=hf.get("max_position_embeddings", 2048),
            n_layer=need("num_hidden_layers"),
            n_head=n_head,
            n_kv_head=0 if n_kv == n_head else n_kv,
            d_model=d,
            d_ff=need("intermediate_size"),
            norm_eps=hf.get("rms_norm_eps", 1e-6),
            rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
            bias=bias,
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        )
        return "llama", _checked(cfg, where)
    if kind in ("gpt2", "openai-gpt"):
        d = need("n_embd")
        if kind == "gpt2":
            act = hf.get("activation_function", "gelu_new")
            mlp = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}.get(
                act
            )
            refuse(mlp is None, f"activation_function {act!r}")
            refuse(not hf.get("scale_attn_weights", True), "scale_attn_weights=false")
            refuse(
                hf.get("scale_attn_by_inverse_layer_idx", False), "scale_attn_by_inverse_layer_idx"
            )
            refuse(hf.get("add_cross_attention", False), "add_cross_attention")
            d_ff = hf.get("n_inner") or 4 * d
        else:
            refuse(hf.get("afn", "gelu") != "gelu", f"afn {hf.get('afn')!r}")
            mlp, d_ff = "gelu_tanh", 4 * d
        cfg = GPTConfig(
            vocab_size=need("vocab_size"),
            block_size=need("n_positions"),
            n_layer=need("n_layer"),
            n_head=need("n_head"),
            d_model=d,
            d_ff=d_ff,
            norm="layernorm",
            norm_eps=hf.get("layer_norm_epsilon", 1e-5),
            mlp=mlp,
            pos="learned",
            prenorm=kind == "gpt2",
            bias=True,
            tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
        )
        return "gpt", _checked(cfg, where)
    raise LmforgeError(
        f"{where}: model_type {kind!r} is not supported; lmforge imports gpt2, openai-gpt and llama"
    )


def _checked(cfg: GPTConfig, where: str) -> GPTConfig:
    from ..config import validate

    try:
        validate(cfg)
    except LmforgeError as e:
        raise LmforgeError(f"{where}: {e}") from None
    return cfg


# ---------------------------------------------------------------------------
# Weights


def to_hf_state_dict(model: GPT) -> dict[str, Any]:
    """HF tensor names -> tensors for `model` (tied output weight left out, as HF saves it)."""
    import torch

    cfg = model.config
    kind = hf_model_type(cfg)
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    H, Hkv, hd, ff = cfg.n_head, cfg.kv_heads, cfg.head_dim, cfg.ffn_hidden
    out: dict[str, torch.Tensor] = {}

    def bias_of(prefix: str, size: int) -> torch.Tensor:
        # HF's GPT layers always have biases: a bias-free lmforge model exports zeros.
        b = sd.get(prefix + ".bias")
        return b if b is not None else torch.zeros(size, dtype=sd[prefix + ".weight"].dtype)

    if kind == "llama":
        out["model.embed_tokens.weight"] = sd["tok_emb.weight"]
        for i in range(cfg.n_layer):
            s, t = f"blocks.{i}.", f"model.layers.{i}."
            q, k, v = sd[s + "attn.qkv.weight"].split([H * hd, Hkv * hd, Hkv * hd])
            out |= {t + "self_attn.q_proj.weight": q, t + "self_attn.k_proj.weight": k}
            out |= {t + "self_attn.v_proj.weight": v}
            out[t + "self_attn.o_proj.weight"] = sd[s + "attn.proj.weight"]
            gate, up = sd[s + "mlp.fc.weight"].split([ff, ff])
            out |= {t + "mlp.gate_proj.weight": gate, t + "mlp.up_proj.weight": up}
            out[t + "mlp.down_proj.weight"] = sd[s + "mlp.proj.weight"]
            out[t + "input_layernorm.weight"] = sd[s + "norm1.weight"]
            out[t + "post_attention_layernorm.weight"] = sd[s + "norm2.weight"]
            if cfg.bias:
                qb, kb, vb = sd[s + "attn.qkv.bias"].split([H * hd, Hkv * hd, Hkv * hd])
                out |= {t + "self_attn.q_proj.bias": qb, t + "self_attn.k_proj.bias": kb}
                out |= {t + "self_attn.v_proj.bias": vb}
                out[t + "self_attn.o_proj.bias"] = sd[s + "attn.proj.bias"]
                gb, ub = sd[s + "mlp.fc.bias"].split([ff, ff])
                out |= {t + "mlp.gate_proj.bias": gb, t + "mlp.up_proj.bias": ub}
                out[t + "mlp.down_proj.bias"] = sd[s + "mlp.proj.bias"]
        out["model.norm.weight"] = sd["norm_f.weight"]
    else:
        gpt2 = kind == "gpt2"
        out["transformer.wte.weight" if gpt2 else "transformer.tokens_embed.weight"] = sd[
            "tok_emb.weight"
        ]
        out["transformer.wpe.weight" if gpt2 else "transformer.positions_embed.weight"] = sd[
            "pos_emb.weight"
        ]
        C = cfg.d_model
        for i in range(cfg.n_layer):
            s, t = f"blocks.{i}.", f"transformer.h.{i}."
            # Conv1D stores (in, out): the transpose of nn.Linear's (out, in).
            for ours, theirs, size in (
                ("attn.qkv", "attn.c_attn", 3 * C),
                ("attn.proj", "attn.c_proj", C),
                ("mlp.fc", "mlp.c_fc", ff),
                ("mlp.proj", "mlp.c_proj", C),
            ):
                out[t + theirs + ".weight"] = sd[s + ours + ".weight"].t()
                out[t + theirs + ".bias"] = bias_of(s + ours, size)
            for ours, theirs in (("norm1", "ln_1"), ("norm2", "ln_2")):
                out[t + theirs + ".weight"] = sd[s + ours + ".weight"]
                out[t + theirs + ".bias"] = bias_of(s + ours, C)
        if gpt2:
            out["transformer.ln_f.weight"] = sd["norm_f.weight"]
            out["transformer.ln_f.bias"] = bias_of("norm_f", C)
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = sd["lm_head.weight"]
    return {k: v.contiguous() for k, v in out.items()}


def from_hf_state_dict(hf: dict[str, Any], cfg: GPTConfig, where: str) -> dict[str, Any]:
    """lmforge state dict (names of `GPT`) from HF tensors (with or without the base prefix)."""
    import torch

    kind = hf_model_type(cfg)
    prefix = "model." if kind == "llama" else "transformer."
    # Hub checkpoints of the base model (GPT2Model, ...) have no "transformer." prefix.
    hf = {(k if k.startswith((prefix, "lm_head.")) else prefix + k): v for k, v in hf.items()}

    def take(name: str) -> torch.Tensor:
        if name not in hf:
            raise LmforgeError(
                f"{where}: missing tensor {name!r}; the weights do not match config.json"
            )
        return hf[name].float()

    sd: dict[str, torch.Tensor] = {}
    if kind == "llama":
        sd["tok_emb.weight"] = take("model.embed_tokens.weight")
        for i in range(cfg.n_layer):
            s, t = f"blocks.{i}.", f"model.layers.{i}.self_attn."
            m = f"model.layers.{i}."
            sd[s + "attn.qkv.weight"] = torch.cat(
                [take(t + "q_proj.weight"), take(t + "k_proj.weight"), take(t + "v_proj.weight")]
            )
            sd[s + "attn.proj.weight"] = take(t + "o_proj.weight")
            sd[s + "mlp.fc.weight"] = torch.cat(
                [take(m + "mlp.gate_proj.weight"), take(m + "mlp.up_proj.weight")]
            )
            sd[s + "mlp.proj.weight"] = take(m + "mlp.down_proj.weight")
            sd[s + "norm1.weight"] = take(m + "input_layernorm.weight")
            sd[s + "norm2.weight"] = take(m + "post_attention_layernorm.weight")
            if cfg.bias:
                sd[s + "attn.qkv.bias"] = torch.cat(
                    [take(t + "q_proj.bias"), take(t + "k_proj.bias"), take(t + "v_proj.bias")]
                )
                sd[s + "attn.proj.bias"] = take(t + "o_proj.bias")
                sd[s + "mlp.fc.bias"] = torch.cat(
                    [take(m + "mlp.gate_proj.bias"), take(m + "mlp.up_proj.bias")]
                )
                sd[s + "mlp.proj.bias"] = take(m + "mlp.down_proj.bias")
        sd["norm_f.weight"] = take("model.norm.weight")
    else:
        gpt2 = kind == "gpt2"
        sd["tok_emb.weight"] = take(
            "transformer.wte.weight" if gpt2 else "transformer.tokens_embed.weight"
        )
        sd["pos_emb.weight"] = take(
            "transformer.wpe.weight" if gpt2 else "transformer.positions_embed.weight"
        )
        for i in range(cfg.n_layer):
            s, t = f"blocks.{i}.", f"transformer.h.{i}."
            for ours, theirs in (
                ("attn.qkv", "attn.c_attn"),
                ("attn.proj", "attn.c_proj"),
                ("mlp.fc", "mlp.c_fc"),
                ("mlp.proj", "mlp.c_proj"),
            ):
                sd[s + ours + ".weight"] = take(t + theirs + ".weight").t().contiguous()
                sd[s + ours + ".bias"] = take(t + theirs + ".bias")
            for ours, theirs in (("norm1", "ln_1"), ("norm2", "ln_2")):
                sd[s + ours + ".weight"] = take(t + theirs + ".weight")
                sd[s + ours + ".bias"] = take(t + theirs + ".bias")
        if gpt2:
            sd["norm_f.weight"] = take("transformer.ln_f.weight")
            sd["norm_f.bias"] = take("transformer.ln_f.bias")
    # Tied: the output layer is the embedding (load_state_dict then sees every name).
    sd["lm_head.weight"] = sd["tok_emb.weight"] if cfg.tie_embeddings else take("lm_head.weight")
    return sd


def read_hf_weights(src: Path) -> dict[str, Any]:
    """All tensors of a HF folder: model.safetensors, its shards, or pytorch_model.bin."""
    import torch
    from safetensors.torch import load_file

    single, index = src / "model.safetensors", src / "model.safetensors.index.json"
    files: list[Path]
    if single.is_file():
        files = [single]
    elif index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as e:
            raise LmforgeError(f"{index}: not a valid shard index ({e})") from None
        files = [src / f for f in sorted(set(weight_map.values()))]
    elif (src / "pytorch_model.bin").is_file():
        f = src / "pytorch_model.bin"
        try:
            try:
                return torch.load(f, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:
                # Files from before torch 1.6 (not zip archives) cannot be memory-mapped.
                return torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:
            raise LmforgeError(
                f"{f}: cannot read the weights ({type(e).__name__}); it is truncated, "
                "corrupted or holds more than tensors"
            ) from None
    else:
        raise LmforgeError(
            f"{src}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin"
        )
    tensors: dict[str, Any] = {}
    for f in files:
        if not f.is_file():
            raise LmforgeError(f"{f}: shard listed in the index is missing")
        try:
            tensors.update(load_file(str(f)))
        except Exception as e:
            raise LmforgeError(
                f"{f}: truncated or corrupted safetensors file ({_short(e)})"
            ) from None
    return tensors


def _short(e: Exception) -> str:
    return " ".join(str(e).split())[:200]


# ---------------------------------------------------------------------------
# Folders


def _start_export(out, force: bool, tokenizer, vocab_size: int) -> tuple[Path, Path]:
    """Check `out` and the tokenizer before anything is written; make the temp folder.

    Returns (out, tmp): the export is built in `tmp` and moved to `out` at the end.
    """
    out = Path(out)
    _check_out(out, force)
    if tokenizer is not None and tokenizer.vocab_size > vocab_size:
        raise LmforgeError(
            f"tokenizer has {tokenizer.vocab_size} ids but the model only {vocab_size}; "
            "they do not belong together"
        )
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return out, tmp


def _check_out(out: Path, force: bool, inputs=()) -> None:
    """The output policy (lmforge.outputs) for a Hugging Face model folder."""
    from ..outputs import check_out

    check_out(
        out,
        force=force,
        made_here=lambda p: (p / "config.json").is_file(),
        what="Hugging Face model folder",
        inputs=inputs,
    )


def export_hf(
    model: GPT, tokenizer, out: str | Path, *, dtype: str = "float32", force: bool = False
) -> Path:
    """Write a transformers folder for `model` (and `tokenizer`, may be None) at `out`."""
    import torch
    from safetensors.torch import save_file

    if dtype not in DTYPES:
        raise LmforgeError(f"dtype: got {dtype!r}; allowed: {', '.join(DTYPES)}")
    model = getattr(model, "_orig_mod", model)
    cfg = model.config
    hf_model_type(cfg)  # fail before writing anything
    out, tmp = _start_export(out, force, tokenizer, cfg.vocab_size)
    try:
        ids: dict[str, int] = {}
        if tokenizer is not None:
            from .hf_tokenizer import write_hf_tokenizer

            ids = write_hf_tokenizer(tokenizer, tmp, cfg.block_size)
        config = to_hf_config(cfg, ids)
        config["dtype"] = dtype
        atomic_write_text(tmp / "config.json", json.dumps(config, indent=2) + "\n")
        gen = {k: v for k, v in config.items() if k.endswith("_token_id") and v is not None}
        end_id = tokenizer.special_id("end") if tokenizer is not None else None
        if end_id is not None and gen.get("eos_token_id") not in (None, end_id):
            # Chat-tuned models end a turn with <|end|>: HF generate should stop there too.
            gen["eos_token_id"] = [gen["eos_token_id"], end_id]
        atomic_write_text(tmp / "generation_config.json", json.dumps(gen, indent=2) + "\n")
        target = getattr(torch, dtype)
        tensors = {k: v.to("cpu", target).contiguous() for k, v in to_hf_state_dict(model).items()}
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        out.parent.mkdir(parents=True, exist_ok=True)
        replace_folder(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def export_run(
    run: str | Path,
    out: str | Path,
    *,
    checkpoint: str | None = None,
    dtype: str = "float32",
    force: bool = False,
) -> Path:
    """`lmforge export hf`: the run's checkpoint and tokenizer as a transformers folder."""
    from ..runs import load_run
    from .hf_bert import BertMLM, export_bert_hf

    # load_run checks the tokenizer against the weights (a swapped tokenizer/ would
    # otherwise export fine and generate nonsense in transformers).
    _check_out(Path(out), force, [("run", run)])  # before reading anything heavy
    opened = load_run(run, checkpoint=checkpoint)
    model, tokenizer = opened.model, opened.tokenizer
    if not isinstance(model, (GPT, BertMLM)):
        raise LmforgeError(
            f"{opened.checkpoint.model_file}: a {opened.arch} model; Hugging Face export covers "
            "GPT, LLaMA and BERT"
        )
    if isinstance(model, BertMLM):  # an encoder: BertForMaskedLM
        return export_bert_hf(model, tokenizer, out, dtype=dtype, force=force)
    return export_hf(model, tokenizer, out, dtype=dtype, force=force)


def import_hf(src: str | Path, out: str | Path, *, force: bool = False) -> Path:
    """`lmforge import hf`: a transformers folder as an lmforge run at step 0.

    Writes ``checkpoints/step_0/`` (``model.safetensors`` and the trainer's
    bookkeeping, so `lmforge sample` and evaluation open it like any checkpoint),
    ``latest``, ``tokenizer/`` and a ``config.yaml`` describing the model, through a
    temporary folder. The optimizer state is empty: fine-tune from the weights, do
    not ``--resume`` the import.
    """
    import yaml

    from ..models import save_model
    from ..runs import RunLayout
    from ..runs.checkpoint import save_checkpoint
    from .hf_tokenizer import read_hf_tokenizer

    src, out = Path(src), Path(out)
    config_file = src / "config.json"
    if not config_file.is_file():
        raise LmforgeError(f"{config_file}: not found; --src must be a Hugging Face model folder")
    try:
        hf_config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LmforgeError(f"{config_file}: not valid JSON ({e})") from None
    arch, cfg = from_hf_config(hf_config, str(config_file))
    from ..outputs import check_out

    check_out(
        out,
        force=force,
        made_here=lambda p: RunLayout(p).made_by_lmforge(),
        what="lmforge run",
        inputs=[("source", src)],
    )
    tokenizer = read_hf_tokenizer(src, hf_config)
    if tokenizer.vocab_size > cfg.vocab_size:
        raise LmforgeError(
            f"{src}: tokenizer has {tokenizer.vocab_size} ids but config.json vocab_size is "
            f"{cfg.vocab_size}"
        )
    sd = from_hf_state_dict(read_hf_weights(src), cfg, str(src))
    model = GPT(cfg)
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise LmforgeError(f"{src}: weights do not match config.json ({_short(e)})") from None
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        layout = RunLayout(tmp)
        tokenizer.save(layout.tokenizer)
        save_checkpoint(
            tmp,
            0,
            write_weights=lambda path: save_model(model, path),
            optimizer_state={},
            trainer_state={
                "stage": "import",
                "tokenizer_hash": tokenizer.hash,
                "imported_from": str(src),
            },
        )  # also writes `latest`
        description = {
            "arch": arch,
            "model": to_dict(cfg),
            "imported_from": str(src.resolve()),
            "hf_architecture": HF_CLASS[hf_model_type(cfg)],
        }
        atomic_write_text(layout.config, yaml.safe_dump(description, sort_keys=False))
        out.parent.mkdir(parents=True, exist_ok=True)
        replace_folder(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out
