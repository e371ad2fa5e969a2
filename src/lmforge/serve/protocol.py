"""The OpenAI API's requests, parsed and checked: request JSON -> `GenerationRequest`.

`parse_body` turns the raw body into a JSON object; `parse_chat` and
`parse_completion` check the fields of ``/v1/chat/completions`` and
``/v1/completions`` against the served model (`ModelInfo`) and give the prompts as
token ids with the sampling settings. Every mistake a client can make is an
`ApiError` with the HTTP status, OpenAI's error ``type``, the ``param`` at fault and
a message that says what to send instead; unknown fields are ignored, as OpenAI
does. Supported: ``messages`` (text content, or text parts), ``prompt`` (a string,
strings, token ids or lists of ids), ``max_tokens`` / ``max_completion_tokens``
(default: the room the context leaves), ``temperature`` (0..2), ``top_p`` ((0, 1]),
``top_k`` (an extension, as vLLM's), ``n`` (1..8), ``seed``, ``stop`` (a string or
up to 4), ``stream`` and ``stream_options.include_usage``, ``echo`` (completions).
Fields that would change the answer in ways this server does not implement
(``logprobs``, ``tools``, ``logit_bias``, penalties, ``best_of``, ``suffix``, a
JSON ``response_format``) are refused with a 400 naming the field, never ignored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..common import LmforgeError
from ..data.instructions.fields import json_type
from ..tokenizers import Tokenizer

MAX_N = 8  # samples per prompt
MAX_PROMPTS = 16  # prompts per /v1/completions request
MAX_STOP = 4  # stop strings, as OpenAI allows
ROLE_ALIASES = {"developer": "system"}  # OpenAI's newer name for the system role


class ApiError(Exception):
    """A request the server refuses: HTTP `status` and OpenAI's error object."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, dict(headers or {})

    def body(self) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def bad(param: str | None, message: str, code: str | None = None) -> ApiError:
    """A 400 for `param`: the request's fault."""
    return ApiError(400, message, param=param, code=code)


@dataclass(frozen=True)
class ModelInfo:
    """What requests are checked against: the served model's name, tokenizer and context."""

    name: str
    tokenizer: Tokenizer
    context: int  # most tokens of prompt + answer
    chat: bool  # the tokenizer has the chat role tokens (an SFT-style run)


@dataclass
class GenerationRequest:
    """A checked request: what to generate and how to answer."""

    kind: str  # "chat" or "completion"
    prompts: list[list[int]]  # token ids, one list per prompt (chat: one)
    max_tokens: list[int]  # new tokens at most, per prompt (within the context)
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: a last chunk with usage
    echo: list[str] | None = None  # completions with echo: each prompt's text, shown first


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object (400 when it is not one)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise bad(None, f"the body is not UTF-8 (byte {e.start}); send JSON in UTF-8") from None
    if not text.strip():
        raise bad(None, "the body is empty; send a JSON object")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as e:
        raise bad(
            None, f"the body is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})"
        ) from None
    except RecursionError:
        raise bad(None, "the body's JSON is nested too deeply") from None
    if not isinstance(body, dict):
        raise bad(None, f"the body must be a JSON object, got {_kind(body)}")
    return body


def parse_chat(body: dict[str, Any], model: ModelInfo) -> GenerationRequest:
    """``/v1/chat/completions``: the messages rendered through the chat template."""
    _check_model(body, model)
    if not model.chat:
        raise bad(
            None,
            f"model {model.name!r} has no chat template (its tokenizer lacks the chat role "
            "tokens: a pretraining run); use /v1/completions, or serve a run fine-tuned with "
            "`lmforge sft`",
            code="chat_not_supported",
        )
    messages = _messages(body.get("messages"))
    from ..tokenizers.chat import render_chat

    try:
        ids = render_chat(model.tokenizer, messages, add_generation_prompt=True).ids
    except LmforgeError as e:
        raise bad("messages", str(e)) from None
    _refuse_unsupported(body, chat=True)
    names = ("max_completion_tokens", "max_tokens")
    max_tokens = _max_tokens(body, [ids], model, names, prompt_param="messages")
    return GenerationRequest("chat", [ids], max_tokens, **_sampling(body))


def parse_completion(body: dict[str, Any], model: ModelInfo) -> GenerationRequest:
    """``/v1/completions``: a prompt (or several) continued as plain text."""
    _check_model(body, model)
    prompts, texts = _prompts(body.get("prompt"), model.tokenizer)
    _refuse_unsupported(body, chat=False)
    max_tokens = _max_tokens(body, prompts, model, ("max_tokens",), prompt_param="prompt")
    echo = _bool(body, "echo", False)
    return GenerationRequest(
        "completion", prompts, max_tokens, echo=texts if echo else None, **_sampling(body)
    )


