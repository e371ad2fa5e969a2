"""`lmforge dpo`: direct preference optimisation of a policy (also under torchrun)."""

from __future__ import annotations

import argparse

VERB = "dpo"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..stages.dpo import DPOConfig
    from ._stage import add_stage_args

    parser = subparsers.add_parser(
        VERB,
        help="DPO (or IPO) on preference pairs, against the frozen starting model",
        description="Train --from RUN (normally an SFT run) with the DPO loss "
        "-log σ(β·[(log π - log π_ref)(chosen) - (log π - log π_ref)(rejected)]) on pairs of "
        "--data (the formats of `lmforge reward train`); the reference is the starting model, "
        "its log-probabilities computed once before training (--reference precompute) or by a "
        "frozen copy on every batch (--reference model). Logs the implicit rewards, their "
        "accuracy and margin. Writes a run folder like the other stages.",
    )
    add_stage_args(parser, DPOConfig, "DPOConfig")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..stages.dpo import DPOConfig, dpo
    from ._stage import stage_config

    dpo(stage_config(args, DPOConfig), resume=args.resume)
    return 0
