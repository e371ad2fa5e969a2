"""`lmforge grpo`: GRPO fine-tuning of a policy run (group-normalised rewards, no critic)."""

from __future__ import annotations

import argparse

VERB = "grpo"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..stages.ppo_config import GRPOConfig
    from .ppo import add_rl_parser

    parser = add_rl_parser(
        subparsers, VERB,
        "GRPO: groups of answers per prompt, advantages normalised within the group, no critic",
        "with GRPO (--n answers per prompt; each answer's advantage is its score minus its "
        "group's mean over the group's standard deviation; clipped surrogate plus β·KL to the "
        "reference as a loss term; no value model)",
        GRPOConfig,
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..stages.ppo import ppo
    from ..stages.ppo_config import GRPOConfig
    from ._stage import stage_config

    ppo(stage_config(args, GRPOConfig), resume=args.resume, verb="grpo")
    return 0
