"""Classification tasks for prompting: examples, prompt formats, label words, `load_task`.

A task is a labelled data set plus a way to turn an example into text:

* `Example(fields, label)`: named text fields (``{"text": ...}`` or
  ``{"premise": ..., "hypothesis": ...}``) and the label's name;
* `PromptFormat`: an instruction, a template over the fields that renders an
  example *without* its label (``"Review: {text}\\nSentiment:"``), the text put
  before a label word (``label_sep``, a space) and after it in a shown example
  (``label_suffix``), the separator between examples (a blank line), and
  optionally its own label words;
* label words: one or several words per label (``{"Sci/Tech": ["Technology",
  "Science"]}``); the first is the one written into shown examples. A label
  word may be several tokens. The score of a label with synonyms is the
  log of the summed probabilities of its words (log-sum-exp), as "Calibrate
  Before Use" adds the probabilities of a class's names.

`load_task(name_or_path, world=, fmt=)` opens a shipped task or a user task file:

* ``sentiment``, ``topic``: the synthetic world's sets (``--world DIR``:
  ``DIR/classification/<set>/{train,test}.jsonl`` and ``labels.json``);
* ``sst2``, ``agnews``, ``trec``, ``rte``, ``cb``: the reference sets of "Calibrate
  Before Use" (Zhao et al. 2021) in ``../shared/data/classification`` (or
  ``data_dir=``, or ``$LMFORGE_CLASSIFICATION_DATA``), with that paper's prompt
  formats as format 0 and alternatives after it (`lmforge.prompting.formats`);
  see `lmforge.prompting.task_files` for how each file is read (AG News has no
  train file: a seeded, balanced train pool is taken out of its test file);
* a task file: a YAML or JSON spec (``*.yaml``, ``*.yml``, ``*.json``)::

      name: reviews                       # default: the file's stem
      labels: [negative, positive]        # the label set (order = column order)
      label_words:                        # optional; default: the label names
        negative: [bad, awful]            # a word or a list of synonyms
        positive: good
      train: train.jsonl                  # JSONL, relative to the spec file
      test: test.jsonl
      label_field: label                  # default "label"; other keys are fields
      formats:                            # or one `format:` mapping
        - name: review
          instruction: "Is each review good or bad?"
          template: "Review: {text}\\nVerdict:"
          label_sep: " "                  # defaults as in PromptFormat
          separator: "\\n\\n"

  Every JSONL row holds the label field and the template's fields as strings; a
  label outside ``labels`` is refused with its ``file:line``.

``fmt`` picks a format by index or name. `ClassificationTask.with_format` gives
the same data in another format without reading anything again (format sweeps).
"""

from __future__ import annotations

import dataclasses
import os
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common import LmforgeError

WORLD_TASKS = ("sentiment", "topic")
SHARED_TASKS = ("sst2", "agnews", "trec", "rte", "cb")
SPEC_SUFFIXES = (".yaml", ".yml", ".json")
DATA_ENV = "LMFORGE_CLASSIFICATION_DATA"


@dataclass
class Example:
    """One labelled example: its text fields and its label's name (``where``: file:line)."""

    fields: dict[str, str]
    label: str
    where: str = ""


@dataclass(frozen=True)
class PromptFormat:
    """How an example becomes text (see the module doc)."""

    name: str
    template: str  # over the fields; the rendered example without its label
    instruction: str = ""
    label_words: Mapping[str, Sequence[str]] | None = None  # None: the task's own
    label_sep: str = " "  # before the label word ("Sentiment:" + " positive")
    label_suffix: str = ""  # after the label word in a shown example
    separator: str = "\n\n"  # between examples (and between the last one and the query)
    instruction_sep: str = "\n\n"  # after the instruction, when there is one

    def fields(self) -> tuple[str, ...]:
        """The field names the template uses, in order of first use."""
        names: list[str] = []
        for _, name, _, _ in string.Formatter().parse(self.template):
            if name is not None:
                if name == "" or not name.isidentifier():
                    raise LmforgeError(
                        f"format {self.name!r}: template {self.template!r} has a placeholder "
                        f"{{{name}}}; use named fields such as {{text}} (write {{{{ for a brace)"
                    )
                if name not in names:
                    names.append(name)
        return tuple(names)


