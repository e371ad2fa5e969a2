"""`lmforge pretrain`: train a GPT or LLaMA on token shards (also under torchrun)."""

from __future__ import annotations

import argparse

VERB = "pretrain"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..stages.pretrain_config import PretrainConfig
    from ._stage import add_stage_args

    parser = subparsers.add_parser(
        VERB,
        help="pretrain a GPT, LLaMA, RNN or BERT on token shards",
        description="Next-token pretraining into a run folder (config.yaml, checkpoints/, "
        "metrics.jsonl, tb/, plots/, report.md). Runs as one process or under "
        "`torchrun --nproc_per_node N -m lmforge pretrain ...` (DDP; --parallel fsdp shards). "
        "--from RUN starts from another run's weights and tokenizer (e.g. one made by "
        "`lmforge import hf`) with a new optimizer at step 0.",
    )
    add_stage_args(parser, PretrainConfig, "PretrainConfig")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..stages.pretrain import pretrain
    from ..stages.pretrain_config import PretrainConfig
    from ._stage import stage_config

    pretrain(stage_config(args, PretrainConfig), resume=args.resume)
    return 0