# --- fields --------------------------------------------------------------------------


def _kind(value: Any) -> str:
    """A JSON type's name for messages, with its article ("a string", "an array", "null")."""
    name = json_type(value)
    return name if name == "null" else ("an " if name[0] in "aeiou" else "a ") + name


def _check_model(body: dict[str, Any], model: ModelInfo) -> None:
    name = body.get("model")
    if name is None:
        raise bad("model", f"'model' is required; this server serves {model.name!r}")
    if not isinstance(name, str):
        raise bad("model", f"'model' must be a string, got {_kind(name)}")
    if name != model.name:
        raise ApiError(
            404,
            f"the model {name!r} does not exist; this server serves {model.name!r} "
            "(GET /v1/models)",
            param="model",
            code="model_not_found",
        )


def _messages(value: Any) -> list[dict[str, str]]:
    """OpenAI messages -> ``[{"role", "content"}]`` with text content."""
    if value is None:
        raise bad("messages", "'messages' is required: a list of {role, content} objects")
    if not isinstance(value, list) or not value:
        raise bad("messages", f"'messages' must be a non-empty array, got {_kind(value)}")
    out = []
    for i, m in enumerate(value):
        at = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(at, f"{at} must be an object with 'role' and 'content', got {_kind(m)}")
        role = m.get("role")
        role = ROLE_ALIASES.get(role, role)
        if role not in ("system", "user", "assistant"):
            raise bad(
                f"{at}.role",
                f"{at}.role {role!r} is not supported; use system, user or assistant",
            )
        if m.get("tool_calls") or m.get("function_call"):
            raise bad(f"{at}.tool_calls", f"{at}: tool calls are not supported by this server")
        out.append({"role": role, "content": _content(m.get("content"), f"{at}.content")})
    return out


def _content(value: Any, at: str) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for k, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else _kind(part)
                raise bad(f"{at}[{k}]", f"{at}[{k}]: only text parts are supported, got {kind!r}")
            text = part.get("text")
            if not isinstance(text, str):
                raise bad(f"{at}[{k}].text", f"{at}[{k}].text must be a string")
            parts.append(text)
        return "".join(parts)
    raise bad(at, f"{at} must be a string or a list of text parts, got {_kind(value)}")


def _prompts(value: Any, tok: Tokenizer) -> tuple[list[list[int]], list[str]]:
    """The completion prompt(s) as token ids, and each one's text (for echo)."""
    if value is None:
        raise bad("prompt", "'prompt' is required: a string, strings, or token ids")
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and all(_is_id(v) for v in value):
        items = [value]  # one prompt given as token ids
    elif isinstance(value, list) and value:
        items = value
    else:
        raise bad("prompt", f"'prompt' must be a string, strings or token ids, got {_kind(value)}")
    if len(items) > MAX_PROMPTS:
        raise bad("prompt", f"at most {MAX_PROMPTS} prompts per request, got {len(items)}")
    prompts, texts = [], []
    for i, item in enumerate(items):
        at = "prompt" if len(items) == 1 else f"prompt[{i}]"
        if isinstance(item, str):
            ids = tok.encode(item) if item else []
            if not ids:
                # An empty prompt starts a new document, as training saw them begin.
                ids = [tok.eos_id if tok.eos_id is not None else 0]
            prompts.append(ids)
            texts.append(item)
        elif isinstance(item, list) and item and all(_is_id(v) for v in item):
            out_of_range = [v for v in item if not 0 <= v < tok.vocab_size]
            if out_of_range:
                raise bad(
                    at,
                    f"{at}: token id {out_of_range[0]} is outside the vocabulary "
                    f"(0..{tok.vocab_size - 1})",
                )
            prompts.append(list(item))
            texts.append(tok.decode(item))
        else:
            raise bad(at, f"{at} must be a string or a non-empty list of token ids")
    return prompts, texts


