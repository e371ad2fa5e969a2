"""Export an lmforge BERT (``models.bert.BertMLM``) as a Hugging Face ``BertForMaskedLM``.

The output folder loads with ``transformers.BertForMaskedLM.from_pretrained(folder)``
(and the tokenizer with ``AutoTokenizer.from_pretrained(folder)``) and gives the same
logits: the module layouts match, so export is renaming plus splitting the fused
``qkv`` weight into ``query``/``key``/``value``. The decoder is tied to the word
embedding and its bias to ``cls.predictions.bias`` in ``BertForMaskedLM``, so
neither is written twice.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from ..common import LmforgeError, atomic_write_text
from ..models.bert import BertConfig, BertMLM

_HF_ACT = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh"}


def bert_hf_config(cfg: BertConfig, tokenizer: Any | None = None) -> dict[str, Any]:
    """The ``config.json`` of the exported model (transformers' ``BertConfig`` fields)."""
    pad = tokenizer.pad_id if tokenizer is not None else 0
    return {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "intermediate_size": cfg.d_ff,
        "hidden_act": _HF_ACT[cfg.activation],
        "hidden_dropout_prob": cfg.dropout,
        "attention_probs_dropout_prob": cfg.dropout,
        "max_position_embeddings": cfg.block_size,
        "type_vocab_size": cfg.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": cfg.layer_norm_eps,
        "pad_token_id": pad,
        "tie_word_embeddings": True,
        "dtype": "float32",
    }


def bert_to_hf_state_dict(model: BertMLM) -> dict[str, torch.Tensor]:
    """lmforge BERT weights under ``BertForMaskedLM`` names (contiguous fp32 copies)."""
    cfg = model.config
    C = cfg.d_model
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {
        "bert.embeddings.word_embeddings.weight": sd["tok_emb.weight"],
        "bert.embeddings.position_embeddings.weight": sd["pos_emb.weight"],
        "bert.embeddings.token_type_embeddings.weight": sd["type_emb.weight"],
        "bert.embeddings.LayerNorm.weight": sd["ln_emb.weight"],
        "bert.embeddings.LayerNorm.bias": sd["ln_emb.bias"],
        "cls.predictions.transform.dense.weight": sd["head_dense.weight"],
        "cls.predictions.transform.dense.bias": sd["head_dense.bias"],
        "cls.predictions.transform.LayerNorm.weight": sd["head_ln.weight"],
        "cls.predictions.transform.LayerNorm.bias": sd["head_ln.bias"],
        "cls.predictions.bias": sd["head_bias"],
    }
    for i in range(cfg.n_layer):
        src, dst = f"blocks.{i}.", f"bert.encoder.layer.{i}."
        # Fused qkv rows are [query; key; value], each C rows.
        for j, name in enumerate(["query", "key", "value"]):
            out[dst + f"attention.self.{name}.weight"] = sd[src + "qkv.weight"][j * C : (j + 1) * C]
            out[dst + f"attention.self.{name}.bias"] = sd[src + "qkv.bias"][j * C : (j + 1) * C]
        pairs = {
            "attn_out": "attention.output.dense",
            "ln_attn": "attention.output.LayerNorm",
            "ff_in": "intermediate.dense",
            "ff_out": "output.dense",
            "ln_ff": "output.LayerNorm",
        }
        for ours, theirs in pairs.items():
            out[dst + theirs + ".weight"] = sd[src + ours + ".weight"]
            out[dst + theirs + ".bias"] = sd[src + ours + ".bias"]
    return {k: v.to(torch.float32).contiguous().clone() for k, v in out.items()}


def export_bert_hf(
    model: BertMLM,
    tokenizer: Any | None,
    out: str | Path,
    *,
    dtype: str = "float32",
    force: bool = False,
) -> Path:
    """Write a ``BertForMaskedLM`` folder for `model` (and `tokenizer`, may be None) at `out`.

    The folder is built under a temporary name and renamed, so a failure leaves
    nothing half-written and an existing `out` (with ``force``) intact until the end.
    """
    from safetensors.torch import save_file

    from ..common import replace_folder
    from .hf import DTYPES, _start_export

    if dtype not in DTYPES:
        raise LmforgeError(f"dtype: got {dtype!r}; allowed: {', '.join(DTYPES)}")
    model = getattr(model, "_orig_mod", model)
    if not isinstance(model, BertMLM):
        raise LmforgeError(
            f"export to BertForMaskedLM needs a BERT model, got {type(model).__name__}"
        )
    cfg = model.config
    out, tmp = _start_export(out, force, tokenizer, cfg.vocab_size)
    try:
        if tokenizer is not None:
            from .hf_tokenizer import write_hf_tokenizer

            write_hf_tokenizer(tokenizer, tmp, cfg.block_size)
            mask_id = tokenizer.mask_id
            if mask_id is not None:
                # transformers' fill-mask pipeline finds the blank through `mask_token`.
                conf_file = tmp / "tokenizer_config.json"
                conf = json.loads(conf_file.read_text(encoding="utf-8"))
                conf["mask_token"] = tokenizer.id_to_token(mask_id)
                atomic_write_text(conf_file, json.dumps(conf, indent=2, ensure_ascii=False))
        config = bert_hf_config(cfg, tokenizer)
        config["dtype"] = dtype
        atomic_write_text(tmp / "config.json", json.dumps(config, indent=2) + "\n")
        target = getattr(torch, dtype)
        tensors = {k: v.to(target) for k, v in bert_to_hf_state_dict(model).items()}
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        out.parent.mkdir(parents=True, exist_ok=True)
        replace_folder(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out
