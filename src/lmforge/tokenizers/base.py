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
    # Special-token strings in text (`<|user|>`, `<|end|>`, ...) are plain text unless
    # the caller says the text is trusted (`special=True`, e.g. a chat template's own
    # markup): otherwise a user message or a data file could forge a turn boundary.
    # `self.engine` is the pipeline as saved and parses them (its own default);
    # untrusted text goes through `_plain`, a second instance of the same pipeline
    # with `encode_special_tokens` set and the special strings made unreachable
    # inside the model's vocabulary too (see `_plain_engine`).
    def _engine_for(self, special: bool) -> Any:
        if special:
            return self.engine
        plain = self.__dict__.get("_plain")
        if plain is None:
            plain = self._plain = _plain_engine(self.engine, self.to_json())
        return plain

    def _invalidate(self) -> None:
        """Forget derived state after the pipeline changed (added tokens)."""
        self.__dict__.pop("_plain", None)

    def encode(
        self, text: str, *, bos: bool = False, eos: bool = False, special: bool = False
    ) -> list[int]:
        """Token ids of `text` (no special tokens added unless `bos`/`eos`).

        Special-token strings in `text` are encoded as ordinary text; ``special=True``
        maps them to their ids (only for trusted text such as template markup).
        """
        ids = self._engine_for(special).encode(text, add_special_tokens=False).ids
        if bos:
            ids = [self.bos_id, *ids]
        if eos:
            ids = [*ids, self.eos_id]
        return ids

    def encode_batch(self, texts: Sequence[str], *, special: bool = False) -> list[list[int]]:
        """Encode many texts in parallel (Rust threads); `special` as in `encode`."""
        engine = self._engine_for(special)
        # encode_batch_fast skips computing character offsets, which callers of ids never use.
        encode = getattr(engine, "encode_batch_fast", engine.encode_batch)
        return [e.ids for e in encode(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int], *, skip_special: bool = True) -> str:
        if self.canonical is not None:
            # Word-level vocabulary with aliases: the engine would show an
            # arbitrary surface form per id; show the canonical (base) form.
            special = self.special_ids()
            words = [self.canonical[i] for i in ids if not (skip_special and i in special)]
            return " ".join(words)
        return self.engine.decode(list(ids), skip_special_tokens=skip_special)

    def special_ids(self) -> set[int]:
        """Ids of the special (added) tokens: what `decode` skips by default."""
        decoder = self.engine.get_added_tokens_decoder()
        return {i for i, tok in decoder.items() if tok.special}

    def tokens(self, text: str, *, special: bool = False) -> list[str]:
        """The token strings of `text` (for display); `special` as in `encode`."""
        enc = self._engine_for(special).encode(text, add_special_tokens=False)
        # Ask the saved pipeline for each id's string: the plain instance renames
        # special pieces inside its model (they never come out of it anyway).
        return enc.tokens if special else [self.engine.id_to_token(i) for i in enc.ids]

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

    def add_special_tokens(self, roles: dict[str, str]) -> dict[str, int]:
        """Add role tokens (``{"user": "<|user|>", ...}``) to a tokenizer lacking them.

        For a tokenizer imported from elsewhere (GPT-2's has only ``<|endoftext|>``):
        each token becomes a special added token (matched in raw text with
        ``special=True``, never split, skipped by ``decode``); a string not in the
        vocabulary gets the next new id, so existing ids never change. The role
        mapping is recorded in ``lmforge.json`` (``special_tokens``), so
        ``special_id(role)``, ``user_id`` etc. find them after ``save``/``load``;
        ``hash`` changes. Returns ``{role: id}``. Resize a model's embeddings to the
        new ``vocab_size`` (``lmforge.models.resize_token_embeddings``) before use.
        """
        from tokenizers import AddedToken

        if self.canonical is not None:
            raise LmforgeError(
                "cannot add tokens to a word tokenizer with base-form aliases; retrain it"
            )
        for role, token in roles.items():
            if not isinstance(role, str) or not role:
                raise LmforgeError(f"special token role must be a non-empty string, got {role!r}")
            if not isinstance(token, str) or not token:
                raise LmforgeError(f"special token for role {role!r} must be a non-empty string")
            current = self.special_id(role)
            if current is not None and self.id_to_token(current) != token:
                raise LmforgeError(
                    f"role {role!r} already has token {self.id_to_token(current)!r} "
                    f"(id {current}); not replacing it with {token!r}"
                )
        new = list(dict.fromkeys(roles.values()))
        self.engine.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in new])
        mapping = dict(self.meta.get("special_tokens") or {})
        mapping.update(roles)
        self.meta["special_tokens"] = mapping
        self._invalidate()
        return {role: self.engine.token_to_id(token) for role, token in roles.items()}

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


def _plain_engine(engine: Any, text: str) -> Any:
    """A copy of `engine` that encodes special-token strings in text as ordinary text.

    The copy drops the special added tokens (the pass that cuts them out of the
    text; ``encode_special_tokens`` is set as well), which is not enough where the
    model's own vocabulary holds the same strings at the special ids and could
    match them from text: a Unigram (its Viterbi takes the one `<|user|>` piece over
    unknown characters) or a WordLevel model whose pre-tokenizer keeps such a
    string whole. There those vocabulary entries are renamed to strings no
    normalized text contains, keeping every id. Text without special strings
    encodes exactly as with `engine`. `text` is the tokenizer.json of `engine` (as
    `Tokenizer.to_json` writes it: with every alias of a word vocabulary).
    """
    from tokenizers import Tokenizer as HFTokenizer

    data = json.loads(text)
    added = data.get("added_tokens") or []
    specials = {t["content"] for t in added if t.get("special")}
    data["added_tokens"] = [t for t in added if not t.get("special")]
    model = data.get("model") or {}
    mark = _unreachable_mark(engine)
    if model.get("type") == "Unigram":
        for piece in model.get("vocab", []):
            if piece[0] in specials:
                piece[0] = mark + piece[0]
    elif model.get("type") == "WordLevel":
        vocab = model.get("vocab", {})
        for token in [t for t in vocab if t in specials and t != model.get("unk_token")]:
            vocab[mark + token] = vocab.pop(token)
    plain = HFTokenizer.from_str(json.dumps(data, ensure_ascii=False))
    plain.encode_special_tokens = True
    return plain


def _unreachable_mark(engine: Any) -> str:
    """A prefix no model input contains: a space where normalization removes spaces."""
    normalizer = engine.normalizer
    if normalizer is not None and " " not in normalizer.normalize_str("a b"):
        return " "  # SentencePiece-style: every space became the ▁ meta symbol
    # Otherwise a prefix with control characters text practically never holds (and a
    # random part so that it cannot be known in advance).
    import secrets

    return f"\x00\x01lmforge-{secrets.token_hex(8)}\x01"


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
