"""Model architectures by name: arch -> (config class, model class).

Adding an architecture is one line in ``ARCHS`` ("module:Class" strings, imported
on first use so that ``import lmforge.models`` stays free of torch). A model class
takes its config as the only constructor argument, keeps it as ``model.config``
and follows the forward contract ``forward(ids, targets=None, kv_cache=None) ->
(logits, loss)``. The config class must be unique to the arch: a checkpoint's
arch is found from the type of ``model.config``.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from ..common import ConfigError, LmforgeError
from ..config import apply_overrides, validate

ARCHS: dict[str, tuple[str, str]] = {
    "gpt": ("lmforge.models.gpt:GPTConfig", "lmforge.models.gpt:GPT"),
    "llama": ("lmforge.models.gpt:LlamaConfig", "lmforge.models.gpt:GPT"),
    "rnn": ("lmforge.models.rnn:RNNConfig", "lmforge.models.rnn:RNNLM"),
    "bert": ("lmforge.models.bert:BertConfig", "lmforge.models.bert:BertMLM"),
}
# Archs whose training forward takes `branch_ids` (a shared prefix and branches after it in
# one row, `models.masks`): attention decoders. An RNN reads a row strictly in order.
BRANCHING_ARCHS = ("gpt", "llama")


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def arch_names() -> list[str]:
    return list(ARCHS)


def _entry(arch: str) -> tuple[str, str]:
    if arch not in ARCHS:
        raise LmforgeError(f"unknown model arch {arch!r}; known archs: {', '.join(ARCHS)}")
    return ARCHS[arch]


def supports_branches(arch: str) -> bool:
    """Whether `arch` can lay several answers after one prompt in a row (`branch_ids`)."""
    return arch in BRANCHING_ARCHS


def config_class(arch: str) -> type:
    """The config dataclass of `arch`."""
    return _load(_entry(arch)[0])


def model_class(arch: str) -> type:
    """The nn.Module class of `arch`."""
    return _load(_entry(arch)[1])


def arch_of(obj: Any) -> str:
    """The arch name of a model (or a model config) from its config's type.

    A model with a head (``lmforge.models.heads.HeadModel``) has its base's arch.
    """
    cfg = getattr(getattr(obj, "_orig_mod", obj), "config", obj)
    for arch, (cfg_ref, _) in ARCHS.items():
        if type(cfg) is _load(cfg_ref):
            return arch
    raise ValueError(f"{type(cfg).__name__} is not the config class of a registered arch")


def model_config_from_dict(arch: str, d: dict[str, Any]) -> Any:
    """A validated config of `arch` from a plain dict (unknown fields raise ConfigError)."""
    cfg = apply_overrides(config_class(arch)(), d)
    validate(cfg)
    return cfg


def build_model(arch: str, cfg: Any = None):
    """A freshly initialised model of `arch` from a config (dataclass, dict or None: defaults)."""
    cls = config_class(arch)
    if cfg is None:
        cfg = cls()
    elif isinstance(cfg, dict):
        cfg = model_config_from_dict(arch, cfg)
    elif type(cfg) is not cls:
        raise TypeError(f"arch {arch!r} takes a {cls.__name__}, got {type(cfg).__name__}")
    else:
        validate(cfg)
    return model_class(arch)(cfg)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A model config (or a model's, head models included) as a JSON/YAML-able dict."""
    if not dataclasses.is_dataclass(cfg):
        cfg = getattr(getattr(cfg, "_orig_mod", cfg), "config", cfg)
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise ConfigError("model", f"expected a config dataclass, got {type(cfg).__name__}")
    from ..config import to_dict

    return to_dict(cfg)


def resize_token_embeddings(model: Any, new_vocab: int) -> Any:
    """Grow (or shrink) a model's vocabulary to `new_vocab` ids, in place; returns the model.

    For GPT/LLaMA, RNN and BERT models (and head models, via their base): the
    token table and an untied output layer keep their existing rows; new rows
    are the mean of the existing ones (transformers' ``mean_resizing`` idea, without
    the noise), so a new token starts as an "average" token rather than a random
    one with an outsized logit. A tied output layer is re-tied; BERT's decoder
    bias grows with its mean. ``config.vocab_size`` is updated, so the model
    saves and reloads with the new size.
    """
    import torch
    import torch.nn as nn

    if new_vocab < 1:
        raise ValueError(f"new_vocab must be at least 1, got {new_vocab}")
    m = getattr(model, "_orig_mod", model)
    base = getattr(m, "base", m)
    emb = getattr(base, "tok_emb", None)
    if not isinstance(emb, nn.Embedding) or not hasattr(base, "config"):
        raise TypeError(f"{type(base).__name__} has no token embedding (tok_emb) to resize")
    old = emb.num_embeddings
    if new_vocab == old:
        return model
    lm_head = getattr(base, "lm_head", None)
    tied = lm_head is not None and lm_head.weight is emb.weight

    @torch.no_grad()
    def resized(t: torch.Tensor) -> torch.Tensor:
        out = t.new_empty((new_vocab, *t.shape[1:]))
        n = min(old, new_vocab)
        out[:n] = t[:n]
        if new_vocab > old:
            out[old:] = t.float().mean(dim=0).to(t.dtype)
        return out

    req = emb.weight.requires_grad
    emb.weight = nn.Parameter(resized(emb.weight), requires_grad=req)
    emb.num_embeddings = new_vocab
    if lm_head is not None:
        if tied:
            lm_head.weight = emb.weight
        else:
            lm_head.weight = nn.Parameter(
                resized(lm_head.weight), requires_grad=lm_head.weight.requires_grad
            )
            if lm_head.bias is not None:
                lm_head.bias = nn.Parameter(
                    resized(lm_head.bias), requires_grad=lm_head.bias.requires_grad
                )
        lm_head.out_features = new_vocab
    bias = getattr(base, "head_bias", None)  # BERT's decoder bias
    if isinstance(bias, nn.Parameter):
        base.head_bias = nn.Parameter(resized(bias), requires_grad=bias.requires_grad)
    base.config.vocab_size = new_vocab
    return model
