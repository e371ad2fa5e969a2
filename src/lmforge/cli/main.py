"""The `lmforge` command: discovers verbs, runs one, turns errors into one line + exit 2."""

from __future__ import annotations

import argparse
import errno
import importlib
import pkgutil
import sys
import traceback

from lmforge import __version__
from lmforge.common import Interrupted, LmforgeError, set_quiet

# What to do about an OS error, by errno: the line names the path and the fix.
_OS_HINTS = {
    errno.EACCES: "no permission; check the path's permissions or choose another location",
    errno.EPERM: "not permitted; check the path's permissions or choose another location",
    errno.EROFS: "the file system is read-only; choose another location",
    errno.ENOSPC: "the disk is full; free some space or write somewhere else",
    errno.EDQUOT: "the disk quota is exceeded; free some space or write somewhere else",
    errno.EEXIST: "it already exists; choose another path",
    errno.EISDIR: "it is a folder, a file was expected; choose a file path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.ENOENT: "no such file or folder; check the path",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
}


def os_error_line(e: OSError) -> str:
    """One line for an OSError that escaped a verb: the path, what happened, what to do."""
    where = e.filename if e.filename is not None else ""
    if e.filename2 is not None:
        where = f"{where} -> {e.filename2}"
    what = _OS_HINTS.get(e.errno) or (e.strerror or type(e).__name__).lower()
    return f"{where}: {what}" if where else f"{e.strerror or e}: {what}"


def resume_hint(argv: list[str]) -> str:
    """How to continue an interrupted run: the same command line with --resume."""
    import shlex

    line = ["lmforge", *argv]
    if "--resume" not in argv:
        line.append("--resume")
    return f"continue with: {shlex.join(line)}"


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
    except Interrupted as e:
        print(f"lmforge: interrupted: {e}; {resume_hint(argv)}", file=sys.stderr)
        sys.exit(130)
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
    except OSError as e:  # after BrokenPipeError, which is one
        if debug:
            traceback.print_exc()
        print(f"lmforge: error: {os_error_line(e)}", file=sys.stderr)
        sys.exit(2)
    except MemoryError:
        if debug:
            traceback.print_exc()
        print(
            "lmforge: error: out of memory; use a smaller model, batch or --seq-len "
            "(`lmforge model info` estimates a model's memory)",
            file=sys.stderr,
        )
        sys.exit(2)
    sys.exit(rc or 0)


if __name__ == "__main__":
    main()
