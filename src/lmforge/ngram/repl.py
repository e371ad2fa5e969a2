"""`lmforge ngram suggest` and `lmforge ngram t9`: keyboard loops that update as you type.

On a terminal `suggest` reads key by key (cbreak mode) and redraws the
suggestions under the line after every key; Tab accepts the first suggestion,
Enter starts a new sentence, Ctrl-D or Ctrl-C quits. Reading from a pipe or
file, each input line is the typed text: ending in a space asks for next words,
otherwise the partial last word is completed -- one output line per input line.

`t9` (T9 mode) does the same with digits: each key 2-9 extends the word being
typed, space ends it, and the line shows the phrase decoded so far (the last
word completed while its key sequence types no word yet), with the runner-up
phrases under it. `input_lines` reads what the line-mode verbs read: their
arguments, or stdin checked to be UTF-8 text.
"""

from __future__ import annotations

import codecs
import os
import select
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO, TextIO

from ..common import LmforgeError, stdin_line
from .model import NgramModel
from .suggest import complete, suggest_next

Tokenize = Callable[[str], list[str]]


def split_typed(text: str, tokenize: Tokenize) -> tuple[list[str], str | None]:
    """(context words, partial last word) of typed text; None when it ends in a space."""
    tokens = tokenize(text)
    if not text or text[-1].isspace() or not tokens:
        return tokens, None
    return tokens[:-1], tokens[-1]


def suggestions(
    model: NgramModel, text: str, tokenize: Tokenize, k: int
) -> tuple[str | None, list[tuple[str, float]]]:
    """The partial word being completed (or None) and the top-k (word, probability)."""
    context, partial = split_typed(text, tokenize)
    if partial is None:
        return None, suggest_next(model, context, k)
    return partial, complete(model, context, partial, k)


def format_line(text: str, partial: str | None, items: list[tuple[str, float]]) -> str:
    """`typed text_ | word p | word p ...` (or `... | (no suggestion)`)."""
    cells = [f"{w} {p:.4g}" for w, p in items] or ["(no suggestion)"]
    return " | ".join([text + "_", *cells])


def run_lines(model: NgramModel, tokenize: Tokenize, k: int, fin: TextIO, out: TextIO) -> int:
    """Line mode: one suggestion line per input line."""
    for line in fin:
        text = line.rstrip("\r\n")
        partial, items = suggestions(model, text, tokenize, k)
        out.write(format_line(text, partial, items) + "\n")
        out.flush()
    return 0


