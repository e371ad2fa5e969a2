"""Stop strings on streamed text: cut at the first one, hold back what could begin one.

The engine ends a sample when its text contains a stop string, but the token that
completes it is emitted (a token may carry text past the stop string, and a stop
string may span tokens). `StopText` is the filter every streaming consumer puts
between the engine's text deltas and its reader (`lmforge sample`, the server):

* ``push(delta)`` returns the text that is safe to show now: everything up to the
  first stop string, less a tail that could be the beginning of one (shown by a
  later ``push`` once it cannot, or by ``flush``);
* once a stop string occurred, the text is cut before it, ``stopped`` is True and
  later deltas are ignored;
* ``flush()`` (the stream ended) returns the held-back tail.

The concatenation of every ``push`` and the ``flush`` is the whole text cut before
its first stop string (`truncate_at_stop`), however the text was split into deltas
(a property test in tests/test_stop_text.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from .sampling import truncate_at_stop


class StopText:
    """One stream's filter: ``push(delta) -> safe text``, ``flush() -> the held tail``."""

    def __init__(self, stop_strings: Sequence[str] = ()):
        # An empty stop string would match before any text: it is no stop at all.
        self.stops = [s for s in dict.fromkeys(stop_strings) if s]
        self.longest = max((len(s) for s in self.stops), default=0)
        self.text = ""  # the text so far, cut before a stop string once one occurred
        self.stopped = False  # a stop string occurred: nothing more is added
        self.shown = 0  # characters of `text` already returned

    def push(self, delta: str) -> str:
        """Add `delta`; returns the part of the text that can be shown now (maybe "")."""
        if delta and not self.stopped:
            old = self.text
            text = old + delta
            if self.stops:
                # A match that ends in `old` was found before: only one that ends in the new
                # text is new, and it starts at most longest - 1 characters back into `old`.
                start = max(0, len(old) - self.longest + 1)
                kept = truncate_at_stop(text[start:], self.stops)
                if len(kept) < len(text) - start:
                    text, self.stopped = text[: start + len(kept)], True
            self.text = text
        safe = len(self.text) if self.stopped else len(self.text) - self.held()
        # `safe` never decreases: a held tail of the longer text holds at most the old tail.
        out = self.text[self.shown : safe]
        self.shown = max(self.shown, safe)
        return out

    def flush(self) -> str:
        """The stream ended: the held-back tail (it can no longer begin a stop string)."""
        out = self.text[self.shown :]
        self.shown = len(self.text)
        return out

    def held(self) -> int:
        """Length of the longest tail of the text that begins a stop string (held back)."""
        text = self.text
        for k in range(min(self.longest - 1, len(text)), 0, -1):
            tail = text[-k:]
            if any(s.startswith(tail) for s in self.stops):
                return k
        return 0
