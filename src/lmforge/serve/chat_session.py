"""A conversation with a run's model: history fitted to the context, streamed answers.

`ChatSession` holds the conversation (an optional system message and the turns
after it), the sampling settings and a turn counter, and answers one user
message at a time (`reply`). The history is fitted to the model's context with
`tokenizers.chat.fit_to_context`, leaving room for the answer: the oldest turns
are dropped (for good, and said so), the system message is kept. The answer
streams from the one engine (`inference.engine.stream_generate`) through a
callback; a KeyboardInterrupt while it streams (Ctrl-C, or raised by the
callback) closes the stream and keeps the partial answer in the history. Turn
``k`` (counted from the start, `/reset` or `/load`) samples with seed ``seed +
k``, so a scripted session is reproducible. `lmforge chat` (chat_repl.py) is its
terminal and pipe front end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common import ConfigError, LmforgeError, atomic_write_text
from ..config import build_config
from ..inference.engine import default_stop_ids, stream_generate
from ..inference.sampling import SamplingConfig
from ..inference.stop_text import StopText
from ..tokenizers.chat import fit_to_context, has_chat_tokens, render_chat

# The verb's defaults: the one config with these fields changed (`--help` shows them).
CHAT_DEFAULTS = SamplingConfig(max_new_tokens=256, temperature=0.7, top_p=0.9)

# Settings `/params` shows and sets: its name -> the SamplingConfig field.
PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "max_tokens": "max_new_tokens",
    "repetition_penalty": "repetition_penalty",
    "seed": "seed",
    "stop_strings": "stop_strings",
    "stop_token_ids": "stop_token_ids",
}
_SHOWN = {f: p for p, f in PARAMS.items()}

NO_CHAT_TOKENS = (
    "its tokenizer has no chat role tokens (<|system|>, <|user|>, <|assistant|>, <|end|>): "
    "the model was not fine-tuned for conversations; run SFT on it first (`lmforge sft --from "
    "RUN --data CHATS --add-chat-tokens`) or continue text with `lmforge sample`"
)


@dataclass
class TurnInfo:
    """What `ChatSession.reply` did besides the text: the prompt, the tokens, what was dropped."""

    prompt_ids: list[int]  # the ids the answer was generated from (fitted history + header)
    tokens: list[int] = field(default_factory=list)  # the new ids (the stop token left out)
    finish_reason: str = "length"  # "stop", "length" or "interrupted"
    dropped: int = 0  # oldest turns' messages dropped for good to fit the context
    system_left_out: bool = False  # the system message did not fit beside this turn (it stays)
    seed: int | None = None  # the sampler's seed for this answer

    @property
    def interrupted(self) -> bool:
        return self.finish_reason == "interrupted"


class ChatSession:
    """One conversation with a model: its history, sampling settings and turn counter.

    `messages` is what the model sees next turn: the system message (if any) and
    the turns kept so far. `context` is the model's longest sequence (None for a
    recurrent model: nothing is ever dropped).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        params: SamplingConfig = CHAT_DEFAULTS,
        *,
        system: str | None = None,
        compile: bool = False,
    ):
        if not has_chat_tokens(tokenizer):
            raise LmforgeError(NO_CHAT_TOKENS)
        self.model, self.tok, self.compile = model, tokenizer, compile
        self.params = self._checked(params)
        self.system = system or None
        self.turns: list[dict[str, str]] = []  # user / assistant messages after the system one
        self.turn = 0  # answers since the start, /reset or /load: the seed offset
        limit = getattr(model, "max_seq_len", None)
        self.context: int | None = int(limit) if limit else None

    @staticmethod
    def _checked(params: SamplingConfig) -> SamplingConfig:
        if params.n != 1:
            raise ConfigError("n", f"chat gives one answer per turn, got {params.n}")
        return params

    @property
    def messages(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [dict(m) for m in self.turns]

    @property
    def answer_room(self) -> int | None:
        """Tokens kept free for the answer when the history is fitted: max_tokens, capped at
        half the context so that a long max_tokens still leaves room for the history."""
        if self.context is None:
            return None
        return max(1, min(self.params.max_new_tokens, self.context // 2))

    # --- answering -------------------------------------------------------------------

    def reply(
        self,
        user_text: str,
        on_delta: Callable[[str], None] | None = None,
        *,
        on_notice: Callable[[str], None] | None = None,
    ) -> tuple[str, TurnInfo]:
        """Answer `user_text` after the history; returns (answer text, `TurnInfo`).

        `on_delta(text)` receives the answer as it is generated (its pieces join to the
        returned text); `on_notice(line)` hears, before the answer starts, that old
        messages were dropped to fit the context. A KeyboardInterrupt while the answer
        streams (also one raised by `on_delta`) closes the stream: the partial answer
        is kept in the history and returned with ``finish_reason == "interrupted"``.
        Raises LmforgeError, changing nothing, when the message alone does not fit.
        """
        user = {"role": "user", "content": user_text}
        info = self._fit(user)
        if info.dropped and on_notice:
            on_notice(self._dropped_line(info.dropped))
        if info.system_left_out and on_notice:
            on_notice(
                f"the system message does not fit beside this message in the context of "
                f"{self.context} tokens: left out of this answer"
            )
        kept = self.turns[info.dropped :]
        info.seed = None if self.params.seed is None else self.params.seed + self.turn
        text = self._generate(info, on_delta)
        self.turns = [*kept, user, {"role": "assistant", "content": text}]
        self.turn += 1
        return text, info

    def _fit(self, user: dict[str, str]) -> TurnInfo:
        """The prompt of the history + `user`, fitted to leave `answer_room` free."""
        messages = self.messages + [user]
        if self.context is None:
            return TurnInfo(render_chat(self.tok, messages, add_generation_prompt=True).ids)
        room = self.answer_room
        fitted = fit_to_context(
            self.tok, messages, max_len=self.context - room, add_generation_prompt=True
        )
        if fitted is None:
            n = len(render_chat(self.tok, [user], add_generation_prompt=True))
            raise LmforgeError(
                f"the message is {n} tokens with its headers, but the context of {self.context} "
                f"tokens keeps {room} free for the answer, leaving {self.context - room}: "
                "shorten the message (or lower max_tokens with /params)"
            )
        # The system message stays in the session even when it sits out this turn.
        dropped = fitted.dropped - int(fitted.dropped_system)
        return TurnInfo(fitted.chat.ids, dropped=dropped, system_left_out=fitted.dropped_system)

    def _dropped_line(self, n: int) -> str:
        s = "" if n == 1 else "s"
        return f"dropped {n} oldest message{s} to fit the context of {self.context} tokens"

    def _generate(self, info: TurnInfo, on_delta: Callable[[str], None] | None) -> str:
        """Stream the answer to `info.prompt_ids`, filling `info`; the text as shown."""
        shown = StopText(self.params.stop_strings)  # no part of a stop string is shown
        parts: list[str] = []

        def emit(piece: str) -> None:
            if piece:
                parts.append(piece)  # first: an interrupt inside on_delta keeps the piece
                if on_delta is not None:
                    on_delta(piece)

        events = None
        try:
            events = stream_generate(
                self.model, [info.prompt_ids], self.params, tokenizer=self.tok,
                pad_id=self.tok.pad_id or 0, seeds=None if info.seed is None else [info.seed],
                stop_ids=[default_stop_ids(self.tok)], compile=self.compile,
            )  # fmt: skip
            for ev in events:
                if ev.token is not None:
                    info.tokens.append(ev.token)
                else:
                    info.finish_reason = ev.finish_reason or "length"
                emit(shown.push(ev.text_delta))
                if shown.stopped:  # the engine would stop at this token too
                    info.finish_reason = "stop"
                    break
            else:
                emit(shown.flush())
        except KeyboardInterrupt:
            info.finish_reason = "interrupted"
        finally:
            if events is not None:
                events.close()  # stops the computation: no forward runs after this
        return "".join(parts)

    # --- the commands' work ----------------------------------------------------------

    def reset(self) -> None:
        """Forget the turns (the system message stays); the seeds start over."""
        self.turns, self.turn = [], 0

    def set_system(self, text: str | None) -> None:
        """Set (or, with None or "", remove) the system message; used from the next answer."""
        self.system = text or None

    def set_params(self, assignments: dict[str, str]) -> None:
        """Change sampling settings by `/params` name (``max_tokens=200``), validated by
        `SamplingConfig`; on an error nothing changes."""
        overrides = {}
        for name, value in assignments.items():
            key = name.strip().replace("-", "_")
            if key == "max_new_tokens":
                key = "max_tokens"
            if key not in PARAMS:
                raise LmforgeError(f"{name}: not a setting (settings: {', '.join(PARAMS)})")
            overrides[PARAMS[key]] = value
        try:
            self.params = build_config(SamplingConfig, base=self.params, overrides=overrides)
        except ConfigError as e:
            shown = _SHOWN.get(e.field, e.field)
            raise LmforgeError(f"{shown}: {str(e)[len(e.field) + 2 :]}") from None

    def describe_params(self) -> str:
        p = self.params
        items = [f"{name}={getattr(p, f)!r}" for name, f in PARAMS.items() if name != "seed"]
        items = [i for i in items if i not in ("stop_strings=[]", "stop_token_ids=[]")]
        line = " ".join(items) + f" seed={'none' if p.seed is None else p.seed}"
        if self.context is None:
            return line + "\nno context limit (a recurrent model): nothing is dropped"
        return line + (
            f"\ncontext {self.context} tokens, {self.answer_room} kept free for the answer; "
            f"the next answer is turn {self.turn}"
            + ("" if p.seed is None else f" (seed {p.seed + self.turn})")
        )

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write the conversation as one ``{"messages": [...]}`` line (the messages reader's
        format, so `load` and `lmforge sft --data` read it back)."""
        p = Path(path).expanduser()
        if not any(m["role"] == "assistant" and m["content"].strip() for m in self.turns):
            raise LmforgeError("nothing to save yet: the conversation has no answer")
        if p.is_dir():
            raise LmforgeError(f"{p}: is a folder; give a file path")
        if p.exists() and not force:
            raise LmforgeError(f"{p}: exists; add --force to replace it")
        line = json.dumps({"messages": self.messages}, ensure_ascii=False)
        atomic_write_text(p, line + "\n")
        return p

    def load(self, path: str | Path) -> int:
        """Continue the one conversation of a messages JSONL file (as `save` writes it).

        Its system message replaces the session's (without one, the session's stays);
        the seeds start over. Errors name ``file:line``. Returns the messages loaded.
        """
        from ..data.instructions import ReadOptions, iter_conversations

        p = Path(path).expanduser()
        convs = list(iter_conversations(p, ReadOptions(fmt="messages")))
        if len(convs) != 1:
            raise LmforgeError(
                f"{p}: holds {len(convs)} conversations; give a file of one (as /save writes "
                "it), e.g. one line of it: `sed -n 3p FILE > one.jsonl`"
            )
        messages = convs[0].to_dicts()
        if messages[-1]["role"] != "assistant":
            raise LmforgeError(
                f"{p}: the conversation ends with a {messages[-1]['role']} message; /load "
                "continues after an answer (remove the last message or add its answer)"
            )
        if messages[0]["role"] == "system":
            self.system = messages.pop(0)["content"] or None
        self.turns, self.turn = messages, 0
        return len(convs[0].messages)


# --- commands ------------------------------------------------------------------------
