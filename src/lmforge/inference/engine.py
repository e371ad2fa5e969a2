"""Generation and scoring on token ids: the engine chat, serving, rejection sampling,
PPO rollouts and few-shot scoring all use.

``generate(model, prompts, cfg, pad_id=...)`` continues each prompt (a list of
ids) and returns only the new ids. Prompts of different lengths run as one
left-padded batch through a preallocated KV cache; a padded row gives exactly
the tokens it gives alone. Everything runs under ``torch.inference_mode``.

A model takes part through the forward contract ``forward(ids, kv_cache=None)
-> (logits, loss)`` plus, optionally:

* ``new_kv_cache(batch_size, max_len, pad_lens) -> cache``: generation then feeds
  only the new token each step (without it, every step re-reads the whole
  sequence). If it raises ``NotImplementedError`` for padded batches, rows run one
  at a time;
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
rollouts), not for one short sample.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..common import LmforgeError
from .sampling import SamplingConfig, pick_next

StreamFn = Callable[[int, int], None]
DecodeFn = Callable[[Sequence[int]], str]


@dataclass
class Generation:
    """One row's result: the new token ids and why it ended ("stop" or "length")."""

    tokens: list[int]
    finish_reason: str


def generate(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    cfg: SamplingConfig,
    *,
    pad_id: int = 0,
    stream: StreamFn | None = None,
    decode: DecodeFn | None = None,
    use_cache: bool = True,
    include_stop: bool = False,
    compile: bool = False,
) -> list[list[int]]:
    """New token ids for each prompt (see `generate_full`)."""
    out = generate_full(
        model,
        prompts,
        cfg,
        pad_id=pad_id,
        stream=stream,
        decode=decode,
        use_cache=use_cache,
        include_stop=include_stop,
        compile=compile,
    )
    return [g.tokens for g in out]


