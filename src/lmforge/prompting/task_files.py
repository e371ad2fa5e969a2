"""Readers of classification data: the world's sets, the reference sets, user task specs.

Each reader returns `Example`s whose ``where`` is ``file:line``, so a bad row is
named in one line. The reference sets (``../shared/data/classification``):

* ``sst2/stsa.binary.{train,dev}``: ``<0|1> <text>`` (0 = negative); dev is the
  test split;
* ``agnews/test.csv`` + ``classes.txt``: CSV ``Class Index,Title,Description``
  (1..4). There is no train file, so a train pool of `AGNEWS_TRAIN_PER_LABEL`
  rows per class is drawn from it with seed `AGNEWS_POOL_SEED` (balanced) and the
  remaining rows are the test split: the two never share a row. Text is
  ``"{title}. {description}"`` with the file's escapes undone (``#39;`` is an
  apostrophe, ``quot;`` a quote, ``\\`` a space), as "Calibrate Before Use" does;
* ``trec/{train,test}.txt``: ``COARSE:fine question``; the label is the coarse
  class, the tokenised text is detokenised (``" 's"`` -> ``"'s"``, `` `` `` and
  ``''`` -> ``"``, no space before ``?`` or ``,``) as that paper's code does;
* ``rte/{train,val}.jsonl``, ``cb/{train,val}.jsonl``: ``{"premise", "hypothesis",
  "label"}``; val is the test split.
"""

from __future__ import annotations

import csv
import html
import random
import re
from pathlib import Path
from typing import Any

from ..common import LmforgeError, check_text_file, iter_jsonl
from .tasks import SPEC_SUFFIXES, ClassificationTask, Example, PromptFormat, _word_lists

AGNEWS_TRAIN_PER_LABEL = 100
AGNEWS_POOL_SEED = 0


