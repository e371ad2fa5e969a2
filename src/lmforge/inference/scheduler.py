"""Continuous batching: requests join the running decode batch at every step and leave when done.

`stream_generate` (engine.py) runs one batch from start to end. A server gets
requests at any time, so `Scheduler` keeps one decode batch running and, at every
step,

1. drops the rows of cancelled requests (a client went away: its slot is free at once);
2. runs one decode step for the live rows (their last token each, one query per row);
3. admits queued requests while slots and the step's prompt-token budget allow,
   and prefills their prompts as one left-padded batch (the same forward as the
   engine's; ``n`` samples of a request share their prompt's prefill);
4. picks every row's next token with the row's own settings (temperature, top-p,
   top-k) and generator (seed + 1000003 * sample, as `engine.row_seeds`), emits
   the step's events, and retires rows that hit a stop token, a stop string, their
   ``max_tokens`` or the context.

The cache is a `BatchCache`: a fixed pool of ``slots`` rows, so memory is bounded
(``stats()["cache_bytes"]``) whatever the traffic. A row's tokens depend only on
its prompt, its settings and its seed, never on the other rows (each row has its
own positions, attention mask and generator): greedy output is the same alone
or in any batch (tests/test_scheduler.py).

Threads: `submit` and `cancel` may be called from any thread; steps run on one
thread (`start`) or the caller's (`step`, `run_until_idle`). Callbacks run on the
stepping thread, after the step's compute, one call per request per step.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..common import LmforgeError
from ..models.kv_cache import KVCache
from .batch_cache import BatchCache
from .engine import StreamEvent, chosen_logprobs, row_seeds, stop_window, supports_last_only
from .sampling import SamplingConfig, pick_next

log = logging.getLogger(__name__)

EventSink = Callable[[list[StreamEvent]], None]


class QueueFull(LmforgeError):
    """More requests are waiting than the scheduler's ``max_queue``."""


class SchedulerClosed(LmforgeError):
    """The scheduler is shutting down and takes no new requests."""


@dataclass
class Request:
    """One completion request: a prompt and how to continue it (``n`` samples)."""

    prompt: list[int]
    max_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    n: int = 1
    stop_ids: Sequence[int] = ()
    stop_strings: Sequence[str] = ()
    logprobs: bool = False


@dataclass(eq=False)
class Ticket:
    """A submitted request: ``done`` is set once every sample has had its last event."""

    request: Request
    on_events: EventSink
    id: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False
    error: str | None = None  # set when the scheduler failed (a bug, out of memory): reason "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    submitted: float = 0.0
    _open: int = 0  # samples still running


class _Row:
    """One sample of a ticket in the decode batch."""

    __slots__ = ("ticket", "sample", "gen", "stops", "decoder", "tokens", "budget", "last", "cfg")

    def __init__(self, ticket: Ticket, sample: int, gen, stops, decoder, budget, cfg):
        self.ticket, self.sample, self.gen, self.stops = ticket, sample, gen, stops
        self.decoder, self.budget, self.cfg = decoder, budget, cfg
        self.tokens: list[int] = []
        self.last = 0  # the token to feed at the next decode step


