"""Text to sentences of word tokens, and sentences to one integer-encoded stream.

One line of a plain-text file is one sentence, as KenLM and SRILM read it; blank
lines are skipped. Three tokenizers:

* ``default``: lowercase, then ``\\w+|[^\\w\\s]`` (runs of word characters, and each
  punctuation mark on its own) -- the recipe of the KenLM agreement check;
* ``whitespace``: the line split on whitespace, tokens kept as they are (pre-tokenized
  text, as KenLM's ``lmplz`` reads it);
* a folder holding a trained lmforge tokenizer: its token strings.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..common import LmforgeError, check_text_file, expand_inputs, not_utf8_error, progress
from .vocab import BOS, BOS_ID, EOS, EOS_ID, SPECIALS, UNK, UNK_ID, Vocab

WORD_PATTERN = re.compile(r"\w+|[^\w\s]")

Tokenize = Callable[[str], list[str]]


def make_tokenizer(spec: str) -> Tokenize:
    """The tokenize function named by `spec`: 'default', 'whitespace' or a tokenizer folder."""
    if spec == "default":
        findall = WORD_PATTERN.findall
        return lambda line: findall(line.lower())
    if spec == "whitespace":
        return str.split
    from ..tokenizers.base import Tokenizer

    if not Path(spec).exists():
        raise LmforgeError(
            f"tokenizer: {spec!r} is neither 'default', 'whitespace' nor an existing "
            "tokenizer folder"
        )
    tok = Tokenizer.load(spec)
    return tok.tokens


def input_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand --input items (files, folders of .txt, globs) and check each is UTF-8 text."""
    files = expand_inputs(inputs, (".txt",))
    if not files:
        raise LmforgeError("no input files given; pass --input FILE...")
    return [check_text_file(f) for f in files]


def iter_sentences(
    files: Iterable[Path], tokenize: Tokenize, desc: str = "reading"
) -> Iterator[list[str]]:
    """Yield the token list of every non-blank line of `files`, with a progress bar in bytes."""
    files = list(files)
    total = sum(f.stat().st_size for f in files)
    with progress(total=total, desc=desc, unit="B") as bar:
        for f in files:
            # Binary lines decoded one by one, so a bad byte is reported at its line.
            with open(f, "rb") as fh:
                for line_no, raw in enumerate(fh, start=1):
                    bar.update(len(raw))
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise not_utf8_error(f, raw, e.start, line_no) from None
                    if line_no == 1 and line.startswith("\ufeff"):
                        line = line[1:]  # a byte-order mark is not a token
                    tokens = tokenize(line)
                    if tokens:
                        yield tokens


@dataclass
class Corpus:
    """Sentences as one int32 stream ``<s> w1 .. wn </s> <s> ...`` plus where each one starts.

    ``starts[i]`` is the index of sentence i's ``<s>``; ``starts[-1] == len(stream)``.
    """

    stream: np.ndarray  # (T,) int32 word ids
    starts: np.ndarray  # (S + 1,) int64

    @property
    def n_sentences(self) -> int:
        return len(self.starts) - 1

    @property
    def n_predicted(self) -> int:
        """Tokens a model predicts: every word and each </s>, never <s>."""
        return len(self.stream) - self.n_sentences

    def remaining(self) -> np.ndarray:
        """For each position, how many tokens of its sentence follow it."""
        ends = np.repeat(self.starts[1:] - 1, np.diff(self.starts))
        return ends - np.arange(len(self.stream))


def _assemble(ids: np.ndarray, lengths: np.ndarray) -> Corpus:
    """Interleave <s>/</s> around each sentence's ids (`lengths` words per sentence)."""
    n_sent = len(lengths)
    starts = np.zeros(n_sent + 1, dtype=np.int64)
    np.cumsum(lengths + 2, out=starts[1:])
    stream = np.empty(int(starts[-1]), dtype=np.int32)
    stream[starts[:-1]] = BOS_ID
    stream[starts[1:] - 1] = EOS_ID
    is_word = np.ones(len(stream), dtype=bool)
    is_word[starts[:-1]] = False
    is_word[starts[1:] - 1] = False
    stream[is_word] = ids
    return Corpus(stream, starts)


def read_training_corpus(
    files: list[Path], tokenize: Tokenize, min_count: int = 1, max_vocab: int = 0
) -> tuple[Corpus, Vocab, dict[str, int]]:
    """Read and encode training text in one pass; build the vocabulary from its counts.

    Words get provisional ids in order of appearance while reading (no string is kept
    per token); the final ids, ordered by frequency, are applied with one numpy gather.
    Literal <s> and </s> in the text are dropped, as KenLM does; a literal <unk> is <unk>.
    Returns the corpus, the vocabulary and statistics for the model's metadata.
    """
    first_id: dict[str, int] = {UNK: 0, BOS: 1, EOS: 2}
    get = first_id.get
    ids = array("i")
    lengths = array("q")
    dropped_specials = 0
    for tokens in iter_sentences(files, tokenize, desc="reading"):
        if BOS in tokens or EOS in tokens:
            n = len(tokens)
            tokens = [t for t in tokens if t != BOS and t != EOS]
            dropped_specials += n - len(tokens)
            if not tokens:
                continue
        line_ids = list(map(get, tokens))  # C speed; a new word shows up as None
        if None in line_ids:
            for i, t in enumerate(tokens):
                if line_ids[i] is None:
                    line_ids[i] = first_id.setdefault(t, len(first_id))
        ids.extend(line_ids)
        lengths.append(len(tokens))
    if not lengths:
        names = ", ".join(str(f) for f in files)
        raise LmforgeError(
            f"{names}: no sentences found (every line is blank); nothing to train on"
        )
    prov = np.frombuffer(ids, dtype=np.int32)
    counts = np.bincount(prov, minlength=len(first_id))
    words = list(first_id)
    vocab, n_unk_types = Vocab.from_counts(
        {w: int(c) for w, c in zip(words, counts)}, min_count=min_count, max_size=max_vocab
    )
    remap = np.array([vocab.id(w) for w in words], dtype=np.int32)
    remap[UNK_ID] = UNK_ID
    corpus = _assemble(remap[prov], np.frombuffer(lengths, dtype=np.int64))
    stats = {
        "sentences": corpus.n_sentences,
        "words": int(len(prov)),
        "types": len(words) - len(SPECIALS),
        "types_mapped_to_unk": n_unk_types,
        "specials_dropped": dropped_specials,
    }
    return corpus, vocab, stats


def encode_sentences(sentences: Iterable[list[str]], vocab: Vocab) -> Corpus:
    """Encode already tokenized sentences with a fixed vocabulary (unknown words -> <unk>).

    Literal <s> and </s> tokens are dropped, as in training.
    """
    get = vocab.index.get
    ids = array("i")
    lengths = array("q")
    for tokens in sentences:
        if BOS in tokens or EOS in tokens:
            tokens = [t for t in tokens if t != BOS and t != EOS]
        ids.extend([get(t, UNK_ID) for t in tokens])
        lengths.append(len(tokens))
    return _assemble(np.frombuffer(ids, dtype=np.int32), np.frombuffer(lengths, dtype=np.int64))
