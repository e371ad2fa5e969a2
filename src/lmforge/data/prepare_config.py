"""PrepareConfig: the options of `lmforge data prepare` (light: no numpy, for fast --help)."""

from __future__ import annotations

from dataclasses import dataclass

from ..common import ConfigError
from ..config import field_
from .readers import TXT_DOCS


@dataclass
class PrepareConfig:
    """`lmforge data prepare`: inputs + tokenizer → token shards with a train/val split."""

    tokenizer: str = field_(
        "", help="tokenizer folder (tokenizer.json), from `lmforge tokenizer train`"
    )
    input: list[str] = field_(
        default_factory=list,
        help="files, folders, globs (.txt .jsonl .parquet .arrow), saved HF dataset folders, hf:NAME",
    )
    out: str = field_("", help="output folder for the shards, meta.json and tokenizer/")
    val_fraction: float = field_(
        0.1,
        help="share of documents held out for validation (above 0: pretraining needs them)",
        min=0.0,
        max=0.5,
    )
    seed: int = field_(1337, help="seed of the train/val split", min=0)
    txt_docs: str = field_(
        "blank-line",
        help="how a .txt file splits into documents: at blank lines, whole file, or every line",
        choices=TXT_DOCS,
    )
    text_field: str = field_("text", help="JSONL field / Parquet or Arrow column holding the text")
    strip_html: bool = field_(False, help="parse documents as HTML and keep only the visible text")
    dedup: bool = field_(True, help="drop exact duplicate documents (after normalisation)")
    workers: int = field_(
        0, help="tokenizer threads: 0 = all cores, 1 = single-threaded", min=0, max=1024
    )
    shard_tokens: int = field_(100_000_000, help="maximum tokens per shard file", min=1024)
    force: bool = field_(
        False, help="replace an existing prepared folder at --out", aliases=("--overwrite",)
    )

    def validate(self) -> None:
        if not self.tokenizer:
            raise ConfigError(
                "tokenizer", "required: a tokenizer folder (`lmforge tokenizer train`)"
            )
        if not self.input:
            raise ConfigError("input", "required: one or more corpus files, folders or globs")
        if not self.out:
            raise ConfigError("out", "required: the folder to write the shards to")
        if self.val_fraction <= 0:
            raise ConfigError(
                "val_fraction",
                f"must be above 0, got {self.val_fraction}: `lmforge pretrain` evaluates on "
                f"the validation split, so data needs one; use e.g. --val-fraction 0.05",
            )
