"""T9 predictive text: phone-keypad digit sequences to words, decoded with the n-gram model.

A keypad layout maps letters to the keys 2-9; a word's *key sequence* is the
digits of its letters ("good" and "home" are both 4663). `T9Index` maps every key
sequence to the vocabulary's words that type it, most probable (unigram) first.
A phrase -- key sequences separated by spaces -- is a *lattice*: one set of
candidate words per slot. `beam_decode` searches it left to right with the n-gram
model (the same search serves the typo corrector, with channel scores as
emissions), so "4663 4663" becomes "good home" or "home good" as the model says.

Layouts (ITU E.161 for Latin; the common Russian phone layout for Cyrillic):

    key  en     ru
    2    abc    абвг
    3    def    дежз (and ё, typed as е)
    4    ghi    ийкл
    5    jkl    мноп
    6    mno    рсту
    7    pqrs   фхцч
    8    tuv    шщъы
    9    wxyz   ьэюя

A word with a character its layout has no key for (punctuation, digits, the
other script) is not typeable and never offered.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..common import LmforgeError
from ..config import field_
from .model import NgramModel
from .vocab import BOS_ID, EOS_ID, UNK_ID

KEYPADS: dict[str, dict[str, str]] = {
    "en": {
        "2": "abc",
        "3": "def",
        "4": "ghi",
        "5": "jkl",
        "6": "mno",
        "7": "pqrs",
        "8": "tuv",
        "9": "wxyz",
    },
    "ru": {
        "2": "абвг",
        "3": "дежзё",
        "4": "ийкл",
        "5": "мноп",
        "6": "рсту",
        "7": "фхцч",
        "8": "шщъы",
        "9": "ьэюя",
    },
}
KEYS = "23456789"


@dataclass
class T9Config:
    """How `lmforge ngram t9` decodes key sequences."""

    layout: str = field_(
        "en", help="keypad letters: en (2=abc .. 9=wxyz) or ru (2=абвг ..)", choices=tuple(KEYPADS)
    )
    top: int = field_(5, help="how many words (or phrases) to print per line", min=1, max=100)
    beam: int = field_(16, help="beam width of the phrase search", min=1, max=1000)
    line_mode: bool = field_(
        False, help="read whole lines even on a terminal (one result line per input line)"
    )


def letter_keys(layout: str) -> dict[str, str]:
    """letter -> key digit for `layout`."""
    return {ch: key for key, letters in KEYPADS[layout].items() for ch in letters}


def word_keys(word: str, keys: dict[str, str]) -> str | None:
    """The key sequence that types `word` (case-insensitive), or None if it is not typeable."""
    out = []
    for ch in word.lower():
        k = keys.get(ch)
        if k is None:
            return None
        out.append(k)
    return "".join(out) or None


def parse_keys(line: str, where: str) -> list[str]:
    """The key sequences of one input line; anything but 2-9 and spaces raises one line.

    `where` names the line in the error (``stdin:3``, ``argument 1``)."""
    if not line.strip():
        raise LmforgeError(f"{where}: empty line; type key sequences of the digits 2-9")
    for col, ch in enumerate(line, start=1):
        if ch not in KEYS and not ch.isspace():
            what = "not a letter key (T9 letters are on 2-9)" if ch.isdigit() else "not a key"
            raise LmforgeError(
                f"{where}: {ch!r} at column {col} is {what}; type digits 2-9, a space between words"
            )
    return line.split()


class T9Index:
    """Key sequence -> the vocabulary's word ids that type it, most probable first."""

    def __init__(self, model: NgramModel, layout: str = "en"):
        if layout not in KEYPADS:
            raise LmforgeError(f"layout: {layout!r} is not one of {', '.join(KEYPADS)}")
        self.model = model
        self.layout = layout
        keys = letter_keys(layout)
        groups: dict[str, list[int]] = {}
        for i, w in enumerate(model.vocab.words[3:], start=3):
            seq = word_keys(w, keys)
            if seq is not None:
                groups.setdefault(seq, []).append(i)
        unigram = model.logp[0]
        self._by_keys = {
            seq: np.asarray(sorted(ids, key=lambda i: (-unigram[i], i)), dtype=np.int64)
            for seq, ids in groups.items()
        }
        self._sorted_keys = sorted(self._by_keys)

    def __len__(self) -> int:
        """How many key sequences type at least one word."""
        return len(self._by_keys)

    def words(self, seq: str) -> np.ndarray:
        """Word ids whose key sequence is exactly `seq`, by falling unigram probability."""
        return self._by_keys.get(seq, np.empty(0, dtype=np.int64))

    def completions(self, seq: str, k: int = 50) -> np.ndarray:
        """The k most probable word ids whose key sequence starts with `seq` (while typing)."""
        lo = bisect.bisect_left(self._sorted_keys, seq)
        hi = bisect.bisect_left(self._sorted_keys, seq + "\U0010ffff", lo)
        if lo == hi:
            return np.empty(0, dtype=np.int64)
        ids = np.concatenate([self._by_keys[s] for s in self._sorted_keys[lo:hi]])
        unigram = self.model.logp[0][ids]
        return ids[np.lexsort((ids, -unigram))[:k]]

    def ranked(self, seq: str, k: int) -> list[tuple[str, float]]:
        """The k most probable words for one key sequence (unigram), with probabilities."""
        ids = self.words(seq)[:k]
        return [(self.model.vocab.words[i], float(10.0 ** self.model.logp[0][i])) for i in ids]

    def lattice(self, seqs: Sequence[str], partial_last: bool = False) -> list[np.ndarray]:
        """Candidate ids per slot; a sequence no word types becomes [<unk>].

        `partial_last`: the last sequence is still being typed, so words it starts
        are offered when no word matches it exactly."""
        out = []
        for n, seq in enumerate(seqs):
            ids = self.words(seq)
            if len(ids) == 0 and partial_last and n == len(seqs) - 1:
                ids = self.completions(seq)
            out.append(ids if len(ids) else np.asarray([UNK_ID], dtype=np.int64))
        return out


