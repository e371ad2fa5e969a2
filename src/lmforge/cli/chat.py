"""`lmforge chat`: a multi-turn conversation with an SFT run, in the terminal or through a pipe.

Every `SamplingConfig` field but ``n`` is a flag (``--temperature``, ``--top-p``,
``--max-new-tokens``, ``--seed``, ...), with the verb's own defaults
(`lmforge.serve.chat_session.CHAT_DEFAULTS`: temperature 0.7, top-p 0.9, 256 new
tokens) shown in ``--help``; `/params` changes them during the session.
"""

from __future__ import annotations

import argparse

VERB = "chat"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..config import add_config_args
    from ..inference.sampling import SamplingConfig
    from ..serve.chat_session import CHAT_DEFAULTS

    parser = subparsers.add_parser(
        VERB,
        help="talk with an SFT run: a multi-turn chat in the terminal (or one answer per "
        "input line through a pipe)",
        description="Load RUN (the newest checkpoint, or --step N) and chat with it. Answers "
        "stream as they are generated; the history stays in the context, and when it no "
        "longer fits the oldest turns are dropped (the system message is kept) and a line "
        "says so. Commands: /help, /reset, /system TEXT, /save FILE, /load FILE, /params "
        "[KEY=VALUE ...], /quit (or Ctrl-D); Ctrl-C stops an answer. With stdin not a "
        "terminal, each input line is a message (or a command) and each answer is one line "
        "on stdout (line breaks written as \\n); notices and command output go to stderr.",
    )
    parser.add_argument("--run", required=True, help="run folder of a chat model (`lmforge sft`)")
    parser.add_argument("--step", type=int, help="checkpoint step to load (default: latest)")
    parser.add_argument("--system", metavar="TEXT", help="system message to start with")
    parser.add_argument(
        "--load",
        metavar="FILE",
        help="start from a conversation saved by /save (a messages JSONL file of one record)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the model through torch.compile: 10-30 s to compile once, then faster "
        "answers (pays off for a long session)",
    )
    # One answer per turn: --n is not a chat setting.
    add_config_args(parser, SamplingConfig, base=CHAT_DEFAULTS, skip=("n",))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import build_config, overrides_from_args
    from ..inference.sampling import SamplingConfig
    from ..serve.chat_repl import chat_run
    from ..serve.chat_session import CHAT_DEFAULTS

    cfg = build_config(SamplingConfig, base=CHAT_DEFAULTS, overrides=overrides_from_args(args))
    return chat_run(
        args.run, cfg, step=args.step, system=args.system, load=args.load, device=args.device,
        compile=args.compile,
    )  # fmt: skip
