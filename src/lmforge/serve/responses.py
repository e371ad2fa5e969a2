"""The OpenAI API's answers: completion objects, streamed chunks, usage, SSE framing.

Chat answers are ``chat.completion`` objects (streamed: ``chat.completion.chunk``s
whose first chunk per choice carries ``delta.role = "assistant"`` and whose last
carries the ``finish_reason``); completions are ``text_completion`` objects (also
when streamed, as OpenAI does). A streamed answer ends with ``data: [DONE]``;
with ``stream_options.include_usage`` every chunk has ``usage: null`` and one chunk
with no choices and the usage comes before ``[DONE]``.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

DONE = "data: [DONE]\n\n"


def new_id(kind: str) -> str:
    """``chatcmpl-<hex>`` or ``cmpl-<hex>``."""
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + secrets.token_hex(12)


def sse(obj: dict[str, Any]) -> str:
    """One server-sent event holding `obj` as JSON."""
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class Answer:
    """The frame of one request's answer: id, time, model, kind; builds its objects."""

    def __init__(self, kind: str, model: str, *, include_usage: bool = False):
        self.kind, self.model, self.include_usage = kind, model, include_usage
        self.id = new_id(kind)
        self.created = int(time.time())

    def _head(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def complete(
        self, texts: list[str], reasons: list[str], prompt_tokens: int, completion_tokens: int
    ) -> dict[str, Any]:
        """The whole answer (no streaming): every choice's text and finish reason, and usage."""
        if self.kind == "chat":
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": reason,
                }
                for i, (text, reason) in enumerate(zip(texts, reasons))
            ]
            head = self._head("chat.completion")
        else:
            choices = [
                {"index": i, "text": text, "logprobs": None, "finish_reason": reason}
                for i, (text, reason) in enumerate(zip(texts, reasons))
            ]
            head = self._head("text_completion")
        return {**head, "choices": choices, "usage": usage(prompt_tokens, completion_tokens)}

    def chunk(
        self, index: int, text: str | None = None, finish_reason: str | None = None,
        *, role: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        """One streamed chunk of choice `index`: new text, the role (chat's first), or the end."""
        if self.kind == "chat":
            delta: dict[str, Any] = {}
            if role:
                delta["role"] = "assistant"
                delta["content"] = ""
            if text:
                delta["content"] = text
            choice = {"index": index, "delta": delta, "logprobs": None}
            head = self._head("chat.completion.chunk")
        else:
            choice = {"index": index, "text": text or "", "logprobs": None}
            head = self._head("text_completion")
        choice["finish_reason"] = finish_reason
        out = {**head, "choices": [choice]}
        if self.include_usage:
            out["usage"] = None
        return out

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        """The last chunk with ``stream_options.include_usage``: no choices, the usage."""
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        return {**self._head(obj), "choices": [], "usage": usage(prompt_tokens, completion_tokens)}
