"""Typo correction with the n-gram model: a noisy channel over a sentence.

For a typed sentence t_1..t_n the corrector picks the words w_1..w_n that maximise

    sum_i log P(t_i | w_i)  +  log P(<s> w_1 .. w_n </s>)        (log10 throughout)

The first term is the *error model*, the second the n-gram language model, so a
word is judged by its left and right neighbours together (beam search over the
sentence, `t9.Beam`, the search T9 uses). Per typed word the candidates are:

* the typed word itself when the vocabulary has it (or, with `lexicon`, when a
  dictionary of the language does): log10(real_word_prior), the prior that a
  real word was typed as meant -- so changing it takes strong evidence;
* <unk> for any other word, i.e. keep it as typed (a name, a new word form):
  log10(nonword_prior) - unknown_letter_cost * its length, plus the model's
  p(<unk> | context);
* vocabulary words within Damerau (optimal string alignment) distance `max_edits`
  (`real_word_edits` for a real typed word): log10(1 - the prior) minus the edit
  cost of the cheapest alignment with the fewest edits.

Edit costs are log10 units per insertion, deletion, substitution, transposition;
with `keyboard` a substitution by a neighbouring key (QWERTY, ЙЦУКЕН), an extra
letter next to its neighbour's key or doubled, and a dropped doubled letter cost
`keyboard_gain` less, a substitution by a distant key `keyboard_far` more.

Candidate generation is SymSpell's deletion neighbourhood: every vocabulary word
is indexed under all strings made by deleting up to d of its characters (as
64-bit hashes in one sorted numpy array). Two words within OSA distance d share
such a string (a substitution or a transposition costs one deletion on each side,
an insertion or deletion one on one side), so a typed word looks up its own
deletions and verifies the hits with an edit-distance DP vectorised over them.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..common import LmforgeError
from ..config import field_
from .model import NgramModel
from .t9 import Beam
from .text import WORD_PATTERN
from .vocab import BOS_ID, EOS_ID, UNK_ID

KEYBOARD_ROWS = (
    ("qwertyuiop", "asdfghjkl", "zxcvbnm"),  # QWERTY
    ("йцукенгшщзхъ", "фывапролджэ", "ячсмитьбю"),  # ЙЦУКЕН
)
SIMILAR = ("её",)  # typed for each other as often as neighbouring keys


def keyboard_neighbours() -> dict[str, set[str]]:
    """letter -> the letters on the keys around it (same row, and the staggered rows)."""
    out: dict[str, set[str]] = {}

    def link(a: str, b: str) -> None:
        out.setdefault(a, set()).add(b)
        out.setdefault(b, set()).add(a)

    for rows in KEYBOARD_ROWS:
        for r, row in enumerate(rows):
            for c, ch in enumerate(row):
                if c + 1 < len(row):
                    link(ch, row[c + 1])
                if r + 1 < len(rows):
                    # The row below is shifted right by about half a key.
                    below = rows[r + 1]
                    for cc in (c - 1, c):
                        if 0 <= cc < len(below):
                            link(ch, below[cc])
    for pair in SIMILAR:
        link(pair[0], pair[1])
    return out


@dataclass
class CorrectConfig:
    """How `lmforge ngram correct` weighs the typed text against the model."""

    max_edits: int = field_(2, help="candidates within this Damerau distance (1-3)", min=1, max=3)
    real_word_edits: int = field_(
        1, help="edits considered for a typed word that is in the vocabulary", min=0, max=3
    )
    short_word: int = field_(
        0, help="typed words up to this length get at most 1 edit (0: none)", min=0
    )
    keyboard: bool = field_(
        False, help="weigh edits by keyboard adjacency (QWERTY for Latin, ЙЦУКЕН for Cyrillic)"
    )
    lexicon: bool = field_(
        False,
        help="treat unknown typed words that a dictionary knows (pymorphy3 for Cyrillic, "
        "simplemma's English for Latin) as real words: kept unless the context says otherwise",
    )
    real_word_prior: float = field_(
        0.995, help="P(a typed word in the vocabulary is what was meant)", min=0.0, max=1.0
    )
    nonword_prior: float = field_(
        0.3, help="P(a typed word not in the vocabulary is what was meant, e.g. a name)", min=0.0,
        max=1.0,
    )  # fmt: skip
    unknown_letter_cost: float | None = field_(
        None,
        help="log10 cost per letter of keeping an unknown typed word as a new word (long "
        "unknown words are rarely new words); default: 0.4 with --lexicon (what the "
        "dictionary does not know is likely a typo), 0 without",
        min=0.0,
    )
    edit_cost: float = field_(2.0, help="log10 cost of one edit", min=0.0)
    transpose_cost: float = field_(1.7, help="log10 cost of swapping two neighbours", min=0.0)
    keyboard_gain: float = field_(
        0.7, help="with --keyboard: log10 discount of keyboard-plausible edits", min=0.0
    )
    keyboard_far: float = field_(
        0.3, help="with --keyboard: log10 surcharge of a substitution by a distant key", min=0.0
    )
    max_candidates: int = field_(
        16, help="candidates kept per word (by error model x unigram) for the context search",
        min=1,
    )  # fmt: skip
    beam: int = field_(8, help="beam width of the sentence search", min=1, max=1000)
    top: int = field_(1, help="alternatives printed per changed word (1: just the text)", min=1)

    def validate(self) -> None:
        from ..common import ConfigError

        if self.real_word_edits > self.max_edits:
            raise ConfigError(
                "real_word_edits", f"{self.real_word_edits} exceeds max_edits {self.max_edits}"
            )
        if self.keyboard_gain > self.edit_cost:
            raise ConfigError(
                "keyboard_gain", f"{self.keyboard_gain} exceeds the edit cost: edits would pay"
            )
        for name in ("real_word_prior", "nonword_prior"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(
                    name, f"must be strictly between 0 and 1, got {getattr(self, name)}"
                )


class Lexicon:
    """Is a word a real word of its language? pymorphy3's Russian dictionary for
    Cyrillic words, simplemma's English lemma list for the rest (both lmforge
    dependencies, loaded on first use)."""

    def __init__(self) -> None:
        self._ru = None
        self._en = None

    def knows(self, word: str) -> bool:
        if any("\u0400" <= c <= "\u04ff" for c in word):
            if self._ru is None:
                import pymorphy3

                self._ru = pymorphy3.MorphAnalyzer()
            return bool(self._ru.word_is_known(word))
        if self._en is None:
            import simplemma

            self._en = simplemma
        return bool(self._en.is_known(word, lang="en"))


def is_word(token: str) -> bool:
    """Tokens with a letter are corrected; punctuation and numbers are left alone."""
    return any(c.isalpha() for c in token)


# ---------------------------------------------------------------------------
# Edit distance, vectorised over many candidate words


class EditCosts:
    """OSA distance and weighted edit cost from candidate words to a typed word.

    Characters are small integer codes; the candidates are rows of a padded code
    matrix, so one DP row over the typed word is about a dozen numpy operations
    for all candidates at once. One DP gives both numbers: a cell holds
    ``edits * SCALE + cost``, so the minimum is the alignment with the fewest edits
    and, among those, the cheapest; the cost is that alignment's log10 cost."""

    SCALE = 1.0e4  # above any sum of edit costs along one alignment

    def __init__(self, alphabet: Sequence[str], cfg: CorrectConfig):
        near = keyboard_neighbours() if cfg.keyboard else {}
        # Keyboard letters get codes too: a typed neighbour no vocabulary word uses is
        # still a neighbour.
        alphabet = sorted(set(alphabet) | set(near))
        self.code = {ch: i for i, ch in enumerate(alphabet)}
        self.cfg = cfg
        n = len(alphabet) + 1  # the last code: a character outside the alphabet
        self.unknown = n - 1
        adjacent = np.zeros((n, n), dtype=bool)
        for a, around in near.items():
            for b in around:
                adjacent[self.code[a], self.code[b]] = True
        self.adjacent = adjacent
        # sub[t, x]: typing t where x was meant (0 when equal), edit count included.
        if cfg.keyboard:
            cost = np.where(
                adjacent, cfg.edit_cost - cfg.keyboard_gain, cfg.edit_cost + cfg.keyboard_far
            )
        else:
            cost = np.full((n, n), cfg.edit_cost)
        self.sub = cost + self.SCALE
        np.fill_diagonal(self.sub, 0.0)
        self.sub[self.unknown, self.unknown] = self.SCALE + cfg.edit_cost  # unknown != unknown

    def encode(self, word: str) -> np.ndarray:
        """Codes of `word`'s characters (characters outside the alphabet share one code)."""
        return np.asarray([self.code.get(c, self.unknown) for c in word], dtype=np.int64)

    def costs(
        self,
        typed: str,
        cand_codes: np.ndarray,
        cand_lens: np.ndarray,
        shared: tuple[int, int] = (0, 0),
    ) -> tuple[np.ndarray, np.ndarray]:
        """(K,) OSA distance and (K,) weighted log10 cost of typing `typed` for each
        candidate; `cand_codes` is (K, W) codes padded with `unknown`, `cand_lens` (K,).

        `shared`: lengths of a prefix and a suffix that `typed` shares with every
        candidate (`shared_ends`). They change no distance -- an edit across their
        border would swap or replace equal letters -- so the DP runs on the middle
        only, and a long word with one typo takes a few rows."""
        cfg = self.cfg
        S = self.SCALE
        T = self.encode(typed)
        K, W = cand_codes.shape
        if K == 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        Wc = cand_codes  # (K, W); the padding is never read back
        n = len(T)
        ins = [S + cfg.edit_cost] * n
        if cfg.keyboard:  # typing an extra t: easy next to its neighbour's key (or doubled)
            for i, t in enumerate(T):
                near = [T[x] for x in (i - 1, i + 1) if 0 <= x < n]
                if any(t == m or self.adjacent[t, m] for m in near):
                    ins[i] -= cfg.keyboard_gain
        pre, suf = shared
        if pre or suf:
            T, ins = T[pre : n - suf], ins[pre : n - suf]
            cand_lens = cand_lens - pre - suf
            n = len(T)
        # Deleting intended char w_j (typed without it); a doubled letter is easy to drop.
        # cdel[.., j]: the cost of deleting w_1..w_j, (K, W+1) or one row for all.
        if cfg.keyboard and W > 1:
            dele = np.full((K, W), S + cfg.edit_cost)
            dele[:, 1:][Wc[:, 1:] == Wc[:, :-1]] -= cfg.keyboard_gain
            dele = dele[:, pre:]
            cdel = np.zeros((K, W - pre + 1))
            np.cumsum(dele, axis=1, out=cdel[:, 1:])
        else:
            cdel = np.arange(W - pre + 1) * (S + cfg.edit_cost)
        if pre:
            Wc = Wc[:, pre:]
            W -= pre
        # Per typed position, for all candidates at once: substitution costs (n, K, W),
        # where a transposition can end (n-1, K, W-1).
        sub = self.sub[T][:, Wc]
        if n >= 2 and W >= 2:
            swaps = (
                (Wc[None, :, :-1] == T[1:, None, None])
                & (Wc[None, :, 1:] == T[:-1, None, None])
                & (T[1:, None, None] != T[:-1, None, None])
            )  # swaps[i-2]: typed t_{i-1} t_i where t_i t_{i-1} was meant
            swap_rows = swaps.reshape(n - 1, -1).any(axis=1)
        trans = S + cfg.transpose_cost
        prev = prev2 = np.broadcast_to(cdel, (K, W + 1))  # DP rows i-1 and i-2: (K, W+1)
        for i in range(1, n + 1):
            cur = prev + ins[i - 1]  # (K, W+1): insertion, from the row above
            np.minimum(cur[:, 1:], prev[:, :-1] + sub[i - 1], out=cur[:, 1:])
            if i >= 2 and W >= 2 and swap_rows[i - 2]:
                m = swaps[i - 2]
                tgt = cur[:, 2:]
                tgt[m] = np.minimum(tgt[m], prev2[:, :-2][m] + trans)
            # Deletions chain along the row: D[j] = min_k (E[k] + cdel[j] - cdel[k]).
            cur = np.minimum.accumulate(cur - cdel, axis=1) + cdel
            prev2, prev = prev, cur
        final = prev[np.arange(K), cand_lens]
        dist = np.floor(final / S + 1e-9)
        return dist.astype(np.int64), final - dist * S


