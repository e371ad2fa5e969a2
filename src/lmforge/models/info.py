"""Size facts of a model: parameters, training FLOPs per token, memory to train and serve.

The model is built on torch's meta device (shapes, no storage), so even GPT-3
175B costs nothing to inspect.

FLOPs per token of training follow Kaplan et al. (2020) and the PaLM appendix B
(Chowdhery et al. 2022): each weight used in a matrix multiply costs 2 FLOPs
forward and 4 backward, and attention adds QK^T and AV:

    training FLOPs/token = 6 * N_matmul + 12 * n_layer * d_attn * T

with N_matmul the non-embedding weights plus the output projection (which reads
the embedding when it is tied; the input embedding is a lookup), d_attn =
n_head * head_dim and T the context length (full, non-causal count as in PaLM).
A forward pass alone is one third.

Memory to train with AdamW counts weights, gradients, the two Adam moments and,
for bf16 mixed precision, the fp32 master weights; activations are NOT included
(they depend on batch size, sequence length and checkpointing):

    fp32:       4 (weights) + 4 (grads) + 8 (Adam m, v)                    = 16 bytes/param
    bf16 mixed: 2 (weights) + 2 (grads) + 4 (fp32 master) + 8 (Adam m, v)  = 16 bytes/param
"""

from __future__ import annotations

from typing import Any

from .registry import arch_of, build_model

TRAIN_BYTES = {
    "fp32": {"weights": 4, "grads": 4, "adam_moments": 8},
    "bf16": {"weights": 2, "grads": 2, "master_weights": 4, "adam_moments": 8},
}


def model_info(arch: str, cfg: Any) -> dict[str, Any]:
    """Parameters, FLOPs per token and memory of an `arch` model with config `cfg`."""
    import torch

    with torch.device("meta"):
        model = build_model(arch, cfg)
    total = sum(p.numel() for p in model.parameters())  # tied weights are listed once
    emb = getattr(model, "tok_emb", None)
    pos = getattr(model, "pos_emb", None)
    embedding = (emb.weight.numel() if emb is not None else 0) + (
        pos.weight.numel() if pos is not None else 0
    )
    non_embedding = total - embedding
    info: dict[str, Any] = {
        "arch": arch_of(model),
        "params": total,
        "non_embedding_params": non_embedding,
        "embedding_params": embedding,
    }
    seq_len = getattr(cfg, "block_size", None)
    n_layer, n_head, d_model = (getattr(cfg, k, None) for k in ("n_layer", "n_head", "d_model"))
    if emb is not None and seq_len and n_layer and n_head and d_model and hasattr(model, "blocks"):
        tied = bool(getattr(cfg, "tie_embeddings", False))
        matmul = non_embedding + (emb.weight.numel() if tied else 0)
        attn = 12 * n_layer * d_model * seq_len
        info["flops_per_token"] = {
            "train": 6 * matmul + attn,
            "forward": (6 * matmul + attn) // 3,
            "seq_len": seq_len,
            "formula": "6*N_matmul + 12*n_layer*d_attn*T (Kaplan et al. 2020; PaLM app. B)",
            "n_matmul": matmul,
        }
        if hasattr(model, "new_kv_cache"):
            head_dim = d_model // n_head
            kv_heads = getattr(cfg, "n_kv_head", 0) or n_head
            # Keys and values for every layer, per token, in bf16.
            info["kv_cache_bytes_per_token_bf16"] = 2 * n_layer * kv_heads * head_dim * 2
    else:
        info["flops_per_token"] = {
            "train": 6 * total,
            "forward": 2 * total,
            "formula": "6*N (no attention term)",
        }
    info["train_memory_bytes"] = {
        mode: {part: b * total for part, b in parts.items()}
        | {"total": sum(parts.values()) * total}
        for mode, parts in TRAIN_BYTES.items()
    }
    info["activations_included"] = False
    info["inference_weights_bytes_bf16"] = 2 * total
    return info


def _si(n: float, unit: str = "") -> str:
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.2f} {suffix}{unit}"
    return f"{n:.0f} {unit}".rstrip()


def _bytes(n: float) -> str:
    for div, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= div:
            return f"{n / div:.2f} {suffix}"
    return f"{n:.0f} B"


def format_info(name: str, info: dict[str, Any], published: float | None = None) -> str:
    """The human-readable report of `lmforge model info`."""
    lines = [f"model         {name} (arch {info['arch']})"]
    p = info["params"]
    pub = f"; published {_si(published)}" if published else ""
    lines.append(f"parameters    {p:,} ({_si(p)}){pub}")
    lines.append(
        f"              non-embedding {info['non_embedding_params']:,}, "
        f"embedding {info['embedding_params']:,}"
    )
    f = info["flops_per_token"]
    ctx = f" at T={f['seq_len']}" if "seq_len" in f else ""
    lines.append(
        f"FLOPs/token   train {_si(f['train'], 'FLOP')}, forward {_si(f['forward'], 'FLOP')}"
        f"{ctx}  [{f['formula']}]"
    )
    for mode, label in (("fp32", "fp32"), ("bf16", "bf16 mixed")):
        m = info["train_memory_bytes"][mode]
        parts = ", ".join(
            f"{k.replace('_', ' ')} {_bytes(v)}" for k, v in m.items() if k != "total"
        )
        lines.append(f"train memory  {label}: {_bytes(m['total'])} = {parts}")
    lines.append("              AdamW; activations not included (batch- and length-dependent)")
    serve = f"inference     bf16 weights {_bytes(info['inference_weights_bytes_bf16'])}"
    if "kv_cache_bytes_per_token_bf16" in info:
        serve += f", KV cache {_bytes(info['kv_cache_bytes_per_token_bf16'])}/token"
    lines.append(serve)
    return "\n".join(lines)


def train_memory_estimate(arch: str, cfg: Any, batch_size: int, seq_len: int) -> dict[str, int]:
    """A lower-bound estimate (bytes) of one process's memory to train, to refuse hopeless configs.

    Weights, gradients and Adam moments (16 bytes/param), fp32 buffers (RoPE
    tables, masks: these grow with `block_size`) and activations of one
    micro-batch: per layer and token ``34 d + 5 h T`` 16-bit values (Korthikanti
    et al. 2022, no recomputation), doubled for fp32, plus the logits.
    """
    import torch

    with torch.device("meta"):
        model = build_model(arch, cfg)
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    d = int(getattr(cfg, "d_model", 0) or getattr(cfg, "d_hidden", 0) or 0)
    h = int(getattr(cfg, "n_head", 1) or 1)
    n_layer = int(getattr(cfg, "n_layer", 1) or 1)
    vocab = int(getattr(cfg, "vocab_size", 0) or 0)
    tokens = batch_size * seq_len
    per_token_layer = 2 * (34 * d + 5 * h * seq_len)
    activations = n_layer * tokens * per_token_layer + 3 * tokens * vocab * 4
    out = {"weights_and_optimizer": 16 * params, "buffers": buffers, "activations": activations}
    out["total"] = sum(out.values())
    return out
