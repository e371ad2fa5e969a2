"""`lmforge pretrain`: train a GPT or LLaMA on token shards (also under torchrun)."""

from __future__ import annotations

import argparse

VERB = "pretrain"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..config import add_config_args
    from ..stages.pretrain_config import PretrainConfig

    parser = subparsers.add_parser(
        VERB,
        help="pretrain a GPT, LLaMA, RNN or BERT on token shards",
        description="Next-token pretraining into a run folder (config.yaml, checkpoints/, "
        "metrics.jsonl, tb/, plots/, report.md). Runs as one process or under "
        "`torchrun --nproc_per_node N -m lmforge pretrain ...` (DDP; --parallel fsdp shards). "
        "--from RUN starts from another run's weights and tokenizer (e.g. one made by "
        "`lmforge import hf`) with a new optimizer at step 0.",
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
    from ..config import build_config, overrides_from_args, read_yaml
    from ..runs import RunLayout
    from ..stages.base import import_not_resumable
    from ..stages.pretrain_config import PretrainConfig

    overrides = overrides_from_args(args)
    yaml_path = args.config
    if args.resume and not yaml_path:
        out = overrides.get("out")
        if not out:
            raise ConfigError("out", "--resume needs --out RUN, the run folder to continue")
        saved = RunLayout(out).config
        if saved.is_file():
            if "imported_from" in read_yaml(saved):  # not a PretrainConfig: say why first
                raise import_not_resumable(out)
            yaml_path = saved
    cfg = build_config(PretrainConfig, yaml_path=yaml_path, overrides=overrides)

    from ..stages.pretrain import pretrain

    pretrain(cfg, resume=args.resume)
    return 0
