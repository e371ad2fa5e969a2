"""`lmforge ngram suggest`: a keyboard-style suggestion loop that updates as you type.

On a terminal it reads key by key (cbreak mode) and redraws the suggestions under
the line after every key; Tab accepts the first suggestion, Enter starts a new
sentence, Ctrl-D or Ctrl-C quits. Reading from a pipe or file, each input line is
the typed text: ending in a space asks for next words, otherwise the partial last
word is completed -- one output line per input line.
"""

from __future__ import annotations

import codecs
import os
import select
import sys
from collections.abc import Callable
from typing import TextIO

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
