"""Between the scheduler's thread and the server's event loop: one HTTP request's generation.

A `Job` submits one scheduler `Request` per prompt (its ``n`` samples share the
prompt's prefill) and receives their events on an ``asyncio.Queue``: the
scheduler calls back on its own thread, and the callback only hands the events to
the loop (``loop.call_soon_threadsafe``), so a slow client never slows the batch.
Each choice (prompt ``i``, sample ``j`` -> choice ``i * n + j``, as OpenAI numbers
them) runs its text through a `StopText`, so a stop string and what follows it are
never sent, and a tail that could begin one is held back until it cannot.

`cancel` (the client went away) frees the request's slots at the scheduler's next
step. A full queue is waited on for a bounded time, then refused with a 429.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from ..common import LmforgeError
from ..inference.scheduler import QueueFull, Request, Scheduler, SchedulerClosed, Ticket
from ..inference.stop_text import StopText
from .protocol import ApiError, GenerationRequest

QUEUE_POLL_S = 0.05  # how often a full queue is tried again


@dataclass
class Update:
    """New text of one choice, and its finish reason when this is its last update."""

    index: int
    text: str
    finish_reason: str | None = None


class _Choice:
    __slots__ = ("filter", "tokens", "finish_reason", "prefix")

    def __init__(self, stops: Sequence[str], prefix: str):
        self.filter = StopText(stops)
        self.tokens = 0  # tokens generated (the one completing a stop string included)
        self.finish_reason: str | None = None
        self.prefix = prefix  # echoed prompt text, sent before the answer

    @property
    def text(self) -> str:
        return self.prefix + self.filter.text


class Job:
    """One request's generation on the scheduler; updates arrive on the running loop."""

    def __init__(self, scheduler: Scheduler, req: GenerationRequest, stop_ids: Sequence[int]):
        self.scheduler, self.req, self.stop_ids = scheduler, req, list(stop_ids)
        echo = req.echo or [""] * len(req.prompts)
        self.choices = [
            _Choice(req.stop, echo[i]) for i in range(len(req.prompts)) for _ in range(req.n)
        ]
        self.tickets: list[Ticket] = []
        self._queue: asyncio.Queue[tuple[int, list]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self.error: str | None = None  # the scheduler failed (a bug, out of memory)

    @property
    def prompt_tokens(self) -> int:
        return sum(len(p) for p in self.req.prompts)

    @property
    def completion_tokens(self) -> int:
        return sum(c.tokens for c in self.choices)

    @property
    def finished(self) -> bool:
        return all(c.finish_reason is not None for c in self.choices)

    async def start(self, queue_wait: float) -> None:
        """Submit every prompt; a full queue is retried for `queue_wait` seconds, then 429."""
        deadline = time.monotonic() + queue_wait
        for i, (prompt, max_tokens) in enumerate(zip(self.req.prompts, self.req.max_tokens)):
            request = Request(
                prompt=prompt, max_tokens=max_tokens, temperature=self.req.temperature,
                top_p=self.req.top_p, top_k=self.req.top_k, seed=self.req.seed, n=self.req.n,
                stop_ids=self.stop_ids, stop_strings=self.req.stop,
            )  # fmt: skip
            while True:
                try:
                    self.tickets.append(self.scheduler.submit(request, self._sink(i)))
                    break
                except QueueFull:
                    if time.monotonic() >= deadline:
                        self.cancel()
                        raise ApiError(
                            429,
                            "the server is busy: every slot is taken and the queue is full; "
                            "retry in a moment",
                            type="rate_limit_error",
                            code="rate_limit_exceeded",
                            headers={"Retry-After": "1"},
                        ) from None
                    await asyncio.sleep(QUEUE_POLL_S)
                except SchedulerClosed:
                    self.cancel()
                    raise ApiError(
                        503, "the server is shutting down; retry elsewhere", type="server_error",
                        code="shutting_down",
                    ) from None  # fmt: skip
                except LmforgeError as e:  # the scheduler's own check of the request
                    self.cancel()
                    raise ApiError(400, str(e)) from None

    def _sink(self, prompt: int):
        """The callback of prompt `prompt`'s ticket (runs on the scheduler's thread)."""
        put = self._queue.put_nowait
        loop = self._loop

        def on_events(events: list) -> None:
            loop.call_soon_threadsafe(put, (prompt, events))

        return on_events

    def cancel(self) -> None:
        """Free this request's slots (no-op once finished)."""
        for t in self.tickets:
            if not t.done.is_set():
                self.scheduler.cancel(t)

    async def updates(self) -> AsyncIterator[list[Update]]:
        """The choices' new text, step by step, until every choice has finished."""
        n = self.req.n
        while not self.finished:
            prompt, events = await self._queue.get()
            out: list[Update] = []
            for ev in events:
                index = prompt * n + ev.row
                choice = self.choices[index]
                if choice.finish_reason is not None:
                    continue
                if ev.token is not None:
                    choice.tokens += 1
                text = choice.filter.push(ev.text_delta)
                reason = None
                if ev.finish_reason is not None:
                    text += choice.filter.flush()
                    reason = ev.finish_reason
                    if reason == "length" and choice.filter.stopped:
                        reason = "stop"  # the text reached a stop string as the budget ran out
                    if reason == "error":
                        self.error = self._ticket_error(prompt)
                    choice.finish_reason = reason
                out.append(Update(index, text, reason))
            if out:
                yield out
            if self.error is not None:
                self.cancel()
                return

    def _ticket_error(self, prompt: int) -> str:
        if prompt < len(self.tickets) and self.tickets[prompt].error:
            return str(self.tickets[prompt].error)
        return "the generation failed"

    async def collect(self) -> None:
        """Run to the end (a whole, non-streamed answer)."""
        async for _ in self.updates():
            pass
