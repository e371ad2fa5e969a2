"""C2's measurements that need no model: how a tokenizer splits numbers, and how well its
token boundaries find the words of text whose spaces were removed. Pure functions of a
trained `lmforge.tokenizers.Tokenizer` (and the text), so tests can check them directly.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WORD = re.compile(r"\w+|[^\w\s]")  # a word: a run of letters/digits, or one other mark

# The two contexts a number is split in: after a space (" 427", inside a sentence) and
# straight after a non-space character ("=427", a sum, or a line start).
CONTEXTS = {"after a space": " {}", "after '='": "={}"}


def digit_pattern(pieces: Sequence[str]) -> tuple[int, ...]:
    """How many digits each piece holds, pieces without digits left out: ['Ġ12', '3'] ->
    (2, 1). Byte-level BPE shows ASCII digits as themselves, so counting them is exact."""
    counts = (sum(ch.isdigit() for ch in p) for p in pieces)
    return tuple(c for c in counts if c)


@dataclass
class NumberSplits:
    """How one tokenizer splits the numbers 0..N-1 (per context, per digit count)."""

    patterns: dict[str, dict[int, Counter]]  # context -> digits -> Counter of patterns
    context_differs: float  # share of numbers split differently in the two contexts

    def tokens_per_number(self, context: str, digits: int) -> float:
        c = self.patterns[context][digits]
        return sum(len(p) * k for p, k in c.items()) / sum(c.values())

    def distinct(self, context: str, digits: int) -> int:
        return len(self.patterns[context][digits])

    def off_majority(self, context: str) -> float:
        """Share of numbers whose split is not the most common one for their digit count:
        0 when every number of one length is cut the same way."""
        by_len = self.patterns[context].values()
        total = sum(sum(c.values()) for c in by_len)
        return sum(sum(c.values()) - max(c.values()) for c in by_len) / max(total, 1)


def number_splits(tok: Any, limit: int) -> NumberSplits:
    """Split every number 0..limit-1 in each of CONTEXTS with `tok`."""
    numbers = [str(i) for i in range(limit)]
    patterns: dict[str, dict[int, Counter]] = {}
    per_context = []
    for name, fmt in CONTEXTS.items():
        ids = tok.encode_batch([fmt.format(n) for n in numbers])
        pats = [digit_pattern([tok.id_to_token(i) for i in row]) for row in ids]
        per_context.append(pats)
        by_len: dict[int, Counter] = {}
        for n, p in zip(numbers, pats):
            by_len.setdefault(len(n), Counter())[p] += 1
        patterns[name] = by_len
    a, b = per_context
    differs = sum(x != y for x, y in zip(a, b)) / max(len(numbers), 1)
    return NumberSplits(patterns, differs)


def show_split(tok: Any, text: str) -> str:
    """`text` with its tokens separated by '|' (byte-level 'Ġ' shown as a space)."""
    pieces = [tok.decode([i], skip_special=False) for i in tok.encode(text)]
    return "|".join(pieces)


# -- addition problems --------------------------------------------------------------------


def addition_problems(max_operand: int, seed: int) -> list[str]:
    """Every 'a+b=c' with 0 <= a, b <= max_operand, shuffled by `seed`."""
    rows = [f"{a}+{b}={a + b}" for a in range(max_operand + 1) for b in range(max_operand + 1)]
    random.Random(seed).shuffle(rows)
    return rows


def split_problem(line: str) -> tuple[str, str]:
    """'12+34=46' -> ('12+34=', '46'): the prompt and the answer to match exactly."""
    head, answer = line.split("=")
    return head + "=", answer


# -- unspaced text --------------------------------------------------------------------------


def unspace(line: str) -> tuple[str, set[int]]:
    """The line without whitespace, and the offsets (in it) where a WORD starts, the first
    excluded: the boundaries a segmenter should find."""
    words = WORD.findall(line)
    text = "".join(words)
    starts, at = set(), 0
    for w in words[:-1]:
        at += len(w)
        starts.add(at)
    return text, starts


def token_starts(tok: Any, text: str) -> set[int]:
    """Offsets where a token of `text` starts, 0 and the end excluded (a unigram model's
    dummy-prefix piece starts at 0 too, so it adds nothing)."""
    enc = tok.engine.encode(text, add_special_tokens=False)
    return {s for s, e in enc.offsets if 0 < s < len(text)}


def inside_letters(text: str, offsets: set[int]) -> set[int]:
    """The offsets with a letter on both sides: boundaries no pre-tokenizer rule gives away
    (letters next to digits or punctuation are split by BPE's regex anyway)."""
    return {i for i in offsets if text[i - 1].isalpha() and text[i].isalpha()}


@dataclass
class BoundaryScore:
    true_positive: int = 0
    predicted: int = 0
    actual: int = 0
    tokens: int = 0
    words: int = 0

    @property
    def precision(self) -> float:
        return self.true_positive / max(self.predicted, 1)

    @property
    def recall(self) -> float:
        return self.true_positive / max(self.actual, 1)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def tokens_per_word(self) -> float:
        return self.tokens / max(self.words, 1)


def boundary_scores(tok: Any, lines: Sequence[str]) -> tuple[BoundaryScore, BoundaryScore]:
    """Word-boundary precision/recall/F1 of `tok`'s token starts on the unspaced `lines`:
    (every boundary, boundaries between two letters only)."""
    every, letters = BoundaryScore(), BoundaryScore()
    for line in lines:
        text, truth = unspace(line)
        if not text:
            continue
        pred = token_starts(tok, text)
        n_tokens = len(tok.encode(text))
        for score, t, p in (
            (every, truth, pred),
            (letters, inside_letters(text, truth), inside_letters(text, pred)),
        ):
            score.true_positive += len(t & p)
            score.predicted += len(p)
            score.actual += len(t)
            score.tokens += n_tokens
            score.words += len(truth) + 1  # fmt: skip
    return every, letters
