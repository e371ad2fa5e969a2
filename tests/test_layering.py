"""The import rule: a package imports only its own modules and packages on lower layers.

Layers, bottom to top (docs/architecture.md): packages on one layer never import
each other either, so `train` and `eval` cannot lean on each other.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lmforge"

LAYERS: list[tuple[str, ...]] = [
    ("common",),
    ("config", "outputs"),
    ("tokenizers",),
    ("ngram", "models"),
    ("data", "inference", "runs"),
    ("train", "prompting", "eval"),
    ("stages",),
    ("experiments",),
    ("serve", "export"),
    ("cli",),
    ("__main__",),
]
LEVEL = {pkg: i for i, group in enumerate(LAYERS) for pkg in group}
# `lmforge/__init__.py` re-exports nothing from above: it counts as the bottom layer.
LEVEL["__init__"] = 0


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level lmforge package) of every import in `path`, lazy ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(SRC)
    depth = len(rel.parts) - 1  # folders between lmforge/ and the file
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "lmforge" and len(parts) > 1:
                    found.append((node.lineno, parts[1]))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] != "lmforge":
                    continue
                names = parts[1:] or [a.name for a in node.names]
                found.extend((node.lineno, n) for n in names[:1])
                continue
            up = node.level - 1  # `from .` stays in the file's folder
            if up < depth:
                continue  # inside the file's own top-level package
            if up > depth:
                raise AssertionError(f"{path}:{node.lineno}: relative import above lmforge/")
            if node.module:
                found.append((node.lineno, node.module.split(".")[0]))
            else:  # `from .. import x, y`
                found.extend((node.lineno, a.name) for a in node.names)
    return found


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_package_has_a_layer():
    tops = {_package_of(p) for p in _modules()}
    assert tops - set(LEVEL) == set(), "add the new package to LAYERS (and architecture.md)"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path):
    own = _package_of(path)
    bad = []
    for line, pkg in _imported_packages(path):
        if pkg == own or pkg == "__version__" or pkg not in LEVEL:
            continue
        if LEVEL[pkg] >= LEVEL[own]:
            bad.append(
                f"{path.relative_to(SRC)}:{line}: {own} (layer {LEVEL[own]}) imports {pkg} "
                f"(layer {LEVEL[pkg]})"
            )
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def test_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The checker itself can fail: a fake models/ module importing train is flagged."""
    fake = tmp_path / "lmforge"
    (fake / "models").mkdir(parents=True)
    mod = fake / "models" / "bad.py"
    mod.write_text("def f():\n    from ..train.loop import train\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    assert _imported_packages(mod) == [(2, "train")]
    with pytest.raises(AssertionError, match="models .* imports train"):
        test_imports_point_down(mod)