def generate_full(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    cfg: SamplingConfig,
    *,
    pad_id: int = 0,
    stream: StreamFn | None = None,
    decode: DecodeFn | None = None,
    use_cache: bool = True,
    include_stop: bool = False,
    compile: bool = False,
) -> list[Generation]:
    """Continue every prompt; returns a `Generation` (new ids, finish reason) per prompt.

    A row stops at a token in ``cfg.stop_token_ids`` (left out of the result
    unless ``include_stop``), when its new text contains one of
    ``cfg.stop_strings`` (needs ``decode``; the token that completes the string
    is kept, cut the text with ``sampling.truncate_at_stop``), after
    ``cfg.max_new_tokens``, or at the model's context length. ``stream(row,
    token_id)`` is called for each kept token as soon as it is chosen. The same
    ``cfg.seed`` gives the same tokens. ``compile`` runs the model through
    ``torch.compile`` (same tokens; see the module doc for when it pays).
    """
    if cfg.stop_strings and decode is None:
        raise LmforgeError("stop_strings: need a decode function (token ids -> text) to use them")
    if not prompts:
        return []
    limit = _max_len(model)
    for i, p in enumerate(prompts):
        if len(p) == 0:
            raise LmforgeError(f"prompt {i} is empty; start it with at least one token (e.g. BOS)")
        if limit is not None and len(p) >= limit:
            raise LmforgeError(
                f"prompt {i} has {len(p)} tokens but the model's context is {limit}; "
                "shorten it to leave room for new tokens"
            )
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    if cfg.seed is None:
        generator.seed()
    else:
        generator.manual_seed(cfg.seed)
    run = _Run(model, cfg, pad_id, stream, decode, include_stop, generator, device, limit)
    if compile:
        # A new wrapper per call costs nothing: compiled graphs live in dynamo's cache,
        # keyed by the forward's code and guarded by shapes, not by the wrapper.
        run.forward = torch.compile(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            if not use_cache or not hasattr(model, "new_kv_cache"):
                return [run.no_cache(p, row=i) for i, p in enumerate(prompts)]
            return run.cached(prompts, rows=list(range(len(prompts))))
    finally:
        model.train(was_training)


_LAST_ONLY: dict[type, bool] = {}


def _supports_last_only(model: torch.nn.Module) -> bool:
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


class _Run:
    """The settings of one `generate` call and the two ways to run it."""

    def __init__(self, model, cfg, pad_id, stream, decode, include_stop, generator, device, limit):
        self.model, self.cfg, self.pad_id = model, cfg, pad_id
        self.stream, self.decode, self.include_stop = stream, decode, include_stop
        self.generator, self.device, self.limit = generator, device, limit
        self.stop_ids = frozenset(cfg.stop_token_ids)
        self.stop_strings = list(cfg.stop_strings)
        # A stop string of n characters spans at most 4n byte-level tokens; decode a
        # little more so that a leading partial character cannot hide it.
        self.window = 4 * max((len(s) for s in self.stop_strings), default=0) + 4
        self.last_only = {"last_only": True} if _supports_last_only(model) else {}
        self.forward: Callable = model

    def _logits(self, ids: torch.Tensor, cache) -> torch.Tensor:
        logits, _ = self.forward(ids, kv_cache=cache, **self.last_only)
        return logits.select(1, -1)  # (B, V)

    def _accept(self, row: int, out: list[int], token: int) -> str | None:
        """Record `token` for a row; returns a finish reason when the row is done."""
        if token in self.stop_ids:
            if self.include_stop:
                out.append(token)
                if self.stream is not None:
                    self.stream(row, token)
            return "stop"
        out.append(token)
        if self.stream is not None:
            self.stream(row, token)
        if self.stop_strings:
            text = self.decode(out[-self.window :])
            if any(s in text for s in self.stop_strings):
                return "stop"
        return None

    def _budget(self, prompt_len: int) -> int:
        n = self.cfg.max_new_tokens
        return n if self.limit is None else min(n, self.limit - prompt_len)

    def cached(self, prompts: Sequence[Sequence[int]], rows: list[int]) -> list[Generation]:
        """All prompts as one left-padded batch through a KV cache."""
        B = len(prompts)
        lens = [len(p) for p in prompts]
        T0 = max(lens)
        budget = self._budget(T0)
        pad_lens = [T0 - n for n in lens]
        ids = torch.tensor(
            [[self.pad_id] * pl + list(p) for pl, p in zip(pad_lens, prompts)],
            dtype=torch.long,
            device=self.device,
        )  # (B, T0)
        try:
            cache = self.model.new_kv_cache(B, T0 + budget, pad_lens if any(pad_lens) else None)
        except NotImplementedError:
            if not any(pad_lens):
                raise
            # The model's cache cannot hold left padding (e.g. a recurrent state): one row at a
            # time, each unpadded.
            return [self.cached([p], [r])[0] for p, r in zip(prompts, rows)]
        logits = self._logits(ids, cache)  # (B, V)
        seen = self._seen(ids, pad_lens, logits.size(-1))
        outs: list[list[int]] = [[] for _ in range(B)]
        reasons: list[str | None] = [None] * B
        live = B
        for step in range(budget):
            nxt = pick_next(logits, self.cfg, self.generator, seen)  # (B, 1)
            for b, token in enumerate(nxt.view(-1).tolist()):
                if reasons[b] is None:
                    reasons[b] = self._accept(rows[b], outs[b], token)
                    live -= reasons[b] is not None
            if live == 0 or step == budget - 1:
                break
            if seen is not None:
                seen.scatter_(1, nxt, True)
            # Finished rows keep decoding (their tokens are ignored): the batch stays rectangular.
            logits = self._logits(nxt, cache)
        return [Generation(o, r or "length") for o, r in zip(outs, reasons)]

    def no_cache(self, prompt: Sequence[int], row: int) -> Generation:
        """One prompt, re-reading the whole sequence every step (the reference path)."""
        seq = list(prompt)
        budget = self._budget(len(seq))
        ids = torch.tensor([seq], dtype=torch.long, device=self.device)
        logits = self._logits(ids, None)
        seen = self._seen(ids, [0], logits.size(-1))
        out: list[int] = []
        reason = None
        for step in range(budget):
            nxt = pick_next(logits, self.cfg, self.generator, seen)  # (1, 1)
            token = int(nxt.item())
            reason = self._accept(row, out, token)
            if reason is not None or step == budget - 1:
                break
            if seen is not None:
                seen.scatter_(1, nxt, True)
            ids = torch.cat([ids, nxt], dim=1)
            logits = self._logits(ids, None)
        return Generation(out, reason or "length")

    def _seen(self, ids: torch.Tensor, pad_lens: list[int], vocab: int) -> torch.Tensor | None:
        """(B, V) bool: tokens each row's prompt holds (for the repetition penalty)."""
        if self.cfg.repetition_penalty == 1.0:
            return None
        B, T = ids.shape
        cols = torch.arange(T, device=ids.device)[None, :]
        pads = torch.tensor(pad_lens, device=ids.device)[:, None]
        # Padding goes to an extra column that is dropped, so pad_id is not marked seen.
        idx = ids.masked_fill(cols < pads, vocab)
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
    nll = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), reduction="none"
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
