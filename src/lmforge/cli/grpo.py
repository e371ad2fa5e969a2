"""`lmforge grpo`: GRPO fine-tuning of a policy run (group-normalised rewards, no critic)."""

from __future__ import annotations

import argparse

VERB = "grpo"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..stages.ppo_config import GRPOConfig
    from .ppo import register_rl

    register_rl(
        subparsers, VERB, GRPOConfig,
        "GRPO: groups of answers per prompt, advantages normalised within the group, no critic",
        "with GRPO (--n answers per prompt; each answer's advantage is its score minus its "
        "group's mean over the group's standard deviation; clipped surrogate plus β·KL to the "
        "reference as a loss term; no value model)",
    )  # fmt: skip
