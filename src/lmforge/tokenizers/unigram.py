"""SentencePiece-style unigram tokenizer, trained by `sentencepiece`, run by `tokenizers`.

Training uses the `sentencepiece` library (its unigram trainer is several times
faster than the one in `tokenizers`); the learned pieces and scores are then
written as a `tokenizers` Unigram model, so tokenizer.json stays the single
artifact and Hugging Face loads it like any other.

Pipeline: [Lowercase] -> prepend `▁` and turn every space into `▁` (a
normalizer, exactly sentencepiece's dummy prefix; there is no whitespace
pre-split, so unspaced Chinese/Japanese text works) -> [Digits] -> Unigram
model (Viterbi over the whole text) with byte fallback: a character without a
piece is spelled as `<0xNN>` byte pieces, never <|unk|> -> decoder that turns
`▁` back into spaces, bytes back into characters and drops the dummy prefix.

Ids: SPECIAL_TOKENS at 0..N-1 (sentencepiece's own <unk> becomes <|unk|>),
then sentencepiece's pieces in its order (256 byte pieces, then the learned
pieces by score), i.e. sentencepiece id `i >= 1` is lmforge id `i + N - 1`.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..common import ConfigError, LmforgeError
from .base import SPECIAL_TOKENS, Tokenizer
from .corpus import iter_lines
from .pipeline import UNK_ID, digits_step, normalizer_sequence, special_added_tokens

if TYPE_CHECKING:
    from .train import TokenizerConfig

META_SPACE = "▁"  # U+2581, sentencepiece's visible space
# Characters of the byte pieces' names (<0x4A>). They always get a piece of
# their own, so that text that literally reads "<0x4A>" is spelled with normal
# pieces: `tokenizers` (unlike sentencepiece) would otherwise match the byte piece.
BYTE_PIECE_CHARS = "<>0123456789ABCDEFx"
# sentencepiece skips longer sentences (lines); long paragraphs are common.
MAX_SENTENCE_BYTES = 1 << 20


def sentencepiece_options(cfg: TokenizerConfig) -> dict[str, Any]:
    """Keyword arguments for `SentencePieceTrainer.train` that match lmforge's pipeline."""
    return dict(
        model_type="unigram",
        # sentencepiece's <unk> becomes lmforge's <|unk|>; the other specials are added.
        vocab_size=cfg.vocab_size - len(SPECIAL_TOKENS) + 1,
        unk_id=0,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        byte_fallback=True,
        required_chars=BYTE_PIECE_CHARS,
        character_coverage=cfg.character_coverage,
        split_by_whitespace=not cfg.span_spaces,
        split_digits=cfg.split_digits,
        # No normalization and whitespace kept as is: exact round trip.
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        max_sentence_length=MAX_SENTENCE_BYTES,
        # Tiny corpora cannot fill a large vocabulary; take what they give.
        hard_vocab_limit=False,
        num_threads=cfg.threads or os.cpu_count() or 1,
        minloglevel=2,
    )


def train_sentencepiece(cfg: TokenizerConfig, documents: Iterable[str]) -> bytes:
    """Train a sentencepiece unigram model on the lines of `documents`; returns its proto bytes."""
    import sentencepiece as spm
    from tokenizers import normalizers

    # Read everything first (sentencepiece holds all sentences in memory anyway):
    # an input error then surfaces as itself, before training starts, where
    # sentencepiece would turn an exception from its iterator into a RuntimeError.
    lines = list(iter_lines(documents))
    if cfg.lowercase_on:
        # The pipeline's own Lowercase, so training sees what encoding will see.
        lowercase = normalizers.Lowercase()
        lines = [lowercase.normalize_str(line) for line in lines]
    if not lines:
        raise LmforgeError("inputs hold no text to train on (only whitespace)")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=model, **sentencepiece_options(cfg)
        )
    except RuntimeError as e:
        raise _training_error(str(e), cfg) from None
    return model.getvalue()


def _training_error(message: str, cfg: TokenizerConfig) -> LmforgeError:
    """sentencepiece's failure as one actionable line."""
    too_small = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", message)
    if too_small:
        least = int(too_small.group(2)) + len(SPECIAL_TOKENS) - 1
        return ConfigError(
            "vocab_size",
            f"{cfg.vocab_size} is too small for these inputs: unigram needs at least {least} "
            f"(special tokens, 256 byte pieces and a piece per kept character); "
            f"raise --vocab-size or lower --character-coverage",
        )
    lines = message.strip().splitlines()
    return LmforgeError(f"unigram training failed: {lines[-1] if lines else 'unknown error'}")


def sentencepiece_to_lmforge_id(i: int) -> int:
    """The lmforge id of sentencepiece id `i` in a model from `train_sentencepiece`."""
    return UNK_ID if i == 0 else i + len(SPECIAL_TOKENS) - 1


def unigram_from_sentencepiece(model_proto: bytes, cfg: TokenizerConfig) -> Tokenizer:
    """Write a sentencepiece model as a `tokenizers` Unigram pipeline that encodes identically."""
    import sentencepiece as spm
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, normalizers

    sp = spm.SentencePieceProcessor(model_proto=model_proto)
    n = sp.get_piece_size()
    normal = [sp.get_score(i) for i in range(1, n) if not sp.is_byte(i)]
    # Byte and special pieces are never chosen by sentencepiece's Viterbi; give
    # them a score far below any path of normal pieces so `tokenizers` agrees.
    never = _exact(min([*normal, -1.0]) * 100.0 - 100.0)
    vocab = [(t, never) for t in SPECIAL_TOKENS]
    for i in range(1, n):
        vocab.append((sp.id_to_piece(i), never if sp.is_byte(i) else _exact(sp.get_score(i))))
    engine = HFTokenizer(models.Unigram(vocab, unk_id=UNK_ID, byte_fallback=True))
    norm_steps: list[Any] = [normalizers.Lowercase()] if cfg.lowercase_on else []
    norm_steps += [normalizers.Prepend(META_SPACE), normalizers.Replace(" ", META_SPACE)]
    engine.normalizer = normalizer_sequence(norm_steps)
    if cfg.split_digits:
        engine.pre_tokenizer = digits_step()
    engine.decoder = decoders.Sequence(
        [
            decoders.Replace(META_SPACE, " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),  # the dummy prefix
        ]
    )
    engine.add_special_tokens(special_added_tokens())
    return Tokenizer(engine, "unigram")


def _exact(score: float) -> float:
    """A float32 score as a 9-digit decimal (enough to name any float32).

    Its JSON text then reads back as the same float64, so a saved and reloaded
    tokenizer.json is byte-identical (and hashes the same); the full 17-digit
    float64 expansion can come back 1 ulp off from `tokenizers`' JSON reader.
    """
    return float(f"{score:.9g}")


def train_unigram(cfg: TokenizerConfig, documents: Iterable[str]) -> Tokenizer:
    """Train with sentencepiece, then convert to a `tokenizers` pipeline."""
    return unigram_from_sentencepiece(train_sentencepiece(cfg, documents), cfg)
