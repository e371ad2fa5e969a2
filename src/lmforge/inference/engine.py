"""Generation and scoring on token ids: the engine chat, serving, rejection sampling,
PPO rollouts and few-shot scoring all use.

``generate(model, prompts, cfg, pad_id=...)`` continues each prompt (a list of
ids) and returns only the new ids. Prompts of different lengths run as one
left-padded batch through a preallocated KV cache; a padded row gives exactly
the tokens it gives alone. Everything runs under ``torch.inference_mode``.

One core, two faces: ``stream_generate`` is a generator of `StreamEvent`s (one per
kept token, then one per row with its finish reason); closing it (``.close()``,
``break``) stops the computation at once. ``generate_full`` / ``generate`` consume
the same generator, so streamed and returned tokens are the same by construction.

Many answers per prompt (``cfg.n``, best-of-n, rejection sampling, PPO groups):

* every distinct prompt is prefilled once; the cache rows are then copied to the
  ``n`` rows that sample from it (``KVCache.keep_rows`` with a repeated index);
* output rows are prompt-major: row ``i * n + j`` is sample ``j`` of prompt ``i``;
* every row draws from its own ``torch.Generator``, seeded (`row_seeds`) with
  ``cfg.seed + i + 1000003 * j``, or ``seeds[i] + 1000003 * j`` with ``seeds=`` one
  per prompt, or ``seeds[i * n + j]`` with one per row. A row's tokens depend only
  on its prompt, its seed and the settings, never on the rest of the batch: the
  first prompt of a batch samples what it samples alone, and any prompt does with
  the same explicit seed;
* rows that finish stop costing compute: once at least a quarter of the batch has
  finished, the finished rows are dropped from the cache and the input
  (``compact``; results are unchanged).

A model takes part through the forward contract ``forward(ids, kv_cache=None)
-> (logits, loss)`` plus, optionally:

* ``new_kv_cache(batch_size, max_len, pad_lens) -> cache``: generation then feeds
  only the new token each step (without it, every step re-reads the whole
  sequence). If it raises ``NotImplementedError`` for padded batches, prompts of
  equal length run as a batch each. A cache with ``keep_rows(index)`` (or an RNN
  state's ``reorder_(index)``) shares prefills and drops finished rows;
* a ``last_only=True`` keyword of ``forward``: only the last position is
  projected to the vocabulary;
* ``max_seq_len`` (attribute): the longest sequence the model accepts.

``compile=True`` runs the forward through ``torch.compile``: the first call
compiles (10-30 s on a CPU, once for the prompt and once for the one-token
steps; dynamo's cache keeps the graphs for later calls), after which a batch-1
decoding step is one fused graph instead of dozens of small kernels launched
from Python: on 2 CPU cores +36-50% tokens/s at 1.6M parameters, where a step is
launch-bound, and +3-20% at 12M, where it mostly streams the weights
(docs/benchmarks.md). Worth it for long or repeated generation (chat, serving,
rollouts), not for one short sample. A new batch size recompiles, so under
``compile`` finished rows are not dropped unless ``compact=True`` is asked for.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..common import LmforgeError
from .sampling import SamplingConfig, pick_next

DecodeFn = Callable[[Sequence[int]], str]

SAMPLE_SEED_STRIDE = 1_000_003  # seed of sample j = seed of its prompt + j * this
_SEED_MOD = 2**63


@dataclass
class Generation:
    """One row's result: the new token ids and why it ended ("stop" or "length").

    ``logprobs`` (with ``logprobs=True``): log p(token) of each kept token under the
    model's raw distribution, ``log_softmax`` of the logits before the repetition
    penalty, temperature, top-k and top-p: the policy's own log-probabilities, what
    PPO ratios and rejection-sampling scores need (they equal a teacher-forced
    forward of prompt + completion, `token_logprobs`). ``prompt_index`` and
    ``sample_index`` say which prompt and which of its ``cfg.n`` samples it is.
    """

    tokens: list[int]
    finish_reason: str
    logprobs: list[float] | None = None
    prompt_index: int = 0
    sample_index: int = 0


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One step of one row in `stream_generate`.

    A kept token: ``token`` is its id, ``text_delta`` the text it completes (with a
    tokenizer; "" while an unfinished character is held back), ``logprob`` as in
    `Generation` (with ``logprobs=True``). The row's last event has ``token=None``,
    ``finish_reason`` "stop" or "length", and the held-back rest of the text.
    """

    row: int
    token: int | None
    text_delta: str = ""
    logprob: float | None = None
    finish_reason: str | None = None


