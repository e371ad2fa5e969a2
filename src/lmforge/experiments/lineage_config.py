"""LineageConfig: the options of `lmforge eval lineage` (light: no torch, for fast --help)."""

from __future__ import annotations

from dataclasses import dataclass

from ..common import ConfigError
from ..config import field_

# Every model the benchmark knows, in lineage order: (name, kind, n-gram order or arch).
MODELS: dict[str, tuple[str, str | int]] = {
    "ngram3": ("ngram", 3),
    "ngram5": ("ngram", 5),
    "lstm": ("neural", "rnn"),
    "gpt": ("neural", "gpt"),
    "llama": ("neural", "llama"),
}


@dataclass
class LineageConfig:
    """n-gram vs LSTM vs GPT vs LLaMA on one corpus, one tokenizer, one time budget each."""

    corpus: str = field_("", help="UTF-8 text file (the whole file is one document)")
    out: str = field_("", help="folder for the data, the runs, lineage.json, plots and report")
    budget_s: float = field_(120.0, help="training wall time per neural model, seconds", min=1.0)
    models: list[str] = field_(
        default_factory=lambda: list(MODELS),
        help=f"models to compare, among {', '.join(MODELS)}",
    )
    tokenizer: str = field_(
        "char", help="tokenizer kind shared by every model", choices=("char", "bpe", "unigram")
    )
    vocab_size: int = field_(
        512, help="tokenizer ids (char: an upper bound; bpe/unigram: the size)", min=8
    )
    preset: str = field_("cpu-small", help="size preset of the GPT, LLaMA and LSTM")
    context: int = field_(128, help="window length T in tokens (training and evaluation)", min=8)
    batch_size: int = field_(16, help="training windows per step", min=1)
    lr: float = field_(2e-3, help="peak learning rate (the same for every neural model)", min=0.0)
    warmup: int = field_(50, help="linear warmup steps", min=0)
    eval_every: int = field_(100, help="steps between validation points of the curve", min=1)
    eval_batches: int = field_(4, help="validation batches per curve point", min=1)
    val_fraction: float = field_(
        0.1, help="the corpus's last share (cut at a line break) held out", min=0.01, max=0.5
    )
    gen_tokens: int = field_(100, help="tokens generated for the speed test and sample", min=1)
    temperature: float = field_(0.8, help="sampling temperature of every model's sample", min=0.0)
    threads: int = field_(
        1,
        help="torch CPU threads (recorded); more than the free cores makes OpenMP spin and crawl",
        min=1,
    )
    seed: int = field_(1337, help="seed of data order, initial weights and sampling")
    force: bool = field_(
        False, help="replace an existing lineage run at --out", aliases=("--overwrite",)
    )

    def validate(self) -> None:
        if not self.corpus:
            raise ConfigError("corpus", "required: a UTF-8 text file")
        if not self.out:
            raise ConfigError("out", "required: the folder to write the comparison to")
        unknown = [m for m in self.models if m not in MODELS]
        if unknown:
            raise ConfigError(
                "models", f"unknown {', '.join(unknown)}; choose among {', '.join(MODELS)}"
            )
        if not self.models:
            raise ConfigError("models", f"give at least one of {', '.join(MODELS)}")
        if len(set(self.models)) != len(self.models):
            raise ConfigError("models", f"lists a model twice: {', '.join(self.models)}")
        if self.gen_tokens >= self.context:
            raise ConfigError(
                "gen_tokens",
                f"{self.gen_tokens} must be below --context {self.context}: a GPT cannot "
                "generate past its context",
            )
