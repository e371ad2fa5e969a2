"""Synthetic typos for evaluating the corrector: seeded, with a stated mix of edits.

Each word made of letters (at least `min_length` of them) is corrupted with
probability `rate`, by one edit, or by two with probability `two_edits`. An edit
is a substitution, deletion, insertion or transposition of neighbouring letters,
drawn with the weights of `mix`; a substituted or inserted letter is a keyboard
neighbour (QWERTY / ЙЦУКЕН) of the letter it replaces or follows with
probability `adjacent`, else any letter of the same alphabet. A corruption that
gives back the word itself is drawn again.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import field_
from .typos import keyboard_neighbours

LATIN = "abcdefghijklmnopqrstuvwxyz"
CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
EDITS = ("substitute", "delete", "insert", "transpose")


@dataclass
class NoiseConfig:
    """What kind of typos `corrupt_sentences` makes."""

    rate: float = field_(0.1, help="share of eligible words given a typo", min=0.0, max=1.0)
    two_edits: float = field_(0.2, help="share of typos made of two edits", min=0.0, max=1.0)
    mix: list[float] = field_(
        default_factory=lambda: [0.4, 0.25, 0.2, 0.15],
        help="weights of substitute, delete, insert, transpose",
    )
    adjacent: float = field_(
        0.75, help="share of substituted/inserted letters on a neighbouring key", min=0.0, max=1.0
    )
    min_length: int = field_(2, help="shortest word that gets typos", min=1)
    seed: int = field_(0, help="random seed (same seed, same typos)")

    def validate(self) -> None:
        from ..common import ConfigError

        if len(self.mix) != len(EDITS) or any(w < 0 for w in self.mix) or sum(self.mix) <= 0:
            raise ConfigError("mix", f"give 4 non-negative weights ({', '.join(EDITS)})")


def eligible(word: str, min_length: int) -> bool:
    """Words of letters only, at least `min_length` long, get typos."""
    return word.isalpha() and len(word) >= min_length


class TypoMaker:
    """Makes typos of single words with a seeded generator (see the module docstring)."""

    def __init__(self, cfg: NoiseConfig):
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.near = {k: sorted(v) for k, v in keyboard_neighbours().items()}

    def _letter_near(self, ch: str) -> str:
        rng = self.rng
        if ch in self.near and rng.random() < self.cfg.adjacent:
            return rng.choice(self.near[ch])
        alphabet = CYRILLIC if ch in CYRILLIC else LATIN
        return rng.choice(alphabet)

    def one_edit(self, word: str) -> str:
        rng = self.rng
        kinds = [k for k in EDITS if k != "transpose" or len(word) >= 2]
        weights = [self.cfg.mix[EDITS.index(k)] for k in kinds]
        if len(word) <= 1:  # never delete the only letter
            weights[kinds.index("delete")] = 0.0
        kind = rng.choices(kinds, weights)[0]
        i = rng.randrange(len(word))
        if kind == "substitute":
            return word[:i] + self._letter_near(word[i]) + word[i + 1 :]
        if kind == "delete":
            return word[:i] + word[i + 1 :]
        if kind == "insert":
            # A fat finger: a neighbour of the letter before or after the gap, or a
            # doubled letter.
            ch = self._letter_near(word[i]) if rng.random() < 0.8 else word[i]
            at = i + rng.randrange(2)
            return word[:at] + ch + word[at:]
        i = rng.randrange(len(word) - 1)
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]

    def corrupt(self, word: str) -> str:
        """`word` with one or two edits (never the word itself)."""
        n = 2 if self.rng.random() < self.cfg.two_edits else 1
        for _ in range(20):
            out = word
            for _ in range(n):
                out = self.one_edit(out)
            if out != word:
                return out
        return word + word[-1]  # only for words every edit maps back (e.g. "aa" swaps)


def corrupt_sentences(
    sentences: Sequence[list[str]], cfg: NoiseConfig
) -> list[tuple[list[str], list[bool]]]:
    """Per sentence: the tokens with typos, and which ones were corrupted."""
    maker = TypoMaker(cfg)
    out = []
    for tokens in sentences:
        noisy, mask = [], []
        for tok in tokens:
            hit = eligible(tok, cfg.min_length) and maker.rng.random() < cfg.rate
            noisy.append(maker.corrupt(tok) if hit else tok)
            mask.append(hit)
        out.append((noisy, mask))
    return out