def default_stop_ids(tok: Any) -> list[int]:
    """The tokens a reply ends at: EOS, and the end-of-turn ``<|end|>`` when the tokenizer has it."""
    out: list[int] = []
    for i in (tok.eos_id, tok.special_id("end")):
        if i is not None and i not in out:
            out.append(int(i))
    return out


def row_seeds(cfg: SamplingConfig, n_prompts: int, seeds: Sequence[int] | None = None) -> list[int]:
    """The seed of every output row (prompt-major, ``n_prompts * cfg.n`` of them).

    Prompt ``i``'s seed is ``seeds[i]`` when one seed per prompt is given, else
    ``cfg.seed + i`` (a random base when ``cfg.seed`` is None); its sample ``j``
    gets ``prompt seed + 1000003 * j``. ``seeds`` may also give every row's seed
    (``n_prompts * cfg.n`` of them, used as they are).
    """
    n = cfg.n
    if seeds is not None:
        seeds = [int(s) for s in seeds]
        if len(seeds) == n_prompts * n:
            return [s % _SEED_MOD for s in seeds]
        if len(seeds) != n_prompts:
            raise LmforgeError(
                f"seeds: got {len(seeds)}; give one per prompt ({n_prompts}) "
                f"or one per row ({n_prompts * n})"
            )
        prompt_seeds = seeds
    else:
        base = cfg.seed if cfg.seed is not None else torch.Generator().seed()
        prompt_seeds = [base + i for i in range(n_prompts)]
    return [(s + SAMPLE_SEED_STRIDE * j) % _SEED_MOD for s in prompt_seeds for j in range(n)]


def per_prompt(rows: Sequence[Any], n: int) -> list[list[Any]]:
    """Group a prompt-major flat list (``generate_full``'s) into one list of ``n`` per prompt."""
    return [list(rows[i : i + n]) for i in range(0, len(rows), n)]


def generate(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    cfg: SamplingConfig,
    **kwargs: Any,
) -> list[list[int]]:
    """New token ids of every output row (see `generate_full`; same keywords)."""
    return [g.tokens for g in generate_full(model, prompts, cfg, **kwargs)]


