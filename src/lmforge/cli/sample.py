"""`lmforge sample`: continue a prompt with a trained run's model, streaming to stdout.

Every `SamplingConfig` field is a flag (``--max-new-tokens``, ``--temperature``,
``--top-k``, ``--top-p``, ``--repetition-penalty``, ``--seed``, ``--n``,
``--stop-token-ids``, ``--stop-strings``), from the one config; the verb's own
defaults are `lmforge.eval.sample.SAMPLE_DEFAULTS` (temperature 0.8, top-k 50,
200 new tokens), passed as the base of `build_config` (and of `add_config_args`, so
`--help` shows them). ``--num-samples N`` is an alias of ``--n N``: the N samples
share one prefill of the prompt.
"""

from __future__ import annotations

import argparse

VERB = "sample"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..config import add_config_args
    from ..eval.sample import SAMPLE_DEFAULTS
    from ..inference.sampling import SamplingConfig

    parser = subparsers.add_parser(
        VERB,
        help="generate text from a run (a continuation, or a chat reply with --chat)",
        description="Load RUN/tokenizer and the newest checkpoint of RUN (or --step N) and "
        "continue --prompt, streaming the text as it is generated. A sample ends at EOS or "
        "<|end|>, a --stop-token-ids id, a --stop-strings string (cut from the text), or "
        "after --max-new-tokens.",
    )
    parser.add_argument("--run", required=True, help="run folder written by `lmforge pretrain`")
    parser.add_argument("--prompt", default="", help="text to continue (default: a new document)")
    parser.add_argument(
        "--chat",
        action="store_true",
        help="send --prompt as a user message through the chat template (an SFT run) and show "
        "the assistant's reply",
    )
    parser.add_argument("--step", type=int, help="checkpoint step to load (default: latest)")
    parser.add_argument(
        "--soft-prompt",
        metavar="FILE",
        help="soft_prompt.safetensors made by `lmforge prompt-tune` on this run: its soft "
        "tokens go around the prompt (a prompt-tune run uses its own without this)",
    )
    parser.add_argument("--config", metavar="YAML", help="SamplingConfig YAML (flags override it)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the model through torch.compile: 10-30 s to compile, then faster steps "
        "(pays off for long or many samples)",
    )
    add_config_args(parser, SamplingConfig, base=SAMPLE_DEFAULTS)  # --help shows the verb's
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import build_config, overrides_from_args
    from ..eval.sample import SAMPLE_DEFAULTS, sample_run
    from ..inference.sampling import SamplingConfig

    overrides = overrides_from_args(args)
    cfg = build_config(
        SamplingConfig, base=SAMPLE_DEFAULTS, yaml_path=args.config, overrides=overrides
    )
    sample_run(
        args.run, args.prompt, cfg, step=args.step, device=args.device, compile=args.compile,
        chat=args.chat, soft_prompt=args.soft_prompt,
    )  # fmt: skip
    return 0