def _word_lists(words: Mapping[str, Any], labels: Sequence[str], where: str) -> dict[str, list]:
    """{label: [word, ...]} from a mapping of label to a word or a list of words."""
    out: dict[str, list[str]] = {}
    for label in labels:
        if label not in words:
            raise LmforgeError(f"{where}: label_words has no entry for label {label!r}")
        w = words[label]
        ws = [w] if isinstance(w, str) else list(w)
        if not ws or not all(isinstance(x, str) for x in ws):
            raise LmforgeError(
                f"{where}: label_words[{label!r}] must be a word or a non-empty list of words"
            )
        out[label] = ws
    extra = sorted(set(words) - set(labels))
    if extra:
        raise LmforgeError(
            f"{where}: label_words names labels outside the label set: {', '.join(extra)} "
            f"(labels: {', '.join(labels)})"
        )
    return out


@dataclass
class ClassificationTask:
    """A labelled data set in one prompt format; ``formats`` lists every format it knows."""

    name: str
    labels: list[str]
    label_words: dict[str, list[str]]  # of the current format; the first word is the main one
    train: list[Example]
    test: list[Example]
    format: PromptFormat
    formats: tuple[PromptFormat, ...] = ()
    base_label_words: dict[str, list[str]] = field(default_factory=dict)  # the task's own
    source: str = ""  # where the data came from, for reports

    def __post_init__(self) -> None:
        if not self.formats:
            self.formats = (self.format,)
        if not self.base_label_words:
            self.base_label_words = {k: list(v) for k, v in self.label_words.items()}
        if len(set(self.labels)) != len(self.labels):
            raise LmforgeError(f"task {self.name}: labels repeat: {', '.join(self.labels)}")
        if len(self.labels) < 2:
            raise LmforgeError(f"task {self.name}: needs at least two labels, got {self.labels}")

    # -- text ----------------------------------------------------------------------

    @property
    def fields(self) -> tuple[str, ...]:
        return self.format.fields()

    @property
    def instruction(self) -> str:
        return self.format.instruction

    @property
    def separator(self) -> str:
        return self.format.separator

    def query_text(self, example: Example) -> str:
        """The example rendered without its label, e.g. ``"Review: good film\\nSentiment:"``."""
        try:
            return self.format.template.format_map(example.fields)
        except KeyError as e:
            where = f"{example.where}: " if example.where else ""
            raise LmforgeError(
                f"{where}example has no field {e.args[0]!r}, which format {self.format.name!r} "
                f"of task {self.name} uses (fields: {', '.join(sorted(example.fields))})"
            ) from None

    def label_text(self, label: str, synonym: int = 0) -> str:
        """The continuation that is scored for `label`, e.g. ``" positive"``."""
        return self.format.label_sep + self.label_words[label][synonym]

    def demo_text(self, example: Example) -> str:
        """A shown example: the query text, its label's main word and the label suffix."""
        return self.query_text(example) + self.label_text(example.label) + self.format.label_suffix

    def content_free(self, text: str) -> Example:
        """An example whose every field is `text` (``"N/A"``, ``"[MASK]"``, ``""``)."""
        return Example({f: text for f in self.fields}, label="", where=f"content-free {text!r}")

    # -- formats -------------------------------------------------------------------

    def find_format(self, fmt: int | str) -> PromptFormat:
        """A format of this task by index (also as a string, ``"2"``) or by name."""
        names = [f.name for f in self.formats]
        if isinstance(fmt, str) and fmt.strip().lstrip("-").isdigit():
            fmt = int(fmt)
        if isinstance(fmt, int):
            if not -len(self.formats) <= fmt < len(self.formats):
                raise LmforgeError(
                    f"task {self.name}: format {fmt} does not exist; it has "
                    f"{len(self.formats)} (0..{len(self.formats) - 1}: {', '.join(names)})"
                )
            return self.formats[fmt]
        for f in self.formats:
            if f.name == fmt:
                return f
        raise LmforgeError(
            f"task {self.name}: no format named {fmt!r}; known: {', '.join(names)} (or an index)"
        )

    def with_format(self, fmt: int | str | PromptFormat) -> ClassificationTask:
        """The same data (shared, not copied) in format `fmt` (index, name or a PromptFormat)."""
        f = fmt if isinstance(fmt, PromptFormat) else self.find_format(fmt)
        words = self.base_label_words
        if f.label_words is not None:
            words = _word_lists(f.label_words, self.labels, f"task {self.name} format {f.name!r}")
        formats = self.formats if f in self.formats else (*self.formats, f)
        task = dataclasses.replace(self, format=f, label_words=words, formats=formats)
        task.check_examples()
        return task

    def check_examples(self) -> None:
        """Every example's label is in the label set and has the fields the format uses."""
        need = self.fields
        known = set(self.labels)
        for split in (self.train, self.test):
            for ex in split:
                if ex.label not in known:
                    where = ex.where or f"task {self.name}"
                    raise LmforgeError(
                        f"{where}: label {ex.label!r} is not one of the task's labels "
                        f"({', '.join(self.labels)})"
                    )
                missing = [n for n in need if n not in ex.fields]
                if missing:
                    where = ex.where or f"task {self.name}"
                    raise LmforgeError(
                        f"{where}: no field {missing[0]!r}, which format {self.format.name!r} "
                        f"uses (the row has: {', '.join(sorted(ex.fields)) or 'nothing'})"
                    )


