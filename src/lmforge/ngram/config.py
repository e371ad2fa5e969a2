"""NgramConfig: how `lmforge ngram train` builds a model (flags and YAML map onto it)."""

from __future__ import annotations

from dataclasses import dataclass

from ..common import ConfigError
from ..config import field_

SMOOTHINGS = ("mle", "addk", "stupid", "kn", "mkn")


@dataclass
class NgramConfig:
    order: int = field_(3, help="n-gram order, 1..6", min=1, max=6)
    smoothing: str = field_(
        "mkn",
        help="mle: maximum likelihood; addk: add-k (Laplace); stupid: stupid backoff (a score, "
        "not a distribution); kn: interpolated Kneser-Ney; mkn: interpolated modified "
        "Kneser-Ney, as KenLM's lmplz",
        choices=SMOOTHINGS,
    )
    k: float = field_(1.0, help="addk: pseudo-count added to every n-gram (1 = Laplace)", min=0.0)
    alpha: float = field_(0.4, help="stupid: score factor per backoff step", min=0.0, max=1.0)
    min_count: int = field_(1, help="words seen fewer times become <unk>", min=1)
    max_vocab: int = field_(0, help="keep only the most frequent words (0: all)", min=0)
    prune: list[int] = field_(
        default_factory=list,
        help="count thresholds per order, as lmplz --prune: '0 0 1' drops trigrams and above "
        "seen once; non-decreasing, first 0, the last repeats for higher orders",
    )
    tokenizer: str = field_(
        "default",
        help="default: lowercase, \\w+|[^\\w\\s]; whitespace: pre-tokenized text as is; "
        "or a trained lmforge tokenizer folder",
    )

    def validate(self) -> None:
        if self.smoothing == "addk" and self.k <= 0:
            raise ConfigError("k", f"must be > 0 for add-k smoothing, got {self.k}")
        if self.smoothing == "stupid" and self.alpha <= 0:
            raise ConfigError("alpha", f"must be > 0 for stupid backoff, got {self.alpha}")
        if self.prune:
            if len(self.prune) > self.order:
                raise ConfigError(
                    "prune",
                    f"{len(self.prune)} thresholds for order {self.order}; give at most one per order",
                )
            if any(t < 0 for t in self.prune):
                raise ConfigError("prune", f"thresholds must be >= 0, got {self.prune}")
            if self.prune[0] != 0:
                raise ConfigError(
                    "prune", "unigrams cannot be pruned: the first threshold must be 0"
                )
            if any(b < a for a, b in zip(self.prune, self.prune[1:])):
                raise ConfigError("prune", f"thresholds must be non-decreasing, got {self.prune}")
        if not self.tokenizer:
            raise ConfigError("tokenizer", "may not be empty; use default, whitespace or a folder")


@dataclass
class SampleConfig:
    n: int = field_(5, help="how many sentences to sample", min=1)
    temperature: float = field_(
        1.0, help="1 samples the model; <1 sharpens, >1 flattens, 0 is greedy", min=0.0
    )
    seed: int = field_(0, help="random seed (same seed, same sentences)")
    max_tokens: int = field_(50, help="stop a sentence after this many words", min=1)
    prefix: str = field_("", help="text every sentence starts with")
    allow_unk: bool = field_(False, help="let <unk> be sampled")


@dataclass
class SuggestConfig:
    k: int = field_(5, help="how many suggestions to show", min=1, max=100)
    line_mode: bool = field_(
        False, help="read whole lines even on a terminal (one suggestion line per input line)"
    )
