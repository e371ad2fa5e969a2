"""Self-describing weight files: ``model.safetensors`` with the arch and config inside.

The safetensors metadata holds ``lmforge_arch`` and ``lmforge_model_config`` (the
config dataclass as JSON), and for a model with a scalar/value head
(``lmforge.models.heads``) ``lmforge_head`` (its kind), so ``load_model(path)``
rebuilds any checkpoint without the run's config. ``weights_metadata(model)`` is
that metadata for any writer of model weights (the training loop's checkpoints). Tied weights are stored once. Files are written to a
temporary name and renamed, so a crash never leaves half a file behind.

Adapters are self-describing too: a model with LoRA adapters
(``lmforge.models.lora``) records ``lmforge_lora`` (its LoraConfig as JSON), one
with a soft prompt (``lmforge.models.soft_prompt``) ``lmforge_soft_prompt``
(n_before, n_after). The file holds the full state (frozen base and adapters,
under their live names), so ``load_model`` rebuilds the same modules and the
loop's resume is exact; ``load_model(path, lora="merge")`` folds the adapters
into plain linear layers instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..common import ConfigError, LmforgeError
from .registry import arch_of, build_model, config_to_dict, model_config_from_dict

WEIGHTS_FILE = "model.safetensors"
META_ARCH = "lmforge_arch"
META_CONFIG = "lmforge_model_config"
META_HEAD = "lmforge_head"
META_LORA = "lmforge_lora"
META_SOFT = "lmforge_soft_prompt"
LORA_MODES = ("keep", "merge")
HEAD_PREFIX = "head."
BASE_PREFIX = "base."


def _weights_path(path: str | Path) -> Path:
    p = Path(path)
    return p / WEIGHTS_FILE if p.is_dir() else p


def _unwrap(model):
    # torch.compile wraps the module; its state dict keys carry a prefix we do not want.
    return getattr(model, "_orig_mod", model)


# safetensors' names for the dtypes a state dict can hold.
_DTYPE_NAMES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint64": "U64",
    "uint32": "U32",
    "uint16": "U16",
    "uint8": "U8",
    "bool": "BOOL",
}


def write_safetensors(state_dict: dict, path: str | Path, metadata: dict[str, str]) -> None:
    """Write a state dict as safetensors, streaming one tensor at a time.

    Tied weights (the same storage under two names) are written once; load_model
    re-ties them. The file is byte-identical for equal inputs (exact-resume checks
    compare checkpoints byte for byte): tensors and metadata go in sorted name
    order. Writing the format here rather than through ``safetensors.torch.save``
    keeps memory flat: that function builds the whole file as one bytes object,
    which doubles a large model's footprint at every checkpoint.
    """
    import torch

    tensors = {}
    stored: set[tuple[int, tuple[int, ...], tuple[int, ...]]] = set()
    for name, t in state_dict.items():
        key = (t.data_ptr(), tuple(t.shape), tuple(t.stride()))
        if key in stored:
            continue
        stored.add(key)
        tensors[name] = t
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))} if metadata else {}
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        dtype = str(t.dtype).removeprefix("torch.")
        if dtype not in _DTYPE_NAMES:
            raise LmforgeError(f"{name}: safetensors cannot store dtype {dtype}")
        size = t.numel() * t.element_size()
        header[name] = {
            "dtype": _DTYPE_NAMES[dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the format pads the header to 8-byte alignment
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for name in sorted(tensors):
            t = tensors[name].detach().to("cpu").contiguous().reshape(-1)
            if t.numel():
                f.write(t.view(torch.uint8).numpy().data)


def weights_metadata(model) -> dict[str, str]:
    """The self-describing safetensors metadata of `model`: format, arch, config, head kind.

    Works for every registered arch, with or without a head (``HeadModel``), and
    for a torch.compile'd model. Raises ValueError for a module outside the registry.
    """
    model = _unwrap(model)
    meta = {
        "format": "pt",
        META_ARCH: arch_of(model),
        META_CONFIG: json.dumps(config_to_dict(model.config)),
    }
    from .heads import head_kind

    kind = head_kind(model)
    if kind is not None:
        meta[META_HEAD] = str(kind)
    meta.update(adapter_metadata(model))
    return meta


def adapter_metadata(model) -> dict[str, str]:
    """``lmforge_lora`` / ``lmforge_soft_prompt`` entries for a model with adapters ({} without)."""
    from .lora import lora_config_of, lora_modules
    from .soft_prompt import soft_prompt_of

    meta: dict[str, str] = {}
    cfg = lora_config_of(model)
    if cfg is not None:
        if any(m.merged for m in lora_modules(model).values()):
            raise LmforgeError("a model with merged LoRA adapters cannot be saved; unmerge first")
        meta[META_LORA] = cfg.to_json()
    soft = soft_prompt_of(model)
    if soft is not None:
        meta[META_SOFT] = json.dumps({"n_before": soft.n_before, "n_after": soft.n_after})
    return meta


def attach_adapters(model, meta: dict[str, str], where: Path | str = "") -> None:
    """Rebuild the adapters `meta` describes on a freshly built `model` (before its weights)."""
    from .lora import LoraConfig, apply_lora

    if META_LORA in meta:
        try:
            cfg = LoraConfig.from_json(meta[META_LORA])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, ConfigError) as e:
            raise LmforgeError(f"{where}: {META_LORA} metadata is damaged ({e})") from None
        apply_lora(model, cfg)
    if META_SOFT in meta:
        from .soft_prompt import attach_soft_prompt

        try:
            soft = json.loads(meta[META_SOFT])
            n_before, n_after = int(soft["n_before"]), int(soft["n_after"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise LmforgeError(f"{where}: {META_SOFT} metadata is damaged") from None
        attach_soft_prompt(model, n_before, n_after, init="random")


def save_model(model, path: str | Path, *, metadata: dict[str, str] | None = None) -> Path:
    """Write `model` to `path` (a file, or a folder to hold model.safetensors), atomically."""
    model = _unwrap(model)
    p = Path(path)
    if p.is_dir() or p.suffix == "":
        p = p / WEIGHTS_FILE
    p.parent.mkdir(parents=True, exist_ok=True)
    meta = {**weights_metadata(model), **(metadata or {})}
    tmp = p.with_name(p.name + ".tmp")
    try:
        write_safetensors(model.state_dict(), tmp, meta)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def read_model_meta(path: str | Path) -> tuple[str, Any, dict[str, str]]:
    """(arch, config, all metadata) of a checkpoint, reading only its header."""
    from safetensors import safe_open

    p = _weights_path(path)
    if not p.is_file():
        raise LmforgeError(f"{p}: no such checkpoint file")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise LmforgeError(
            f"{p}: not a readable safetensors file, truncated or corrupted ({_short(e)}); "
            "restore it or use another checkpoint"
        ) from None
    if META_ARCH not in meta or META_CONFIG not in meta:
        raise LmforgeError(
            f"{p}: not an lmforge checkpoint (no {META_ARCH} metadata); "
            "bring Hugging Face weights in with `lmforge import hf`"
        )
    arch = meta[META_ARCH]
    try:
        fields = json.loads(meta[META_CONFIG])
    except json.JSONDecodeError as e:
        raise LmforgeError(f"{p}: {META_CONFIG} metadata is not valid JSON ({e.msg})") from None
    try:
        cfg = model_config_from_dict(arch, fields)
    except ConfigError as e:
        raise LmforgeError(f"{p}: model config: {e}") from None
    except LmforgeError as e:
        raise LmforgeError(f"{p}: {e}") from None
    return arch, cfg, meta


def load_model(
    path: str | Path,
    device: str = "cpu",
    dtype=None,
    *,
    head: str | bool | None = None,
    lora: str = "keep",
):
    """Rebuild the model saved at `path` (file or checkpoint folder) on `device`.

    Adapters come back as saved (LoRA modules, soft prompt: the base frozen);
    ``lora="merge"`` instead folds LoRA adapters into plain linear layers (a
    model that computes the same, at the base's speed, with the base's names).

    ``head``: None (default) rebuilds what was saved, a head model if the file has
    ``lmforge_head``; False loads only the base model (a head checkpoint's head is
    dropped); ``"scalar"`` / ``"value"`` returns a ``HeadModel`` of that kind: the
    saved head if the file has one of that kind, else a freshly initialised one on
    the loaded base (a plain base checkpoint, or a reward model turned critic).
    """
    import torch
    from safetensors.torch import load_file

    p = _weights_path(path)
    arch, cfg, meta = read_model_meta(p)
    saved_head = meta.get(META_HEAD)
    if head is True:
        if saved_head is None:
            raise LmforgeError(f"{p}: the checkpoint has no head ({META_HEAD} metadata)")
        head = None
    if head not in (None, False):
        from .heads import HEAD_KINDS

        if head not in HEAD_KINDS:
            raise LmforgeError(f"head must be one of {', '.join(HEAD_KINDS)}, got {head!r}")
    try:
        tensors = load_file(str(p), device="cpu")
    except Exception as e:
        raise LmforgeError(
            f"{p}: truncated or corrupted weights ({_short(e)}); restore it or use another checkpoint"
        ) from None
    head_tensors: dict = {}
    if saved_head is not None:
        head_tensors = {
            k[len(HEAD_PREFIX) :]: v for k, v in tensors.items() if k.startswith(HEAD_PREFIX)
        }
        tensors = {
            k[len(BASE_PREFIX) :]: v for k, v in tensors.items() if k.startswith(BASE_PREFIX)
        }
    if lora not in LORA_MODES:
        raise ValueError(f"lora must be one of {LORA_MODES}, got {lora!r}")
    model = build_model(arch, cfg)
    attach_adapters(model, meta, p)
    _load_checked(model, tensors, p, arch)
    if lora == "merge" and META_LORA in meta:
        from .lora import unload_lora

        unload_lora(model, merge=True)
    want = saved_head if head is None else (head or None)
    if want is not None:
        from .heads import HeadModel

        model = HeadModel(model, want)
        if want == saved_head:
            try:
                model.head.load_state_dict(head_tensors)
            except RuntimeError as e:
                raise LmforgeError(f"{p}: head weights do not fit ({_short(e)})") from None
    all_tensors = [*tensors.values(), *head_tensors.values()]
    if not all(torch.isfinite(t).all() for t in all_tensors if t.is_floating_point()):
        raise LmforgeError(f"{p}: weights contain NaN or inf; the checkpoint is corrupted")
    return model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)


def load_weights(model, path: str | Path) -> None:
    """Load a model.safetensors into an existing `model` (same arch, head and shapes).

    The loop's resume uses it (the model is built, maybe wrapped, before the weights
    arrive); errors name the file, as `load_model`'s do.
    """
    from safetensors.torch import load_file

    p = _weights_path(path)
    try:
        tensors = load_file(str(p), device="cpu")
    except Exception as e:  # safetensors raises its own types for bad headers and short files
        raise LmforgeError(
            f"{p}: truncated or corrupted weights ({_short(e)}); restore it or use another checkpoint"
        ) from None
    _load_checked(_unwrap(model), tensors, p, type(_unwrap(model)).__name__)


def _load_checked(model, tensors: dict, p: Path, arch: str) -> None:
    """load_state_dict with lmforge's errors; a tied weight stored once counts for its twins."""
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as e:
        raise LmforgeError(f"{p}: weights do not fit the {arch} config ({_short(e)})") from None
    # A tied weight is stored under one of its names; the other is filled by the tie.
    sd = model.state_dict()
    loaded = {sd[k].data_ptr() for k in sd if k in tensors}
    really_missing = [k for k in missing if sd[k].data_ptr() not in loaded]
    if really_missing or unexpected:
        parts = []
        if really_missing:
            parts.append(f"missing {', '.join(really_missing[:5])}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:5])}")
        raise LmforgeError(f"{p}: weights do not match the {arch} config ({'; '.join(parts)})")


def _short(e: Exception) -> str:
    return " ".join(str(e).split())[:200]
