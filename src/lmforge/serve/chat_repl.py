"""`lmforge chat`: a multi-turn conversation with a run's model, in a terminal or through a pipe.

The conversation itself is `chat_session.ChatSession`; this module is its front
ends, so that the logic is testable without a terminal:

* `parse_command` / `run_command`: the slash commands (`/help` lists them).
* `run_lines` (stdin not a terminal: one user message per line, one answer per
  line on stdout, everything else on stderr) and `run_terminal` (prompts,
  streamed answers, Ctrl-C, readline history) are the two front ends;
  `chat_run` opens a run and picks one.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from ..common import LmforgeError, pick_device, stdin_line
from ..inference.sampling import SamplingConfig
from ..tokenizers.chat import has_chat_tokens
from .chat_session import CHAT_DEFAULTS, NO_CHAT_TOKENS, ChatSession

HELP = """commands:
  /help                   show this list
  /reset                  forget the conversation (the system message stays)
  /system [TEXT]          show the system message, or set it (--clear removes it)
  /save FILE [--force]    write the conversation as one {"messages": [...]} JSONL line
  /load FILE              continue a conversation saved by /save (one messages record)
  /params [KEY=VALUE...]  show the sampling settings, or set temperature, top_p, top_k,
                          max_tokens, repetition_penalty, seed (none: random), stop_strings
  /quit                   leave (or Ctrl-D)
a line starting with // sends the message with one leading / (/ itself starts a command)"""


@dataclass(frozen=True)
class Command:
    name: str  # lower-case, without the slash, aliases resolved
    arg: str  # the rest of the line, stripped


@dataclass(frozen=True)
class CommandResult:
    output: str = ""  # what to show (empty: nothing)
    quit: bool = False


_ALIASES = {"exit": "quit", "q": "quit", "?": "help", "h": "help", "clear": "reset"}


def parse_command(line: str) -> Command | None:
    """The command on `line`, or None when the line is a message (``//`` escapes a ``/``)."""
    text = line.strip()
    if not text.startswith("/") or text.startswith("//"):
        return None
    name, _, arg = text[1:].partition(" ")
    name = name.lower()
    return Command(_ALIASES.get(name, name), arg.strip())


def message_text(line: str) -> str:
    """The message a non-command line sends: ``//text`` sends ``/text``."""
    return line[1:] if line.lstrip().startswith("//") else line


def _words(arg: str, usage: str) -> list[str]:
    try:
        return shlex.split(arg)
    except ValueError as e:  # "No closing quotation"
        raise LmforgeError(f"{str(e).lower()}; usage: {usage}") from None


def _assignments(arg: str) -> dict[str, str]:
    out = {}
    for word in _words(arg, "/params KEY=VALUE ..."):
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise LmforgeError(f"{word!r}: expected KEY=VALUE")
        out[key] = value
    return out


def run_command(session: ChatSession, cmd: Command) -> CommandResult:
    """Do `cmd` on `session`; a bad argument raises LmforgeError and changes nothing."""
    name, arg = cmd.name, cmd.arg
    if name == "help":
        return CommandResult(HELP)
    if name == "quit":
        return CommandResult(quit=True)
    if name == "reset":
        session.reset()
        kept = " (the system message stays)" if session.system else ""
        return CommandResult(f"conversation cleared{kept}")
    if name == "system":
        if not arg:
            shown = session.system if session.system else "(none)"
            return CommandResult(f"system message: {shown}")
        if arg == "--clear":
            session.set_system(None)
            return CommandResult("system message removed")
        session.set_system(arg)
        return CommandResult("system message set (used from the next answer)")
    if name == "save":
        words = _words(arg, "/save FILE [--force]")
        force = "--force" in words
        paths = [w for w in words if w != "--force"]
        if len(paths) != 1:
            raise LmforgeError("/save: give one file: /save FILE [--force]")
        p = session.save(paths[0], force=force)
        return CommandResult(f"saved {len(session.messages)} messages to {p}")
    if name == "load":
        paths = _words(arg, "/load FILE")
        if len(paths) != 1:
            raise LmforgeError("/load: give one file: /load FILE")
        n = session.load(paths[0])
        return CommandResult(f"loaded {n} messages from {paths[0]}")
    if name == "params":
        if not arg:
            return CommandResult(session.describe_params())
        try:
            session.set_params(_assignments(arg))
        except LmforgeError as e:
            raise LmforgeError(f"/params {e}; the settings are unchanged") from None
        return CommandResult(session.describe_params())
    raise LmforgeError(f"unknown command /{name}; /help lists the commands")


# --- front ends ------------------------------------------------------------------------


# What `str.splitlines` breaks at, each written as its escape: one answer stays one line.
_ESCAPES = str.maketrans(
    {c: c.encode("unicode_escape").decode("ascii") for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}
)


def one_line(text: str) -> str:
    """`text` with every line break written as its escape (``\\n``, ``\\r``, ``\\x0b``...)."""
    return text.translate(_ESCAPES)


# Control characters other than newline and tab, written as escapes on a terminal: a
# model's answer must not move the cursor or send escape sequences to the terminal.
_CONTROLS = str.maketrans(
    {
        c: c.encode("unicode_escape").decode("ascii")
        for c in map(chr, [*range(0x20), *range(0x7F, 0xA0)])
        if c not in "\n\t"
    }
)


