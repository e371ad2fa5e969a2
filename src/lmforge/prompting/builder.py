"""Zero-, one- and few-shot prompts from one task spec: which examples, in which order, as text and ids.

A prompt is the task's instruction (if any), ``k`` shown examples each followed by
the format's separator, then the query rendered without its label::

    Classify the sentiment of each review.\\n\\n       instruction + instruction_sep
    Review: a fine film\\nSentiment: positive\\n\\n     demo 1 + separator
    Review: dull\\nSentiment: negative\\n\\n           demo 2 + separator
    Review: <the query>\\nSentiment:                 the query (scored: " positive" ...)

* which examples: `sample_demos` draws ``k`` from the train split with a seed,
  balanced across labels (round robin over labels in a seeded order, each
  label's pool shuffled) or uniformly at random; `demos_for_labels` draws one
  example per entry of an explicit label sequence (``yes, yes, no, no`` for the
  recency probe). With the same seed a smaller ``k`` draws a prefix of a larger
  one's examples, so k = 1, 4, 8 are nested.
* which order: `order_demos` keeps the drawn order (``"given"``), shuffles it by
  seed (``"random"``); `permutations` lists distinct orders of the same examples.
* text and ids: `PromptBuilder.build` returns a `Prompt` with both. The whole text
  is encoded at once with special-token strings as plain text (what a Hugging Face
  tokenizer or lm-evaluation-harness does with the same text); with
  ``special_template=True`` the format's own text (instruction, template, separators)
  is parsed for special tokens and only the examples' contents stay plain (they
  are then encoded piece by piece). A start token goes first: EOS by default, as
  pretraining saw documents begin (``doc EOS doc EOS``); ``"bos"`` or ``"none"``.
* content-free prompts: `PromptBuilder.content_free` gives the same prompt with
  every field of the query replaced by ``"N/A"``, ``"[MASK]"``, ``""``... (calibration).
"""

from __future__ import annotations

import itertools
import random
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..common import LmforgeError
from .tasks import ClassificationTask, Example

STARTS = ("eos", "bos", "none")
CONTENT_FREE = ("N/A", "", "[MASK]")


@dataclass(frozen=True)
class Prompt:
    """A built prompt: its text, its token ids (start token included) and the query."""

    text: str
    ids: list[int]
    query: Example | None = None


# ---------------------------------------------------------------------------
# Choosing and ordering the shown examples


def _check_k(task: ClassificationTask, k: int) -> None:
    if k < 0:
        raise LmforgeError(f"k: must be 0 or more, got {k}")
    if k > len(task.train):
        raise LmforgeError(
            f"k={k} is larger than the train set of task {task.name}, which has "
            f"{len(task.train)} examples; use k <= {len(task.train)}"
        )


def sample_indices(
    task: ClassificationTask,
    k: int,
    *,
    seed: int = 0,
    balanced: bool = True,
    exclude: Iterable[int] = (),
) -> list[int]:
    """Indices into ``task.train`` of ``k`` examples drawn with `seed` (see `sample_demos`)."""
    _check_k(task, k)
    skip = set(exclude)
    index = [i for i in range(len(task.train)) if i not in skip]
    if k > len(index):
        raise LmforgeError(
            f"k={k} is larger than the {len(index)} train examples of task {task.name} left "
            f"to draw from ({len(skip)} are set aside); use a smaller k"
        )
    rng = random.Random(seed)
    if not balanced:
        return rng.sample(index, k)
    pools = {label: [i for i in index if task.train[i].label == label] for label in task.labels}
    for pool in pools.values():
        rng.shuffle(pool)
    order = list(task.labels)
    rng.shuffle(order)
    picked: list[int] = []
    while len(picked) < k:  # round robin; a label whose pool ran out is skipped
        for label in order:
            if pools[label] and len(picked) < k:
                picked.append(pools[label].pop())
    return picked


def sample_demos(
    task: ClassificationTask,
    k: int,
    *,
    seed: int = 0,
    balanced: bool = True,
    exclude: Iterable[int] = (),
) -> list[Example]:
    """``k`` train examples drawn with `seed` (balanced across labels, or uniformly).

    `exclude`: train indices not to draw (e.g. those kept for fitting a calibration).
    """
    idx = sample_indices(task, k, seed=seed, balanced=balanced, exclude=exclude)
    return [task.train[i] for i in idx]