def generate_full(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    cfg: SamplingConfig,
    *,
    pad_id: int = 0,
    seeds: Sequence[int] | None = None,
    stop_ids: Sequence[Sequence[int]] | None = None,
    decode: DecodeFn | None = None,
    use_cache: bool = True,
    include_stop: bool = False,
    compile: bool = False,
    logprobs: bool = False,
    compact: bool | None = None,
) -> list[Generation]:
    """Continue every prompt ``cfg.n`` times: a flat, prompt-major list of ``len(prompts) *
    cfg.n`` `Generation`s (row ``i * n + j`` is sample ``j`` of prompt ``i``; `per_prompt`
    groups them).

    A row stops at a token in ``cfg.stop_token_ids`` or in its prompt's
    ``stop_ids[i]`` (left out of the result unless ``include_stop``), when its new
    text contains one of ``cfg.stop_strings`` (needs ``decode``; the token that
    completes the string is kept, cut the text with ``sampling.truncate_at_stop``),
    after ``cfg.max_new_tokens``, or at the model's context length. Seeds: see
    `row_seeds` (``seeds=``). ``logprobs`` fills `Generation.logprobs`. ``compile``
    runs the model through ``torch.compile`` (same tokens; see the module doc for
    when it pays). ``compact`` drops finished rows from the batch (default: on,
    except under ``compile``). Built on `stream_generate`.
    """
    n = cfg.n
    out = [
        Generation([], "length", [] if logprobs else None, r // n, r % n)
        for r in range(len(prompts) * n)
    ]
    events = _events(
        model, prompts, cfg, pad_id=pad_id, seeds=seeds, stop_ids=stop_ids, decode=decode,
        tokenizer=None, use_cache=use_cache, include_stop=include_stop, compile=compile,
        logprobs=logprobs, compact=compact,
    )  # fmt: skip
    for batch in events:
        for ev in batch:
            g = out[ev.row]
            if ev.token is not None:
                g.tokens.append(ev.token)
                if g.logprobs is not None:
                    g.logprobs.append(ev.logprob)
            else:
                g.finish_reason = ev.finish_reason
    return out


def stream_generate(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    cfg: SamplingConfig,
    *,
    tokenizer: Any = None,
    pad_id: int = 0,
    seeds: Sequence[int] | None = None,
    stop_ids: Sequence[Sequence[int]] | None = None,
    decode: DecodeFn | None = None,
    use_cache: bool = True,
    include_stop: bool = False,
    compile: bool = False,
    logprobs: bool = False,
    compact: bool | None = None,
) -> Iterator[StreamEvent]:
    """`StreamEvent`s as tokens are chosen (same arguments and rows as `generate_full`).

    With ``tokenizer`` each event carries its ``text_delta`` (an
    `IncrementalDecoder` per row: O(1) per token; the deltas of a row join to
    ``tokenizer.decode(row tokens)``) and stop strings decode with it. Events of
    one step come row by row; rows interleave. Closing the iterator stops the
    generation: no forward runs after the last event taken. The model is in eval
    mode while the iterator is open (its mode is restored when it ends or closes);
    inference mode is on only inside each step, never while your code runs.
    """
    if decode is None and tokenizer is not None:
        decode = tokenizer.decode
    core = _events(
        model, prompts, cfg, pad_id=pad_id, seeds=seeds, stop_ids=stop_ids, decode=decode,
        tokenizer=tokenizer, use_cache=use_cache, include_stop=include_stop, compile=compile,
        logprobs=logprobs, compact=compact,
    )  # fmt: skip
    try:
        for batch in core:
            yield from batch
    finally:
        core.close()


def _events(
    model, prompts, cfg, *, pad_id, seeds, stop_ids, decode, tokenizer, use_cache,
    include_stop, compile, logprobs, compact,
) -> Iterator[list[StreamEvent]]:  # fmt: skip
    """The one generation core: yields the events of each step."""
    if cfg.stop_strings and decode is None:
        raise LmforgeError("stop_strings: need a decode function (token ids -> text) to use them")
    if not prompts:
        return
    limit = _max_len(model)
    for i, p in enumerate(prompts):
        if len(p) == 0:
            raise LmforgeError(f"prompt {i} is empty; start it with at least one token (e.g. BOS)")
        if limit is not None and len(p) >= limit:
            raise LmforgeError(
                f"prompt {i} has {len(p)} tokens but the model's context is {limit}; "
                "shorten it to leave room for new tokens"
            )
    if stop_ids is not None and len(stop_ids) != len(prompts):
        raise LmforgeError(f"stop_ids: got {len(stop_ids)} lists for {len(prompts)} prompts")
    device = next(model.parameters()).device
    base_stops = frozenset(int(t) for t in cfg.stop_token_ids)
    decoder_cls = None
    if tokenizer is not None:
        from ..tokenizers.detok import IncrementalDecoder as decoder_cls
    rows = []
    for r, seed in enumerate(row_seeds(cfg, len(prompts), seeds)):
        i = r // cfg.n
        stops = base_stops if stop_ids is None else base_stops | {int(t) for t in stop_ids[i]}
        gen = None
        if not cfg.greedy:
            gen = torch.Generator(device=device)
            gen.manual_seed(seed)
        rows.append(_Row(r, i, gen, stops, decoder_cls(tokenizer) if decoder_cls else None))
    run = _Run(model, cfg, pad_id, decode, include_stop, device, limit, logprobs)
    if compile:
        # A new wrapper per call costs nothing: compiled graphs live in dynamo's cache,
        # keyed by the forward's code and guarded by shapes, not by the wrapper.
        run.forward = torch.compile(model)
    run.compact = (not compile) if compact is None else compact
    was_training = model.training
    model.eval()
    try:
        if not use_cache or not hasattr(model, "new_kv_cache"):
            for row in rows:
                yield from run.no_cache(prompts[row.prompt], row)
        else:
            yield from run.cached(prompts, rows)
    finally:
        model.train(was_training)


_LAST_ONLY: dict[type, bool] = {}


def stop_window(stop_strings: Sequence[str]) -> int:
    """How many of a row's last tokens to decode to see whether its text holds a stop string.

    A stop string of n characters spans at most 4n byte-level tokens; a little more,
    so that a leading partial character cannot hide it.
    """
    return 4 * max((len(s) for s in stop_strings), default=0) + 4


def chosen_logprobs(logits: torch.Tensor, chosen: torch.Tensor) -> list[float]:
    """log p of each row's chosen token (B, 1) under the raw logits (B, V): one float per row."""
    raw = logits.float()
    return (raw.gather(1, chosen) - raw.logsumexp(dim=-1, keepdim=True)).view(-1).tolist()


def supports_last_only(model: torch.nn.Module) -> bool:
    cls = type(model)
    if cls not in _LAST_ONLY:
        try:
            _LAST_ONLY[cls] = "last_only" in inspect.signature(model.forward).parameters
        except (TypeError, ValueError):
            _LAST_ONLY[cls] = False
    return _LAST_ONLY[cls]


def _max_len(model: torch.nn.Module) -> int | None:
    limit = getattr(model, "max_seq_len", None)
    return int(limit) if limit else None


def _row_selector(cache) -> Callable[[Any, torch.Tensor], Any] | None:
    """How to keep/repeat batch rows of this cache (None: it cannot)."""
    if hasattr(cache, "keep_rows"):
        return lambda c, index: c.keep_rows(index)
    if hasattr(cache, "reorder_"):  # lmforge.models.rnn.RNNState
        return lambda c, index: c.reorder_(index)
    return None


class _CannotPad(Exception):
    """The model's cache refused a left-padded batch."""


class _Row:
    """One output row: where it comes from, its generator and stops, what it has produced."""

    __slots__ = ("index", "prompt", "gen", "stops", "decoder", "tokens", "reason", "u")

    def __init__(self, index, prompt, gen, stops, decoder):
        self.index, self.prompt, self.gen, self.stops = index, prompt, gen, stops
        self.decoder = decoder
        self.tokens: list[int] = []
        self.reason: str | None = None
        self.u = 0  # index of the row's prompt in the prefilled batch

    def keep(self, token: int, logprob: float | None, events: list[StreamEvent]) -> None:
        self.tokens.append(token)
        text = self.decoder.push(token) if self.decoder is not None else ""
        events.append(StreamEvent(self.index, token, text, logprob))

    def finish(self, reason: str, events: list[StreamEvent]) -> None:
        self.reason = reason
        text = self.decoder.flush() if self.decoder is not None else ""
        events.append(StreamEvent(self.index, None, text, None, reason))


class _Run:
    """The settings of one `generate` call and the two ways to run it."""

    def __init__(self, model, cfg, pad_id, decode, include_stop, device, limit, logprobs):
        self.model, self.cfg, self.pad_id = model, cfg, pad_id
        self.decode, self.include_stop = decode, include_stop
        self.device, self.limit, self.logprobs = device, limit, logprobs
        self.stop_strings = list(cfg.stop_strings)
        self.window = stop_window(self.stop_strings)
        self.last_only = {"last_only": True} if supports_last_only(model) else {}
        self.forward: Callable = model
        self.compact = True

    def _logits(self, ids: torch.Tensor, cache) -> torch.Tensor:
        logits, _ = self.forward(ids, kv_cache=cache, **self.last_only)
        return logits.select(1, -1)  # (B, V)

    def _pick(self, logits, rows, seen) -> tuple[list[int], list[float] | None]:
        """Each row's next token (its own generator) and, if asked, its raw log-probability."""
        gens = None if self.cfg.greedy else [r.gen for r in rows]
        nxt = pick_next(logits, self.cfg, gens, seen)  # (B, 1)
        lp = chosen_logprobs(logits, nxt) if self.logprobs else None
        return nxt, lp

    def _accept(self, row: _Row, token: int, lp, events: list[StreamEvent]) -> None:
        """Record `token` for a row; finishes the row when it is done."""
        if token in row.stops:
            if self.include_stop:
                row.keep(token, lp, events)
            row.finish("stop", events)
            return
        row.keep(token, lp, events)
        if self.stop_strings:
            text = self.decode(row.tokens[-self.window :])
            if any(s in text for s in self.stop_strings):
                row.finish("stop", events)

    def _budget(self, prompt_len: int) -> int:
        n = self.cfg.max_new_tokens
        return n if self.limit is None else min(n, self.limit - prompt_len)

    def cached(self, prompts, rows: list[_Row]) -> Iterator[list[StreamEvent]]:
        """Every distinct prompt prefilled once as one left-padded batch, then copied to its rows."""
        uniq: dict[tuple[int, ...], int] = {}
        for row in rows:
            row.u = uniq.setdefault(tuple(prompts[row.prompt]), len(uniq))
        unique = [list(p) for p in uniq]
        try:
            yield from self._batch(unique, rows)
        except _CannotPad:
            # The cache cannot hold left padding (e.g. a recurrent state): prompts of one
            # length at a time, each batch unpadded.
            for length in sorted({len(p) for p in unique}):
                keep = [k for k, p in enumerate(unique) if len(p) == length]
                local = {k: m for m, k in enumerate(keep)}
                group = [r for r in rows if r.u in local]
                for r in group:
                    r.u = local[r.u]
                yield from self._batch([unique[k] for k in keep], group)

    def _batch(self, prompts: list[list[int]], rows: list[_Row]) -> Iterator[list[StreamEvent]]:
        """`prompts` (distinct) as one left-padded batch; `rows` sample from them (row.u)."""
        U = len(prompts)
        lens = [len(p) for p in prompts]
        T0 = max(lens)
        budget = self._budget(T0)
        pad_lens = [T0 - n for n in lens]
        uidx = [r.u for r in rows]
        try:
            cache = self.model.new_kv_cache(U, T0 + budget, pad_lens if any(pad_lens) else None)
        except NotImplementedError:
            if not any(pad_lens):
                raise
            raise _CannotPad from None
        select = _row_selector(cache)
        if select is None and uidx != list(range(U)):
            # The cache cannot copy rows: prefill every row's prompt itself.
            for k, r in enumerate(rows):
                r.u = k
            yield from self._batch([prompts[u] for u in uidx], rows)
            return
        with torch.inference_mode():
            ids = torch.tensor(
                [[self.pad_id] * pl + list(p) for pl, p in zip(pad_lens, prompts)],
                dtype=torch.long,
                device=self.device,
            )  # (U, T0)
            logits = self._logits(ids, cache)  # (U, V)
            seen = self._seen(ids, pad_lens, logits.size(-1))
            if uidx != list(range(U)):  # n samples per prompt: copy the prefilled rows
                index = torch.tensor(uidx, dtype=torch.long, device=self.device)
                select(cache, index)
                logits = logits.index_select(0, index)
                seen = None if seen is None else seen.index_select(0, index)
        live = list(rows)  # batch position -> row
        for step in range(budget):
            with torch.inference_mode():
                nxt, lp = self._pick(logits, live, seen)
            events: list[StreamEvent] = []
            done = 0
            for b, token in enumerate(nxt.view(-1).tolist()):
                row = live[b]
                if row.reason is None:
                    self._accept(row, token, None if lp is None else lp[b], events)
                    if row.reason is None and step == budget - 1:
                        row.finish("length", events)
                done += row.reason is not None
            yield events
            if done == len(live) or step == budget - 1:
                break
            with torch.inference_mode():
                if self.compact and select is not None and 4 * done >= len(live):
                    # Drop the finished rows: they would keep costing a row of every matmul.
                    keep = [b for b, r in enumerate(live) if r.reason is None]
                    index = torch.tensor(keep, dtype=torch.long, device=self.device)
                    select(cache, index)
                    nxt = nxt.index_select(0, index)
                    seen = None if seen is None else seen.index_select(0, index)
                    live = [live[b] for b in keep]
                if seen is not None:
                    seen.scatter_(1, nxt, True)
                # Finished rows not yet dropped keep decoding (their tokens are ignored).
                logits = self._logits(nxt, cache)

    def no_cache(self, prompt: Sequence[int], row: _Row) -> Iterator[list[StreamEvent]]:
        """One row, re-reading the whole sequence every step (the reference path)."""
        budget = self._budget(len(prompt))
        with torch.inference_mode():
            ids = torch.tensor([list(prompt)], dtype=torch.long, device=self.device)
            logits = self._logits(ids, None)
            seen = self._seen(ids, [0], logits.size(-1))
        for step in range(budget):
            with torch.inference_mode():
                nxt, lp = self._pick(logits, [row], seen)  # (1, 1)
            events: list[StreamEvent] = []
            self._accept(row, int(nxt.item()), None if lp is None else lp[0], events)
            if row.reason is None and step == budget - 1:
                row.finish("length", events)
            yield events
            if row.reason is not None:
                break
            with torch.inference_mode():
                if seen is not None:
                    seen.scatter_(1, nxt, True)
                ids = torch.cat([ids, nxt], dim=1)
                logits = self._logits(ids, None)

    def _seen(self, ids: torch.Tensor, pad_lens: list[int], vocab: int) -> torch.Tensor | None:
        """(B, V) bool: tokens each row's prompt holds (for the repetition penalty)."""
        if self.cfg.repetition_penalty == 1.0:
            return None
        B, T = ids.shape
        cols = torch.arange(T, device=ids.device)[None, :]
        pads = torch.tensor(pad_lens, device=ids.device)[:, None]
        # Padding and virtual (soft-prompt) ids go to an extra column that is dropped, so
        # pad_id is not marked seen and ids past the vocabulary index nothing.
        idx = ids.masked_fill((cols < pads) | (ids >= vocab), vocab)
        seen = torch.zeros(B, vocab + 1, dtype=torch.bool, device=ids.device)
        seen.scatter_(1, idx, True)
        return seen[:, :vocab].contiguous()


# ---------------------------------------------------------------------------
# Scoring


def token_logprobs(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """log p(ids[:, t] | ids[:, :t]) for t = 1..T-1: (B, T-1). Differentiable.

    Rows of different lengths must be right-padded (causal attention keeps the
    padding from touching earlier positions); mask the padded tail yourself.
    """
    logits, _ = model(ids[:, :-1])  # (B, T-1, V)
    targets = ids[:, 1:]
    # A virtual (soft-prompt) id is never predicted: its log-prob is 0, to be masked.
    safe = targets.masked_fill(targets >= logits.size(-1), -100)
    nll = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        safe.reshape(-1),
        ignore_index=-100,
        reduction="none",
    )
    return -nll.view(targets.shape)


def sequence_logprobs(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    *,
    batch_size: int = 16,
) -> list[float]:
    """Sum of log p(completion tokens | prompt) per pair (few-shot label scoring, reranking)."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    limit = _max_len(model)
    device = next(model.parameters()).device
    seqs = []
    for i, (p, c) in enumerate(zip(prompts, completions)):
        if not p or not c:
            raise LmforgeError(f"pair {i}: prompt and completion need at least one token each")
        if limit is not None and len(p) + len(c) > limit:
            raise LmforgeError(
                f"pair {i}: {len(p) + len(c)} tokens exceed the model's context of {limit}"
            )
        seqs.append(list(p) + list(c))
    # Similar lengths batch together: less padding to compute.
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    scores = [0.0] * len(seqs)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for s in range(0, len(order), batch_size):
                chunk = order[s : s + batch_size]
                T = max(len(seqs[i]) for i in chunk)
                ids = torch.zeros(len(chunk), T, dtype=torch.long, device=device)
                keep = torch.zeros(len(chunk), T - 1, dtype=torch.bool, device=device)
                for r, i in enumerate(chunk):
                    n, n_prompt = len(seqs[i]), len(prompts[i])
                    ids[r, :n] = torch.tensor(seqs[i], device=device)
                    keep[r, n_prompt - 1 : n - 1] = True  # targets that are completion tokens
                lp = token_logprobs(model, ids).masked_fill(~keep, 0.0).sum(dim=1)
                for r, i in enumerate(chunk):
                    scores[i] = float(lp[r])
    finally:
        model.train(was_training)
    return scores
