"""Conversations and the one chat template every instruction stage uses.

A `Conversation` is a list of `Message`s (role `system` / `user` / `assistant`)
plus free-form `meta` (task, template, answer, ... as the data files carry them).
Readers in `data/instructions/` turn every file format into this type; SFT, the
reward model, DPO, PPO and the chat server all turn it into tokens through
`render_chat`, so a model sees one format from training to serving.

The format
----------
Each message is its role token, its content encoded as plain text, and ``<|end|>``;
nothing else: no BOS, no EOS, no newlines (pretraining streams are ``doc EOS doc
EOS``; packed SFT windows keep conversations apart with document masks). A
generation prompt is the conversation so far followed by ``<|assistant|>``::

    [system "Be brief.", user "2+2?", assistant "4"]  ->

    <|system|>Be brief.<|end|><|user|>2+2?<|end|><|assistant|>4<|end|>

    token:  <|system|> Be brief . <|end|> <|user|> 2 + 2 ? <|end|> <|assistant|> 4 <|end|>
    loss:   0          0  0     0 0       0        0 0 0 0 0       0             1 1

    generation prompt for [user "2+2?"]:  <|user|>2+2?<|end|><|assistant|>

(the content tokens shown are a word tokenizer's; each kind splits content its own way.)
The loss mask is 1 exactly on the assistant's content tokens and the ``<|end|>``
that closes its turn (the model must learn to stop), 0 on role headers and on
system and user tokens. Content is always encoded with special tokens disabled:
a user who types ``<|end|>`` writes plain text and cannot forge a turn boundary.
Since every content is encoded on its own, dropping whole messages from a
rendering equals rendering the remaining messages (`ChatTokens.select`).

The role tokens are the tokenizer's own (ids 4..7 in every tokenizer lmforge
trains; an imported one may lack them: `chat_token_ids` says how to add them).

Hugging Face
------------
`jinja_chat_template(tok)` is the same format as a Jinja template for
``apply_chat_template``; `lmforge export hf` writes it into tokenizer_config.json,
and ``apply_chat_template(messages, add_generation_prompt=...)`` then gives the
ids of `render_chat` (tests/test_chat_template.py checks it for BPE, Unigram,
char and word tokenizers). Known limit: a content holding a literal role-token
string (``"<|user|>"``) is plain text here, but the HF tokenizer parses the
rendered text and finds the special token there, unless the caller passes
``sanitize_control_tokens=True`` (transformers 5). A template with
``generation_marks=True`` wraps each assistant answer in ``{% generation %}``, so
``return_assistant_tokens_mask=True`` (TRL's ``assistant_only_loss``) reproduces
the loss mask; it is not the exported default because renderers other than
transformers' (minijinja in TGI, llama.cpp) do not know that tag.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..common import LmforgeError
from .base import ASSISTANT, END, SYSTEM, USER, Tokenizer

ROLES = ("system", "user", "assistant")
# The tokens of the template, by role (lmforge's names; an imported tokenizer maps its own).
CHAT_TOKENS = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT, "end": END}
ADD_CHAT_TOKENS_HINT = (
    "add them with `lmforge sft --add-chat-tokens` (resizes the model's embeddings) "
    "or use a tokenizer trained by lmforge"
)


@dataclass(frozen=True)
class Message:
    role: str  # one of ROLES
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise LmforgeError(f"unknown role {self.role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(self.content, str):
            raise LmforgeError(
                f"message content must be a string, got {type(self.content).__name__}"
            )


@dataclass
class Conversation:
    messages: list[Message]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dicts(cls, messages: list[dict], meta: dict[str, Any] | None = None) -> Conversation:
        """From OpenAI-style ``[{"role": ..., "content": ...}, ...]``."""
        return cls([Message(m["role"], m["content"]) for m in messages], dict(meta or {}))

    def to_dicts(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]

    @property
    def has_assistant(self) -> bool:
        return any(m.role == "assistant" for m in self.messages)


@dataclass
class ChatTokens:
    """A rendered conversation: ids, the loss mask over them, and where each message lies."""

    ids: list[int]
    loss_mask: list[int]  # same length as ids; 1 on assistant content and its <|end|>
    message_spans: list[
        tuple[int, int]
    ]  # token [start, end) of each message, header and end included
    roles: list[str]  # role of each message, parallel to message_spans
    generation_prompt: bool = False  # ids end with the <|assistant|> header of an answer to come

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_targets(self) -> int:
        """Tokens the loss is computed on."""
        return sum(self.loss_mask)

    def select(self, keep: Sequence[int]) -> ChatTokens:
        """The rendering of only the messages at indices `keep` (ascending), generation prompt kept.

        Equal to `render_chat` of those messages, since each content is encoded on its own.
        """
        ids: list[int] = []
        mask: list[int] = []
        spans: list[tuple[int, int]] = []
        for i in keep:
            start, end = self.message_spans[i]
            spans.append((len(ids), len(ids) + end - start))
            ids += self.ids[start:end]
            mask += self.loss_mask[start:end]
        if self.generation_prompt:
            ids.append(self.ids[-1])
            mask.append(0)
        return ChatTokens(ids, mask, spans, [self.roles[i] for i in keep], self.generation_prompt)


def _describe(tok: Tokenizer) -> str:
    source = tok.meta.get("source")
    return f"tokenizer ({tok.kind}{f', from {source}' if source else ''})"


def chat_token_ids(tok: Tokenizer) -> dict[str, int]:
    """``{"system", "user", "assistant", "end": id}`` of `tok`'s chat role tokens.

    Raises LmforgeError naming the missing ones (and how to add them), or when two
    roles share one token (turns could not be told apart).
    """
    found = {role: tok.special_id(role) for role in CHAT_TOKENS}
    missing = [role for role, i in found.items() if i is None]
    if missing:
        names = ", ".join(
            tok.meta.get("special_tokens", {}).get(r) or CHAT_TOKENS[r] for r in missing
        )
        raise LmforgeError(
            f"{_describe(tok)} has no chat role tokens ({names}); {ADD_CHAT_TOKENS_HINT}"
        )
    ids = {role: i for role, i in found.items() if i is not None}
    if len(set(ids.values())) < len(ids):
        shown = ", ".join(f"{r}={tok.id_to_token(i)!r}" for r, i in ids.items())
        raise LmforgeError(
            f"{_describe(tok)}: chat roles share a token ({shown}); each of system, user, "
            "assistant and end needs its own token (fix special_tokens in lmforge.json)"
        )
    return ids


def has_chat_tokens(tok: Tokenizer) -> bool:
    """Whether `tok` has all four chat role tokens (so `render_chat` can use it)."""
    return all(tok.special_id(role) is not None for role in CHAT_TOKENS)


def _messages(conversation: Any, where: str | None) -> list[Message]:
    """Validated messages of a Conversation, a list of Message or a list of role/content dicts."""
    at = f"{where}: " if where else ""
    items = conversation.messages if isinstance(conversation, Conversation) else conversation
    if isinstance(items, (str, bytes, dict)) or not isinstance(items, Sequence):
        raise LmforgeError(
            f"{at}expected a conversation (a list of messages), got {type(items).__name__}"
        )
    if not items:
        raise LmforgeError(f"{at}conversation has no messages")
    out: list[Message] = []
    for n, item in enumerate(items, 1):
        if isinstance(item, Message):
            message = item
        elif isinstance(item, dict):
            role, content = item.get("role"), item.get("content")
            if role not in ROLES:
                raise LmforgeError(
                    f"{at}message {n}: unknown role {role!r}; expected one of {', '.join(ROLES)}"
                )
            if not isinstance(content, str):
                raise LmforgeError(
                    f"{at}message {n} ({role}): content must be a string, "
                    f"got {type(content).__name__}"
                )
            message = Message(role, content)
        else:
            raise LmforgeError(
                f"{at}message {n}: expected a Message or a {{'role', 'content'}} dict, "
                f"got {type(item).__name__}"
            )
        if message.role == "system" and n > 1:
            raise LmforgeError(
                f"{at}message {n}: a system message is only allowed as the first message; "
                "merge it into the first one"
            )
        out.append(message)
    return out


def render_chat(
    tok: Tokenizer,
    conversation: Conversation | Sequence[Message] | Sequence[dict],
    *,
    add_generation_prompt: bool = False,
    where: str | None = None,
) -> ChatTokens:
    """Ids and loss mask of `conversation` in the chat format (see the module docstring).

    `add_generation_prompt` appends ``<|assistant|>`` (masked 0) for generation.
    `where` (e.g. ``"chat.jsonl:12"``) prefixes error messages. Raises
    LmforgeError for an unknown role, a system message that is not first, an
    empty conversation or a tokenizer without role tokens.
    """
    messages = _messages(conversation, where)
    role_ids = chat_token_ids(tok)
    end = role_ids["end"]
    contents = tok.encode_batch([m.content for m in messages])  # plain text: special=False
    ids: list[int] = []
    mask: list[int] = []
    spans: list[tuple[int, int]] = []
    for message, body in zip(messages, contents):
        start = len(ids)
        ids.append(role_ids[message.role])
        ids += body
        ids.append(end)
        target = int(message.role == "assistant")
        mask.append(0)  # the header is given, never predicted as a target
        mask += [target] * (len(body) + 1)  # content and its <|end|>
        spans.append((start, len(ids)))
    if add_generation_prompt:
        ids.append(role_ids["assistant"])
        mask.append(0)
    return ChatTokens(ids, mask, spans, [m.role for m in messages], add_generation_prompt)


def generation_prompt(
    tok: Tokenizer, messages: Conversation | Sequence[Message] | Sequence[dict]
) -> list[int]:
    """Ids to generate the next assistant answer from: the messages, then ``<|assistant|>``."""
    return render_chat(tok, messages, add_generation_prompt=True).ids


@dataclass(frozen=True)
class Fitted:
    """`fit_to_context`'s answer: the kept rendering and what was dropped to get it."""

    chat: ChatTokens
    dropped: int  # messages dropped from the front (the system message counted when it went)
    dropped_system: bool = False


