"""`lmforge eval`: `lineage` (n-gram vs LSTM vs GPT vs LLaMA on one corpus under one time
budget) and `tasks` (a run's accuracy on task records, scored by their checkers)."""

from __future__ import annotations

import argparse

VERB = "eval"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..config import add_config_args
    from ..experiments.lineage_config import LineageConfig

    parser = subparsers.add_parser(
        VERB,
        help="evaluations and comparisons of models",
        description="Compare language models on held-out text (lineage) or on tasks "
        "with checkable answers (tasks).",
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

    from ..eval.tasks import TaskEvalConfig

    tasks = sub.add_parser(
        "tasks",
        help="accuracy of a run's model on task records (world instructions), by checker",
        description="Generate an answer to every record of --data with RUN's model (the chat "
        "template by default; --no-template for a base model: the problem's text and a "
        "newline) and score it with the record's checker. Prints accuracy with counts and "
        "95% Wilson intervals overall and per task family, difficulty, split (seen templates, "
        "held-out templates, held-out tasks) and answer mode (CoT or direct). A --data file is FILE or FILE=LABEL: its "
        "records' split (default seen; heldout_templates or heldout_task for the world's "
        "heldout_templates.jsonl or heldout_tasks.jsonl). With --out "
        "writes predictions.jsonl, results.json, results.md and accuracy.png there.",
    )
    tasks.add_argument("--run", required=True, help="run folder (pretrain, sft, import, ...)")
    tasks.add_argument(
        "--data", required=True, nargs="+", metavar="FILE[=LABEL]",
        help="task JSONL files, e.g. WORLD/instructions/test.jsonl "
        "WORLD/instructions/heldout_templates.jsonl",
    )  # fmt: skip
    tasks.add_argument("--step", type=int, help="checkpoint step to load (default: latest)")
    tasks.add_argument("--out", help="folder for predictions, results and the plot")
    tasks.add_argument(
        "--force", action="store_true", help="replace an --out written by an earlier eval tasks"
    )
    tasks.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    tasks.add_argument("--config", metavar="YAML", help="TaskEvalConfig YAML (flags override it)")
    add_config_args(tasks, TaskEvalConfig)
    tasks.set_defaults(func=run_tasks_cmd)

    cmp = sub.add_parser(
        "compare",
        help="task accuracies of several `eval tasks --out` folders side by side",
        description="One column per evaluation folder (NAME=DIR names a column), one row per "
        "group (overall, task family, difficulty, split, answer mode), then every column after the "
        "first against the first on the records both scored: records gained and lost and "
        "McNemar's z; --plot writes the bars.",
    )
    cmp.add_argument("results", nargs="+", metavar="[NAME=]DIR", help="eval tasks --out folders")
    cmp.add_argument("--plot", metavar="PNG", help="also write a bar plot here")
    cmp.set_defaults(func=run_compare_cmd)

    rl = sub.add_parser(
        "rl",
        help="PPO and GRPO runs side by side: mean score and KL against wall time",
        description="One row per `lmforge ppo` / `lmforge grpo` run (NAME=RUN names it): "
        "iterations, episodes, wall time (rollout / update), the rollouts' mean score over "
        "the first and last --window iterations and at its best, and the KL to the "
        "reference; --plot writes mean score (moving mean over 5 iterations) and KL against "
        "wall time, one line per run, for runs on the same prompts and budget.",
    )
    rl.add_argument("runs", nargs="+", metavar="[NAME=]RUN", help="ppo or grpo run folders")
    rl.add_argument("--window", type=int, default=5, help="iterations averaged (default: 5)")
    rl.add_argument("--plot", metavar="PNG", help="also write the curves here")
    rl.set_defaults(func=run_rl_cmd)

    _register_cloze(sub)
    _register_ladder(sub)
    from .reward import register_eval

    register_eval(sub)


def _register_cloze(sub: argparse._SubParsersAction) -> None:
    from ..config import add_config_args
    from ..prompting.cloze import ClozeConfig

    cloze = sub.add_parser(
        "cloze",
        help="LAMBADA-style last-word and TriviaQA-style closed-book accuracy, zero/few-shot",
        description="Zero-, one- and few-shot accuracy of RUN's model on LAMBADA-style "
        "passages (the last word, stated only far back: greedy first word = the target, and "
        "with --world the best-scored candidate word too; by distance between the mention "
        "and the blank) and TriviaQA-style closed-book questions (exact match and contains "
        "against the aliases). Sets: the world's long_range/ and trivia/ (--world DIR), or "
        'the real files: --lambada FILE (LAMBADA\'s {"text"} JSONL or one passage a line) '
        "and --trivia FILE (TriviaQA's JSON or JSONL); shown examples come from "
        "--lambada-train / --trivia-train, else from a seeded pool of the test file that is "
        "never scored. With --out writes predictions.jsonl, results.json, results.md and a "
        "plot per task.",
    )
    cloze.add_argument("--run", required=True, help="run folder (pretrain, sft, import, ...)")
    cloze.add_argument("--world", help="world folder (long_range/ and trivia/ sets)")
    cloze.add_argument(
        "--tasks",
        nargs="+",
        metavar="TASK",
        help="lambada, trivia (default: the tasks given a file, else both from --world)",
    )
    cloze.add_argument("--lambada", metavar="FILE", help="LAMBADA test file (.jsonl or .txt)")
    cloze.add_argument("--lambada-train", metavar="FILE", help="passages for shown examples")
    cloze.add_argument("--trivia", metavar="FILE", help="TriviaQA file (.json or .jsonl)")
    cloze.add_argument("--trivia-train", metavar="FILE", help="questions for shown examples")
    cloze.add_argument("--step", type=int, help="checkpoint step to load (default: latest)")
    cloze.add_argument("--out", help="folder for predictions, results, tables and plots")
    cloze.add_argument(
        "--force", action="store_true", help="replace an --out written by an earlier eval cloze"
    )
    cloze.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    cloze.add_argument("--config", metavar="YAML", help="ClozeConfig YAML (flags override it)")
    add_config_args(cloze, ClozeConfig)
    cloze.set_defaults(func=run_cloze_cmd)


def _register_ladder(sub: argparse._SubParsersAction) -> None:
    from ..config import add_config_args
    from ..experiments.size_ladder_config import LadderConfig

    ladder = sub.add_parser(
        "ladder",
        help="few-shot vs zero-shot accuracy over a ladder of model sizes pretrained here",
        description="Pretrain a LLaMA of each --sizes on the world's pretraining text (one "
        "tokenizer, one data split, the same wall-time budget and seed each), then measure "
        "zero-, one- and few-shot accuracy on the world's LAMBADA-style and TriviaQA-style "
        "sets and its sentiment set; write ladder.json, report.md (table and verdict), "
        "plots/ladder.png (score against parameters, zero vs few-shot) and plots/gain.png "
        "(few- minus zero-shot, with two standard errors). An interrupted "
        "ladder continues with --resume: finished rungs are skipped, an interrupted "
        "pretraining run resumes from its last checkpoint.",
    )
    ladder.add_argument("--config", metavar="YAML", help="LadderConfig YAML (flags override it)")
    add_config_args(ladder, LadderConfig)
    ladder.set_defaults(func=run_ladder_cmd)


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


def run_tasks_cmd(args: argparse.Namespace) -> int:
    from ..config import build_config, overrides_from_args
    from ..eval.tasks import TaskEvalConfig
    from ..eval.tasks_report import compare_results
    from ..eval.tasks_run import run_task_eval

    cfg = build_config(TaskEvalConfig, yaml_path=args.config, overrides=overrides_from_args(args))
    result, about = run_task_eval(
        args.run, args.data, cfg, step=args.step, out=args.out, force=args.force,
        device=args.device,
    )  # fmt: skip
    print(compare_results({about["name"]: result}).to_markdown(), end="")
    if args.out:
        print(f"wrote {args.out}/predictions.jsonl, results.json, results.md, accuracy.png")
    return 0


def run_compare_cmd(args: argparse.Namespace) -> int:
    from ..common import named_folder
    from ..eval.tasks_report import compare_results, load_task_eval, paired_table, plot_comparison

    named = []
    for spec in args.results:
        name, folder = named_folder(spec)
        named.append((name, load_task_eval(folder)))
    print(compare_results(named).to_markdown(), end="")
    paired = paired_table(named)
    if paired:
        print("\nPaired on the records both scored (McNemar: |z| > 1.96 is significant at 5%):\n")
        print(paired, end="")
    if args.plot:
        print(f"wrote {plot_comparison(named, args.plot)}")
    return 0


def run_rl_cmd(args: argparse.Namespace) -> int:
    from ..common import ConfigError
    from ..stages.ppo_report import load_runs, plot_side_by_side, side_by_side_table

    if args.window < 1:
        raise ConfigError("--window", f"{args.window} must be at least 1")
    runs = load_runs(args.runs)
    print(side_by_side_table(runs, args.window), end="")
    if args.plot:
        print(f"wrote {plot_side_by_side(runs, args.plot)}")
    return 0


def run_cloze_cmd(args: argparse.Namespace) -> int:
    from ..config import build_config, overrides_from_args
    from ..prompting.cloze import ClozeConfig
    from ..prompting.cloze_run import describe, run_cloze_verb

    cfg = build_config(ClozeConfig, yaml_path=args.config, overrides=overrides_from_args(args))
    files = {
        task: (test, train)
        for task, test, train in (
            ("lambada", args.lambada, args.lambada_train),
            ("trivia", args.trivia, args.trivia_train),
        )
        if test is not None or train is not None
    }
    tasks = args.tasks or list(files) or ["lambada", "trivia"]
    results, _ = run_cloze_verb(
        args.run, cfg, tasks=tasks, world=args.world, files=files, step=args.step,
        out=args.out, force=args.force, device=args.device,
    )  # fmt: skip
    for r in results:
        print(f"## {r.set.name}\n\n{describe(r)}\n\n{r.to_markdown()}")
    if args.out:
        print(f"wrote {args.out}/predictions.jsonl, results.json, results.md and plots")
    return 0


def run_ladder_cmd(args: argparse.Namespace) -> int:
    from ..config import build_config, overrides_from_args
    from ..experiments.size_ladder import run_ladder
    from ..experiments.size_ladder_config import LadderConfig
    from ..experiments.size_ladder_report import markdown_table

    cfg = build_config(LadderConfig, yaml_path=args.config, overrides=overrides_from_args(args))
    result = run_ladder(cfg)
    print(markdown_table(result))
    print(f"wrote {cfg.out}/ladder.json, report.md and plots/ladder.png")
    return 0
