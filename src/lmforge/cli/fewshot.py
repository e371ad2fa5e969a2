"""`lmforge fewshot`: zero-, one- and few-shot classification accuracy of a run, by label scoring.

Every `FewShotConfig` field is a flag (``--k 0,1,4,8``, ``--seeds``, ``--limit``,
``--fmt``, ``--calibrate``, ``--content-free``, ``--order``, ``--affine``,
``--scoring``, ...); lists take commas or spaces.
"""

from __future__ import annotations

import argparse

VERB = "fewshot"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..config import add_config_args
    from ..prompting.evaluate import FewShotConfig

    parser = subparsers.add_parser(
        VERB,
        help="few-shot classification accuracy of a run (label scoring, calibration)",
        description="Build k-shot prompts for --task (k examples from its train split drawn "
        "per seed, then each test example without its label), score every label's tokens "
        "after the prompt with RUN's model (the prompt's KV cache shared by all labels) and "
        "report accuracy (mean, std, min, max over seeds) and macro-F1 per k; --calibrate "
        "adds contextual calibration (content-free inputs). Tasks: sentiment, topic (the "
        "world's sets, --world DIR), sst2, agnews, trec, rte, cb (../shared/data/"
        "classification or --data-dir), or a task spec file (.yaml/.json). With --out writes "
        "predictions.jsonl, results.json, results.md, accuracy.png and labels.png.",
    )
    parser.add_argument("--run", required=True, help="run folder (pretrain, sft, import, ...)")
    parser.add_argument("--task", required=True, help="task name or task spec file")
    parser.add_argument("--world", help="world folder (for the sentiment and topic tasks)")
    parser.add_argument("--data-dir", help="folder holding sst2/, agnews/, trec/, rte/, cb/")
    parser.add_argument("--step", type=int, help="checkpoint step to load (default: latest)")
    parser.add_argument("--out", help="folder for predictions, results, table and plots")
    parser.add_argument(
        "--force", action="store_true", help="replace an --out written by an earlier fewshot"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument("--config", metavar="YAML", help="FewShotConfig YAML (flags override it)")
    add_config_args(parser, FewShotConfig)
    parser.set_defaults(func=run)


def _split_commas(overrides: dict) -> dict:
    """``--k 0,1,4`` as well as ``--k 0 1 4`` (the config splits only a plain string)."""
    if isinstance(overrides.get("k"), list):
        overrides["k"] = [x for item in overrides["k"] for x in str(item).split(",") if x != ""]
    return overrides


def run(args: argparse.Namespace) -> int:
    from ..config import build_config, overrides_from_args
    from ..prompting.evaluate import FewShotConfig
    from ..prompting.fewshot_run import run_fewshot_verb

    overrides = _split_commas(overrides_from_args(args))
    cfg = build_config(FewShotConfig, yaml_path=args.config, overrides=overrides)
    result, about = run_fewshot_verb(
        args.run, args.task, cfg, world=args.world, data_dir=args.data_dir, step=args.step,
        out=args.out, force=args.force, device=args.device,
    )  # fmt: skip
    print(f"{about['name']} on {result.task} (format {result.format})")
    print(result.to_markdown(), end="")
    if args.out:
        print(
            f"wrote {args.out}/predictions.jsonl, results.json, results.md, accuracy.png, labels.png"
        )
    return 0
