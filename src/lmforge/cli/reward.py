"""`lmforge reward train | score`, and `lmforge eval reward`: reward models on preference pairs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

VERB = "reward"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..stages.reward import RewardConfig
    from ._stage import add_stage_args

    parser = subparsers.add_parser(
        VERB,
        help="train a reward model on preference pairs, or score answers with one",
        description="Reward models (LLaMA-2's second stage): `train` adds a scalar (or likelihood) head to "
        "--from RUN and trains the margin ranking loss on preference pairs; `score` writes "
        "the reward of every record of a file.",
    )
    parser.set_defaults(help_parser=parser)
    sub = parser.add_subparsers(dest="reward_verb", metavar="SUBVERB")
    train = sub.add_parser(
        "train",
        help="train a reward model (a scalar or likelihood head on a decoder) on preference pairs",
        description="Fine-tune --from RUN (an SFT or pretrain run) with a scalar head reading "
        "the last token of prompt + answer, on pairs of --data (JSONL prompt/chosen/rejected "
        "with an optional margin or rating, chat-form message lists, HH-RLHF transcripts, "
        "rankings), with the loss -log σ(r_chosen - r_rejected - margin) (+ --center "
        "c·(r_c + r_r)², + --lm-coef λ·the chosen answer's mean cross-entropy). With --head "
        "likelihood the score is instead a learned scale (from --beta) on the answer's mean "
        "log-probability under the run's own language model (SimPO's reward). Both answers "
        "of a pair run in one forward. Writes a run folder like the other stages "
        "(resumable, torchrun).",
    )
    add_stage_args(train, RewardConfig, "RewardConfig")
    train.set_defaults(func=run_train)

    score = sub.add_parser(
        "score",
        help="the reward of every record of a file (pairs, or prompt + response)",
        description="Score with reward model --run: preference pairs get reward_chosen and "
        "reward_rejected; records with a prompt and a response (or messages ending with an "
        "assistant turn) get reward. Writes JSONL to --out (one line per record, the record's "
        "own fields kept) or to stdout.",
    )
    score.add_argument("--run", required=True, help="reward-model run folder")
    score.add_argument("--data", required=True, nargs="+", help="JSONL files, folders, globs")
    score.add_argument("--out", help="JSONL file to write (default: stdout)")
    score.add_argument("--force", action="store_true", help="replace an existing --out")
    score.add_argument("--step", type=int, help="checkpoint step to load (default: latest)")
    score.add_argument("--batch-size", type=int, default=32, help="rows per forward")
    score.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    score.set_defaults(func=run_score)


def register_eval(sub: argparse._SubParsersAction) -> None:
    """`lmforge eval reward` (registered by cli/eval.py)."""
    ev = sub.add_parser(
        "reward",
        help="pairwise accuracy of a reward model, by margin bucket, with calibration",
        description="Score both answers of every pair of --data with reward model --run: "
        "pairwise accuracy overall, by margin bucket (rating or margin) and by task family / "
        "rejected-answer kind when the records carry them, with 95% Wilson intervals; the "
        "reward distributions (rewards.png) and the calibration of σ(r_c - r_r) "
        "(calibration.png, ECE). Writes scores.jsonl, results.json and results.md to --out "
        "(default RUN/eval-reward).",
    )
    ev.add_argument("--run", required=True, help="reward-model run folder")
    ev.add_argument("--data", required=True, nargs="+", help="preference files")
    ev.add_argument("--out", help="folder to write (default: RUN/eval-reward)")
    ev.add_argument("--force", action="store_true", help="replace an --out from an earlier run")
    ev.add_argument("--step", type=int, help="checkpoint step to load (default: latest)")
    ev.add_argument("--fmt", default="auto", choices=("auto", "pairs", "chat", "hh", "ranking"))
    ev.add_argument("--rating-table", default="llama2", help="llama2, llama2-large or a file")
    ev.add_argument("--batch-size", type=int, default=32, help="rows per forward")
    ev.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    ev.add_argument(
        "--likelihood", action="store_true",
        help="--run is a policy: rank each pair by its answers' log-probabilities (summed "
        "over the answer tokens), the baseline a reward model should beat",
    )  # fmt: skip
    ev.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from ..stages.reward import RewardConfig, reward_train
    from ._stage import stage_config

    reward_train(stage_config(args, RewardConfig), resume=args.resume)
    return 0


def _holds_pairs(paths: list[str]) -> bool:
    """Whether the first record of the first file is a preference record (pairs or ranking)."""
    from ..data.preferences import iter_records, preference_files

    for path, named in preference_files(paths):
        for rec in iter_records(path, named):
            return isinstance(rec.value, dict) and bool(
                {"chosen", "rejected", "ranking"} & set(rec.value)
            )
    return False


def _records(paths: list[str]):
    """(kind, prompt messages, texts to score, the raw record) of every line of `paths`."""
    from ..common import LmforgeError
    from ..data.preferences import read_preferences, read_prompts

    if _holds_pairs(paths):
        got = read_preferences(paths)
    else:
        got = None
    if got is not None:
        return [("pair", p.prompt, [p.chosen, p.rejected], {"where": p.where, **p.meta})
                for p in got.pairs]  # fmt: skip
    out = []
    for conv in read_prompts(paths):
        meta = dict(conv.meta)
        text = next((meta[k] for k in ("response", "completion", "reference") if k in meta), None)
        if not isinstance(text, str):
            raise LmforgeError(
                f"{meta.get('where', paths[0])}: no response to score; give a response field "
                "or messages ending with an assistant turn"
            )
        out.append(("response", conv.messages, [text], meta))
    return out


def run_score(args: argparse.Namespace) -> int:
    from ..common import atomic_write_text, pick_device
    from ..eval.reward_scores import open_reward_model, score_responses
    from ..outputs import check_out

    if args.out:
        inputs = [("data", p) for p in args.data] + [("reward model", args.run)]
        check_out(args.out, force=args.force, made_here=None, what="scores", inputs=inputs,
                  is_file=True)  # fmt: skip
    rm = open_reward_model(args.run, step=args.step, device=pick_device(args.device))
    records = _records(args.data)
    items = [(prompt, t) for _, prompt, texts, _ in records for t in texts]
    scores = iter(score_responses(rm.model, rm.tokenizer, items, batch_size=args.batch_size))
    lines = []
    for kind, _, texts, rec in records:
        got = [next(scores) for _ in texts]
        extra = {"reward_chosen": got[0], "reward_rejected": got[1]} if kind == "pair" else {
            "reward": got[0]}  # fmt: skip
        lines.append(json.dumps({**rec, **extra}, ensure_ascii=False))
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(args.out), text)
        print(f"reward score: {len(records):,} records scored; wrote {args.out}")
    else:
        print(text, end="")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from ..common import pick_device
    from ..data.preferences import read_preferences
    from ..eval.reward import is_reward_eval_folder, score_pairs, write_reward_eval
    from ..eval.reward_scores import open_reward_model
    from ..eval.tasks_stats import Accuracy
    from ..outputs import check_out

    out = Path(args.out) if args.out else Path(args.run) / "eval-reward"
    inputs = [("data", p) for p in args.data]
    if args.out:
        inputs.append(("reward model", args.run))
    check_out(out, force=args.force, made_here=is_reward_eval_folder, what="reward evaluation",
              inputs=inputs)  # fmt: skip
    got = read_preferences(args.data, fmt=args.fmt, rating_table=args.rating_table)
    rm = open_reward_model(args.run, step=args.step, device=pick_device(args.device),
                           likelihood=args.likelihood)  # fmt: skip
    scores = score_pairs(rm.model, rm.tokenizer, got.pairs, batch_size=args.batch_size,
                         likelihood=args.likelihood)  # fmt: skip
    about = {"run": str(args.run), "step": rm.step, "data": [str(p) for p in args.data],
             "read": got.summary(), "score": "log-likelihood" if args.likelihood else "reward"}  # fmt: skip
    doc = write_reward_eval(out, scores, about)
    a = doc["accuracy"]
    print(f"eval reward: {got.summary()}")
    print(f"pairwise accuracy {Accuracy(a['correct'], a['n']).cell()}")
    for bucket, b in doc["by"]["bucket"].items():
        print(f"  {bucket.replace('_', ' '):>20}: {Accuracy(b['correct'], b['n']).cell()}")
    print(f"calibration error (ECE) {doc['calibration']['ece']:.3f}; wrote {out}")
    return 0
