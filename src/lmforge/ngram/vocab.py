"""The word vocabulary of an n-gram model: <unk>, <s>, </s> first, then words by frequency."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..common import LmforgeError

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
# Fixed ids, as KenLM numbers them: everything below relies on them.
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
SPECIALS = (UNK, BOS, EOS)


class Vocab:
    """A bijection between word strings and int ids; unknown words map to <unk> (id 0)."""

    def __init__(self, words: Sequence[str]):
        if tuple(words[:3]) != SPECIALS:
            raise LmforgeError(
                f"vocabulary must start with {', '.join(SPECIALS)}; got {list(words[:3])}"
            )
        self.words: list[str] = list(words)
        self.index: dict[str, int] = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            seen: set[str] = set()
            dup = next(w for w in self.words if w in seen or seen.add(w))
            raise LmforgeError(f"vocabulary lists the word {dup!r} twice")
        self._sorted: list[str] | None = None
        self._sorted_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def id(self, word: str) -> int:
        """The id of `word`, or <unk>'s id when it is not in the vocabulary."""
        return self.index.get(word, UNK_ID)

    def ids(self, words: Iterable[str]) -> np.ndarray:
        """int32 ids of `words` (unknown words become <unk>)."""
        get = self.index.get
        return np.fromiter((get(w, UNK_ID) for w in words), dtype=np.int32)

    def word(self, i: int) -> str:
        return self.words[i]

    def prefix_range(self, prefix: str) -> np.ndarray:
        """Ids of every word that starts with `prefix` (specials excluded), in string order."""
        import bisect

        if self._sorted is None:
            order = sorted(range(3, len(self.words)), key=self.words.__getitem__)
            self._sorted = [self.words[i] for i in order]
            self._sorted_ids = np.asarray(order, dtype=np.int64)
        lo = bisect.bisect_left(self._sorted, prefix)
        # Every string starting with `prefix` sorts below prefix + U+10FFFF.
        hi = bisect.bisect_left(self._sorted, prefix + "\U0010ffff", lo)
        assert self._sorted_ids is not None
        return self._sorted_ids[lo:hi]

    @classmethod
    def from_counts(
        cls, counts: dict[str, int], min_count: int = 1, max_size: int = 0
    ) -> tuple[Vocab, int]:
        """Keep words seen at least `min_count` times, at most `max_size` of them (0: no limit).

        Words are ordered by falling count, ties by the word, so the same corpus always
        gives the same ids. Returns the vocabulary and how many word types went to <unk>.
        """
        kept = [(w, c) for w, c in counts.items() if c >= min_count and w not in SPECIALS]
        kept.sort(key=lambda wc: (-wc[1], wc[0]))
        if max_size and len(kept) > max_size:
            kept = kept[:max_size]
        dropped = sum(1 for w in counts if w not in SPECIALS) - len(kept)
        return cls([*SPECIALS, *(w for w, _ in kept)]), dropped