def demos_for_labels(
    task: ClassificationTask, labels: Sequence[str], *, seed: int = 0
) -> list[Example]:
    """One train example per entry of `labels`, in that order (``yes, yes, no, no``).

    A label may be given by name or by its main label word (``True`` for RTE's
    ``entailment``), case-insensitively.
    """
    _check_k(task, len(labels))
    names = [resolve_label(task, x) for x in labels]
    rng = random.Random(seed)
    pools = {label: [i for i, ex in enumerate(task.train) if ex.label == label] for label in names}
    for pool in pools.values():
        rng.shuffle(pool)
    out = []
    for label in names:
        if not pools[label]:
            have = sum(ex.label == label for ex in task.train)
            raise LmforgeError(
                f"order: label {label!r} appears {names.count(label)} times but task "
                f"{task.name}'s train set has only {have} examples of it"
            )
        out.append(task.train[pools[label].pop()])
    return out


def resolve_label(task: ClassificationTask, name: str) -> str:
    """A label of `task` from its name or main word (case-insensitive)."""
    if name in task.labels:
        return name
    low = name.strip().lower()
    for label in task.labels:
        if label.lower() == low or task.label_words[label][0].strip().lower() == low:
            return label
    raise LmforgeError(
        f"label {name!r} is not a label of task {task.name}; labels: {', '.join(task.labels)} "
        f"(words: {', '.join(task.label_words[x][0] for x in task.labels)})"
    )


def order_demos(demos: Sequence[Example], order: str = "random", *, seed: int = 0) -> list[Example]:
    """`demos` as drawn (``"given"``) or shuffled with `seed` (``"random"``)."""
    out = list(demos)
    if order == "given":
        return out
    if order == "random":
        random.Random(seed + 7919).shuffle(out)  # its own stream: not the draw's
        return out
    raise LmforgeError(f"order: got {order!r}; allowed: given, random, or a label list")


def permutations(demos: Sequence[Example], n: int, *, seed: int = 0) -> list[list[Example]]:
    """Up to `n` distinct orders of `demos` (all of them when there are at most `n`).

    The first is the given order; the others are drawn with `seed` without repeats.
    """
    k = len(demos)
    total = 1
    for i in range(2, k + 1):
        total *= i
    if total <= n:
        return [list(p) for p in itertools.permutations(demos)]
    rng = random.Random(seed)
    seen = {tuple(range(k))}
    orders = [list(range(k))]
    while len(orders) < n:
        p = list(range(k))
        rng.shuffle(p)
        if tuple(p) not in seen:
            seen.add(tuple(p))
            orders.append(p)
    return [[demos[i] for i in p] for p in orders]


def take_test(task: ClassificationTask, limit: int = 0, *, seed: int = 0) -> list[Example]:
    """The test examples to score: all of them, or `limit` of a fixed shuffle (seed 0)."""
    if limit <= 0 or limit >= len(task.test):
        return list(task.test)
    index = list(range(len(task.test)))
    random.Random(seed).shuffle(index)
    return [task.test[i] for i in sorted(index[:limit])]


# ---------------------------------------------------------------------------
# Text and ids