def fit_to_context(
    chat: ChatTokens | Tokenizer,
    conversation: Conversation | Sequence[Message] | Sequence[dict] | None = None,
    *,
    max_len: int,
    add_generation_prompt: bool = False,
) -> Fitted | None:
    """Fit a rendered conversation into `max_len` tokens by dropping its oldest turns.

    Call with a `ChatTokens`, or with a tokenizer and a conversation to render.
    Whole messages go from the left of the history, so the kept part starts at a
    user message (or where the history started), no answer is ever cut mid-way
    and the loss mask stays exact (`ChatTokens.select`). A leading system
    message is kept while it fits; only when even the shortest history does not
    fit beside it does it go too. The shortest history is the last user message
    with everything after it, and always holds the last assistant answer
    (without a generation prompt: the exchange the loss is on) — or, with a
    generation prompt, the last user message. Returns None when even that does
    not fit (the caller counts the conversation as dropped).
    """
    if isinstance(chat, ChatTokens):
        if conversation is not None or add_generation_prompt:
            raise TypeError("fit_to_context: pass a ChatTokens alone, or a tokenizer and messages")
    else:
        if conversation is None:
            raise TypeError("fit_to_context: a tokenizer needs the conversation to render")
        chat = render_chat(chat, conversation, add_generation_prompt=add_generation_prompt)
    if max_len < 1:
        raise LmforgeError(f"max_len must be at least 1, got {max_len}")
    if len(chat) <= max_len:
        return Fitted(chat, 0)
    roles, n = chat.roles, len(chat.roles)
    first = 1 if roles and roles[0] == "system" else 0
    if first == n:
        return None  # a system message alone, too long: nothing worth keeping
    # Where the kept history may begin: at a user message, or where the history began.
    starts = sorted({first} | {i for i in range(first, n) if roles[i] == "user"})
    answers = [i for i in range(first, n) if roles[i] == "assistant"]
    last = answers[-1] if answers and not chat.generation_prompt else n - 1
    starts = [k for k in starts if k <= last] or [first]
    lengths = [e - s for s, e in chat.message_spans]
    tail = [0] * (n + 1)  # tail[k]: tokens of messages k.. plus the generation prompt
    tail[n] = int(chat.generation_prompt)
    for i in range(n - 1, -1, -1):
        tail[i] = tail[i + 1] + lengths[i]
    for keep_system in (True, False) if first else (False,):
        extra = lengths[0] if keep_system else 0
        for k in starts:  # ascending: the first that fits drops the fewest messages
            if extra + tail[k] <= max_len:
                keep = ([0] if keep_system else []) + list(range(k, n))
                dropped_system = bool(first) and not keep_system
                return Fitted(chat.select(keep), k - first + int(dropped_system), dropped_system)
    return None


