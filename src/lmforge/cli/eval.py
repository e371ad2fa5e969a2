"""`lmforge eval lineage`: n-gram vs LSTM vs GPT vs LLaMA on one corpus under one time budget."""

from __future__ import annotations

import argparse

VERB = "eval"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..config import add_config_args
    from ..experiments.lineage_config import LineageConfig

    parser = subparsers.add_parser(
        VERB,
        help="evaluations and comparisons of models",
        description="Compare language models on held-out text.",
    )
    parser.set_defaults(help_parser=parser)
    sub = parser.add_subparsers(dest="eval_verb", metavar="SUBVERB")

    lin = sub.add_parser(
        "lineage",
        help="n-grams, LSTM, GPT and LLaMA on one corpus and tokenizer, same time budget each",
        description="Train Kneser-Ney 3- and 5-grams, an LSTM, a GPT and a LLaMA of similar "
        "size on one corpus with one tokenizer, each neural model for --budget-s seconds; "
        "report validation bits per character, size, training time, generation speed and a "
        "sample, and plot validation loss against time and by position in the context.",
    )
    lin.add_argument("--config", metavar="YAML", help="LineageConfig YAML (flags override it)")
    add_config_args(lin, LineageConfig)
    lin.set_defaults(func=run_lineage_cmd)


def run_lineage_cmd(args: argparse.Namespace) -> int:
    from ..config import build_config, overrides_from_args
    from ..experiments.lineage import run_lineage
    from ..experiments.lineage_config import LineageConfig
    from ..experiments.lineage_report import markdown_table

    cfg = build_config(LineageConfig, yaml_path=args.config, overrides=overrides_from_args(args))
    result = run_lineage(cfg)
    print(markdown_table(result))
    print(f"wrote {cfg.out}/lineage.json, report.md and plots/")
    return 0