class PromptBuilder:
    """Prompts of one task and tokenizer: reuse it for every seed, order and query.

    `start`: ``"eos"`` (default), ``"bos"`` or ``"none"`` (see the module doc);
    `special_template`: parse special-token strings in the format's own text.
    """

    def __init__(
        self,
        task: ClassificationTask,
        tokenizer: Any,
        *,
        start: str = "eos",
        special_template: bool = False,
    ):
        if start not in STARTS:
            raise LmforgeError(f"start: got {start!r}; allowed: {', '.join(STARTS)}")
        self.task, self.tokenizer = task, tokenizer
        self.special_template = special_template
        self.start_ids = self._start_ids(start)
        self._label_ids: list[list[list[int]]] | None = None

    def _start_ids(self, start: str) -> list[int]:
        tok = self.tokenizer
        if start == "none":
            return []
        first = tok.eos_id if start == "eos" else tok.bos_id
        if first is None:  # fall back to the other document marker, then nothing
            first = tok.bos_id if start == "eos" else tok.eos_id
        return [] if first is None else [int(first)]

    # -- pieces: (text, is_content) -------------------------------------------------

    def _example_pieces(self, ex: Example, with_label: bool) -> list[tuple[str, bool]]:
        fmt = self.task.format
        pieces: list[tuple[str, bool]] = []
        for literal, name, spec, conv in string.Formatter().parse(fmt.template):
            if literal:
                pieces.append((literal, False))
            if name is not None:
                value = ex.fields.get(name)
                if value is None:
                    self.task.query_text(ex)  # raises, naming the example and field
                if conv:  # !r, !s, !a as str.format applies them
                    value = {"r": repr, "s": str, "a": ascii}[conv](value)
                value = format(value, spec) if spec else value
                pieces.append((value, True))
        if with_label:
            pieces.append((self.task.label_text(ex.label) + fmt.label_suffix, False))
        return pieces

    def _pieces(self, demos: Sequence[Example], query: Example) -> list[tuple[str, bool]]:
        fmt = self.task.format
        pieces: list[tuple[str, bool]] = []
        if fmt.instruction:
            pieces.append((fmt.instruction + fmt.instruction_sep, False))
        for d in demos:
            pieces.extend(self._example_pieces(d, True))
            pieces.append((fmt.separator, False))
        pieces.extend(self._example_pieces(query, False))
        return pieces

    def text(self, demos: Sequence[Example], query: Example) -> str:
        """The prompt's text (without the start token)."""
        return "".join(t for t, _ in self._pieces(demos, query))

    def prefix_text(self, demos: Sequence[Example]) -> str:
        """Instruction and shown examples: the part every query of these demos shares."""
        fmt = self.task.format
        head = fmt.instruction + fmt.instruction_sep if fmt.instruction else ""
        return head + "".join(self.task.demo_text(d) + fmt.separator for d in demos)

    def _encode_pieces(self, pieces: list[tuple[str, bool]]) -> list[int]:
        tok = self.tokenizer
        ids = list(self.start_ids)
        for text, content in pieces:
            if text:
                ids.extend(tok.encode(text, special=not content))
        return ids

    def build(self, demos: Sequence[Example], query: Example) -> Prompt:
        """One prompt (text and ids) for `query` after `demos`."""
        return self.build_many(demos, [query])[0]

    def build_many(self, demos: Sequence[Example], queries: Sequence[Example]) -> list[Prompt]:
        """A prompt per query, all after the same `demos` (encoded in one batch)."""
        piece_lists = [self._pieces(demos, q) for q in queries]
        texts = ["".join(t for t, _ in p) for p in piece_lists]
        if self.special_template:
            ids = [self._encode_pieces(p) for p in piece_lists]
        else:
            ids = [list(self.start_ids) + e for e in self.tokenizer.encode_batch(texts)]
        return [Prompt(t, i, q) for t, i, q in zip(texts, ids, queries)]

    def content_free(
        self, demos: Sequence[Example], strings: Sequence[str] = CONTENT_FREE
    ) -> list[Prompt]:
        """The prompt with every field of the query replaced by each content-free string."""
        if not strings:
            raise LmforgeError("content_free: give at least one content-free string (e.g. N/A)")
        return self.build_many(demos, [self.task.content_free(s) for s in strings])

    # -- labels ---------------------------------------------------------------------

    def label_ids(self) -> list[list[list[int]]]:
        """Token ids of every label word: ``[label][synonym] -> ids`` (label order).

        Refuses a word that tokenizes to nothing and two words with the same tokens
        under different labels (their scores could not be told apart).
        """
        if self._label_ids is not None:
            return self._label_ids
        task, tok = self.task, self.tokenizer
        out: list[list[list[int]]] = []
        owner: dict[tuple[int, ...], str] = {}
        for label in task.labels:
            per = []
            for s, word in enumerate(task.label_words[label]):
                text = task.label_text(label, s)
                ids = tok.encode(text, special=self.special_template)
                if not ids:
                    raise LmforgeError(
                        f"task {task.name}: label word {word!r} of label {label!r} tokenizes "
                        f"to nothing ({text!r} gives no tokens); choose another label word"
                    )
                key = tuple(ids)
                if key in owner and owner[key] != label:
                    raise LmforgeError(
                        f"task {task.name}: label words of {owner[key]!r} and {label!r} have the "
                        f"same tokens {list(key)}; choose words that differ"
                    )
                owner[key] = label
                per.append(ids)
            out.append(per)
        self._label_ids = out
        return out