def printable(text: str) -> str:
    """`text` with its control characters (newline and tab kept) written as escapes."""
    return text.translate(_CONTROLS)


def stdin_lines(stream: BinaryIO) -> Iterator[tuple[str, str]]:
    """(``stdin:N``, text) per line of `stream` (bytes), refused with one line if it is not
    UTF-8 text."""
    for n, raw in enumerate(stream, start=1):
        yield f"stdin:{n}", stdin_line(raw, n)


def run_lines(
    session: ChatSession, lines: Iterable[tuple[str, str]], out: TextIO, err: TextIO
) -> int:
    """Scripted mode: each (where, line) is a message or a command; each message gets one
    answer line on `out` (an empty line when it fails, so answers stay in step with
    messages); command output, notices and errors (``stdin:N: ...``) go to `err`."""

    def notice(where: str, line: str) -> None:
        out.flush()
        err.write(f"{where}: {line}\n")
        err.flush()

    for where, line in lines:
        if not line.strip():
            continue
        cmd = parse_command(line)
        if cmd is not None:
            try:
                result = run_command(session, cmd)
            except LmforgeError as e:
                notice(where, f"error: {e}")
                continue
            if result.output:
                err.write(result.output + "\n")
                err.flush()
            if result.quit:
                break
            continue

        def write(piece: str) -> None:
            out.write(one_line(piece))
            out.flush()

        try:
            _, info = session.reply(
                message_text(line), write, on_notice=lambda m, w=where: notice(w, m)
            )
        except LmforgeError as e:
            out.write("\n")
            notice(where, f"error: {e}")
            continue
        out.write("\n")
        out.flush()
        if info.interrupted:
            notice(where, "answer interrupted; the partial answer is kept in the history")
    return 0


def run_terminal(
    session: ChatSession,
    out: TextIO,
    err: TextIO,
    *,
    read: Callable[[str], str] = input,
    banner: str = "",
) -> int:
    """Interactive mode: a prompt per message, answers streamed, Ctrl-C stops an answer (it
    is kept, marked interrupted); Ctrl-C at the prompt asks to press it again to leave."""
    if read is input:
        try:
            import readline  # noqa: F401 (input() then has line editing and history)
        except ImportError:  # not on every platform (Windows)
            pass
    if banner:
        out.write(banner + "\n")
    out.write("/help for commands; /quit or Ctrl-D to leave\n")
    out.flush()
    armed = False  # Ctrl-C was pressed at the prompt once
    while True:
        try:
            line = read("> ")
        except EOFError:
            out.write("\n")
            break
        except KeyboardInterrupt:
            if armed:
                out.write("\n")
                break
            armed = True
            out.write("\n(press Ctrl-C again or type /quit to leave)\n")
            out.flush()
            continue
        armed = False
        if not line.strip():
            continue
        try:
            cmd = parse_command(line)
            if cmd is not None:
                result = run_command(session, cmd)
                if result.output:
                    out.write(result.output + "\n")
                if result.quit:
                    break
                continue

            def write(piece: str) -> None:
                out.write(printable(piece))
                out.flush()

            def notice(msg: str) -> None:
                out.flush()
                err.write(f"({msg})\n")
                err.flush()

            _, info = session.reply(message_text(line), write, on_notice=notice)
            out.write(" [interrupted]\n" if info.interrupted else "\n")
        except LmforgeError as e:
            out.flush()
            err.write(f"error: {e}\n")
        except KeyboardInterrupt:  # during a command (a /load of a big file)
            out.write("\n(interrupted)\n")
        out.flush()
    return 0


def chat_run(
    run: str | Path,
    params: SamplingConfig = CHAT_DEFAULTS,
    *,
    step: int | None = None,
    system: str | None = None,
    load: str | Path | None = None,
    device: str = "auto",
    compile: bool = False,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Open `run` (the newest checkpoint, or `step`) and chat with it: the terminal front end
    when stdin is a terminal, otherwise one answer line per input line."""
    from ..runs import load_run

    stdin = sys.stdin if stdin is None else stdin
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    opened = load_run(run, step, device=pick_device(device), need="decoder")
    if not has_chat_tokens(opened.tokenizer):
        raise LmforgeError(f"{run}: {NO_CHAT_TOKENS.replace('RUN', str(run))}")
    session = ChatSession(opened.model, opened.tokenizer, params, system=system, compile=compile)
    if load is not None:
        err.write(f"loaded {session.load(load)} messages from {load}\n")
    if opened.stage == "pretrain":
        err.write(
            f"note: {run} is a pretraining run: it has not been fine-tuned on conversations, "
            "so its answers will not follow the turns (run `lmforge sft` on it first)\n"
        )
    if stdin.isatty():
        ctx = f"context {session.context} tokens" if session.context else "no context limit"
        banner = f"chatting with {run} (step {opened.step}, {opened.stage}, {ctx})"
        return run_terminal(session, out, err, banner=banner)
    lines = stdin_lines(stdin.buffer) if hasattr(stdin, "buffer") else _text_lines(stdin)
    return run_lines(session, lines, out, err)


def _text_lines(stream: TextIO) -> Iterator[tuple[str, str]]:
    """(``stdin:N``, text) per line of an already-decoded stream (tests pass a StringIO)."""
    for n, text in enumerate(stream, start=1):
        yield f"stdin:{n}", text.rstrip("\r\n")
