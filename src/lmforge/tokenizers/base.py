"""The one tokenizer type every lmforge stage uses.

Whatever the kind (word, char, bpe, unigram), a trained tokenizer is a Hugging
Face ``tokenizers.Tokenizer`` pipeline stored as one ``tokenizer.json`` (so
``tokenizers.Tokenizer.from_file`` and ``transformers.PreTrainedTokenizerFast``
load and encode it identically), plus a small ``lmforge.json`` with what lmforge
needs to know about how it was made (kind, options). Encoding goes through the
Rust engine, so it is fast and equal to the reference by construction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..common import LmforgeError, atomic_write_text

# Fixed order: ids 0..7 in every lmforge tokenizer, so later stages (chat
# templates, padding, EOS handling) never need to look them up per tokenizer.
PAD, BOS, EOS, UNK = "<|pad|>", "<|bos|>", "<|eos|>", "<|unk|>"
SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
# MASK (id 8) is the masked-LM token (BERT's [MASK]); appended so ids 0..7 keep their meaning.
MASK = "<|mask|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, SYSTEM, USER, ASSISTANT, END, MASK]
_DEFAULT_ROLES = dict(
    zip(
        ["pad", "bos", "eos", "unk", "system", "user", "assistant", "end", "mask"],
        SPECIAL_TOKENS,
    )
)

TOKENIZER_FILE = "tokenizer.json"
META_FILE = "lmforge.json"


class Tokenizer:
    """A trained tokenizer: encode/decode text, special-token ids, save/load."""

    def __init__(
        self,
        engine: Any,
        kind: str,
        meta: dict[str, Any] | None = None,
        *,
        canonical: list[str] | None = None,
    ):
        self.engine = engine  # tokenizers.Tokenizer
        self.kind = kind
        self.meta = dict(meta or {})
        self.meta["kind"] = kind
        # For a vocabulary where several strings share one id (the word tokenizer
        # with --base-form maps every surface form to its base form's id): the one
        # string per id that decode shows. The Rust engine keeps only an arbitrary
        # one of them per id, and its own serializer would drop the others.
        self.canonical = canonical
        if canonical is not None:
            self.meta["vocab_aliases"] = True

    # -- io -----------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Load from a folder holding tokenizer.json (and lmforge.json), or a tokenizer.json file."""
        from tokenizers import Tokenizer as HFTokenizer

        p = Path(path)
        file = p / TOKENIZER_FILE if p.is_dir() else p
        if not file.is_file():
            raise LmforgeError(
                f"{p}: no {TOKENIZER_FILE} found; train one with `lmforge tokenizer train`"
            )
        try:
            engine = HFTokenizer.from_file(str(file))
        except Exception as e:  # the Rust side raises plain Exception subclasses
            raise LmforgeError(f"{file}: not a valid tokenizer file ({e})") from None
        meta_file = file.parent / META_FILE
        meta: dict[str, Any] = {}
        if meta_file.is_file():
            try:
                meta = json.loads(meta_file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise LmforgeError(f"{meta_file}: malformed JSON ({e.msg})") from None
        canonical = None
        if meta.get("vocab_aliases"):
            canonical = _canonical_tokens(json.loads(file.read_text(encoding="utf-8")))
        return cls(engine, meta.get("kind", "unknown"), meta, canonical=canonical)

    @classmethod
    def from_json(cls, text: str, kind: str, meta: dict[str, Any] | None = None) -> Tokenizer:
        """Build from tokenizer.json text (as written by `to_json`)."""
        from tokenizers import Tokenizer as HFTokenizer

        canonical = None
        if (meta or {}).get("vocab_aliases"):
            canonical = _canonical_tokens(json.loads(text))
        return cls(HFTokenizer.from_str(text), kind, meta, canonical=canonical)

    def to_json(self) -> str:
        """The tokenizer.json text.

        Equal to the engine's own serialization, except that a vocabulary with
        aliases is written in full (each id's canonical string first), since the
        engine would write only one string per id.
        """
        text = self.engine.to_str(pretty=True)
        if self.canonical is None:
            return text
        data = json.loads(text)
        data["model"]["vocab"] = _aliased_vocab(
            self.engine.get_vocab(with_added_tokens=False), self.canonical
        )
        return json.dumps(data, indent=2, ensure_ascii=False)

    # Pickling goes through tokenizer.json text so that vocab aliases survive it
    # (DataLoader workers, deepcopy); pickling the bare engine would lose them.
    def __getstate__(self) -> dict[str, Any]:
        return {"json": self.to_json(), "kind": self.kind, "meta": self.meta}

    def __setstate__(self, state: dict[str, Any]) -> None:
        other = Tokenizer.from_json(state["json"], state["kind"], state["meta"])
        self.__dict__.update(other.__dict__)

    def save(self, folder: str | Path) -> Path:
        """Write tokenizer.json and lmforge.json into `folder` (created if needed)."""
        d = Path(folder)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(d / TOKENIZER_FILE, self.to_json())
        atomic_write_text(d / META_FILE, json.dumps(self.meta, indent=2, ensure_ascii=False))
        return d

    @property
    def hash(self) -> str:
        """sha256 of the serialized pipeline: shards and checkpoints record it to catch mismatches."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()[:16]

    # -- encode / decode ----------------------------------------------------
    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        ids = self.engine.encode(text, add_special_tokens=False).ids
        if bos:
            ids = [self.bos_id, *ids]
        if eos:
            ids = [*ids, self.eos_id]
        return ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode many texts in parallel (Rust threads)."""
        # encode_batch_fast skips computing character offsets, which callers of ids never use.
        encode = getattr(self.engine, "encode_batch_fast", self.engine.encode_batch)
        return [e.ids for e in encode(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int], *, skip_special: bool = True) -> str:
        if self.canonical is not None:
            # Word-level vocabulary with aliases: the engine would show an
            # arbitrary surface form per id; show the canonical (base) form.
            special = self._special_ids()
            words = [self.canonical[i] for i in ids if not (skip_special and i in special)]
            return " ".join(words)
        return self.engine.decode(list(ids), skip_special_tokens=skip_special)

    def _special_ids(self) -> set[int]:
        decoder = self.engine.get_added_tokens_decoder()
        return {i for i, tok in decoder.items() if tok.special}

    def tokens(self, text: str) -> list[str]:
        """The token strings of `text` (for display)."""
        return self.engine.encode(text, add_special_tokens=False).tokens

    def token_to_id(self, token: str) -> int | None:
        return self.engine.token_to_id(token)

    def id_to_token(self, i: int) -> str | None:
        if self.canonical is not None:
            return self.canonical[i] if 0 <= i < len(self.canonical) else None
        return self.engine.id_to_token(i)

    @property
    def vocab_size(self) -> int:
        """Number of ids (max id + 1), including special tokens."""
        if self.canonical is not None:
            # The engine counts strings, and aliases share ids.
            added = self.engine.get_added_tokens_decoder()
            return max(len(self.canonical), max(added, default=-1) + 1)
        return self.engine.get_vocab_size(with_added_tokens=True)

    # Special ids: lmforge-trained tokenizers put SPECIAL_TOKENS at ids 0..7.
    # A tokenizer imported from elsewhere (e.g. GPT-2's) records its own role ->
    # token mapping in lmforge.json under "special_tokens" instead.
    def special_id(self, role: str) -> int | None:
        """Id of a special role: pad, bos, eos, unk, system, user, assistant, end (None if absent)."""
        mapping = self.meta.get("special_tokens") or {}
        token = mapping.get(role, _DEFAULT_ROLES.get(role))
        return None if token is None else self.engine.token_to_id(token)

    pad_id = property(lambda self: self.special_id("pad"))
    bos_id = property(lambda self: self.special_id("bos"))
    eos_id = property(lambda self: self.special_id("eos"))
    unk_id = property(lambda self: self.special_id("unk"))
    system_id = property(lambda self: self.special_id("system"))
    user_id = property(lambda self: self.special_id("user"))
    assistant_id = property(lambda self: self.special_id("assistant"))
    end_id = property(lambda self: self.special_id("end"))
    mask_id = property(lambda self: self.special_id("mask"))

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind!r}, vocab_size={self.vocab_size})"


def _aliased_vocab(vocab: dict[str, int], canonical: list[str]) -> dict[str, int]:
    """Vocabulary ordered by id, each id's canonical string first, then its aliases sorted."""
    by_id: dict[int, list[str]] = {}
    for token, i in vocab.items():
        by_id.setdefault(i, []).append(token)
    out: dict[str, int] = {}
    for i in sorted(by_id):
        first = canonical[i] if i < len(canonical) else None
        tokens = sorted(by_id[i], key=lambda t: (t != first, t))
        for token in tokens:
            out[token] = i
    return out


def _canonical_tokens(data: dict[str, Any]) -> list[str]:
    """The first string per id in a tokenizer.json vocabulary (its canonical form)."""
    vocab = data.get("model", {}).get("vocab")
    if not isinstance(vocab, dict):
        raise LmforgeError("tokenizer.json: vocab aliases need a word-level model vocabulary")
    canonical: dict[int, str] = {}
    for token, i in vocab.items():
        canonical.setdefault(i, token)
    size = max(canonical, default=-1) + 1
    return [canonical.get(i, "") for i in range(size)]
