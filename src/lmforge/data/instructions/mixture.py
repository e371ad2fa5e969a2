"""FLAN / T0-style instruction mixtures: many sources, many phrasings, held-out tasks and templates.

`build_mixture(spec)` reads every source of a `MixtureSpec` (streamed, file by
file) and, per conversation:

1. names its task (the record's `task`, else the source's name) and drops it
   unless the source's `tasks` globs match;
2. lists its candidate phrasings: a record with raw fields (GSM8K, Alpaca,
   Self-Instruct) through each registry template of its kind (inverted ones
   too with `inverted: true`); a pre-rendered record (world, T0, ShareGPT) as
   it is, plus — for world tasks with `inverted: true` — the registry's
   inverted templates filled from its recovered fields; the source's
   `templates` globs narrow the list;
3. sends it to the held-out set if its task is held out (`heldout_tasks`, or a
   world record's own `heldout_task`), else to training through one random
   phrasing that is not held out (registry `h*` templates, the world's held-out
   templates, `heldout_templates` globs); one with only held-out phrasings goes
   to the held-out set.

Caps (`cap`, `cap_per_task`) keep a seeded uniform sample of each pool
(reservoir sampling: memory stays within the caps). With `total` the mixture is
that many draws with replacement, each from a source picked by weight; without
it, every kept conversation once. The result is shuffled; the same spec and
seed give the same mixture. Every conversation's meta gains `source`, `task`,
`heldout_task` and `heldout_template`; answer keys (`answer`, `answer_type`,
`extractor`, `cot`) stay wherever the phrasing's target can be checked.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from ...common import LmforgeError
from ...config import validate
from ...tokenizers.chat import Conversation
from ..world.tasks import FAMILIES
from .options import ReadOptions
from .read import FileCounts, instruction_files, iter_conversations
from .registry import TEMPLATES, render_conversation, templates_for
from .spec import MixtureSpec, SourceSpec, load_mixture_spec
from .world_fields import WORLD_HELDOUT, world_fields

# World tasks the registry holds (inverted) templates for.
_WORLD_KINDS = frozenset(t.kind for t in TEMPLATES.values()) & frozenset(FAMILIES)
_INTERNAL_META = ("fields", "fields_kind")


@dataclass
class SourceReport:
    """What one source gave, stage by stage."""

    name: str
    files: list[FileCounts] = field(default_factory=list)
    read: int = 0  # conversations read
    filtered: int = 0  # dropped by the source's tasks/templates
    eligible: int = 0  # training conversations before the caps
    kept: int = 0  # training conversations after the caps
    heldout: int = 0  # held-out conversations (after the caps)
    in_mixture: int = 0  # in the mixture (draws, with total)

    @property
    def skipped(self) -> int:
        return sum(f.skipped for f in self.files)


@dataclass
class Mixture:
    conversations: list[Conversation]  # the training mixture, shuffled
    heldout: list[Conversation]  # held-out tasks and templates, for evaluation
    sources: list[SourceReport]
    seed: int

    @property
    def by_source(self) -> Counter:
        return Counter(c.meta["source"] for c in self.conversations)

    @property
    def by_task(self) -> Counter:
        return Counter(c.meta["task"] for c in self.conversations)

    @property
    def heldout_by_task(self) -> Counter:
        return Counter(c.meta["task"] for c in self.heldout)

    def report(self) -> str:
        """Markdown tables: per source (read ... in mixture), then per task."""
        out = [
            f"Mixture (seed {self.seed}): {len(self.conversations):,} conversations, "
            f"{len(self.heldout):,} held out",
            "",
            "| source | files | read | bad lines | filtered | eligible | kept | held out "
            "| in mixture |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in self.sources:
            out.append(
                f"| {s.name} | {len(s.files)} | {s.read:,} | {s.skipped:,} | {s.filtered:,} "
                f"| {s.eligible:,} | {s.kept:,} | {s.heldout:,} | {s.in_mixture:,} |"
            )
        out += ["", "| task | in mixture | held out |", "|---|---:|---:|"]
        train, held = self.by_task, self.heldout_by_task
        for task in sorted(set(train) | set(held)):
            out.append(f"| {task} | {train[task]:,} | {held[task]:,} |")
        return "\n".join(out)


class _Reservoir:
    """A uniform sample of at most `k` of the items added (all of them when k is None)."""

    def __init__(self, k: int | None, rng: random.Random):
        self.k, self.rng = k, rng
        self.items: list[Conversation] = []
        self.seen = 0

    def add(self, item: Conversation) -> None:
        self.seen += 1
        if self.k is None or len(self.items) < self.k:
            self.items.append(item)
            return
        j = self.rng.randrange(self.seen)
        if j < self.k:
            self.items[j] = item


class _Pool:
    """Conversations under a cap per task and an overall cap."""

    def __init__(self, cap: int | None, cap_per_task: int | None, rng: random.Random):
        self.cap, self.cap_per_task, self.rng = cap, cap_per_task, rng
        self.by_task: dict[str, _Reservoir] = {}

    def add(self, task: str, conv: Conversation) -> None:
        # Without a per-task cap one reservoir of `cap` serves all tasks.
        key, k = (task, self.cap_per_task) if self.cap_per_task is not None else ("", self.cap)
        if key not in self.by_task:
            self.by_task[key] = _Reservoir(k, self.rng)
        self.by_task[key].add(conv)

    @property
    def seen(self) -> int:
        return sum(r.seen for r in self.by_task.values())

    def items(self) -> list[Conversation]:
        items = [c for key in sorted(self.by_task) for c in self.by_task[key].items]
        if self.cap is not None and len(items) > self.cap:
            items = self.rng.sample(items, self.cap)
        return items


def _matches(patterns: list[str], task: str, template: str | None) -> bool:
    """Whether a template id (bare, or as `task/template`) matches one of the globs."""
    if template is None:
        return False
    names = [template]
    if not template.startswith(task + "/"):
        names.append(f"{task}/{template}")
    return any(fnmatchcase(n, p) for p in patterns for n in names)


def _candidates(
    conv: Conversation, task: str, src: SourceSpec, spec: MixtureSpec
) -> list[tuple[Conversation, bool]]:
    """(phrasing, held out?) for every phrasing of `conv` that the source allows."""
    found: list[tuple[str | None, bool, Conversation]] = []
    kind, fields = conv.meta.get("fields_kind"), conv.meta.get("fields")
    if isinstance(kind, str) and isinstance(fields, dict):
        for t in templates_for(kind, inverted=src.inverted):
            if (c := render_conversation(t, fields, conv.meta)) is not None:
                found.append((t.id, t.heldout, c))
    else:
        own = conv.meta.get("template")
        found.append((own, own in WORLD_HELDOUT, conv))
        if src.inverted and task in _WORLD_KINDS and (wf := world_fields(conv)) is not None:
            for t in templates_for(task, inverted=True):
                if t.inverted and (c := render_conversation(t, wf, conv.meta)) is not None:
                    found.append((t.id, t.heldout, c))
    return [
        (c, held or _matches(spec.heldout_templates, task, tid))
        for tid, held, c in found
        if not src.templates or _matches(src.templates, task, tid)
    ]


def _finish(
    choice: tuple[Conversation, bool], source: str, task: str, heldout_task: bool
) -> Conversation:
    """The chosen phrasing with the mixture's meta (and without the reader's raw fields)."""
    conv, heldout_template = choice
    meta = {k: v for k, v in conv.meta.items() if k not in _INTERNAL_META}
    meta.update(source=source, task=task, heldout_task=heldout_task)
    meta["heldout_template"] = heldout_template
    return Conversation(conv.messages, meta)


def _read_source(
    spec: MixtureSpec, src: SourceSpec
) -> tuple[list[Conversation], list[Conversation], SourceReport]:
    """(training pool, held-out pool, report) of one source, after filters and caps."""
    # A source's sample depends only on the seed and its own name, not on the other sources.
    rng = random.Random(f"lmforge-mixture/{spec.seed}/{src.name}")
    options = ReadOptions(fmt=src.fmt, skip_bad_lines=src.skip_bad_lines, calculator=src.calculator)
    train, held = _Pool(src.cap, src.cap_per_task, rng), _Pool(src.cap, src.cap_per_task, rng)
    report = SourceReport(src.name)
    for path, named in instruction_files(src.path):
        counts = FileCounts(str(path))
        report.files.append(counts)
        for conv in iter_conversations(path, options, counts, allow_empty=not named):
            report.read += 1
            task = conv.meta.get("task") or src.name
            if src.tasks and not any(fnmatchcase(task, p) for p in src.tasks):
                report.filtered += 1
                continue
            cands = _candidates(conv, task, src, spec)
            heldout_task = conv.meta.get("heldout_task") is True or any(
                fnmatchcase(task, p) for p in spec.heldout_tasks
            )
            seen = [c for c in cands if not c[1]]
            if heldout_task and cands:
                held.add(task, _finish(rng.choice(cands), src.name, task, True))
            elif seen:
                train.add(task, _finish(rng.choice(seen), src.name, task, False))
            elif cands:
                held.add(task, _finish(rng.choice(cands), src.name, task, False))
            else:
                report.filtered += 1
    kept, heldout = train.items(), held.items()
    report.eligible, report.kept, report.heldout = train.seen, len(kept), len(heldout)
    if not kept and not heldout:
        raise LmforgeError(
            f"source {src.name!r}: no conversations left after its filters "
            f"(read {report.read:,}; tasks: {src.tasks or 'all'}, templates: {src.templates or 'all'})"
        )
    return kept, heldout, report


def build_mixture(spec: MixtureSpec) -> Mixture:
    """The mixture a spec describes (see the module docstring); relative paths are from the cwd."""
    validate(spec)
    pools, heldout, reports = [], [], []
    for src in spec.sources:
        kept, held, report = _read_source(spec, src)
        pools.append(kept)
        heldout.extend(held)
        reports.append(report)
    rng = random.Random(f"lmforge-mixture/{spec.seed}")
    if spec.total is not None:
        live = [i for i, pool in enumerate(pools) if pool and spec.sources[i].weight > 0]
        if not live:
            raise LmforgeError(
                "total: no source with weight > 0 has training conversations to draw from"
            )
        picks = rng.choices(live, weights=[spec.sources[i].weight for i in live], k=spec.total)
        # A conversation drawn twice is two objects: a consumer may change one's meta.
        conversations = [_copy(rng.choice(pools[i])) for i in picks]
        for i, n in Counter(picks).items():
            reports[i].in_mixture = n
    else:
        conversations = [c for pool in pools for c in pool]
        for report, pool in zip(reports, pools):
            report.in_mixture = len(pool)
    if not conversations:
        raise LmforgeError(
            "the mixture is empty: every conversation is held out "
            "(check heldout_tasks and heldout_templates)"
        )
    rng.shuffle(conversations)
    rng.shuffle(heldout)
    return Mixture(conversations, heldout, reports, spec.seed)


def _copy(conv: Conversation) -> Conversation:
    return Conversation(list(conv.messages), dict(conv.meta))


def load_mixture(path: str | Path) -> Mixture:
    """Read a mixture YAML (see `spec.py`) and build it."""
    return build_mixture(load_mixture_spec(path))
