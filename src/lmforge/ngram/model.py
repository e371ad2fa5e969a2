"""The queryable n-gram model: a backoff model stored as sorted key arrays, saved as one .npz.

Whatever estimator built it (or whichever ARPA file it was read from), a model is,
per order n: sorted int64 keys ``parent * V + w`` (see counts.py), a log10
probability per n-gram, and for n < N a log10 backoff weight. The probability of a
word given a context is the standard backoff recursion, computed for many
(context, word) rows at once with one ``np.searchsorted`` per order and context
length -- which is what makes scoring a held-out file fast.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..common import LmforgeError
from .vocab import Vocab

FORMAT = "lmforge-ngram-v1"


class NgramModel:
    """A backoff n-gram model over a word vocabulary (see the module docstring).

    ``keys[n-1]``, ``logp[n-1]`` describe order n (``keys[0]`` is ``arange(V)``);
    ``logbo[n-1]`` exists for n < N. ``unlisted_logbo`` is charged when a context
    is not listed (0 for true backoff models, log10 alpha for stupid backoff).
    ``meta`` holds what the model was built from (smoothing, tokenizer, counts...).
    """

    def __init__(
        self,
        vocab: Vocab,
        keys: list[np.ndarray],
        logp: list[np.ndarray],
        logbo: list[np.ndarray],
        meta: dict[str, Any] | None = None,
        unlisted_logbo: float = 0.0,
    ):
        self.vocab = vocab
        self.keys = keys
        self.logp = logp
        self.logbo = logbo
        self.meta = dict(meta or {})
        self.unlisted_logbo = float(unlisted_logbo)
        self._unigram_rank: np.ndarray | None = None
        self._by_probability: list[np.ndarray] | None = None

    # -- basic facts ----------------------------------------------------------
    @property
    def order(self) -> int:
        return len(self.logp)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def smoothing(self) -> str:
        return str(self.meta.get("smoothing", "arpa"))

    @property
    def tokenizer(self) -> str:
        return str(self.meta.get("tokenizer", "whitespace"))

    def ngram_counts(self) -> list[int]:
        return [len(p) for p in self.logp]

    def nbytes(self) -> int:
        """Bytes held by the model's arrays (what `info` reports as memory)."""
        arrays = [*self.keys[1:], *self.logp, *self.logbo]
        return int(sum(a.nbytes for a in arrays))

    # -- lookups --------------------------------------------------------------
    def child(self, n: int, parent: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Index in order n of the n-gram (order n-1 entry `parent`) + `words`, or -1."""
        keys = self.keys[n - 1]
        if len(keys) == 0:
            return np.full(np.shape(parent), -1, dtype=np.int64)
        query = parent * self.vocab_size + words
        pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        return np.where((parent >= 0) & (keys[pos] == query), pos, -1)

    def children(self, n: int, parent: int) -> tuple[int, int]:
        """[lo, hi) of the order n+1 entries whose context is order-n entry `parent`."""
        keys = self.keys[n]
        base = parent * self.vocab_size
        return int(np.searchsorted(keys, base)), int(np.searchsorted(keys, base + self.vocab_size))

    def index(self, ids: list[int] | np.ndarray) -> int:
        """Index of the n-gram `ids` in its order's table, or -1 if not listed."""
        idx = np.int64(ids[0])
        for n, w in enumerate(ids[1:], start=2):
            idx = self.child(n, np.int64(idx), np.int64(w))
            if idx < 0:
                return -1
        return int(idx)

    def context_indices(self, ctx: np.ndarray) -> list[np.ndarray]:
        """For contexts (M, L), right-aligned and -1-padded on the left: index of each
        context suffix of length j = 1..L in order j (-1 if absent or not listed)."""
        m, length = ctx.shape
        out = []
        for j in range(1, length + 1):
            idx = ctx[:, length - j].astype(np.int64)
            for step in range(2, j + 1):
                idx = self.child(step, idx, ctx[:, length - j + step - 1].astype(np.int64))
            out.append(idx)
        return out

    # -- probabilities --------------------------------------------------------
    def logprob(self, ctx: np.ndarray, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log10 p(word | context) and the order of the n-gram used, for M rows at once.

        `ctx` is (M, L) word ids, right-aligned, with -1 where the sentence has no
        more history (so row i's context is the non-negative tail of ctx[i]); only the
        last N-1 columns matter. Returns (log10 p, matched order), each (M,).
        """
        ctx = np.asarray(ctx, dtype=np.int64)
        words = np.asarray(words, dtype=np.int64)
        max_ctx = self.order - 1
        if ctx.shape[1] > max_ctx:
            ctx = ctx[:, ctx.shape[1] - max_ctx :]
        length = ctx.shape[1]
        cidx = self.context_indices(ctx)
        present = [ctx[:, length - j] >= 0 for j in range(1, length + 1)]
        # nidx[k-1]: index of the k-gram (context suffix of length k-1) + word.
        nidx = [words]
        for k in range(2, length + 2):
            nidx.append(self.child(k, cidx[k - 2], words))
        matched = np.ones(len(words), dtype=np.int64)
        for k in range(2, length + 2):
            matched = np.where((nidx[k - 1] >= 0) & (matched == k - 1), k, matched)
        out = np.zeros(len(words), dtype=np.float64)
        for k in range(1, length + 2):
            sel = matched == k
            if sel.any():
                out[sel] = self.logp[k - 1][nidx[k - 1][sel]]
        # Backoff weights of every context suffix longer than the matched n-gram's.
        for j in range(1, length + 1):
            charge = present[j - 1] & (matched <= j)
            listed = charge & (cidx[j - 1] >= 0)
            if listed.any():
                out[listed] += self.logbo[j - 1][cidx[j - 1][listed]]
            if self.unlisted_logbo:
                out[charge & ~listed] += self.unlisted_logbo
        return out, matched

    def log_distribution(self, context: list[int] | np.ndarray) -> np.ndarray:
        """log10 p(w | context) for every word w of the vocabulary, as a (V,) array.

        `context` is the history as word ids, oldest first (begin with <s> for the
        start of a sentence). Built by the backoff recursion from the unigrams up:
        each listed context suffix scales what is below by its backoff weight and
        overrides its own continuations.
        """
        ctx = list(context)[-(self.order - 1) :] if self.order > 1 else []
        lp = self.logp[0].astype(np.float64)
        if not ctx:
            return lp
        cidx = self.context_indices(np.asarray([ctx], dtype=np.int64))
        for j in range(1, len(ctx) + 1):
            c = int(cidx[j - 1][0])
            if c < 0:
                lp += self.unlisted_logbo
                continue
            lp += self.logbo[j - 1][c]
            lo, hi = self.children(j, c)
            lp[self.keys[j][lo:hi] % self.vocab_size] = self.logp[j][lo:hi]
        return lp

    def unigram_rank(self) -> np.ndarray:
        """Word ids by falling unigram log-probability (ties by id); cached."""
        if self._unigram_rank is None:
            self._unigram_rank = np.lexsort((np.arange(self.vocab_size), -self.logp[0]))
        return self._unigram_rank

    def children_by_probability(self, n: int) -> np.ndarray:
        """Indices of the order-n entries with each context's slice re-sorted by falling
        probability (ties by word id): entries lo..hi of it are the continuations of
        one context, best first. Built for every order on first use (for suggestions)."""
        if self._by_probability is None:
            self._by_probability = [np.arange(self.vocab_size)]
            for m in range(2, self.order + 1):
                parent = self.keys[m - 1] // self.vocab_size
                perm = np.lexsort((-self.logp[m - 1], parent))  # stable: ties keep word order
                self._by_probability.append(perm.astype(np.int32))
        return self._by_probability[n - 1]

    # -- files ----------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model as one .npz (through a temporary file, then rename)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "format": np.array(FORMAT),
            "meta": np.array(json.dumps(self.meta, ensure_ascii=False)),
            "vocab": np.array(self.vocab.words, dtype=str),
            "unlisted_logbo": np.array(self.unlisted_logbo),
        }
        for n in range(1, self.order + 1):
            if n > 1:
                arrays[f"keys{n}"] = self.keys[n - 1]
            arrays[f"logp{n}"] = self.logp[n - 1]
            if n < self.order:
                arrays[f"logbo{n}"] = self.logbo[n - 1]
        tmp = p.with_name(p.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, p)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk or a folder at `p`: no .tmp left
            raise
        return p

    @classmethod
    def load_npz(cls, path: str | Path) -> NgramModel:
        """Load a model written by `save`; a file that is not one raises LmforgeError."""
        p = Path(path)
        try:
            data = np.load(p, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise LmforgeError(f"{p}: not an lmforge n-gram model ({e})") from None
        with data:
            if "format" not in data.files or str(data["format"]) != FORMAT:
                raise LmforgeError(
                    f"{p}: not an lmforge n-gram model (no '{FORMAT}' marker); "
                    "train one with `lmforge ngram train`"
                )
            try:
                meta = json.loads(str(data["meta"]))
                vocab = Vocab([str(w) for w in data["vocab"]])
                order = int(meta["order"])
                keys = [np.arange(len(vocab), dtype=np.int64)]
                logp, logbo = [], []
                for n in range(1, order + 1):
                    if n > 1:
                        keys.append(data[f"keys{n}"])
                    logp.append(data[f"logp{n}"])
                    if n < order:
                        logbo.append(data[f"logbo{n}"])
                unlisted = float(data["unlisted_logbo"])
            except (KeyError, ValueError, json.JSONDecodeError, zipfile.BadZipFile) as e:
                raise LmforgeError(f"{p}: damaged lmforge n-gram model ({e}); retrain it") from None
        if any(len(logp[n]) != len(keys[n]) for n in range(order)):
            raise LmforgeError(
                f"{p}: damaged lmforge n-gram model (table sizes differ); retrain it"
            )
        return cls(vocab, keys, logp, logbo, meta, unlisted)