def jinja_chat_template(tok: Tokenizer, *, generation_marks: bool = False) -> str:
    """A Jinja2 chat template for Hugging Face ``apply_chat_template`` giving `render_chat`'s format.

    It holds `tok`'s own role-token strings and raises (``raise_exception``) on an
    unknown role, a system message that is not first, or a non-string content.
    `generation_marks` wraps each assistant answer (content and ``<|end|>``) in
    ``{% generation %}`` for ``return_assistant_tokens_mask`` (transformers only).
    """
    ids = chat_token_ids(tok)
    # JSON string literals are valid Jinja string literals (same escapes); non-ASCII
    # stays as it is, since Jinja decodes \\u escapes but not JSON's surrogate pairs.
    lit = {role: json.dumps(tok.id_to_token(i), ensure_ascii=False) for role, i in ids.items()}
    answer = "{{- message['content'] + " + lit["end"] + " -}}"
    if generation_marks:
        answer = "{%- generation -%}" + answer + "{%- endgeneration -%}"
    # Every piece starts and ends with a `-` tag, so the newlines joining them are
    # stripped: the template adds no text of its own.
    return "\n".join(
        [
            "{%- for message in messages -%}",
            "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}",
            "{{- raise_exception('unknown role ' ~ message['role'] ~ "
            "'; expected one of system, user, assistant') -}}",
            "{%- elif message['role'] == 'system' and not loop.first -%}",
            "{{- raise_exception('a system message is only allowed as the first message') -}}",
            "{%- elif message['content'] is not string -%}",
            "{{- raise_exception('message content must be a string') -}}",
            "{%- endif -%}",
            "{%- if message['role'] == 'assistant' -%}",
            "{{- " + lit["assistant"] + " -}}",
            answer,
            "{%- elif message['role'] == 'user' -%}",
            "{{- " + lit["user"] + " + message['content'] + " + lit["end"] + " -}}",
            "{%- else -%}",
            "{{- " + lit["system"] + " + message['content'] + " + lit["end"] + " -}}",
            "{%- endif -%}",
            "{%- endfor -%}",
            "{%- if add_generation_prompt -%}",
            "{{- " + lit["assistant"] + " -}}",
            "{%- endif -%}",
        ]
    )