def run_terminal(model: NgramModel, tokenize: Tokenize, k: int, fd: int, out: TextIO) -> int:
    """Key-by-key mode on a terminal (POSIX)."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
    text = ""
    out.write(
        "type; suggestions update as you type. Tab: accept, Enter: new sentence, Ctrl-D: quit\n"
    )

    def render() -> list[tuple[str, float]]:
        partial, items = suggestions(model, text, tokenize, k)
        cells = "   ".join(f"{w} ({100 * p:.2g}%)" for w, p in items) or "(no suggestion)"
        prompt = "> " + text
        # Clear below, draw the line and the suggestions, put the cursor back at the end.
        out.write(f"\r\x1b[J{prompt}\n  {cells}\x1b[1A\r\x1b[{len(prompt)}C")
        out.flush()
        return items

    try:
        tty.setcbreak(fd)
        items = render()
        while True:
            b = os.read(fd, 1)
            if not b:
                break
            ch = decoder.decode(b)
            if not ch:
                continue
            if ch == "\x04":
                break
            if ch in ("\r", "\n"):
                out.write("\r\x1b[J> " + text + "\n")
                text = ""
            elif ch in ("\x7f", "\x08"):
                text = text[:-1]
            elif ch == "\t" and items:
                word = items[0][0]
                _, partial = split_typed(text, tokenize)
                if partial is not None and text.lower().endswith(partial.lower()):
                    text = text[: len(text) - len(partial)]
                elif text and not text[-1].isspace():
                    text += " "
                text += word + " "
            elif ch == "\x1b":
                # An escape sequence (arrow keys...): skip it up to its final byte.
                intro = os.read(fd, 1) if select.select([fd], [], [], 0.05)[0] else b""
                if intro in (b"[", b"O"):
                    while (b := os.read(fd, 1)) and not 0x40 <= b[0] <= 0x7E:
                        pass
            elif ch.isprintable():
                text += ch
            items = render()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        out.write("\r\x1b[J\n")
        out.flush()
    return 0


def run_repl(model: NgramModel, tokenize: Tokenize, k: int = 5, line_mode: bool = False) -> int:
    """Key-by-key on an interactive POSIX terminal, else line by line from stdin."""
    suggest_next(model, [], 1)  # builds the probability-ordered indexes once, up front
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and os.name == "posix"
    if interactive and not line_mode:
        return run_terminal(model, tokenize, k, sys.stdin.fileno(), sys.stdout)
    return run_lines(model, tokenize, k, sys.stdin, sys.stdout)


# ---------------------------------------------------------------------------
# Line input shared by `t9` and `correct`


def input_lines(args: Sequence[str], stream: BinaryIO | None = None) -> Iterator[tuple[str, str]]:
    """(where, text) per input line: each of `args`, or else each line of `stream`
    (stdin's bytes), refused with one line if it is binary or not UTF-8.

    `where` names the line for error messages: ``argument 2``, ``stdin:5``."""
    if args:
        for n, text in enumerate(args, start=1):
            yield f"argument {n}", text
        return
    stream = sys.stdin.buffer if stream is None else stream
    seen = False
    for n, raw in enumerate(stream, start=1):
        seen = True
        yield f"stdin:{n}", stdin_line(raw, n)
    if not seen:
        raise LmforgeError("stdin: no input; pipe lines of text or pass them as arguments")


# ---------------------------------------------------------------------------
# T9 mode


def t9_cells(index, keys: str, top: int, beam: int) -> tuple[str, list[str]]:
    """(best phrase so far, runner-up phrases) for the keys typed in T9 mode."""
    from .t9 import decode_phrase

    seqs = keys.split()
    if not seqs:
        return "", []
    typing = not keys[-1].isspace()
    found = decode_phrase(index, seqs, top=top, width=beam, partial_last=typing)
    phrases = [" ".join(words) for words, _ in found]
    best = phrases[0] + ("" if typing else " ") if phrases else ""
    return best, phrases[1:]


def run_t9_terminal(index, top: int, beam: int, fd: int, out: TextIO) -> int:
    """T9 key by key on a terminal (POSIX): digits 2-9, space, Backspace, Enter, Ctrl-D."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    keys = ""
    out.write("T9: type digits 2-9, space between words; Enter: new sentence, Ctrl-D: quit\n")

    def render() -> str:
        best, others = t9_cells(index, keys, top, beam)
        prompt = "> " + best
        below = f"  keys: {keys.strip() or '-'}" + (
            "   also: " + " | ".join(others) if others else ""
        )
        out.write(f"\r\x1b[J{prompt}\n{below}\x1b[1A\r\x1b[{len(prompt)}C")
        out.flush()
        return best

    try:
        tty.setcbreak(fd)
        best = render()
        while True:
            b = os.read(fd, 1)
            if not b or b == b"\x04":
                break
            ch = b.decode("latin-1")
            if ch in ("\r", "\n"):
                out.write("\r\x1b[J> " + best.rstrip() + "\n")
                keys = ""
            elif ch in ("\x7f", "\x08"):
                keys = keys[:-1]
            elif ch == " ":
                if keys and not keys.endswith(" "):
                    keys += " "
            elif ch in "23456789":
                keys += ch
            elif ch == "\x1b":
                intro = os.read(fd, 1) if select.select([fd], [], [], 0.05)[0] else b""
                if intro in (b"[", b"O"):
                    while (b := os.read(fd, 1)) and not 0x40 <= b[0] <= 0x7E:
                        pass
            else:
                out.write("\a")  # not a T9 key
            best = render()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        out.write("\r\x1b[J\n")
        out.flush()
    return 0


def run_t9(index, args: Sequence[str], top: int, beam: int, line_mode: bool = False) -> int:
    """`lmforge ngram t9`: key by key on a terminal, else one result line per input line
    (the arguments, or stdin)."""
    from .t9 import format_result, parse_keys

    interactive = sys.stdin.isatty() and sys.stdout.isatty() and os.name == "posix"
    if not args and interactive and not line_mode:
        return run_t9_terminal(index, top, beam, sys.stdin.fileno(), sys.stdout)
    for where, text in input_lines(args):
        seqs = parse_keys(text, where)
        sys.stdout.write(format_result(index, text, seqs, top, beam) + "\n")
        sys.stdout.flush()
    return 0


def run_correct(corrector, tokenize: Tokenize, args: Sequence[str], top: int = 1) -> int:
    """`lmforge ngram correct`: the corrected text of each input line (the arguments, or
    stdin); with `top` > 1 also each changed word's ranked alternatives. A blank line
    stays blank."""
    from .typos import correct_line

    for _, text in input_lines(args):
        fixed, fixes = correct_line(corrector, text, tokenize, top=top)
        sys.stdout.write(fixed + "\n")
        if top > 1:
            for f in fixes:
                if f.alternatives and (f.changed or f.typed not in corrector.model.vocab):
                    cells = " | ".join(f"{w} {s:.2f}" for w, s in f.alternatives)
                    sys.stdout.write(f"  {f.typed} -> {cells}\n")
        sys.stdout.flush()
    return 0