# ---------------------------------------------------------------------------
# Opening tasks


def known_tasks() -> list[str]:
    """The shipped task names (world sets first)."""
    return [*WORLD_TASKS, *SHARED_TASKS]


def default_data_dir() -> Path:
    """Where the shared classification sets are: $LMFORGE_CLASSIFICATION_DATA, else
    ``../shared/data/classification`` from the working folder, else beside the source tree."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    here = Path("..") / "shared" / "data" / "classification"
    if here.is_dir():
        return here
    # src/lmforge/prompting/tasks.py -> the repository's parent holds shared/
    return Path(__file__).resolve().parents[4] / "shared" / "data" / "classification"


def load_task(
    name_or_path: str,
    *,
    world: str | Path | None = None,
    fmt: int | str = 0,
    data_dir: str | Path | None = None,
) -> ClassificationTask:
    """Open a task by name or spec file (see the module doc) in format `fmt`."""
    from . import formats as F
    from . import task_files as R

    name = str(name_or_path)
    if name.endswith(SPEC_SUFFIXES) or (Path(name).suffix and Path(name).is_file()):
        task = R.read_task_spec(name)
    elif name in WORLD_TASKS:
        if world is None:
            raise LmforgeError(
                f"task {name} is a set of the synthetic world: give the world folder "
                "(--world DIR, made by `lmforge world`)"
            )
        meta, train, test = R.read_world_set(world, name)
        task = F.world_task(name, meta, train, test, source=str(Path(world) / "classification"))
    elif name in SHARED_TASKS:
        root = Path(data_dir) if data_dir is not None else default_data_dir()
        if not root.is_dir():
            raise LmforgeError(
                f"task {name}: reference data folder {root} not found; pass data_dir "
                f"(--data-dir) or set ${DATA_ENV} to the folder holding {name}/"
            )
        train, test, source = R.read_shared_set(root, name)
        task = F.shared_task(name, train, test, source=source)
    else:
        raise LmforgeError(
            f"unknown task {name!r}; known: {', '.join(known_tasks())} (sentiment and topic "
            "need --world), or a task spec file (.yaml, .yml, .json)"
        )
    return task.with_format(fmt)
