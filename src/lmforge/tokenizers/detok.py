"""Incremental detokenization: the new text of each generated token, O(1) per token.

Decoding a growing row from its start after every token costs O(length) per
token (O(n^2) for a row). ``IncrementalDecoder`` uses the technique of Hugging
Face's text-generation-inference instead: it keeps two offsets into the ids,
``prefix`` (where the decoded window starts) and ``read`` (up to where text was
emitted), and per token decodes only the short window ``ids[prefix:]`` and
``ids[prefix:read]``; the difference is the new text. Text is held back while

* the window's text ends in U+FFFD: a byte-level token (BPE) stopped inside a
  UTF-8 character, which a later token completes; or
* the last token is a byte-fallback piece ``<0xNN>`` (unigram): a run of byte
  pieces is decoded together, and an invalid run turns every byte of it into
  U+FFFD, so its text is only known once the run ends.

Decoding from ``prefix`` instead of 0 is exact because ``prefix`` is always a
point where earlier text was emitted whole (the decoders here — word joins with
spaces, char fuses, byte-level BPE, metaspace + byte fallback — all give the text
of ``ids[:prefix]`` followed by the text of ``ids[prefix:]`` decoded in the same
position). The concatenation of every ``push`` and the final ``flush`` equals
``tok.decode(ids)`` (a property test in tests/test_engine.py checks every kind).
"""

from __future__ import annotations

import re
from typing import Any

_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")
_KEEP = 32  # ids before `prefix` kept at most this long before the list is trimmed


class IncrementalDecoder:
    """``push(token_id) -> new text`` (possibly ""), ``flush() -> the held-back rest``."""

    def __init__(self, tok: Any, *, skip_special: bool = True):
        self.tok = tok
        self.skip_special = skip_special
        self.ids: list[int] = []
        self.prefix = 0  # the decoded window starts here
        self.read = 0  # text of ids[:read] has been emitted
        self._id_to_token = getattr(tok, "id_to_token", None)
        # Ids that decode drops (specials, when skipped) are dropped here too, so that they
        # cannot end a byte-fallback run early: decode sees the run as one.
        special = getattr(tok, "special_ids", None)
        self._dropped = (
            frozenset(special()) if (skip_special and callable(special)) else frozenset()
        )

    def _decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special=self.skip_special)

    def _byte_piece(self, token_id: int) -> bool:
        if self._id_to_token is None:
            return False
        piece = self._id_to_token(token_id)
        return piece is not None and len(piece) == 6 and _BYTE_PIECE.fullmatch(piece) is not None

    def push(self, token_id: int) -> str:
        """Add one token; returns the text it completes ("" while text is held back)."""
        if token_id in self._dropped:
            return ""
        self.ids.append(int(token_id))
        if self._byte_piece(token_id):
            return ""
        before = self._decode(self.ids[self.prefix : self.read])
        text = self._decode(self.ids[self.prefix :])
        if len(text) <= len(before) or text.endswith("\ufffd"):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        if self.prefix > _KEEP:  # forget ids no later window reads
            del self.ids[: self.prefix]
            self.read -= self.prefix
            self.prefix = 0
        return text[len(before) :]

    def flush(self) -> str:
        """The text still held back (an unfinished character or byte run), then reset."""
        before = self._decode(self.ids[self.prefix : self.read])
        text = self._decode(self.ids[self.prefix :])
        self.ids, self.prefix, self.read = [], 0, 0
        return text[len(before) :]
