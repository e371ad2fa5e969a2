"""The mixture spec: typed dataclasses read from YAML with lmforge.config's machinery.

    seed: 0
    sources:
      - {name: world, path: world/instructions/train.jsonl, weight: 1.0}
      - {name: gsm8k, path: ../shared/data/math/gsm8k_train.jsonl, cap: 500,
         templates: ["gsm8k/*"], inverted: true}
      - {name: t0, path: "../shared/data/instructions/t0_templates/*.jsonl",
         cap_per_task: 200, skip_bad_lines: true}
    heldout_tasks: [sorting]           # never in the mixture; evaluated separately
    heldout_templates: ["*/h*"]        # ids/globs excluded from training
    total: 5000                        # optional: sample with replacement per weights

Relative paths resolve against the YAML file's folder. A bad file names the
line: an unknown key, a bad value (negative weight), a missing data file, no
sources — each one line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from ...common import ConfigError, LmforgeError
from ...config import apply_overrides, field_, read_yaml, validate
from .options import CALCULATOR_CHOICES, FMT_CHOICES
from .read import instruction_files


@dataclass
class SourceSpec:
    """One source of a mixture: where to read, how much to keep, which phrasings to use."""

    name: str = field_(
        "", help="short name: meta['source'], the report, the task if records lack one"
    )
    path: str = field_(
        "", help="file, folder or glob of instruction files (relative: to the YAML's folder)"
    )
    weight: float = field_(1.0, min=0, help="share of `total` draws (used only when total is set)")
    cap: int | None = field_(None, min=1, help="at most this many conversations (a seeded sample)")
    cap_per_task: int | None = field_(None, min=1, help="at most this many per task")
    tasks: list[str] = field_(default_factory=list, help="task names/globs to keep (default: all)")
    templates: list[str] = field_(
        default_factory=list,
        help="template ids/globs allowed (default: all; held-out ones go to the held-out set)",
    )
    inverted: bool = field_(False, help="also phrase records through inverted registry templates")
    fmt: str = field_("auto", choices=FMT_CHOICES, help="file format (auto: detect per file)")
    skip_bad_lines: bool = field_(False, help="count and skip unusable records")
    calculator: str = field_(
        "remove", choices=CALCULATOR_CHOICES, help="GSM8K <<a*b=c>> annotations"
    )

    def validate(self) -> None:
        if not self.name.strip():
            raise ConfigError("name", "missing; give every source a short name")
        if not self.path.strip():
            raise ConfigError("path", "missing; the file, folder or glob to read")


@dataclass
class MixtureSpec:
    """A whole mixture: its sources, what is held out, how many conversations to draw."""

    seed: int = field_(0, help="seed of the sampling, template choice and shuffle")
    sources: list[SourceSpec] = field_(
        default_factory=list, help="where the conversations come from"
    )
    heldout_tasks: list[str] = field_(
        default_factory=list, help="tasks (globs) never trained on: evaluated separately"
    )
    heldout_templates: list[str] = field_(
        default_factory=list, help="template ids (globs) never trained on"
    )
    total: int | None = field_(
        None, min=1, help="draw this many with replacement, per source weight (default: all, once)"
    )

    def validate(self) -> None:
        if not self.sources:
            raise ConfigError("sources", "no sources; add at least one {name: ..., path: ...}")
        names = [s.name for s in self.sources]
        for i, s in enumerate(self.sources):
            validate_source(s, i)
            if names.index(s.name) != i:
                raise ConfigError(
                    f"sources[{i}].name", f"{s.name!r} is used twice; names must differ"
                )
        if self.total is not None and sum(s.weight for s in self.sources) <= 0:
            raise ConfigError("sources", "every weight is 0: nothing to draw `total` from")


def validate_source(src: SourceSpec, i: int) -> None:
    """`config.validate` for sources[i], with every field named `sources[i].field`."""
    prefix = f"sources[{i}]."
    try:
        validate(src, prefix=prefix)
    except ConfigError as e:
        if e.field.startswith(prefix):
            raise
        # SourceSpec.validate() names its own fields without the prefix.
        raise ConfigError(prefix + e.field, str(e)[len(e.field) + 2 :]) from None


def _key_lines(text: str) -> dict[tuple, int]:
    """1-based line of every mapping key and list item, by path (("sources", 2, "weight"): 9)."""
    out: dict[tuple, int] = {}

    def walk(node: yaml.Node, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*path, key.value)
                out[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                out[(*path, i)] = item.start_mark.line + 1
                walk(item, (*path, i))

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return out
    if root is not None:
        walk(root, ())
    return out


def _field_path(field: str) -> tuple:
    """ "sources[2].weight" -> ("sources", 2, "weight")."""
    out: list = []
    for part in field.split("."):
        name, _, rest = part.partition("[")
        out.append(name)
        if rest:
            out.append(int(rest.rstrip("]")))
    return tuple(out)


def _at(path: Path, lines: dict[tuple, int], field: str) -> str:
    """`file:line` of a field (or of the nearest enclosing one that has a line)."""
    key = _field_path(field)
    while key:
        if key in lines:
            return f"{path}:{lines[key]}"
        key = key[:-1]
    return str(path)


def load_mixture_spec(path: str | Path) -> MixtureSpec:
    """Read and check a mixture YAML; source paths come back resolved against its folder."""
    p = Path(path)
    data = read_yaml(p)
    lines = _key_lines(p.read_text(encoding="utf-8"))
    raw_sources = data.pop("sources", None)
    try:
        spec = apply_overrides(MixtureSpec(), data)
    except ConfigError as e:
        raise LmforgeError(f"{_at(p, lines, e.field)}: {e}") from None
    if raw_sources is None or raw_sources == []:
        raise LmforgeError(f"{p}: sources: no sources; add at least one {{name: ..., path: ...}}")
    if not isinstance(raw_sources, list):
        raise LmforgeError(
            f"{_at(p, lines, 'sources')}: sources: expected a list of {{name, path}} mappings"
        )
    sources = []
    for i, item in enumerate(raw_sources):
        prefix = f"sources[{i}]"
        if not isinstance(item, dict):
            raise LmforgeError(
                f"{_at(p, lines, prefix)}: {prefix}: expected a mapping such as {{name: ..., path: ...}}"
            )
        try:
            src = apply_overrides(SourceSpec(), item, prefix=prefix + ".")
            validate_source(src, i)
        except ConfigError as e:
            raise LmforgeError(f"{_at(p, lines, e.field)}: {e}") from None
        if not Path(src.path).is_absolute():
            src = dataclasses.replace(src, path=str(p.parent / src.path))
        try:
            instruction_files(src.path)
        except LmforgeError as e:
            raise LmforgeError(
                f"{_at(p, lines, prefix + '.path')}: {prefix} ({src.name}).path: {e}"
            ) from None
        sources.append(src)
    spec = dataclasses.replace(spec, sources=sources)
    try:
        validate(spec)
    except ConfigError as e:
        raise LmforgeError(f"{_at(p, lines, e.field)}: {e}") from None
    return spec
