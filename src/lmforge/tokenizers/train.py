"""Train a tokenizer of any kind from text files: the config and the one entry point.

`train_tokenizer(cfg, inputs)` checks every input, streams its text to the
kind's trainer (word.py, char.py, bpe.py, unigram.py) and returns a
`Tokenizer` whose SPECIAL_TOKENS sit at ids 0..N-1. `save_tokenizer_dir`
writes it so that a failure leaves nothing (and no half-replaced folder) behind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..common import ConfigError, LmforgeError, print0, replace_folder
from ..config import field_, to_dict
from ..outputs import check_out
from .base import META_FILE, SPECIAL_TOKENS, TOKENIZER_FILE, Tokenizer

KINDS = ("word", "char", "bpe", "unigram")
BYTE_ALPHABET = 256


def min_vocab_size(kind: str) -> int:
    """Smallest vocab_size a kind accepts: the specials plus the base alphabet plus one."""
    if kind in ("bpe", "unigram"):
        return BYTE_ALPHABET + len(SPECIAL_TOKENS) + 1
    return len(SPECIAL_TOKENS) + 1


@dataclass
class TokenizerConfig:
    """How to train a tokenizer (saved in lmforge.json beside tokenizer.json)."""

    kind: str = field_(
        "bpe",
        choices=KINDS,
        help="word: whole words; char: characters; bpe: byte-level BPE (GPT-2); "
        "unigram: SentencePiece-style unigram LM",
    )
    vocab_size: int = field_(
        4096, min=1, max=10_000_000, help="ids in all, special tokens included"
    )
    min_frequency: int = field_(
        2,
        min=1,
        help="word/char: rarer tokens become <|unk|>; bpe: merge only pairs seen this often; "
        "unused by unigram",
    )
    split_digits: bool = field_(False, help="every digit its own token: 12345 -> 1 2 3 4 5")
    lowercase: bool | None = field_(
        None, help="lowercase the text first (unset: on for word, off for the others)"
    )
    stop_words: str = field_(
        "none",
        help="word: drop these words: none, english, russian, or a file with one word a line",
    )
    base_form: str = field_(
        "none",
        choices=("none", "stem", "lemma"),
        help="word: give all forms of a word one id: Snowball stem, or dictionary lemma "
        "(simplemma for en, pymorphy3 for ru)",
    )
    language: str = field_("en", choices=("en", "ru"), help="language of --base-form")
    character_coverage: float = field_(
        0.9995,
        min=0.5,
        max=1.0,
        help="unigram: share of characters that get pieces; rarer ones are spelled in bytes",
    )
    span_spaces: bool = field_(
        False, help="unigram: let pieces span spaces (e.g. '▁of▁the'); about 5x slower to train"
    )
    threads: int = field_(0, min=0, max=1024, help="training threads (0: all cores)")

    @property
    def lowercase_on(self) -> bool:
        """`lowercase` with its per-kind default resolved."""
        return self.kind == "word" if self.lowercase is None else self.lowercase

    def validate(self) -> None:
        least = min_vocab_size(self.kind)
        if self.vocab_size < least:
            what = (
                f"{BYTE_ALPHABET} bytes + {len(SPECIAL_TOKENS)} special tokens + 1"
                if self.kind in ("bpe", "unigram")
                else f"{len(SPECIAL_TOKENS)} special tokens + 1"
            )
            raise ConfigError(
                "vocab_size",
                f"{self.kind} needs at least {least} ({what}), got {self.vocab_size}",
            )
        if self.kind != "word":
            if self.stop_words != "none":
                raise ConfigError("stop_words", "only --kind word removes stop words")
            if self.base_form != "none":
                raise ConfigError("base_form", "only --kind word reduces words to a base form")
        if self.stop_words != "none":
            from .stopwords import load_stop_words

            load_stop_words(self.stop_words)  # fails now, naming the field, not mid-training


def train_tokenizer(cfg: TokenizerConfig, inputs: Iterable[str | Path]) -> Tokenizer:
    """Train a tokenizer of `cfg.kind` on `inputs` (files, folders, globs of .txt/.jsonl)."""
    from ..config import validate
    from .corpus import iter_documents, resolve_inputs
    from .pipeline import check_special_ids, engine_threads

    validate(cfg)
    files = resolve_inputs(inputs)
    # A unigram pipeline prepends `▁` to every text: pieces cut at a space drop it.
    docs = _non_empty(iter_documents(files, drop_space=cfg.kind == "unigram"), files)
    with engine_threads(cfg.threads):
        if cfg.kind == "bpe":
            from .bpe import train_bpe as trainer
        elif cfg.kind == "unigram":
            from .unigram import train_unigram as trainer
        elif cfg.kind == "word":
            from .word import train_word as trainer
        else:
            from .char import train_char as trainer
        tok = trainer(cfg, docs)
    check_special_ids(tok.engine)
    tok.meta.update(config=to_dict(cfg), inputs=[str(f) for f in files])
    note = short_vocab_note(cfg, tok.vocab_size)
    if note:
        print0(note)
        tok.meta["vocab_note"] = note
    return tok


_TOO_FEW = {
    "bpe": "distinct byte pairs seen at least --min-frequency times to merge",
    "unigram": "distinct pieces (substrings worth a piece)",
    "word": "distinct words seen at least --min-frequency times",
    "char": "distinct characters seen at least --min-frequency times",
}


def short_vocab_note(cfg: TokenizerConfig, trained: int) -> str | None:
    """One line saying why a trained vocabulary came out smaller than asked (None if not)."""
    if trained >= cfg.vocab_size:
        return None
    return (
        f"trained vocab size is {trained:,}, smaller than --vocab-size {cfg.vocab_size:,}: "
        f"the corpus has too few {_TOO_FEW.get(cfg.kind, 'distinct tokens')}; "
        f"train on more text or ask for a smaller --vocab-size"
    )


def _non_empty(docs: Iterator[str], files: list[Path]) -> Iterator[str]:
    """Pass documents through; raise at the end if none held any text."""
    seen = False
    for d in docs:
        if not seen and d.strip():
            seen = True
        yield d
    if not seen:
        names = ", ".join(str(f) for f in files)
        raise LmforgeError(f"{names}: holds no text to train on (only whitespace)")


def check_tokenizer_out(out: str | Path, *, force: bool, inputs=()) -> Path:
    """The output policy (lmforge.outputs) for a tokenizer folder: call before training."""
    return check_out(
        out,
        force=force,
        made_here=lambda p: (p / TOKENIZER_FILE).is_file() and (p / META_FILE).is_file(),
        what="tokenizer",
        inputs=inputs,
    )


def save_tokenizer_dir(tok: Tokenizer, out: str | Path, *, force: bool = False) -> Path:
    """Write `tok` to folder `out` through a temporary folder and a rename.

    An existing tokenizer folder is replaced only with `force`, and only once the
    new one is complete; any other non-empty folder is refused.
    """
    out = check_tokenizer_out(out, force=force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tok.save(tmp)
        if not (tmp / TOKENIZER_FILE).is_file() or not (tmp / META_FILE).is_file():
            raise RuntimeError(f"{tmp}: tokenizer was not written")
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
