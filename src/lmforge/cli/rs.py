"""`lmforge rs`: rejection-sampling fine-tuning of a policy run (also under torchrun)."""

from __future__ import annotations

import argparse

VERB = "rs"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..stages.rs_config import RSConfig
    from ._stage import add_stage_args

    parser = subparsers.add_parser(
        VERB,
        help="rejection-sampling fine-tuning: best of N samples per prompt, scored, trained on",
        description="For --iterations K rounds: sample --n N answers to every prompt of "
        "--prompts with the live policy (--from RUN; one prefill per prompt shared by its N "
        "samples), score them with --reward (checker: the world's checker; graded: its "
        "partial-credit checker; or a reward-model run), keep each prompt's best (ties by a "
        "seeded draw; below --min-reward it is not kept) and fine-tune on the kept answers "
        "with the SFT objective for --steps-per-iteration steps. Writes a run folder like "
        "sft, with RUN/rs/iter-K/: samples.jsonl (every sample and its reward), best.jsonl "
        "(the kept conversations) and the best-of-n curve (curve.md, curve.png: expected max "
        "and median reward against n, LLaMA-2's Fig. 7). Runs under `torchrun "
        "--nproc_per_node N -m lmforge rs ...`.",
    )
    add_stage_args(parser, RSConfig, "RSConfig")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..stages.rs import rs
    from ..stages.rs_config import RSConfig
    from ._stage import stage_config

    rs(stage_config(args, RSConfig), resume=args.resume)
    return 0