def _is_id(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _max_tokens(
    body: dict[str, Any],
    prompts: list[list[int]],
    model: ModelInfo,
    names: tuple[str, ...],
    *,
    prompt_param: str,
) -> list[int]:
    """New tokens per prompt: the asked number, or all the room the context leaves."""
    for i, ids in enumerate(prompts):
        if len(ids) >= model.context:
            which = "the prompt" if len(prompts) == 1 else f"prompt {i}"
            raise bad(
                prompt_param,
                f"{which} has {len(ids)} tokens but the model's context is {model.context} "
                f"tokens (prompt + answer); shorten it to at most {model.context - 1} tokens",
                code="context_length_exceeded",
            )
    name = next((n for n in names if body.get(n) is not None), names[-1])
    asked = _int(body, name, None, lo=1)
    rooms = [model.context - len(ids) for ids in prompts]
    if asked is None:
        return rooms
    if asked > min(rooms):
        room = min(rooms)
        longest = max(len(ids) for ids in prompts)
        raise bad(
            name,
            f"{name} is {asked} but the context of {model.context} tokens leaves room for "
            f"{room} after the {longest}-token prompt; ask for at most {room}",
            code="context_length_exceeded",
        )
    return [asked] * len(prompts)


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    """The settings both endpoints share."""
    stream = _bool(body, "stream", False)
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise bad("stream_options", "'stream_options' must be an object")
        if not stream:
            raise bad("stream_options", "'stream_options' is only allowed with stream: true")
        include_usage = _bool(options, "include_usage", False, at="stream_options.")
    return dict(
        temperature=_number(body, "temperature", 1.0, lo=0.0, hi=2.0),
        top_p=_number(body, "top_p", 1.0, lo=0.0, hi=1.0, lo_open=True),
        top_k=_int(body, "top_k", 0, lo=0),
        n=_int(body, "n", 1, lo=1, hi=MAX_N),
        seed=_int(body, "seed", None),
        stop=_stop(body.get("stop")),
        stream=stream,
        include_usage=include_usage,
    )


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise bad("stop", f"'stop' must be a string or a list of strings, got {_kind(value)}")
    if len(items) > MAX_STOP:
        raise bad("stop", f"at most {MAX_STOP} stop strings, got {len(items)}")
    if any(not s for s in items):
        raise bad("stop", "stop strings must not be empty")
    return list(items)


def _refuse_unsupported(body: dict[str, Any], *, chat: bool) -> None:
    """Known fields this server does not implement, when set to anything but their no-op."""
    logprobs = body.get("logprobs")
    if logprobs is not None and logprobs is not False:  # completions' 0 asks for them too
        raise bad("logprobs", "logprobs are not supported by this server; leave 'logprobs' unset")
    for name in ("tools", "functions", "logit_bias"):
        if body.get(name):
            raise bad(name, f"'{name}' is not supported by this server")
    choice = body.get("tool_choice")
    if choice not in (None, "none", "auto"):
        raise bad("tool_choice", "'tool_choice' is not supported by this server (tools are not)")
    for name in ("presence_penalty", "frequency_penalty"):
        value = body.get(name)
        if value is not None and value != 0:
            raise bad(name, f"'{name}' is not supported by this server; leave it unset or 0")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") in (None, "text")):
        raise bad("response_format", "only the 'text' response_format is supported")
    if not chat:
        best_of = body.get("best_of")
        if best_of is not None and best_of != body.get("n", 1) and best_of != 1:
            raise bad("best_of", "'best_of' is not supported by this server; use 'n'")
        if body.get("suffix"):
            raise bad("suffix", "'suffix' (insertion) is not supported by this server")


def _bool(body: dict[str, Any], name: str, default: bool, at: str = "") -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad(f"{at}{name}", f"'{at}{name}' must be true or false, got {_kind(value)}")
    return value


def _int(
    body: dict[str, Any], name: str, default: int | None, *, lo: int | None = None,
    hi: int | None = None,
) -> int | None:  # fmt: skip
    value = body.get(name)
    if value is None:
        return default
    # JSON has one number type: 2.0 is the integer 2, 2.5 is not an integer.
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not _is_id(value):
        raise bad(name, f"'{name}' must be an integer, got {_kind(value)} {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise bad(name, f"'{name}' must be {_range(lo, hi)}, got {value}")
    return value


def _number(
    body: dict[str, Any], name: str, default: float, *, lo: float, hi: float,
    lo_open: bool = False,
) -> float:  # fmt: skip
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad(name, f"'{name}' must be a number, got {_kind(value)} {value!r}")
    if value > hi or value < lo or (lo_open and value == lo):
        span = f"in ({lo:g}, {hi:g}]" if lo_open else f"between {lo:g} and {hi:g}"
        raise bad(name, f"'{name}' must be {span}, got {value}")
    return float(value)


def _range(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"between {lo} and {hi}"
    return f">= {lo}" if lo is not None else f"<= {hi}"
