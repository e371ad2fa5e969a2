"""`lmforge prompt-tune`: train soft tokens of a frozen run on a classification task."""

from __future__ import annotations

import argparse

VERB = "prompt-tune"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..stages.prompt_tune_config import PromptTuneConfig
    from ._stage import add_stage_args

    parser = subparsers.add_parser(
        VERB,
        help="train a soft prompt (10 tokens before and 10 after the input) on a frozen run",
        description="Prompt tuning: --n-before and --n-after trainable soft tokens around each "
        "input of --task, the model of --from RUN frozen (a wrapper in front of its embedding, "
        "not a copy); the loss is on the label tokens only. Writes a run folder with "
        "checkpoints, metrics, report.md (test accuracy by label scoring, with and without the "
        "soft prompt) and soft_prompt.safetensors, which `lmforge sample --soft-prompt` uses. "
        "Runs under torchrun like the other stages.",
    )
    add_stage_args(parser, PromptTuneConfig, "PromptTuneConfig")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..stages.prompt_tune import prompt_tune
    from ..stages.prompt_tune_config import PromptTuneConfig
    from ._stage import stage_config

    prompt_tune(stage_config(args, PromptTuneConfig), resume=args.resume)
    return 0
