"""SIGINT / SIGTERM during training: stop at the next step boundary, after a checkpoint.

The first signal only sets a flag (and says so on stderr); the loop reads it
after each optimizer step, saves a checkpoint and raises `Interrupted`, so
nothing since the last `--save-every` is lost. A second signal raises
KeyboardInterrupt at once, for a user who does not want to wait for the save.
Handlers can only be set in the main thread; elsewhere (a test runner's worker
thread, a notebook's executor) the loop runs without them.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """`with StopSignals() as s:` ... `s.received` is the first signal's name, or None."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt  # the second signal: quit now, without saving
        self.received = signal.Signals(signum).name
        print(
            f"lmforge: {self.received} received; saving a checkpoint after this step "
            "(send it again to quit at once)",
            file=sys.stderr,
            flush=True,
        )
