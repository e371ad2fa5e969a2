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
    WEIGHTS_FILE,
    load_model,
    load_weights,
    read_model_meta,
    save_model,
    weights_metadata,
)

__all__ = [
    "ARCHS",
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
