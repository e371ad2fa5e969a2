"""`lmforge fewshot`: zero-, one- and few-shot classification accuracy of a run, by label scoring.

Every `FewShotConfig` field is a flag (``--k 0,1,4,8``, ``--seeds``, ``--limit``,
``--fmt``, ``--calibrate``, ``--content-free``, ``--order``, ``--affine``,
``--scoring``, ``--sweep``, ``--permutations``, ...); lists take commas or spaces.
With ``--sweep k,permutations,formats,recency,majority`` the verb runs those
sensitivity experiments instead of the k table, on one or more tasks
(``--task sentiment,topic``), each with and without calibration.
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
        "predictions.jsonl, results.json, results.md, accuracy.png and labels.png. "
        "--sweep runs sensitivity experiments instead (k; permutations of the same examples; "
        "formats, with --fmt all or a list; the recency and majority probes), each with and "
        "without calibration, on one or more tasks (--task sentiment,topic); with --out it "
        "writes results.json, results.md and a plot per sweep (k.png, permutations.png, "
        "formats.png, recency.png, majority.png).",
    )
    parser.add_argument("--run", required=True, help="run folder (pretrain, sft, import, ...)")
    parser.add_argument(
        "--task", required=True, help="task name or task spec file (with --sweep: several, a,b)"
    )
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
    for key in ("k", "sweep"):
        if isinstance(overrides.get(key), list):
            overrides[key] = [x for item in overrides[key] for x in str(item).split(",") if x != ""]
    return overrides


def _tasks(arg: str, sweep: bool) -> list[str]:
    """``--task``: one name or file; with --sweep a comma list (a file whose name has a
    comma is taken whole when it exists)."""
    from pathlib import Path

    from ..common import LmforgeError

    if "," not in arg or Path(arg).is_file():
        return [arg]
    if not sweep:
        raise LmforgeError(
            f"--task {arg}: several tasks are for --sweep; give one task, or add --sweep k"
        )
    return [x.strip() for x in arg.split(",") if x.strip()]


def run(args: argparse.Namespace) -> int:
    from ..config import build_config, overrides_from_args
    from ..prompting.evaluate import FewShotConfig
    from ..prompting.fewshot_run import run_fewshot_verb

    overrides = _split_commas(overrides_from_args(args))
    cfg = build_config(FewShotConfig, yaml_path=args.config, overrides=overrides)
    if cfg.sweep:
        return _run_sweeps(args, cfg)
    (task,) = _tasks(args.task, False)
    result, about = run_fewshot_verb(
        args.run, task, cfg, world=args.world, data_dir=args.data_dir, step=args.step,
        out=args.out, force=args.force, device=args.device,
    )  # fmt: skip
    print(f"{about['name']} on {result.task} (format {result.format})")
    print(result.to_markdown(), end="")
    if args.out:
        print(
            f"wrote {args.out}/predictions.jsonl, results.json, results.md, accuracy.png, labels.png"
        )
    return 0


def _run_sweeps(args: argparse.Namespace, cfg) -> int:
    from ..prompting.fewshot_run import run_sweeps_verb
    from ..prompting.sensitivity_report import headline_text, skip_text, sweep_table

    sweeps, about = run_sweeps_verb(
        args.run, _tasks(args.task, True), cfg, world=args.world, data_dir=args.data_dir,
        step=args.step, out=args.out, force=args.force, device=args.device,
    )  # fmt: skip
    print(f"{about['name']}: sweeps {', '.join(cfg.sweep)}")
    for s in sweeps:
        print(f"\n{s.name} on {s.task}:")
        if s.trials:
            print("\n".join(sweep_table(s)))
            print(headline_text(s))
        for sk in s.skipped:
            print(skip_text(s, sk))
    if args.out:
        print(f"wrote {args.out}/" + ", ".join(about["files"]))
    return 0
