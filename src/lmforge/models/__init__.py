"""lmforge.models: the architectures, their presets, and self-describing weight files.

Everything here is importable without torch; torch is loaded when a model is built.
"""

from .presets import PRESETS, PUBLISHED_PARAMS, get_preset, preset_names, resolve_preset_name
from .registry import (
    ARCHS,
    arch_names,
    arch_of,
    build_model,
    config_class,
    config_to_dict,
    model_class,
    model_config_from_dict,
    resize_token_embeddings,
)
from .weights import (
    META_LORA,
    META_SOFT,
    WEIGHTS_FILE,
    load_model,
    load_weights,
    read_model_meta,
    save_model,
    weights_metadata,
)

# Adapters (torch is imported with them): lmforge.models.lora and lmforge.models.soft_prompt.
ADAPTER_API = {
    "lora": ("LoraConfig", "LoraLinear", "apply_lora", "count_trainable", "has_lora",
             "lora_config_of", "lora_parameters", "merge_lora", "parse_lora_spec",
             "unload_lora", "unmerge_lora"),
    "soft_prompt": ("SoftLayout", "SoftPrompt", "SoftPromptEmbedding", "attach_soft_prompt",
                    "detach_soft_prompt", "load_soft_prompt", "save_soft_prompt",
                    "soft_prompt_of"),
}  # fmt: skip
_LAZY = {name: mod for mod, names in ADAPTER_API.items() for name in names}


def __getattr__(name: str):
    """`from lmforge.models import apply_lora` without importing torch for everything else."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    *_LAZY,
    "ARCHS",
    "META_LORA",
    "META_SOFT",
    "PRESETS",
    "PUBLISHED_PARAMS",
    "WEIGHTS_FILE",
    "arch_names",
    "arch_of",
    "build_model",
    "config_class",
    "config_to_dict",
    "get_preset",
    "load_model",
    "load_weights",
    "model_class",
    "model_config_from_dict",
    "preset_names",
    "read_model_meta",
    "resize_token_embeddings",
    "resolve_preset_name",
    "save_model",
    "weights_metadata",
]