# ---------------------------------------------------------------------------
# Candidate generation: the deletion neighbourhood (SymSpell)


def shared_ends(typed: str, words: Sequence[str]) -> tuple[int, int]:
    """Lengths of the longest prefix and (then) suffix `typed` shares with every word."""
    pre = len(os.path.commonprefix([typed, *words]))
    rest = min(len(typed), *(len(w) for w in words)) - pre
    suf = len(os.path.commonprefix([typed[::-1], *(w[::-1] for w in words)]))
    return pre, min(suf, rest)


def deletions(word: str, d: int) -> set[str]:
    """Every string made from `word` by deleting at most `d` characters (itself included)."""
    out = {word}
    frontier = {word}
    for _ in range(d):
        frontier = {s[:i] + s[i + 1 :] for s in frontier for i in range(len(s))}
        out |= frontier
    return out


class DeletionIndex:
    """Words indexed by the hashes of their deletions up to `max_edits` characters."""

    def __init__(self, words: Sequence[str], max_edits: int, costs: EditCosts):
        self.words = list(words)
        self.max_edits = max_edits
        self.costs = costs
        hashes: list[int] = []
        owners: list[int] = []
        for i, w in enumerate(self.words):
            dels = deletions(w, max_edits)
            hashes.extend(map(hash, dels))
            owners.extend([i] * len(dels))
        h = np.asarray(hashes, dtype=np.int64)
        order = np.argsort(h, kind="stable")
        self.hashes = h[order]  # (E,) sorted
        self.owners = np.asarray(owners, dtype=np.int32)[order]  # (E,) word index
        self.len_list = [len(w) for w in self.words]
        self.lens = np.asarray(self.len_list, dtype=np.int64)
        width = int(self.lens.max()) if len(self.words) else 1
        self.codes = np.full((len(self.words), max(width, 1)), costs.unknown, dtype=np.int64)
        for i, w in enumerate(self.words):
            self.codes[i, : len(w)] = costs.encode(w)

    def lookup(self, typed: str, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices of the words within OSA distance `d` of `typed`, their distances and
        weighted edit costs (each (K,))."""
        if d > self.max_edits:
            raise LmforgeError(f"max_edits: the index holds {self.max_edits} edits, asked {d}")
        keys = np.fromiter(map(hash, deletions(typed, d)), dtype=np.int64)
        lo = np.searchsorted(self.hashes, keys, side="left").tolist()
        hi = np.searchsorted(self.hashes, keys, side="right").tolist()
        # A few short slices: Python sets beat numpy's per-call overhead here.
        found: set[int] = set()
        owners = self.owners
        for a, b in zip(lo, hi):
            if b > a:
                found.update(owners[a:b].tolist())
        lens_of, n = self.len_list, len(typed)
        cand = np.asarray(sorted(i for i in found if abs(lens_of[i] - n) <= d), dtype=np.int64)
        if len(cand) == 0:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, np.empty(0)
        lens = self.lens[cand]
        shared = shared_ends(typed, [self.words[i] for i in cand]) if len(typed) > 3 else (0, 0)
        dist, cost = self.costs.costs(typed, self.codes[cand, : int(lens.max())], lens, shared)
        ok = dist <= d
        return cand[ok].astype(np.int64), dist[ok], cost[ok]


# ---------------------------------------------------------------------------
# The corrector


@dataclass
class Correction:
    """One token of a corrected sentence: what was typed, the choice, ranked alternatives."""

    typed: str
    word: str
    alternatives: list[tuple[str, float]]  # (word, log10 score), best first; [] if fixed

    @property
    def changed(self) -> bool:
        return self.word != self.typed


class Corrector:
    """Noisy-channel typo corrector over an n-gram model (see the module docstring)."""

    def __init__(self, model: NgramModel, cfg: CorrectConfig | None = None):
        self.model = model
        self.cfg = cfg or CorrectConfig()
        words = model.vocab.words
        self.word_ids = np.asarray(
            [i for i in range(3, len(words)) if is_word(words[i])], dtype=np.int64
        )
        alphabet = sorted({c for i in self.word_ids for c in words[i]})
        costs = EditCosts(alphabet, self.cfg)
        self.index = DeletionIndex([words[i] for i in self.word_ids], self.cfg.max_edits, costs)
        self.keep_real = math.log10(self.cfg.real_word_prior)
        self.change_real = math.log10(1.0 - self.cfg.real_word_prior)
        self.keep_oov = math.log10(self.cfg.nonword_prior)
        letter = self.cfg.unknown_letter_cost
        self.letter_cost = (0.4 if self.cfg.lexicon else 0.0) if letter is None else letter
        self.change_oov = math.log10(1.0 - self.cfg.nonword_prior)
        self.lexicon = Lexicon() if self.cfg.lexicon else None
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def edits_for(self, typed: str, in_vocab: bool) -> int:
        d = self.cfg.real_word_edits if in_vocab else self.cfg.max_edits
        return min(d, 1) if len(typed) <= self.cfg.short_word else d

    def candidates(self, typed: str) -> tuple[np.ndarray, np.ndarray]:
        """Candidate ids (C,) for one typed token and their error-model log10 scores (C,);
        the typed word itself (or <unk> for an unknown one) is always first."""
        hit = self._cache.get(typed)
        if hit is not None:
            return hit
        vocab = self.model.vocab
        if not is_word(typed):
            out = (np.asarray([vocab.id(typed)], dtype=np.int64), np.zeros(1))
        else:
            known = typed in vocab
            own = vocab.id(typed)  # <unk> when not known
            real = known or (self.lexicon is not None and self.lexicon.knows(typed))
            if real:
                keep, change = self.keep_real, self.change_real
            else:  # kept as a new word: P(its spelling) falls with its length
                keep = self.keep_oov - self.letter_cost * len(typed)
                change = self.change_oov
            d = self.edits_for(typed, real)
            if d:
                idx, _, cost = self.index.lookup(typed, d)
                ids = self.word_ids[idx]
                other = ids != own
                ids, emit = ids[other], change - cost[other]
                limit = self.cfg.max_candidates - 1
                if len(ids) > limit:
                    # Keep the most plausible before the (costlier) context search.
                    best = np.argsort(-(emit + self.model.logp[0][ids]), kind="stable")[:limit]
                    ids, emit = ids[best], emit[best]
            else:
                ids, emit = np.empty(0, dtype=np.int64), np.empty(0)
            out = (np.concatenate([[own], ids]).astype(np.int64), np.concatenate([[keep], emit]))
        if len(self._cache) > 200_000:
            self._cache.clear()
        self._cache[typed] = out
        return out

    def correct_tokens(
        self,
        tokens: Sequence[str],
        top: int = 1,
        times: list[float] | None = None,
        cpu_times: list[float] | None = None,
    ) -> list[Correction]:
        """Correct one tokenized sentence. `top` > 1 ranks alternatives per word by
        rescoring its window of the sentence; `times` and `cpu_times` collect the wall
        and CPU seconds per token (CPU time leaves out waiting for a busy machine)."""
        beam = Beam(self.model, self.cfg.beam)
        lattice = []
        timed = times is not None and cpu_times is not None
        for tok in tokens:
            if timed:
                t0, c0 = time.perf_counter(), time.process_time()
            ids, emit = self.candidates(tok)
            beam.step(ids, emit)
            lattice.append((ids, emit))
            if timed:
                times.append(time.perf_counter() - t0)
                cpu_times.append(time.process_time() - c0)
        if timed:
            t0, c0 = time.perf_counter(), time.process_time()
        paths = beam.finish(1)
        if timed and times:  # </s> is part of the last word's work
            times[-1] += time.perf_counter() - t0
            cpu_times[-1] += time.process_time() - c0
        best = paths[0][0] if paths else []
        words = self.model.vocab.words
        out = []
        for i, tok in enumerate(tokens):
            choice = tok if best[i] == UNK_ID or not is_word(tok) else words[best[i]]
            alts: list[tuple[str, float]] = []
            if top > 1 and len(lattice[i][0]) > 1:
                alts = self.rank_window(best, i, *lattice[i], tok, top)
            out.append(Correction(tok, choice, alts))
        return out

    def rank_window(
        self, best: list[int], i: int, ids: np.ndarray, emit: np.ndarray, typed: str, top: int
    ) -> list[tuple[str, float]]:
        """Candidates of slot i ranked by error model + the log10 probability of the
        n-gram window around it (the rest of the sentence as decoded); the decoded
        word first."""
        L = self.model.order - 1
        seq = np.asarray([BOS_ID, *best, EOS_ID], dtype=np.int64)
        pos = i + 1  # slot i in seq
        lo, hi = max(0, pos - L), min(len(seq), pos + L + 1)
        win = np.tile(seq[lo:hi], (len(ids), 1))  # (C, w)
        win[:, pos - lo] = ids
        rows_ctx, rows_w, rows_c = [], [], []
        for p in range(pos - lo, hi - lo):  # the slot and every word whose context holds it
            ctx = np.full((len(ids), L), -1, dtype=np.int64)
            take = win[:, max(0, p - L) : p]
            if take.shape[1]:
                ctx[:, L - take.shape[1] :] = take
            rows_ctx.append(ctx)
            rows_w.append(win[:, p])
            rows_c.append(np.arange(len(ids)))
        lp, _ = self.model.logprob(np.concatenate(rows_ctx), np.concatenate(rows_w))
        score = np.bincount(np.concatenate(rows_c), weights=lp, minlength=len(ids)) + emit
        order = np.argsort(-score, kind="stable")
        chosen = int(np.flatnonzero(ids == best[i])[0]) if best[i] in ids else int(order[0])
        order = [chosen, *(int(o) for o in order if o != chosen)][:top]
        words = self.model.vocab.words
        return [(typed if ids[o] == UNK_ID else words[ids[o]], float(score[o])) for o in order]

    def baseline(self, typed: str, top: int = 1) -> list[str]:
        """The context-free baseline (Norvig's): a vocabulary word is kept; otherwise the
        most frequent word at the smallest edit distance (up to max_edits)."""
        vocab = self.model.vocab
        if not is_word(typed) or typed in vocab:
            first = [typed]
            if top == 1:
                return first
        else:
            first = []
        d = self.edits_for(typed, typed in vocab)
        if not d:
            return first or [typed]
        idx, dist, _ = self.index.lookup(typed, d)
        ids = self.word_ids[idx]
        keep = ids != vocab.id(typed)
        ids, dist = ids[keep], dist[keep]
        order = np.lexsort((ids, -self.model.logp[0][ids], dist))
        ranked = first + [vocab.words[ids[o]] for o in order]
        return ranked[:top] or [typed]


def restore_case(like: str, word: str) -> str:
    """`word` written with the capitalisation of `like` (ALL CAPS, Title, or as is)."""
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def correct_line(
    corrector: Corrector, line: str, tokenize, top: int = 1
) -> tuple[str, list[Correction]]:
    """Correct one line of text; returns it with the changed words replaced (keeping
    the original spacing and capitalisation where the default tokenizer allows) and
    the corrections. Other tokenizers give the corrected tokens joined by spaces."""
    if corrector.model.tokenizer == "default":
        spans = [(m.start(), m.end()) for m in WORD_PATTERN.finditer(line.lower())]
        tokens = [line.lower()[a:b] for a, b in spans]
    else:
        spans, tokens = None, tokenize(line)
    if not tokens:
        return line, []
    fixes = corrector.correct_tokens(tokens, top=top)
    if spans is None or len(line.lower()) != len(line):
        return " ".join(f.word for f in fixes), fixes
    out, last = [], 0
    for (a, b), f in zip(spans, fixes):
        out.append(line[last:a])
        out.append(restore_case(line[a:b], f.word) if f.changed else line[a:b])
        last = b
    out.append(line[last:])
    return "".join(out), fixes
