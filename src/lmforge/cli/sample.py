"""`lmforge sample`: continue a prompt with a trained run's model, streaming to stdout."""

from __future__ import annotations

import argparse

VERB = "sample"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        VERB,
        help="generate text from a pretraining run",
        description="Load RUN/tokenizer and the newest checkpoint of RUN (or --step N) and "
        "continue --prompt, streaming the text as it is generated.",
    )
    parser.add_argument("--run", required=True, help="run folder written by `lmforge pretrain`")
    parser.add_argument("--prompt", default="", help="text to continue (default: a new document)")
    parser.add_argument("--step", type=int, help="checkpoint step to load (default: latest)")
    parser.add_argument("--max-new-tokens", type=int, default=200, help="default: 200")
    parser.add_argument("--temperature", type=float, default=0.8, help="0: greedy (default: 0.8)")
    parser.add_argument("--top-k", type=int, default=50, help="0: off (default: 50)")
    parser.add_argument("--top-p", type=float, default=1.0, help="1: off (default: 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (default: 0)")
    parser.add_argument("--num-samples", type=int, default=1, help="default: 1")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the model through torch.compile: 10-30 s to compile, then faster steps "
        "(pays off for long or many samples)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..eval.sample import sample_run

    sample_run(
        args.run,
        args.prompt,
        step=args.step,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        num_samples=args.num_samples,
        device=args.device,
        compile=args.compile,
    )
    return 0
