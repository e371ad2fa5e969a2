"""Label scoring: log p(label tokens | prompt) for every label, one prompt prefill shared by all.

`score_continuations(model, prompts, choices)` gives ``S[i, j] = sum_t log p(choice_j[t]
| prompt_i, choice_j[:t])`` for token-id prompts and choices. It never runs a
prompt more than once:

1. prompts are prefilled in batches through the model's KV cache (left padding
   via ``new_kv_cache(..., pad_lens)``; a model whose cache refuses padding, an
   RNN, gets batches of prompts of equal length). The last position's logits give
   every choice's first token;
2. the cache rows are repeated once per choice of more than one token
   (``KVCache.keep_rows`` / ``RNNState.reorder_``) and one forward of the
   right-padded choice tokens continues them: causal attention keeps the padding
   after a choice from touching it;
3. when the prompts share a long token prefix (the instruction and the shown
   examples of a few-shot prompt), that prefix is prefilled once for the whole
   call and its cache copied to every batch; a batch (prompts sorted by length)
   then feeds its rows together, unpadded, up to its shortest prompt's end, scores
   the rows that end there and goes on with the others (no padding in the middle
   of a row). On by default when it saves a fifth of the prefill
   (``share_prefix=None``).

The result equals a plain forward of each prompt + choice to float rounding
(tests: <= 1e-5 against a cache-free forward, <= 1e-4 against ``transformers``).

`score_labels` turns choices into labels: each label has one or more token
sequences (its words); a word's score is its summed log-probability (or the mean
per token, ``normalize="mean"``) and a label's is the log-sum-exp over its words
(the probabilities of synonyms add up). `LabelScores` holds them, with the label
probabilities normalised over the labels (``probs``) and the argmax labels.

Free-text answers: `generate_answers` continues prompts greedily with the engine
(`lmforge.inference.engine.generate_full`), cuts at a stop string and extracts the
answer (a regex or a function); `answer_label` maps an answer to a label by its
label words.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..common import LmforgeError
from ..inference.engine import supports_last_only

NORMALIZE = ("sum", "mean")


class PromptTooLong(LmforgeError):
    """A prompt plus a choice does not fit the model's context."""

    def __init__(self, index: int, prompt_len: int, choice_len: int, limit: int):
        self.index, self.prompt_len, self.choice_len, self.limit = (
            index, prompt_len, choice_len, limit,
        )  # fmt: skip
        super().__init__(
            f"prompt {index} has {prompt_len} tokens (+{choice_len} label tokens), more than "
            f"the model's context of {limit} tokens; use fewer shown examples (k) or shorter "
            "texts"
        )


def _select(cache: Any, index: torch.Tensor) -> Any:
    """Keep/repeat batch rows of a KV cache or recurrent state."""
    if hasattr(cache, "keep_rows"):
        return cache.keep_rows(index)
    if hasattr(cache, "reorder_"):
        return cache.reorder_(index)
    raise LmforgeError(
        f"{type(cache).__name__}: this model's cache cannot repeat rows (no keep_rows/reorder_), "
        "so label scoring cannot share a prompt between labels"
    )


def _fork(cache: Any, n: int, device: torch.device) -> Any:
    """A new cache of `n` rows, each a copy of the 1-row `cache` (which stays as it is).

    `keep_rows` / `reorder_` give the cache new index-selected tensors rather than
    writing into the old ones, so a shallow copy that selects is a true copy.
    """
    fork = copy.copy(cache)
    return _select(fork, torch.zeros(n, dtype=torch.long, device=device))