def _lines(path: Path):
    """(line number, text without the newline) of a UTF-8 text file, blank lines skipped."""
    p = check_text_file(path)
    with open(p, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if line.strip():
                yield i, line


# ---------------------------------------------------------------------------
# The world


def read_world_set(world: str | Path, name: str) -> tuple[dict, list[Example], list[Example]]:
    """(labels.json, train, test) of ``WORLD/classification/<name>/``."""
    from ..config import read_yaml

    folder = Path(world) / "classification" / name
    if not folder.is_dir():
        raise LmforgeError(
            f"{folder}: not found; --world must be a folder made by `lmforge world` "
            f"(it has classification/{name}/)"
        )
    meta = read_yaml(folder / "labels.json")
    for key in ("labels", "prompt"):
        if key not in meta:
            raise LmforgeError(f"{folder / 'labels.json'}: has no {key!r}")
    return meta, _text_label_rows(folder / "train.jsonl"), _text_label_rows(folder / "test.jsonl")


def _text_label_rows(path: Path, label_field: str = "label") -> list[Example]:
    """Rows of a JSONL file: every key but the label is a field (strings only)."""
    out = []
    for i, row in iter_jsonl(path):
        where = f"{path}:{i}"
        if label_field not in row:
            raise LmforgeError(f"{where}: no {label_field!r} key; each row needs its label")
        fields = {}
        for k, v in row.items():
            if k == label_field:
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                v = str(v)
            if isinstance(v, str):
                fields[k] = v
        out.append(Example(fields, str(row[label_field]), where))
    if not out:
        raise LmforgeError(f"{path}: holds no rows")
    return out


# ---------------------------------------------------------------------------
# The reference sets


def read_shared_set(root: Path, name: str) -> tuple[list[Example], list[Example], str]:
    """(train, test, source description) of a reference set under `root`."""
    folder = root / name
    if not folder.is_dir():
        raise LmforgeError(f"task {name}: {folder} not found (reference data under {root})")
    if name == "sst2":
        train = read_sst2(folder / "stsa.binary.train")
        test = read_sst2(folder / "stsa.binary.dev")
        return train, test, f"{folder}: stsa.binary.train / stsa.binary.dev"
    if name == "agnews":
        train, test = read_agnews(folder / "test.csv", folder / "classes.txt")
        return (
            train,
            test,
            (
                f"{folder}/test.csv: train pool = {AGNEWS_TRAIN_PER_LABEL} rows per class drawn "
                f"with seed {AGNEWS_POOL_SEED}, test = the other rows"
            ),
        )
    if name == "trec":
        return read_trec(folder / "train.txt"), read_trec(folder / "test.txt"), str(folder)
    if name in ("rte", "cb"):
        train = read_pairs(folder / "train.jsonl")
        test = read_pairs(folder / "val.jsonl")
        return train, test, f"{folder}: train.jsonl / val.jsonl"
    raise LmforgeError(f"no reader for reference set {name!r}")


def read_sst2(path: Path) -> list[Example]:
    """``<0|1> <text>`` lines (0 negative, 1 positive)."""
    out = []
    for i, line in _lines(path):
        head, _, text = line.partition(" ")
        if head not in ("0", "1") or not text.strip():
            raise LmforgeError(
                f"{path}:{i}: expected '<0|1> <text>' (SST-2 stsa.binary format), got {line[:40]!r}"
            )
        label = "positive" if head == "1" else "negative"
        out.append(Example({"text": text.strip()}, label, f"{path}:{i}"))
    return out


_AG_SPACE_ESCAPE = re.compile(r" #39;| quot;")
_AG_CHARREF = re.compile(r"#(\d+);")


def clean_agnews(text: str) -> str:
    """Undo AG News's escapes: ``#39;`` -> ``'``, ``quot;`` -> ``"``, ``\\\\`` -> space."""
    text = _AG_SPACE_ESCAPE.sub(lambda m: "'" if "39" in m[0] else '"', text)
    text = _AG_CHARREF.sub(lambda m: html.unescape(f"&#{m[1]};"), text)
    for esc, ch in ((" amp;", " &"), (" lt;", " <"), (" gt;", " >"), ("\\", " ")):
        text = text.replace(esc, ch)
    return " ".join(text.split())


def read_agnews(csv_path: Path, classes_path: Path) -> tuple[list[Example], list[Example]]:
    """(train pool, test) from AG News's test.csv (see the module doc)."""
    from .formats import SHARED_LABELS

    labels = SHARED_LABELS["agnews"]
    for i, line in _lines(classes_path):
        named = [c.split("-", 1)[-1].strip() for c in line.split(",")]
        if len(named) != len(labels):
            raise LmforgeError(
                f"{classes_path}:{i}: expected {len(labels)} classes, got {len(named)}"
            )
        break
    check_text_file(csv_path)
    rows: list[Example] = []
    with open(csv_path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        for r in reader:
            i = reader.line_num
            if r and r[0] == "Class Index":
                continue
            if len(r) != 3 or not r[0].isdigit() or not 1 <= int(r[0]) <= len(labels):
                raise LmforgeError(
                    f"{csv_path}:{i}: expected 'Class Index,Title,Description' with a class "
                    f"1..{len(labels)}"
                )
            text = clean_agnews(f"{r[1].strip()}. {r[2].strip()}")
            rows.append(Example({"text": text}, labels[int(r[0]) - 1], f"{csv_path}:{i}"))
    rng = random.Random(AGNEWS_POOL_SEED)
    pool: set[int] = set()
    for label in labels:
        idx = [k for k, ex in enumerate(rows) if ex.label == label]
        if len(idx) < AGNEWS_TRAIN_PER_LABEL:
            raise LmforgeError(
                f"{csv_path}: class {label} has {len(idx)} rows, fewer than the "
                f"{AGNEWS_TRAIN_PER_LABEL} of the train pool"
            )
        pool.update(rng.sample(idx, AGNEWS_TRAIN_PER_LABEL))
    train = [ex for k, ex in enumerate(rows) if k in pool]
    test = [ex for k, ex in enumerate(rows) if k not in pool]
    return train, test


def detok_trec(text: str) -> str:
    """TREC's tokenised questions as plain text (the cleaning of "Calibrate Before Use")."""
    for a, b in ((" 's", "'s"), ("`` ", '"'), (" ''", '"'), (" ?", "?"), (" ,", ",")):
        text = text.replace(a, b)
    return text


def read_trec(path: Path) -> list[Example]:
    """``COARSE:fine question`` lines; the label is the coarse class."""
    from .formats import SHARED_LABELS

    known = set(SHARED_LABELS["trec"])
    out = []
    for i, line in _lines(path):
        head, _, text = line.partition(" ")
        coarse = head.split(":", 1)[0]
        if ":" not in head or coarse not in known or not text.strip():
            raise LmforgeError(
                f"{path}:{i}: expected 'COARSE:fine question' with COARSE one of "
                f"{', '.join(sorted(known))}, got {line[:40]!r}"
            )
        out.append(Example({"text": detok_trec(text.strip())}, coarse, f"{path}:{i}"))
    return out


def read_pairs(path: Path) -> list[Example]:
    """``{"premise", "hypothesis", "label"}`` rows (RTE, CB)."""
    out = []
    for i, row in iter_jsonl(path):
        where = f"{path}:{i}"
        for key in ("premise", "hypothesis", "label"):
            if not isinstance(row.get(key), str):
                raise LmforgeError(f"{where}: needs a string {key!r}")
        fields = {"premise": row["premise"].strip(), "hypothesis": row["hypothesis"].strip()}
        out.append(Example(fields, row["label"], where))
    if not out:
        raise LmforgeError(f"{path}: holds no rows")
    return out


# ---------------------------------------------------------------------------
# User task files

_FORMAT_KEYS = {f for f in PromptFormat.__dataclass_fields__}


def _format_of(spec: Any, where: str, index: int) -> PromptFormat:
    if not isinstance(spec, dict):
        raise LmforgeError(f"{where}: formats[{index}] must be a mapping with a template")
    unknown = sorted(set(spec) - _FORMAT_KEYS)
    if unknown:
        raise LmforgeError(
            f"{where}: formats[{index}] has unknown keys {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(_FORMAT_KEYS))}"
        )
    if not isinstance(spec.get("template"), str) or not spec["template"]:
        raise LmforgeError(
            f"{where}: formats[{index}] needs a template such as 'Text: {{text}}\\nLabel:'"
        )
    args = {k: v for k, v in spec.items()}
    args.setdefault("name", f"format{index}")
    args["name"] = str(args["name"])
    for k in ("instruction", "label_sep", "label_suffix", "separator", "instruction_sep"):
        if k in args and not isinstance(args[k], str):
            args[k] = "" if args[k] is None else str(args[k])
    fmt = PromptFormat(**args)
    fmt.fields()  # a bad placeholder fails here, naming the format
    return fmt


_SPEC_KEYS = {"name", "labels", "label_words", "train", "test", "label_field", "formats", "format"}


def read_task_spec(path: str | Path) -> ClassificationTask:
    """A user task: the YAML/JSON spec of `lmforge.prompting.tasks` and its JSONL files."""
    from ..config import read_yaml

    p = Path(path)
    if not p.name.endswith(SPEC_SUFFIXES):
        raise LmforgeError(f"{p}: a task spec is a .yaml, .yml or .json file")
    if not p.is_file():
        raise LmforgeError(f"{p}: no such task spec file")
    spec = read_yaml(p)
    where = str(p)
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise LmforgeError(
            f"{where}: unknown keys {', '.join(unknown)}; allowed: {', '.join(sorted(_SPEC_KEYS))}"
        )
    labels = spec.get("labels")
    if not isinstance(labels, list) or len(labels) < 2:
        raise LmforgeError(f"{where}: 'labels' must list at least two label names")
    labels = [str(x) for x in labels]
    words = _word_lists(spec.get("label_words") or {x: x for x in labels}, labels, where)
    if "formats" in spec and "format" in spec:
        raise LmforgeError(f"{where}: give 'formats' (a list) or 'format' (one), not both")
    raw = spec.get("formats", [spec["format"]] if "format" in spec else None)
    if not isinstance(raw, list) or not raw:
        raise LmforgeError(f"{where}: needs 'formats' (a list of formats) or one 'format'")
    formats = tuple(_format_of(f, where, i) for i, f in enumerate(raw))
    names = [f.name for f in formats]
    if len(set(names)) != len(names):
        raise LmforgeError(f"{where}: format names repeat: {', '.join(names)}")
    label_field = str(spec.get("label_field", "label"))
    splits = {}
    for split in ("train", "test"):
        if not isinstance(spec.get(split), str):
            raise LmforgeError(f"{where}: needs '{split}': a JSONL file (relative to the spec)")
        f = Path(spec[split])
        splits[split] = _text_label_rows(f if f.is_absolute() else p.parent / f, label_field)
    task = ClassificationTask(
        name=str(spec.get("name") or p.stem),
        labels=labels,
        label_words=words,
        train=splits["train"],
        test=splits["test"],
        format=formats[0],
        formats=formats,
        source=str(p),
    )
    for f in formats:
        task.with_format(f)  # every row fits every format and has a known label
    return task
