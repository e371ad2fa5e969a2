"""The `lmforge` command: discovers verbs, runs one, turns errors into one line + exit 2."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback

from lmforge import __version__
from lmforge.common import LmforgeError, set_quiet


def _verb_modules():
    import lmforge.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name in ("main",) or info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"lmforge.cli.{info.name}")
        if hasattr(mod, "VERB") and hasattr(mod, "register"):
            yield mod


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmforge",
        description="Build language models end to end: tokenizers, n-grams, RNNs, BERT, GPT/LLaMA, "
        "SFT, reward models, PPO, chat.",
    )
    parser.add_argument("--version", action="version", version=f"lmforge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for mod in _verb_modules():
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    # --debug / --quiet may appear anywhere on the line, not only before the verb.
    debug = "--debug" in argv
    quiet = "--quiet" in argv
    argv = [a for a in argv if a not in ("--debug", "--quiet")]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug, args.quiet = debug, quiet
    set_quiet(quiet)
    func = getattr(args, "func", None)
    if func is None:
        # `lmforge` or `lmforge <verb>` without a sub-verb: show the relevant help.
        helper = getattr(args, "help_parser", parser)
        helper.print_help()
        sys.exit(0)
    try:
        rc = func(args)
    except LmforgeError as e:
        if debug:
            traceback.print_exc()
        print(f"lmforge: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("lmforge: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # `lmforge ... | head` closed the pipe: not an error. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    sys.exit(rc or 0)


if __name__ == "__main__":
    main()
