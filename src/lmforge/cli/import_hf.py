"""`lmforge import hf`: bring a local Hugging Face GPT-2 / GPT-1 / LLaMA folder in as a run."""

from __future__ import annotations

import argparse

VERB = "import"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        VERB,
        help="import weights from other tools (Hugging Face transformers)",
        description="Import a model made elsewhere as an lmforge run.",
    )
    sub = parser.add_subparsers(dest="import_verb", metavar="SUBVERB")
    hf = sub.add_parser(
        "hf",
        help="a local transformers folder (GPT2LMHeadModel, OpenAIGPTLMHeadModel, "
        "LlamaForCausalLM) as a run at step 0",
        description="Read config.json, the weights (model.safetensors, shards or "
        "pytorch_model.bin) and tokenizer files of a local Hugging Face folder and write an "
        "lmforge run: checkpoints/step_0/model.safetensors, latest, tokenizer/, config.yaml. "
        "Continue training or fine-tune from it. Nothing is downloaded.",
    )
    hf.add_argument("--src", required=True, help="Hugging Face model folder")
    hf.add_argument("--out", required=True, help="run folder to create")
    hf.add_argument("--force", action="store_true", help="replace --out if it exists")
    hf.set_defaults(func=run_hf)
    parser.set_defaults(help_parser=parser)


def run_hf(args: argparse.Namespace) -> int:
    from ..export.hf import import_hf

    out = import_hf(args.src, args.out, force=args.force)
    print(f"wrote {out}")
    return 0
