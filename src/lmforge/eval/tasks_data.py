"""Task records for `evaluate_tasks`: read, checked, and labelled with their split.

A task record is one line of a JSONL file as `lmforge world` writes them
(``instructions/test.jsonl``, ``instructions/heldout_templates.jsonl``,
``dialogues/test.jsonl``, preference prompts)::

    {"messages": [user, assistant], "task", "subtask", "template", "difficulty",
     "cot", "answer", "answer_type", "choices"?, "problem_id", "heldout_task"?}

The conversation is ``messages`` (a final assistant turn, the reference reply, is
dropped from the prompt) or ``prompt`` (a list of messages, as in preference
files). ``answer`` is required; ``answer_type`` and ``checker`` are checked
against what exists. Nothing else is required, so hand-made records work.

Every record carries a *split*, given per file: ``seen`` by default,
``heldout_templates`` / ``heldout_task`` for the world's ``heldout_templates.jsonl`` /
``heldout_tasks.jsonl``, or any label given as ``FILE=LABEL``. A record with a true ``heldout_task`` is in the split
``heldout_task`` whatever its file says (a task family never trained on).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common import LmforgeError, iter_jsonl
from ..data.world.problems import ANSWER_TYPES

SEEN, HELDOUT_TEMPLATES, HELDOUT_TASK = "seen", "heldout_templates", "heldout_task"
ROLES = ("system", "user", "assistant")
_LABEL = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class TaskRecord:
    """One record to evaluate: the record as read, its split, and where it came from."""

    data: dict[str, Any]
    split: str = SEEN
    file: str = ""  # "" for records made in code
    line: int = 0  # 1-based line in `file` (or the index of a record made in code)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.file else f"record {self.line}"

    @property
    def group_split(self) -> str:
        """The split this record counts in: `heldout_task` beats the file's label."""
        return HELDOUT_TASK if self.data.get("heldout_task") else self.split

    def prompt_messages(self) -> list[dict[str, str]]:
        """The conversation before the reply: `messages` without a final assistant turn."""
        messages = self.data.get("messages")
        if messages is None:
            messages = self.data.get("prompt")
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        if msgs and msgs[-1]["role"] == "assistant":
            msgs = msgs[:-1]
        return msgs


def default_split(path: str | Path) -> str:
    """The split a file's records belong to when none is given: by its name (the world's
    ``heldout_templates.jsonl`` and ``heldout_tasks.jsonl``; anything else is ``seen``)."""
    return {HELDOUT_TEMPLATES: HELDOUT_TEMPLATES, "heldout_tasks": HELDOUT_TASK}.get(
        Path(path).stem, SEEN
    )


def parse_data_spec(spec: str) -> tuple[Path, str]:
    """``FILE`` or ``FILE=LABEL`` (a split label such as ``seen``) -> (path, split)."""
    if "=" in spec and not Path(spec).exists():
        file, label = spec.rsplit("=", 1)
        if not file or not _LABEL.match(label):
            raise LmforgeError(
                f"--data {spec}: expected FILE or FILE=LABEL, LABEL made of letters, digits, "
                "'_', '-' or '.' (e.g. test.jsonl=seen)"
            )
        return Path(file), label
    return Path(spec), default_split(spec)


def check_record(rec: dict[str, Any], where: str, checkers: Sequence[str] = ()) -> None:
    """Refuse a record the evaluator cannot prompt or score, naming `where` (file:line)."""
    messages = rec.get("messages", rec.get("prompt"))
    if not isinstance(messages, list) or not messages:
        raise LmforgeError(
            f"{where}: no conversation; a task record needs 'messages' (a list of "
            '{"role", "content"}) as `lmforge world` writes in instructions/*.jsonl'
        )
    for k, m in enumerate(messages):
        if (
            not isinstance(m, dict)
            or m.get("role") not in ROLES
            or not isinstance(m.get("content"), str)
        ):
            raise LmforgeError(
                f'{where}: message {k} must be {{"role": one of {", ".join(ROLES)}, '
                '"content": text}'
            )
    if any(m["role"] == "system" for m in messages[1:]):
        raise LmforgeError(f"{where}: a system message may only be the first message")
    if messages[-1]["role"] == "assistant" and len(messages) == 1:
        raise LmforgeError(f"{where}: the conversation is only an assistant reply; nothing to ask")
    if "answer" not in rec or rec["answer"] is None or str(rec["answer"]).strip() == "":
        raise LmforgeError(
            f"{where}: record has no 'answer'; task evaluation needs records with answers "
            "(instructions/test.jsonl or heldout_templates.jsonl from `lmforge world`)"
        )
    answer_type = rec.get("answer_type")
    if answer_type is not None and answer_type not in ANSWER_TYPES:
        raise LmforgeError(
            f"{where}: answer_type {answer_type!r} is unknown; use one of {', '.join(ANSWER_TYPES)}"
        )
    choices = rec.get("choices")
    if choices is not None and (
        not isinstance(choices, list) or not all(isinstance(c, str) for c in choices)
    ):
        raise LmforgeError(f"{where}: 'choices' must be a list of strings")
    checker = rec.get("checker")
    if checker is not None and checkers and checker not in checkers:
        raise LmforgeError(
            f"{where}: checker {checker!r} is unknown; use one of {', '.join(checkers)}"
        )


def read_task_file(
    path: str | Path, split: str | None = None, checkers: Sequence[str] = ()
) -> list[TaskRecord]:
    """Every record of one JSONL file, checked, labelled `split` (default: by file name)."""
    split = split or default_split(path)
    out = []
    for line, rec in iter_jsonl(path):
        check_record(rec, f"{path}:{line}", checkers)
        out.append(TaskRecord(rec, split, str(path), line))
    if not out:
        raise LmforgeError(f"{path}: holds no records (only blank lines)")
    return out


def load_task_files(
    specs: Sequence[str | Path | tuple[str | Path, str]], checkers: Sequence[str] = ()
) -> list[TaskRecord]:
    """Records of several files, in order: each spec a path, ``"FILE=LABEL"`` or (path, label)."""
    records: list[TaskRecord] = []
    for spec in specs:
        if isinstance(spec, tuple):
            path, split = Path(spec[0]), spec[1]
        else:
            path, split = parse_data_spec(str(spec))
        records.extend(read_task_file(path, split, checkers))
    return records


def as_task_records(records: Sequence[TaskRecord | dict[str, Any]]) -> list[TaskRecord]:
    """`TaskRecord`s as they are; plain dicts checked and wrapped (split ``seen`` unless the
    dict names one under ``split``), numbered from 1 for messages."""
    out = []
    for i, r in enumerate(records, start=1):
        if isinstance(r, TaskRecord):
            out.append(r)
            continue
        if not isinstance(r, dict):
            raise LmforgeError(f"record {i}: expected a dict, got {type(r).__name__}")
        check_record(r, f"record {i}")
        out.append(TaskRecord(r, str(r.get("split") or SEEN), "", i))
    return out
