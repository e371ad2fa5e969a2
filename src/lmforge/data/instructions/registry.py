"""The registry of task templates (FLAN / T0 style) for records that carry raw fields.

A GSM8K record (question, solution, answer), an Alpaca or Self-Instruct record
(instruction, input, output) and some world records (fields recovered through
their world template, see `world_fields.py`) can be phrased many ways.
`TEMPLATES[id]` is one phrasing: the fields it fills, whether it is held out
(never used for training: it measures generalisation to an unseen phrasing),
and whether it is *inverted* — the task turned around, as FLAN does: given the
answer and the reasoning, write the question; given a review's label, write
the review. A forward template whose target can be checked records the answer,
its type and the extractor that scores it (`answers.py`); an inverted one's
target is free text and records none.

Ids are `<kind>/<group>/<name>`, where `t*` are seen and `h*` held out, so
globs such as `gsm8k/cot/*` or `*/h*` select them.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from ...tokenizers.chat import Conversation, Message
from ..world.templates import COT_INSTRUCTION, DIRECT_INSTRUCTIONS

DIRECT_INSTRUCTION = DIRECT_INSTRUCTIONS["number"]

NUMBER, CHOICE = "number", "choice"


@dataclass(frozen=True)
class TaskTemplate:
    id: str
    kind: str  # the fields it fills: "gsm8k", "alpaca", or a world task such as "sentiment"
    user: tuple[str, ...]  # alternatives: the first whose fields are all non-empty is used
    assistant: str
    heldout: bool = False
    inverted: bool = False
    answer: str | None = None  # the field holding the checkable answer (None: free text)
    answer_type: str | None = None
    extractor: str | None = None  # how `answers.score` finds the answer in a response
    cot: bool | None = None  # chain-of-thought target (True), direct (False), n/a (None)

    def render(self, fields: dict[str, str]) -> tuple[str, str] | None:
        """(user, assistant) texts, or None when a field they need is missing or empty."""
        if not _filled(self.assistant, fields):
            return None
        for text in self.user:
            if _filled(text, fields):
                return text.format(**fields), self.assistant.format(**fields)
        return None


def _names(text: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(text) if name]


def _filled(text: str, fields: dict[str, str]) -> bool:
    return all(isinstance(fields.get(n), str) and fields[n].strip() for n in _names(text))


def _gsm8k() -> list[TaskTemplate]:
    cot_target = "{solution}\n#### {final}"
    forward = dict(answer="answer", answer_type=NUMBER, extractor="gsm8k")
    return [
        # t1 of each is what the reader writes: the world's own CoT / direct instructions.
        TaskTemplate(
            "gsm8k/cot/t1",
            "gsm8k",
            (f"{{question}}\n{COT_INSTRUCTION}",),
            cot_target,
            cot=True,
            **forward,
        ),
        TaskTemplate(
            "gsm8k/cot/t2",
            "gsm8k",
            (
                "Solve this math problem step by step, then give the final answer "
                "after ####.\n{question}",
            ),
            cot_target,
            cot=True,
            **forward,
        ),
        TaskTemplate(
            "gsm8k/cot/h1",
            "gsm8k",
            ("Question: {question}\nWork through it one step at a time and end with the answer.",),
            cot_target,
            heldout=True,
            cot=True,
            **forward,
        ),
        TaskTemplate(
            "gsm8k/direct/t1",
            "gsm8k",
            (f"{{question}}\n{DIRECT_INSTRUCTION}",),
            "{final}",
            cot=False,
            **forward,
        ),
        TaskTemplate(
            "gsm8k/direct/t2",
            "gsm8k",
            ("Answer with a single number.\n{question}",),
            "{final}",
            cot=False,
            **forward,
        ),
        TaskTemplate(
            "gsm8k/direct/h1",
            "gsm8k",
            ("What is the answer to this problem? Give only the number.\n{question}",),
            "{final}",
            heldout=True,
            cot=False,
            **forward,
        ),
        # Inverted: from the worked solution back to the problem.
        TaskTemplate(
            "gsm8k/inverse/t1",
            "gsm8k",
            (
                "Write a math word problem that this solution answers.\n"
                "Solution:\n{solution}\nFinal answer: {final}",
            ),
            "{question}",
            inverted=True,
        ),
        TaskTemplate(
            "gsm8k/inverse/h1",
            "gsm8k",
            (
                "The answer to a word problem is {final}, reached like this:\n{solution}\n"
                "What was the problem?",
            ),
            "{question}",
            heldout=True,
            inverted=True,
        ),
    ]


def _alpaca() -> list[TaskTemplate]:
    return [
        TaskTemplate(
            "alpaca/forward/t1", "alpaca", ("{instruction}\n\n{input}", "{instruction}"), "{output}"
        ),
        TaskTemplate(
            "alpaca/forward/t2",
            "alpaca",
            ("Instruction: {instruction}\nInput: {input}", "Instruction: {instruction}"),
            "{output}",
        ),
        TaskTemplate(
            "alpaca/forward/t3", "alpaca", ("{input}\n\n{instruction}", "{instruction}"), "{output}"
        ),
        # The prompt of the Stanford Alpaca paper, held out.
        TaskTemplate(
            "alpaca/forward/h1",
            "alpaca",
            (
                "Below is an instruction that describes a task, paired with an input that "
                "provides further context. Write a response that appropriately completes "
                "the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}",
                "Below is an instruction that describes a task. Write a response that "
                "appropriately completes the request.\n\n### Instruction:\n{instruction}",
            ),
            "{output}",
            heldout=True,
        ),
        TaskTemplate(
            "alpaca/inverse/t1",
            "alpaca",
            (
                "Here is an input and the response to it.\nInput: {input}\n"
                "Response: {output}\nWrite the instruction that was given.",
                "Here is a response: {output}\nWrite the instruction that it answers.",
            ),
            "{instruction}",
            inverted=True,
        ),
        TaskTemplate(
            "alpaca/inverse/h1",
            "alpaca",
            (
                "What task turns this input:\n{input}\ninto this output:\n{output}",
                "What request would get this reply?\n{output}",
            ),
            "{instruction}",
            heldout=True,
            inverted=True,
        ),
    ]


def _world() -> list[TaskTemplate]:
    """Inverted phrasings of world tasks, filled from fields recovered from the records."""
    return [
        TaskTemplate("sentiment/inverse/t1", "sentiment", ("Write a short {answer} review.",),
                     "{text}", inverted=True),
        TaskTemplate("sentiment/inverse/h1", "sentiment",
                     ("Give an example of a review whose sentiment is {answer}.",), "{text}",
                     heldout=True, inverted=True),
        TaskTemplate("topic/inverse/t1", "topic", ("Write a short text about {answer}.",),
                     "{text}", inverted=True),
        TaskTemplate("topic/inverse/h1", "topic",
                     ("Here is a topic: {answer}. Write a few sentences on it.",), "{text}",
                     heldout=True, inverted=True),
        TaskTemplate("word_problem/inverse/t1", "word_problem",
                     ("Write a word problem that this solution answers.\n{reasoning}\n"
                      "Answer: {answer}",), "{problem}", inverted=True),
        TaskTemplate("word_problem/inverse/h1", "word_problem",
                     ("A story problem has the answer {answer}, worked out like this:\n"
                      "{reasoning}\nWhat was the problem?",), "{problem}",
                     heldout=True, inverted=True),
    ]  # fmt: skip


TEMPLATES: dict[str, TaskTemplate] = {t.id: t for t in (*_gsm8k(), *_alpaca(), *_world())}


def templates_for(kind: str, *, inverted: bool = False) -> tuple[TaskTemplate, ...]:
    """The templates of a kind: the forward ones, plus the inverted ones if asked (held-out ones
    included: the caller decides where they go)."""
    return tuple(t for t in TEMPLATES.values() if t.kind == kind and (inverted or not t.inverted))


# Meta keys that describe a conversation's target; an inverted rendering drops them.
ANSWER_KEYS = ("answer", "answer_type", "extractor", "cot", "choices")


def render_conversation(
    template: TaskTemplate, fields: dict[str, str], meta: dict[str, Any]
) -> Conversation | None:
    """`fields` through `template` as a user/assistant Conversation (None if a field is missing).

    `meta` is carried over without its answer keys; the template adds its own
    (`template`, and `answer`/`answer_type`/`extractor`/`cot` when it is checkable).
    """
    texts = template.render(fields)
    if texts is None:
        return None
    user, assistant = texts
    out = {k: v for k, v in meta.items() if k not in ANSWER_KEYS}
    out["template"] = template.id
    if template.answer is not None:
        out["answer"] = fields[template.answer]
        out["answer_type"] = template.answer_type
        out["extractor"] = template.extractor
        if "choices" in meta and template.answer_type == CHOICE:
            out["choices"] = meta["choices"]
    if template.cot is not None:
        out["cot"] = template.cot
    return Conversation([Message("user", user), Message("assistant", assistant)], out)
