"""`lmforge export hf` (a run as a Hugging Face transformers folder) and `lmforge export peft`
(a LoRA or prompt-tune run as an HF base model plus a PEFT adapter)."""

from __future__ import annotations

import argparse

VERB = "export"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        VERB,
        help="export a run to other tools (Hugging Face transformers)",
        description="Export a trained run for use outside lmforge.",
    )
    sub = parser.add_subparsers(dest="export_verb", metavar="SUBVERB")
    hf = sub.add_parser(
        "hf",
        help="write config.json, model.safetensors and tokenizer files for transformers",
        description="Write a folder that transformers' AutoModelForCausalLM and AutoTokenizer "
        "load: GPT-2/3 -> GPT2LMHeadModel, GPT-1 -> OpenAIGPTLMHeadModel, LLaMA -> "
        "LlamaForCausalLM, BERT -> BertForMaskedLM. Reads RUN/latest (or --checkpoint) and "
        "RUN/tokenizer.",
    )
    hf.add_argument(
        "--run", required=True, help="run folder (with latest, checkpoints/, tokenizer/)"
    )
    hf.add_argument("--out", required=True, help="folder to write")
    hf.add_argument("--checkpoint", help="checkpoint folder name, e.g. step_1000 (default: latest)")
    hf.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "bfloat16", "float16"),
        help="weight dtype of the export (default: float32)",
    )
    hf.add_argument("--force", action="store_true", help="replace --out if it exists")
    hf.set_defaults(func=run_hf)
    peft = sub.add_parser(
        "peft",
        help="write a LoRA or prompt-tune run as an HF base model + a PEFT adapter",
        description="Write OUT/base (the frozen base model as a transformers folder, without "
        "the adapters) and OUT/adapter (adapter_config.json + adapter_model.safetensors in "
        "PEFT's format): PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("
        "OUT/base), OUT/adapter) computes what the run computes. RUN is a run trained with "
        "--lora, or a `lmforge prompt-tune` run whose soft prompt has no tokens after the "
        "input (--n-after 0: PEFT puts every virtual token in front).",
    )
    peft.add_argument("--run", required=True, help="a LoRA run or a prompt-tune run")
    peft.add_argument("--out", required=True, help="folder to write (base/ and adapter/)")
    peft.add_argument("--checkpoint", help="checkpoint folder name (default: latest)")
    peft.add_argument(
        "--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
        help="weight dtype of the export (default: float32)",
    )  # fmt: skip
    peft.add_argument("--force", action="store_true", help="replace --out if it exists")
    peft.set_defaults(func=run_peft)
    parser.set_defaults(help_parser=parser)


def run_hf(args: argparse.Namespace) -> int:
    from ..export.hf import export_run

    out = export_run(
        args.run, args.out, checkpoint=args.checkpoint, dtype=args.dtype, force=args.force
    )
    print(f"wrote {out}")
    return 0


def run_peft(args: argparse.Namespace) -> int:
    from ..export.peft import export_peft

    out = export_peft(
        args.run, args.out, checkpoint=args.checkpoint, dtype=args.dtype, force=args.force
    )
    print(f"wrote {out}/base and {out}/adapter")
    return 0
