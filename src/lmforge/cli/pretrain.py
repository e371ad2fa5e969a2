"""`lmforge pretrain`: train a GPT or LLaMA on token shards (also under torchrun)."""

from __future__ import annotations

import argparse
from pathlib import Path

VERB = "pretrain"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..config import add_config_args
    from ..train.config import PretrainConfig

    parser = subparsers.add_parser(
        VERB,
        help="pretrain a GPT, LLaMA, RNN or BERT on token shards",
        description="Next-token pretraining into a run folder (config.yaml, checkpoints/, "
        "metrics.jsonl, tb/, plots/, report.md). Runs as one process or under "
        "`torchrun --nproc_per_node N -m lmforge pretrain ...` (DDP; --parallel fsdp shards).",
    )
    parser.add_argument("--config", metavar="YAML", help="PretrainConfig YAML (flags override it)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN/latest exactly (config from RUN/config.yaml unless --config; "
        "flags such as --max-steps still override)",
    )
    add_config_args(parser, PretrainConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..common import ConfigError
    from ..config import build_config, overrides_from_args
    from ..train.config import PretrainConfig

    overrides = overrides_from_args(args)
    yaml_path = args.config
    if args.resume and not yaml_path:
        out = overrides.get("out")
        if not out:
            raise ConfigError("out", "--resume needs --out RUN, the run folder to continue")
        saved = Path(out) / "config.yaml"
        if saved.is_file():
            yaml_path = saved
    cfg = build_config(PretrainConfig, yaml_path=yaml_path, overrides=overrides)

    from ..train.pretrain import pretrain

    pretrain(cfg, resume=args.resume)
    return 0
