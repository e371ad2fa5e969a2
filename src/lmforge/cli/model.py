"""`lmforge model info PRESET`: parameters, FLOPs per token and training memory of a model."""

from __future__ import annotations

import argparse

VERB = "model"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        VERB,
        help="inspect model sizes (presets or checkpoints)",
        description="Model facts. `lmforge model info gpt3-175b` builds the model on torch's "
        "meta device, so any size costs nothing.",
    )
    sub = parser.add_subparsers(dest="model_verb", metavar="SUBVERB")
    info = sub.add_parser(
        "info",
        help="parameters, FLOPs/token, memory to train with AdamW (fp32 and bf16)",
        description="Parameters (total, non-embedding), training FLOPs per token "
        "(6*N_matmul + 12*n_layer*d*T), and memory to train with AdamW in fp32 and bf16 "
        "mixed precision (weights, grads, Adam moments, master weights; activations not "
        "included). MODEL is a preset name (e.g. llama-7b, gpt2-xl, or cpu-small with "
        "--arch llama), a model.safetensors file or a checkpoint folder.",
    )
    info.add_argument("model", metavar="MODEL", help="preset name, checkpoint file or folder")
    info.add_argument("--arch", help="model family, to name a preset without its prefix")
    info.add_argument("--json", action="store_true", help="print the facts as JSON")
    info.set_defaults(func=run_info)
    parser.set_defaults(help_parser=parser)


def run_info(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..models import PUBLISHED_PARAMS, get_preset, read_model_meta, resolve_preset_name
    from ..models.info import format_info, model_info

    path = Path(args.model)
    published = None
    if path.exists():
        arch, cfg, _ = read_model_meta(path)
        name = str(path)
    else:
        name = resolve_preset_name(args.model, args.arch)
        arch, cfg = get_preset(name)
        published = PUBLISHED_PARAMS.get(name)
    info = model_info(arch, cfg)
    if args.json:
        print(json.dumps({"model": name, "published_params": published, **info}, indent=2))
    else:
        print(format_info(name, info, published))
    return 0