class Scheduler:
    """A continuously batched decoder over ``model``; see the module doc."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer=None,
        *,
        slots: int = 16,
        max_queue: int = 64,
        max_batch_tokens: int = 4096,
        columns: int | None = None,
        compile: bool = False,
    ):
        if columns is not None and columns < int(getattr(model, "max_seq_len", 0) or 0):
            raise LmforgeError(f"scheduler: columns ({columns}) must be at least the context")
        if slots < 1 or max_queue < 0 or max_batch_tokens < 1:
            raise LmforgeError("scheduler: slots and max_batch_tokens must be >= 1, max_queue >= 0")
        limit = getattr(model, "max_seq_len", None)
        if not limit or not hasattr(model, "new_kv_cache"):
            raise LmforgeError(
                f"serving needs a decoder with a KV cache and a context length; "
                f"{type(model).__name__} has none (use `lmforge sample` for it)"
            )
        probe = model.new_kv_cache(1, 1)
        if not isinstance(probe, KVCache):
            raise LmforgeError(
                f"{type(model).__name__} keeps a {type(probe).__name__}, not a KV cache: "
                "continuous batching needs a transformer decoder (use `lmforge sample`)"
            )
        self.model, self.tokenizer = model.eval(), tokenizer
        self.context = int(limit)
        emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        self.vocab = int(getattr(getattr(model, "config", None), "vocab_size", 0) or 0) or (
            emb.num_embeddings if emb is not None else 2**31
        )
        self.slots, self.max_queue, self.max_batch_tokens = slots, max_queue, max_batch_tokens
        self.device = probe.k.device
        n_layer, _, n_kv, _, head_dim = probe.k.shape
        with torch.inference_mode():
            self.cache = BatchCache(
                n_layer, slots, n_kv, head_dim, columns or 2 * self.context,
                dtype=probe.k.dtype, device=self.device,
            )  # fmt: skip
        self.forward = torch.compile(model, dynamic=True) if compile else model
        self.last_only = {"last_only": True} if supports_last_only(model) else {}
        self.rows: list[_Row] = []
        self._queue: deque[Ticket] = deque()
        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        self._closing = False
        self._thread: threading.Thread | None = None
        self.steps = 0
        self.generated_tokens = 0
        self.prefill_tokens = 0

    # -- the public, thread-safe side ---------------------------------------------------

    def validate(self, req: Request) -> None:
        """Raise LmforgeError naming the field when `req` cannot run."""
        if not req.prompt:
            raise LmforgeError("prompt: empty; give at least one token")
        bad = [t for t in req.prompt if not isinstance(t, int) or not 0 <= t < self.vocab]
        if bad:
            raise LmforgeError(
                f"prompt: {bad[0]!r} is not a token id of this model (0..{self.vocab - 1})"
            )
        if len(req.prompt) >= self.context:
            raise LmforgeError(
                f"prompt: {len(req.prompt)} tokens, but the model's context is {self.context} "
                "tokens (prompt plus answer); shorten it"
            )
        if req.max_tokens < 1:
            raise LmforgeError(f"max_tokens: must be at least 1, got {req.max_tokens}")
        if not 1 <= req.n <= self.slots:
            raise LmforgeError(f"n: must be between 1 and {self.slots} (the slots), got {req.n}")
        cfg = self._sampling(req)
        cfg.validate()

    def submit(self, req: Request, on_events: EventSink) -> Ticket:
        """Queue `req`; `on_events` gets its events, step by step (see the module doc)."""
        self.validate(req)
        ticket = Ticket(req, on_events, prompt_tokens=len(req.prompt), submitted=time.monotonic())
        with self._lock:
            if self._closing:
                raise SchedulerClosed("the server is shutting down; retry elsewhere")
            if len(self._queue) >= self.max_queue:
                raise QueueFull(f"{len(self._queue)} requests are waiting already; retry later")
            ticket.id = next(self._ids)
            self._queue.append(ticket)
            self._lock.notify_all()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Stop `ticket` (a client went away); its rows leave at the next step."""
        with self._lock:
            ticket.cancelled = True
            self._lock.notify_all()

    def start(self) -> None:
        """Run steps on a background thread until `shutdown`."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="lmforge-scheduler", daemon=True)
        self._thread.start()

    def shutdown(self, drain: bool = True, timeout: float | None = None) -> None:
        """Take no more requests; finish (``drain``) or cancel what is in flight; stop the thread."""
        with self._lock:
            self._closing = True
            if not drain:
                for t in list(self._queue) + [r.ticket for r in self.rows]:
                    t.cancelled = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self.run_until_idle()

    def stats(self) -> dict:
        with self._lock:
            queued = len(self._queue)
        return {
            "slots": self.slots,
            "running": len(self.rows),
            "queued": queued,
            "cache_bytes": self.cache.nbytes,
            "steps": self.steps,
            "generated_tokens": self.generated_tokens,
            "prefill_tokens": self.prefill_tokens,
            "context": self.context,
        }

    def run_until_idle(self) -> None:
        while self.step():
            pass

    # -- the stepping side -----------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self.rows and not self._closing:
                    self._lock.wait()
                if self._closing and not self._queue and not self.rows:
                    return
            self.step()

    def step(self) -> bool:
        """One scheduling step; False when there was nothing to do."""
        with self._lock:
            if not self._queue and not self.rows:
                return False
        events: dict[Ticket, list[StreamEvent]] = {}
        try:
            with torch.inference_mode():
                self._step(events)
        except Exception as exc:  # a bug or out of memory: fail the rows, keep serving
            log.exception("scheduler step failed; failing %d running requests", len(self.rows))
            self._fail_all(events, f"{type(exc).__name__}: {exc}")
        self.steps += 1
        self._dispatch(events)
        return True

    def _step(self, events: dict[Ticket, list[StreamEvent]]) -> None:
        gone = [b for b, r in enumerate(self.rows) if r.ticket.cancelled]
        for b in gone:
            self._finish(self.rows[b], "cancelled", events)
        self._retire(gone)
        logits = []
        if self.rows:
            if self.cache.room() == 0:
                self.cache.make_room()
            ids = torch.tensor([[r.last] for r in self.rows], device=self.device)  # (B, 1)
            out, _ = self.forward(ids, kv_cache=self.cache, **self.last_only)
            logits.append(out[:, -1])  # (B, V)
        new = self._admit(events)
        if new is not None:
            logits.append(new)
        if not logits:
            return
        logits = torch.cat(logits) if len(logits) > 1 else logits[0]  # (B, V)
        tokens, lps = self._pick(logits)
        done = []
        for b, row in enumerate(self.rows):
            if self._accept(row, tokens[b], None if lps is None else lps[b], events):
                done.append(b)
        self._retire(done)

    def _admit(self, events) -> torch.Tensor | None:
        """Prefill the queued requests that fit; their rows join the batch. (B_new, V) logits."""
        taken: list[Ticket] = []
        budget = self.max_batch_tokens
        free = self.slots - len(self.rows)
        with self._lock:
            while self._queue:
                t = self._queue[0]
                if t.cancelled:
                    self._queue.popleft()
                    for j in range(t.request.n):
                        t._open += 1
                        self._emit(t, StreamEvent(j, None, "", None, "cancelled"), events)
                    continue
                n_tokens = len(t.request.prompt)
                if t.request.n > free or (taken and n_tokens > budget):
                    break
                self._queue.popleft()
                taken.append(t)
                free -= t.request.n
                budget -= n_tokens
        if not taken:
            return None
        prompts = [t.request.prompt for t in taken]
        T0 = max(len(p) for p in prompts)
        pads = [T0 - len(p) for p in prompts]
        src = self.model.new_kv_cache(len(taken), T0, pads if any(pads) else None)
        ids = torch.tensor(
            [[0] * pad + list(p) for pad, p in zip(pads, prompts)], device=self.device
        )  # (U, T0)
        out, _ = self.model(ids, kv_cache=src, **self.last_only)
        first = out[:, -1]  # (U, V)
        self.prefill_tokens += sum(len(p) for p in prompts)
        index = []
        for u, t in enumerate(taken):
            # The engine's seed rule: sample j draws with seed + 1000003 * j.
            cfg = self._sampling(t.request)
            cfg.n = t.request.n
            for j, seed in enumerate(row_seeds(cfg, 1)):
                self.cache.add(src, u, len(t.request.prompt))
                self.rows.append(self._new_row(t, j, seed))
                index.append(u)
        return first.index_select(0, torch.tensor(index, device=self.device))

    def _new_row(self, t: Ticket, j: int, seed: int) -> _Row:
        req = t.request
        cfg = self._sampling(req)
        gen = None
        if not cfg.greedy:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(seed)
        decoder = None
        if self.tokenizer is not None:
            from ..tokenizers.detok import IncrementalDecoder

            decoder = IncrementalDecoder(self.tokenizer)
        budget = min(req.max_tokens, self.context - len(req.prompt))
        t._open += 1
        return _Row(t, j, gen, frozenset(int(s) for s in req.stop_ids), decoder, budget, cfg)

    @staticmethod
    def _sampling(req: Request) -> SamplingConfig:
        return SamplingConfig(
            max_new_tokens=max(1, req.max_tokens), temperature=req.temperature,
            top_k=req.top_k, top_p=req.top_p, seed=req.seed, stop_strings=list(req.stop_strings),
        )  # fmt: skip

    def _pick(self, logits: torch.Tensor) -> tuple[list[int], list[float] | None]:
        """Each row's next token (rows grouped by their settings) and, if any asks, log p."""
        groups: dict[tuple, list[int]] = {}
        for b, r in enumerate(self.rows):
            groups.setdefault((r.cfg.temperature, r.cfg.top_k, r.cfg.top_p), []).append(b)
        if len(groups) == 1:
            cfg = self.rows[0].cfg
            gens = None if cfg.greedy else [r.gen for r in self.rows]
            nxt = pick_next(logits, cfg, gens)  # (B, 1)
        else:
            nxt = torch.empty(len(self.rows), 1, dtype=torch.long, device=logits.device)
            for rows in groups.values():
                cfg = self.rows[rows[0]].cfg
                gens = None if cfg.greedy else [self.rows[b].gen for b in rows]
                index = torch.tensor(rows, device=logits.device)
                nxt[index] = pick_next(logits.index_select(0, index), cfg, gens)
        lps = None
        if any(r.ticket.request.logprobs for r in self.rows):
            lps = chosen_logprobs(logits, nxt)
        return nxt.view(-1).tolist(), lps

    def _accept(self, row: _Row, token: int, lp: float | None, events) -> bool:
        """Record `token` for `row`; True when the row is finished."""
        t = row.ticket
        if token in row.stops:
            self._finish(row, "stop", events)
            return True
        row.tokens.append(token)
        row.last = token
        t.completion_tokens += 1
        self.generated_tokens += 1
        text = row.decoder.push(token) if row.decoder is not None else ""
        self._emit(t, StreamEvent(row.sample, token, text, lp), events)
        stops = row.cfg.stop_strings
        if stops and self.tokenizer is not None:
            tail = self.tokenizer.decode(row.tokens[-stop_window(stops) :])
            if any(s in tail for s in stops):
                self._finish(row, "stop", events)
                return True
        if len(row.tokens) >= row.budget:
            self._finish(row, "length", events)
            return True
        return False

    def _finish(self, row: _Row, reason: str, events) -> None:
        text = row.decoder.flush() if row.decoder is not None else ""
        self._emit(row.ticket, StreamEvent(row.sample, None, text, None, reason), events)

    def _retire(self, rows: list[int]) -> None:
        if not rows:
            return
        self.cache.remove(rows)
        keep = self.rows  # mirrors BatchCache.remove: the last row fills each gap
        for b in sorted(set(rows), reverse=True):
            last = keep.pop()
            if b < len(keep):
                keep[b] = last

    def _emit(self, t: Ticket, ev: StreamEvent, events) -> None:
        events.setdefault(t, []).append(ev)
        if ev.token is None:
            t._open -= 1

    def _fail_all(self, events, message: str) -> None:
        for r in self.rows:
            r.ticket.error = message
            self._finish(r, "error", events)
        self.rows = []
        self.cache.remove(list(range(self.cache.rows)))

    def _dispatch(self, events: dict[Ticket, list[StreamEvent]]) -> None:
        for t, evs in events.items():
            try:
                t.on_events(evs)
            except Exception:  # a consumer's bug must not stop the batch
                log.exception("scheduler: event callback of request %d failed", t.id)
                t.cancelled = True
            if t._open == 0 and any(e.token is None for e in evs):
                t.done.set()
