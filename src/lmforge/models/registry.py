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


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def arch_names() -> list[str]:
    return list(ARCHS)


def _entry(arch: str) -> tuple[str, str]:
    if arch not in ARCHS:
        raise LmforgeError(f"unknown model arch {arch!r}; known archs: {', '.join(ARCHS)}")
    return ARCHS[arch]


def config_class(arch: str) -> type:
    """The config dataclass of `arch`."""
    return _load(_entry(arch)[0])


def model_class(arch: str) -> type:
    """The nn.Module class of `arch`."""
    return _load(_entry(arch)[1])


def arch_of(obj: Any) -> str:
    """The arch name of a model (or a model config) from its config's type."""
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
    """A model config as a JSON/YAML-able dict."""
    if not dataclasses.is_dataclass(cfg):
        raise ConfigError("model", f"expected a config dataclass, got {type(cfg).__name__}")
    from ..config import to_dict

    return to_dict(cfg)