# ---------------------------------------------------------------------------
# Beam search over a lattice of candidate words (shared with the typo corrector)


class Beam:
    """Left-to-right beam search over word lattices with an n-gram model.

    Each state is a history (the last N-1 word ids) with a log10 score; `step`
    extends every state by every candidate of the next slot -- one vectorised
    `model.logprob` call for all of them -- adds the slot's emission scores
    (channel log-probabilities; 0 for T9), keeps the best state per history
    (states with the same last N-1 words have the same future: Viterbi
    recombination) and then the `width` best. `finish` adds log p(</s>).
    """

    def __init__(self, model: NgramModel, width: int = 16, start: Sequence[int] = (BOS_ID,)):
        self.model = model
        self.width = width
        self.L = model.order - 1
        hist = np.full((1, self.L), -1, dtype=np.int64)  # (S, L), right-aligned, -1 padded
        tail = list(start)[-self.L :] if self.L else []
        if tail:
            hist[0, self.L - len(tail) :] = tail
        self.hist = hist
        self.score = np.zeros(1)  # (S,) log10
        self._parent: list[np.ndarray] = []  # per step: (S,) index of the previous state
        self._word: list[np.ndarray] = []  # per step: (S,) word id chosen

    def step(self, cands: np.ndarray, emit: np.ndarray | None = None) -> None:
        """Extend by one slot: candidate ids (C,) and optional emission log10 scores (C,)."""
        cands = np.asarray(cands, dtype=np.int64)
        S, C = len(self.score), len(cands)
        ctx = np.repeat(self.hist, C, axis=0)  # (S*C, L)
        words = np.tile(cands, S)  # (S*C,)
        lp, _ = self.model.logprob(ctx, words)
        total = self.score[:, None] + lp.reshape(S, C)  # (S, C)
        if emit is not None:
            total = total + np.asarray(emit, dtype=np.float64)[None, :]
        total = total.ravel()
        new_hist = np.concatenate([ctx[:, 1:], words[:, None]], axis=1) if self.L else ctx
        # A unigram model has no history: keep distinct last words instead.
        key_rows = new_hist if self.L else words[:, None]
        keep: list[int] = []
        seen: set[bytes] = set()
        # -inf scores (MLE zeros) sort last but still survive when nothing else does.
        for r in np.argsort(-total, kind="stable"):
            key = key_rows[r].tobytes()
            if key in seen:
                continue
            seen.add(key)
            keep.append(int(r))
            if len(keep) == self.width:
                break
        rows = np.asarray(keep, dtype=np.int64)
        self.hist = new_hist[rows]
        self.score = total[rows]
        self._parent.append(rows // C)
        self._word.append(words[rows])

    def finish(self, top: int = 1) -> list[tuple[list[int], float]]:
        """The `top` best complete paths (word ids per slot) with log10 p including </s>."""
        eos = np.full(len(self.score), EOS_ID, dtype=np.int64)
        lp, _ = self.model.logprob(self.hist, eos)
        final = self.score + lp
        out = []
        for s in np.argsort(-final, kind="stable")[:top]:
            path, state = [], int(s)
            for t in range(len(self._word) - 1, -1, -1):
                path.append(int(self._word[t][state]))
                state = int(self._parent[t][state])
            out.append((path[::-1], float(final[s])))
        return out


def beam_decode(
    model: NgramModel,
    lattice: Sequence[np.ndarray],
    emits: Sequence[np.ndarray | None] | None = None,
    width: int = 16,
    top: int = 1,
) -> list[tuple[list[int], float]]:
    """The `top` best word-id paths through `lattice` (one candidate array per slot) as
    a sentence (<s> ... </s>) under `model`, with optional emission scores per slot."""
    beam = Beam(model, width)
    for n, cands in enumerate(lattice):
        beam.step(cands, None if emits is None else emits[n])
    return beam.finish(top)


# ---------------------------------------------------------------------------
# What `lmforge ngram t9` prints


def decode_phrase(
    index: T9Index, seqs: Sequence[str], top: int = 5, width: int = 16, partial_last: bool = False
) -> list[tuple[list[str], float]]:
    """The `top` most probable phrases for key sequences `seqs`, with log10 p (as a sentence).

    A slot no word types shows its digits in brackets, e.g. ``[9999]``."""
    paths = beam_decode(
        index.model, index.lattice(seqs, partial_last), width=max(width, top), top=top
    )
    words = index.model.vocab.words
    return [
        ([words[i] if i != UNK_ID else f"[{s}]" for i, s in zip(path, seqs)], score)
        for path, score in paths
    ]


def format_result(index: T9Index, line: str, seqs: list[str], top: int, width: int) -> str:
    """One output line: a single sequence lists its words with unigram probabilities,
    a phrase its best decodings with log10 p of the phrase as a sentence."""
    if len(seqs) == 1:
        items = index.ranked(seqs[0], top)
        cells = [f"{w} {p:.4g}" for w, p in items] or [f"[{seqs[0]}] (no word)"]
    else:
        cells = [f"{' '.join(ws)} {lp:.3f}" for ws, lp in decode_phrase(index, seqs, top, width)]
    return " | ".join([line.strip(), *cells])
