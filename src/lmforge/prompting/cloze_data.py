"""LAMBADA- and TriviaQA-style sets: items, the readers of both real formats, `load_cloze_set`.

An item (`ClozeItem`) is a text to continue and the answers accepted after it:

* ``lambada``: ``{"context": passage without its last word}``; the answer is that
  last word. Read from LAMBADA's files: JSONL lines ``{"text": "..."}`` (the
  ``lambada_test.jsonl`` of the GPT-2 release) or plain text, one passage a line
  (``lambada_test_plain_text.txt``); the target is the text after its last
  white space. The world's ``long_range/*.jsonl`` are such lines with extra
  fields (``kind``, ``distance``, ...), read the same way.
* ``trivia``: ``{"question": ...}``; the answers are the value and its aliases.
  Read from TriviaQA's JSON (``{"Data": [{"Question", "Answer": {"Value",
  "Aliases", "NormalizedAliases"}}, ...]}``, e.g. ``unfiltered-web-dev.json``,
  ``verified-web-dev.json``) or JSONL with one such entry a line (the world's
  ``trivia/*.jsonl``); Hugging Face's lower-case keys (``question``,
  ``answer.value/aliases/normalized_aliases``) are read too.

`load_cloze_set(task, world=..., test=..., train=...)` opens the world's set or a
user's files. Shown examples come from ``train``; without a train file a
seeded pool of ``demo_pool`` items is taken out of the test file and never
scored, so a shown example is never a query. Every item records its
``file:line`` (JSON files: ``file: Data[i]``), and every bad one is refused in
one line naming it.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common import LmforgeError, check_text_file, iter_jsonl

TASKS = ("lambada", "trivia")
WORLD_FOLDERS = {"lambada": "long_range", "trivia": "trivia"}
DEMO_POOL = 100  # items set aside for shown examples when there is no train file
DEMO_POOL_SEED = 0


@dataclass(frozen=True)
class ClozeItem:
    """A text to continue (``fields``) and what counts as right after it."""

    fields: dict[str, str]  # {"context": ...} or {"question": ...}
    answer: str  # written after a shown example
    aliases: tuple[str, ...]  # every accepted answer (the answer first)
    where: str  # file:line
    kind: str = ""  # lambada (world): person/pet/place/object; trivia: the attribute
    distance: int | None = None  # lambada: sentences from the answer's mention to the blank
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class ClozeSet:
    """The items of one task: shown-example pool, test items, candidate words (if any)."""

    name: str
    task: str  # "lambada" or "trivia"
    train: list[ClozeItem]
    test: list[ClozeItem]
    candidates: dict[str, list[str]] = field(default_factory=dict)  # kind -> words
    source: str = ""
    train_source: str = ""


# ---------------------------------------------------------------------------
# LAMBADA

_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")


def mention_distance(context: str, answer: str) -> tuple[int, int] | None:
    """(sentences, words) from the last mention of `answer` in `context` to its end.

    Sentences: the sentence ends (``.``, ``!``, ``?``) after the mention, so 1 means
    the mention is in the sentence just before the blank's; 0 in the blank's own.
    None when the answer is not in the context (about a sixth of real LAMBADA).
    """
    hits = list(re.finditer(rf"(?<!\w){re.escape(answer)}(?!\w)", context))
    if not hits:
        return None
    rest = context[hits[-1].end() :]
    return len(_SENTENCE_END.findall(rest)), len(re.findall(r"\w[\w'-]*", rest))


def split_last_word(text: str, where: str) -> tuple[str, str]:
    """(context, last word) of a LAMBADA passage."""
    body = text.strip()
    cut = max(body.rfind(" "), body.rfind("\n"), body.rfind("\t"))
    if cut <= 0 or not body[cut + 1 :].strip():
        raise LmforgeError(
            f"{where}: a LAMBADA passage needs a context and a last word separated by a "
            f"space; got {text[:60]!r}"
        )
    return body[:cut].rstrip(), body[cut + 1 :]


def _lambada_item(text: Any, row: dict, where: str) -> ClozeItem:
    if not isinstance(text, str) or not text.strip():
        raise LmforgeError(f'{where}: "text" must be a non-empty string (the passage)')
    context, answer = split_last_word(text, where)
    given = row.get("answer")
    if given is not None and given != answer:
        raise LmforgeError(
            f'{where}: "answer" is {given!r} but the passage\'s last word is {answer!r}; '
            "the target of a LAMBADA passage is its last word"
        )
    distance = row.get("distance")
    if distance is None:
        found = mention_distance(context, answer)
        distance = None if found is None else found[0]
    elif not isinstance(distance, int) or isinstance(distance, bool) or distance < 0:
        raise LmforgeError(f'{where}: "distance" must be a whole number >= 0, got {distance!r}')
    extra = {k: v for k, v in row.items() if k not in ("text", "answer", "kind", "distance")}
    return ClozeItem(
        {"context": context}, answer, (answer,), where, str(row.get("kind", "")), distance, extra
    )


def read_lambada(path: str | Path) -> list[ClozeItem]:
    """LAMBADA passages from JSONL (``{"text"}`` lines) or plain text (one passage a line)."""
    p = Path(path)
    out = []
    if p.suffix == ".jsonl" or p.suffix == ".json":
        for i, row in iter_jsonl(p):
            if "text" not in row:
                raise LmforgeError(f'{p}:{i}: no "text" key; each line is {{"text": "passage"}}')
            out.append(_lambada_item(row["text"], row, f"{p}:{i}"))
    else:
        check_text_file(p)
        with open(p, encoding="utf-8") as f:
            for i, line in enumerate(f, start=1):
                if line.strip():
                    out.append(_lambada_item(line, {}, f"{p}:{i}"))
    if not out:
        raise LmforgeError(f"{p}: holds no passages")
    return out


# ---------------------------------------------------------------------------
# TriviaQA


def _get(d: dict, *names: str) -> Any:
    for n in names:
        if n in d:
            return d[n]
    return None


def _trivia_item(row: Any, where: str) -> ClozeItem:
    if not isinstance(row, dict):
        raise LmforgeError(f"{where}: expected a JSON object (a TriviaQA entry)")
    question = _get(row, "Question", "question")
    if not isinstance(question, str) or not question.strip():
        raise LmforgeError(f'{where}: no "Question" string; each entry needs its question')
    ans = _get(row, "Answer", "answer")
    if ans is None:
        raise LmforgeError(
            f'{where}: no "Answer"; the TriviaQA test files keep their answers secret: use a '
            "dev or verified file (e.g. unfiltered-web-dev.json)"
        )
    if isinstance(ans, str):
        ans = {"Value": ans}
    if not isinstance(ans, dict):
        raise LmforgeError(f'{where}: "Answer" must be an object with "Value" and "Aliases"')
    value = _get(ans, "Value", "value")
    if not isinstance(value, str) or not value.strip():
        raise LmforgeError(f'{where}: "Answer" has no "Value" string')
    aliases: list[str] = [value]
    for key in ("Aliases", "aliases", "NormalizedAliases", "normalized_aliases"):
        more = ans.get(key) or []
        if not isinstance(more, list) or not all(isinstance(a, str) for a in more):
            raise LmforgeError(f'{where}: "Answer.{key}" must be a list of strings')
        aliases += more
    extra = {k: row[k] for k in ("QuestionId", "question_id", "QuestionSource") if k in row}
    kind = row.get("attribute", "")
    return ClozeItem(
        {"question": question.strip()}, value.strip(),
        tuple(dict.fromkeys(a.strip() for a in aliases if a.strip())), where, str(kind),
        extra=extra,
    )  # fmt: skip


def read_trivia(path: str | Path) -> list[ClozeItem]:
    """TriviaQA entries from its JSON (``{"Data": [...]}`` or a list) or JSONL (one a line)."""
    p = Path(path)
    out: list[ClozeItem] = []
    if p.suffix == ".jsonl":
        for i, row in iter_jsonl(p):
            out.append(_trivia_item(row, f"{p}:{i}"))
    else:
        check_text_file(p)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise LmforgeError(
                f"{p}:{e.lineno}: malformed JSON ({e.msg}); a TriviaQA file is one JSON "
                'object {"Data": [...]} (or use .jsonl, one entry a line)'
            ) from None
        rows = doc.get("Data", doc.get("data")) if isinstance(doc, dict) else doc
        if not isinstance(rows, list):
            raise LmforgeError(f'{p}: expected {{"Data": [entries]}} or a list of entries')
        for i, row in enumerate(rows):
            out.append(_trivia_item(row, f"{p}: Data[{i}]"))
    if not out:
        raise LmforgeError(f"{p}: holds no questions")
    return out


# ---------------------------------------------------------------------------
# Opening a set

READERS = {"lambada": read_lambada, "trivia": read_trivia}


def split_pool(
    items: list[ClozeItem], n: int, seed: int = DEMO_POOL_SEED
) -> tuple[list[ClozeItem], list[ClozeItem]]:
    """(pool, rest): `n` items drawn with `seed` for shown examples, the rest to score."""
    if len(items) < 2:
        raise LmforgeError(
            f"{items[0].where.rsplit(':', 1)[0] if items else 'the file'}: holds "
            f"{len(items)} item; give a train file for the shown examples or more items"
        )
    n = max(1, min(n, len(items) // 2))
    index = list(range(len(items)))
    random.Random(seed).shuffle(index)
    pool = set(index[:n])
    return [items[i] for i in sorted(pool)], [x for i, x in enumerate(items) if i not in pool]


def load_cloze_set(
    task: str,
    *,
    world: str | Path | None = None,
    test: str | Path | None = None,
    train: str | Path | None = None,
    demo_pool: int = DEMO_POOL,
) -> ClozeSet:
    """The `task` set of the world (``world``) or of a user's files (``test``, ``train``)."""
    if task not in TASKS:
        raise LmforgeError(f"unknown cloze task {task!r}; known: {', '.join(TASKS)}")
    read = READERS[task]
    if test is None:
        if world is None:
            raise LmforgeError(f"{task}: give the world folder (--world DIR) or a {task} test file")
        folder = Path(world) / WORLD_FOLDERS[task]
        if not folder.is_dir():
            raise LmforgeError(
                f"{folder}: not found; --world must be a folder made by `lmforge world` "
                f"(version 3 or later has {WORLD_FOLDERS[task]}/; rebuild it with --force)"
            )
        cands: dict[str, list[str]] = {}
        if task == "lambada" and (folder / "candidates.json").is_file():
            from ..config import read_yaml

            raw = read_yaml(folder / "candidates.json")
            cands = {str(k): [str(w) for w in v] for k, v in raw.items()}
        return ClozeSet(
            task, task, read(folder / "train.jsonl"), read(folder / "test.jsonl"), cands,
            source=str(folder / "test.jsonl"), train_source=str(folder / "train.jsonl"),
        )  # fmt: skip
    items = read(test)
    if train is not None:
        return ClozeSet(task, task, read(train), items, source=str(test), train_source=str(train))
    pool, rest = split_pool(items, demo_pool)
    return ClozeSet(
        task, task, pool, rest, source=str(test),
        train_source=f"{len(pool)} items of {test} drawn with seed {DEMO_POOL_SEED} "
        "(never scored)",
    )  # fmt: skip
