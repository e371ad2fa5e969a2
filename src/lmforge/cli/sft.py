"""`lmforge sft`: supervised fine-tuning on conversations (also under torchrun)."""

from __future__ import annotations

import argparse

VERB = "sft"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..stages.sft_config import SFTConfig
    from ._stage import add_stage_args

    parser = subparsers.add_parser(
        VERB,
        help="instruction-tune a run on conversations (chat template, assistant-only loss)",
        description="Fine-tune --from RUN on instruction data (JSONL messages, prompt/"
        "completion, Alpaca, ShareGPT, GSM8K, or a mixture YAML) rendered through the chat "
        "template; conversations are packed with attention kept inside each one, and the loss "
        "is averaged over assistant tokens. Writes a run folder like pretrain; runs under "
        "`torchrun --nproc_per_node N -m lmforge sft ...`.",
    )
    add_stage_args(parser, SFTConfig, "SFTConfig")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..stages.sft import sft
    from ..stages.sft_config import SFTConfig
    from ._stage import stage_config

    sft(stage_config(args, SFTConfig), resume=args.resume)
    return 0