def common_prefix_len(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix all `prompts` share."""
    if not prompts:
        return 0
    first = prompts[0]
    n = min(len(p) for p in prompts)
    for p in prompts[1:]:
        k = 0
        while k < n and p[k] == first[k]:
            k += 1
        n = k
        if n == 0:
            break
    return n


class _Scorer:
    """One `score_continuations` call: the model, the choices, the output matrix."""

    def __init__(self, model, choices, batch_size: int):
        self.model = model
        self.device = next(model.parameters()).device
        self.choices = [list(c) for c in choices]
        self.first = torch.tensor([c[0] for c in self.choices], device=self.device)  # (S,)
        # Only choices of 2+ tokens need a forward after the prompt.
        self.multi = [j for j, c in enumerate(self.choices) if len(c) > 1]
        self.max_choice = max(len(c) for c in self.choices)
        self.batch_size = batch_size
        self.last_only = supports_last_only(model)
        self.pad_ok = True
        if self.multi:
            L = self.max_choice - 1
            inp = torch.zeros(len(self.multi), L, dtype=torch.long)
            tgt = torch.full((len(self.multi), L), -1, dtype=torch.long)
            for r, j in enumerate(self.multi):
                c = self.choices[j]
                inp[r, : len(c) - 1] = torch.tensor(c[:-1])
                tgt[r, : len(c) - 1] = torch.tensor(c[1:])
            self.multi_inp = inp.to(self.device)  # (M, L) right-padded with id 0
            self.multi_tgt = tgt.to(self.device)  # (M, L), -1 past each choice's end
        self.out = torch.zeros(0)

    def _last_logits(self, ids: torch.Tensor, cache) -> torch.Tensor:
        if self.last_only:
            logits, _ = self.model(ids, kv_cache=cache, last_only=True)
        else:
            logits, _ = self.model(ids, kv_cache=cache)
        return logits[:, -1]  # (n, V)

    def continue_choices(self, cache, last: torch.Tensor, rows: list[int]) -> None:
        """Score every choice after prompts `rows`, whose cache and last logits are given."""
        n = len(rows)
        lp0 = torch.log_softmax(last.float(), dim=-1)  # (n, V)
        total = lp0.index_select(1, self.first).double()  # (n, S): each choice's first token
        if self.multi:
            M = len(self.multi)
            cols = torch.tensor(self.multi, device=self.device)
            # Each prompt's cache rows are repeated M times: at most about batch_size rows
            # at once, so the copies cost no more memory than the prefill's cache.
            per = max(1, self.batch_size // M)
            for a in range(0, n, per):
                b = min(n, a + per)
                index = torch.arange(a, b, device=self.device).repeat_interleave(M)
                sub = _select(cache if (a, b) == (0, n) else copy.copy(cache), index)
                inp = self.multi_inp.repeat(b - a, 1)  # ((b-a)*M, L), prompt-major
                tgt = self.multi_tgt.repeat(b - a, 1)
                logits, _ = self.model(inp, kv_cache=sub)  # ((b-a)*M, L, V)
                lp = torch.log_softmax(logits.float(), dim=-1)
                got = lp.gather(-1, tgt.clamp_min(0).unsqueeze(-1)).squeeze(-1)  # (., L)
                rest = got.masked_fill(tgt < 0, 0.0).sum(-1).double().view(b - a, M)
                total[a:b, cols] += rest
        self.out[torch.tensor(rows)] = total.cpu()

    # -- the two ways through the prompts --------------------------------------------

    def plain(self, prompts: list[list[int]], order: list[int]) -> None:
        """Batches of prompts (sorted by length), left-padded when the cache allows."""
        extra = self.max_choice - 1
        s = 0
        while s < len(order):
            chunk = order[s : s + self.batch_size]
            if not self.pad_ok:  # only prompts as long as the first, unpadded
                n0 = len(prompts[chunk[0]])
                chunk = [i for i in chunk if len(prompts[i]) == n0]
            s += len(chunk)
            lens = [len(prompts[i]) for i in chunk]
            T0 = max(lens)
            pad_lens = [T0 - n for n in lens]
            try:
                cache = self.model.new_kv_cache(
                    len(chunk), T0 + extra, pad_lens if any(pad_lens) else None
                )
            except NotImplementedError:
                if not any(pad_lens):
                    raise
                self.pad_ok = False  # a recurrent state cannot skip left padding
                s -= len(chunk)
                continue
            ids = torch.tensor(
                [[0] * pl + prompts[i] for pl, i in zip(pad_lens, chunk)],
                dtype=torch.long,
                device=self.device,
            )  # (n, T0)
            self.continue_choices(cache, self._last_logits(ids, cache), chunk)

    def shared(self, prompts: list[list[int]], P: int) -> None:
        """The first `P` tokens once; then batches of prompts sorted by length, fed in stages.

        A batch feeds, all rows together and unpadded, the tokens up to its shortest
        prompt's end; the rows that end there are scored (on a copy of their cache
        rows) and dropped, and the others go on from there.
        """
        longest = max(len(p) for p in prompts)
        base = self.model.new_kv_cache(1, longest + self.max_choice - 1, None)
        head = torch.tensor([prompts[0][:P]], dtype=torch.long, device=self.device)
        self._last_logits(head, base)  # fills the cache; these logits predict nothing scored
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for s in range(0, len(order), self.batch_size):
            live = order[s : s + self.batch_size]
            cache = _fork(base, len(live), self.device)
            pos = P
            while live:
                end = len(prompts[live[0]])  # the shortest remaining prompt's end
                ids = torch.tensor(
                    [prompts[i][pos:end] for i in live], dtype=torch.long, device=self.device
                )  # (n, end - pos)
                last = self._last_logits(ids, cache)  # (n, V)
                done = [b for b, i in enumerate(live) if len(prompts[i]) == end]
                if len(done) == len(live):
                    self.continue_choices(cache, last, live)
                    break
                rest = [b for b, i in enumerate(live) if len(prompts[i]) > end]
                keep = torch.tensor(done, device=self.device)
                # A copy of the finished rows' cache: the others' rows go on in `cache`.
                ended = _select(copy.copy(cache), keep)
                self.continue_choices(ended, last.index_select(0, keep), [live[b] for b in done])
                cache = _select(cache, torch.tensor(rest, device=self.device))
                live = [live[b] for b in rest]
                pos = end


def score_continuations(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    choices: Sequence[Sequence[int]],
    *,
    batch_size: int = 16,
    share_prefix: bool | None = None,
) -> torch.Tensor:
    """(N, S) float64: summed log p of choice ``j``'s tokens after prompt ``i`` (module doc).

    Every prompt is scored against every choice. ``share_prefix``: prefill the
    prompts' common token prefix once (None: when it saves a fifth of the prefill).
    A prompt + choice longer than the context raises `PromptTooLong` (its index).
    """
    if not choices or any(len(c) == 0 for c in choices):
        raise LmforgeError("choices: give at least one, each with at least one token")
    prompts = [list(p) for p in prompts]
    for i, p in enumerate(prompts):
        if not p:
            raise LmforgeError(f"prompt {i} is empty; start it with at least one token (e.g. EOS)")
    if not hasattr(model, "new_kv_cache"):
        raise LmforgeError(
            f"{type(model).__name__}: label scoring needs a model with a KV cache or state "
            "(new_kv_cache): GPT, LLaMA or RNN"
        )
    if batch_size < 1:
        raise LmforgeError(f"batch_size: must be at least 1, got {batch_size}")
    longest_choice = max(len(c) for c in choices)
    limit = getattr(model, "max_seq_len", None)
    if limit:
        for i, p in enumerate(prompts):
            # The last choice token is predicted, never fed.
            if len(p) + longest_choice - 1 > int(limit):
                raise PromptTooLong(i, len(p), longest_choice, int(limit))
    scorer = _Scorer(model, choices, batch_size)
    scorer.out = torch.zeros(len(prompts), len(choices), dtype=torch.float64)
    if not prompts:
        return scorer.out
    P = 0
    if share_prefix is not False and len(prompts) > 1:
        P = min(common_prefix_len(prompts), min(len(p) for p in prompts) - 1)
        total = sum(len(p) for p in prompts)
        if share_prefix is None and P * (len(prompts) - 1) < 0.2 * total:
            P = 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            if P > 0:
                scorer.shared(prompts, P)
            else:
                order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
                scorer.plain(prompts, order)
    finally:
        model.train(was_training)
    return scorer.out


# ---------------------------------------------------------------------------
# Labels


@dataclass
class LabelScores:
    """Scores of every label for every prompt: ``scores[i, c]`` (a log-probability)."""

    labels: list[str]
    scores: torch.Tensor  # (N, C) float64: log-sum-exp over each label's words
    word_scores: torch.Tensor  # (N, S) float64: every word (choice), summed log p
    word_label: list[int]  # (S,) the label of each word column

    @property
    def probs(self) -> torch.Tensor:
        """(N, C) label probabilities normalised over the labels."""
        return torch.softmax(self.scores, dim=-1)

    def predictions(self) -> list[str]:
        return [self.labels[j] for j in self.scores.argmax(dim=-1).tolist()]


def score_labels(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    label_ids: Sequence[Sequence[Sequence[int]]],
    labels: Sequence[str],
    *,
    normalize: str = "sum",
    batch_size: int = 16,
    share_prefix: bool | None = None,
) -> LabelScores:
    """Score every label (``label_ids[c]``: its words' token ids) after every prompt."""
    if normalize not in NORMALIZE:
        raise LmforgeError(f"normalize: got {normalize!r}; allowed: {', '.join(NORMALIZE)}")
    if len(label_ids) != len(labels):
        raise LmforgeError(f"{len(label_ids)} label id lists for {len(labels)} labels")
    choices, owner = [], []
    for c, words in enumerate(label_ids):
        for ids in words:
            choices.append(list(ids))
            owner.append(c)
    words = score_continuations(
        model, prompts, choices, batch_size=batch_size, share_prefix=share_prefix
    )  # (N, S)
    per_word = words
    if normalize == "mean":
        per_word = words / torch.tensor([len(c) for c in choices], dtype=torch.float64)
    cols = []
    for c in range(len(labels)):
        idx = [j for j, o in enumerate(owner) if o == c]
        cols.append(torch.logsumexp(per_word[:, idx], dim=-1))
    scores = torch.stack(cols, dim=-1) if cols else torch.zeros(len(prompts), 0)
    return LabelScores(list(labels), scores, words, owner)


def score_prompts(
    model: torch.nn.Module,
    builder: Any,
    prompts: Sequence[Any],
    *,
    normalize: str = "sum",
    batch_size: int = 16,
    share_prefix: bool | None = None,
) -> LabelScores:
    """`score_labels` for `Prompt`s of a `PromptBuilder` (its task's labels and words)."""
    ids = [p.ids if hasattr(p, "ids") else list(p) for p in prompts]
    return score_labels(
        model, ids, builder.label_ids(), builder.task.labels, normalize=normalize,
        batch_size=batch_size, share_prefix=share_prefix,
    )  # fmt: skip


# ---------------------------------------------------------------------------
# Free-text answers

Extractor = Callable[[str], "str | None"]


def regex_extractor(pattern: str) -> Extractor:
    """The first match of `pattern` in a response (its first group if it has one)."""
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise LmforgeError(f"answer regex {pattern!r}: {e}") from None

    def extract(text: str) -> str | None:
        m = rx.search(text)
        if m is None:
            return None
        return m.group(1) if rx.groups else m.group(0)

    return extract


def first_line(text: str) -> str | None:
    """The default extractor: the response's first non-blank line, stripped."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return None


_WORD = re.compile(r"\w[\w/'-]*")


def answer_label(answer: str | None, task: Any) -> str | None:
    """The label whose word (any synonym, or the label's name) the answer starts with."""
    if not answer:
        return None
    m = _WORD.search(answer.lower())
    if m is None:
        return None
    first = m.group(0)
    for label in task.labels:
        names = [w.strip().lower() for w in task.label_words[label]] + [label.lower()]
        if first in names or any(answer.lower().strip().startswith(n) for n in names if n):
            return label
    return None


@dataclass
class Answer:
    """A generated response, the answer extracted from it and the label it names (or None)."""

    text: str
    answer: str | None
    label: str | None


def generate_answers(
    model: torch.nn.Module,
    tokenizer: Any,
    prompts: Sequence[Any],
    task: Any,
    *,
    max_new_tokens: int = 8,
    stop: Sequence[str] = ("\n",),
    extract: str | Extractor | None = None,
) -> list[Answer]:
    """Greedy continuations of `prompts`, cut at `stop`, answers extracted and mapped to labels.

    `extract`: a regex (its first group, else the match), a function of the text,
    or None for the first non-blank line.
    """
    from ..inference.engine import default_stop_ids, generate_full
    from ..inference.sampling import SamplingConfig, truncate_at_stop

    fn = regex_extractor(extract) if isinstance(extract, str) else (extract or first_line)
    cfg = SamplingConfig(
        max_new_tokens=max_new_tokens, temperature=0.0, stop_strings=list(stop),
        stop_token_ids=default_stop_ids(tokenizer),
    )  # fmt: skip
    ids = [p.ids if hasattr(p, "ids") else list(p) for p in prompts]
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    gens = generate_full(model, ids, cfg, pad_id=pad, decode=tokenizer.decode)
    out = []
    for g in gens:
        text = (
            truncate_at_stop(tokenizer.decode(g.tokens), list(stop))
            if stop
            else (tokenizer.decode(g.tokens))
        )
        ans = fn(text)
        out.append(Answer(text, ans, answer_label(ans, task)))
    return out
