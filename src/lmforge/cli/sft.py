"""`lmforge sft`: supervised fine-tuning on conversations (also under torchrun)."""

from __future__ import annotations

import argparse

VERB = "sft"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..config import add_config_args
    from ..stages.sft_config import SFTConfig

    parser = subparsers.add_parser(
        VERB,
        help="instruction-tune a run on conversations (chat template, assistant-only loss)",
        description="Fine-tune --from RUN on instruction data (JSONL messages, prompt/"
        "completion, Alpaca, ShareGPT, GSM8K, or a mixture YAML) rendered through the chat "
        "template; conversations are packed with attention kept inside each one, and the loss "
        "is averaged over assistant tokens. Writes a run folder like pretrain; runs under "
        "`torchrun --nproc_per_node N -m lmforge sft ...`.",
    )
    parser.add_argument("--config", metavar="YAML", help="SFTConfig YAML (flags override it)")
    parser.add_argument(
        "--resume", action="store_true", help="continue RUN/latest exactly (config from the run)"
    )
    add_config_args(parser, SFTConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..common import ConfigError
    from ..config import build_config, overrides_from_args
    from ..runs import RunLayout
    from ..stages.sft_config import SFTConfig

    overrides = overrides_from_args(args)
    yaml_path = args.config
    if args.resume and not yaml_path:
        out = overrides.get("out")
        if not out:
            raise ConfigError("out", "--resume needs --out RUN, the run folder to continue")
        if RunLayout(out).config.is_file():
            yaml_path = RunLayout(out).config
    cfg = build_config(SFTConfig, yaml_path=yaml_path, overrides=overrides)

    from ..stages.sft import sft

    sft(cfg, resume=args.resume)
    return 0
