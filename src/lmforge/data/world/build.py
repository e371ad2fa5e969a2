"""Build the whole world into a folder: every file, world.json and manifest.json.

The world is written into a temporary folder beside OUT and renamed into place
at the end, so an interrupted build never leaves a half world, and an existing
world is replaced only with `force` (and only if it really is a world).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from ...common import LmforgeError, progress, replace_folder
from ...config import validate
from .checkers import check
from .classification import build_classification, labels_json
from .config import WorldConfig
from .dialogues import build_dialogues
from .entities import World, make_world
from .instructions import build_instructions
from .long_range import build_long_range, candidates
from .preferences import build_preferences, build_rankings, pair_issues, ranking_issues
from .readme import readme_text
from .seeding import component_rng
from .tasks import FAMILIES
from .text import documents
from .trivia import build_trivia

GENERATOR = "lmforge world"
# 2: multi_step, fact_chain, held-out tasks, val dialogues; 3: verdicts, long_range/, trivia/;
# 4: rated (LLaMA-2) and multi-turn preference pairs, graded scores, rankings;
# 5: instruction templates drawn per file (val/test/held-out no longer depend on the train count)
GENERATOR_VERSION = 5
MANIFEST = "manifest.json"
VAL_FRACTION = 20  # pretraining val text is 1/20 of the train text


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(_dumps(row) + "\n")


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _write_text(
    path: Path, docs: Iterable[str], budget: int, desc: str, avoid: set[bytes]
) -> tuple[int, int, set[bytes]]:
    """Write documents (blank-line separated) until `budget` characters; skip digests in `avoid`.

    Returns (characters, documents, digests of the documents written).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    written: set[bytes] = set()
    chars = n_docs = 0
    with (
        open(path, "w", encoding="utf-8", newline="\n") as f,
        progress(total=budget, desc=desc, unit="char") as bar,
    ):
        for doc in docs:
            digest = hashlib.blake2b(doc.encode(), digest_size=16).digest()
            if digest in avoid:
                continue
            piece = doc if n_docs == 0 else "\n\n" + doc
            f.write(piece)
            written.add(digest)
            chars += len(piece)
            n_docs += 1
            bar.update(len(piece))
            if chars >= budget:
                break
        f.write("\n")
    return chars + 1, n_docs, written


def _verify(records: Iterable[dict], where: str) -> None:
    """Every generated answer must pass its own checker (a generator bug otherwise).

    Preference pairs and rankings must also agree with their kinds, ratings and
    graded scores (preferences.pair_issues, ranking_issues).
    """
    for r in records:
        if "ranking" in r:
            issues = ranking_issues(r)
        elif "chosen" in r:
            issues = pair_issues(r)
        else:
            ok = check(r, r["messages"][-1]["content"]) == 1.0
            issues = [] if ok else ["generated answer fails its checker"]
        if issues:
            raise AssertionError(f"{where}: {'; '.join(issues)}: {r}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _count_records(path: Path) -> int:
    if path.suffix == ".jsonl":
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    if path.suffix == ".txt":
        with open(path, encoding="utf-8") as f:
            return 1 + f.read().strip("\n").count("\n\n")
    return 1


def check_out_folder(out: Path, force: bool) -> None:
    """Refuse to overwrite anything that is not an empty folder or (with force) a world."""
    if not out.exists():
        return
    if not out.is_dir():
        raise LmforgeError(f"{out}: exists and is not a folder; choose another --out")
    if not any(out.iterdir()):
        return
    if not force:
        raise LmforgeError(
            f"{out}: folder exists and is not empty; pass --force to replace it, "
            "or choose another --out"
        )
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        is_world = manifest.get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        is_world = False
    if not is_world:
        raise LmforgeError(
            f"{out}: not a world built by lmforge (no valid {MANIFEST}); refusing to replace it "
            "even with --force; choose another --out"
        )


def _write_world(tmp: Path, cfg: WorldConfig, counts: dict[str, int]) -> dict:
    seed = cfg.seed
    heldout = cfg.heldout_families()
    world: World = make_world(
        component_rng(seed, "entities"), counts["people"], counts["places"], counts["events"]
    )
    _write_json(tmp / "world.json", world.to_json())

    budget = counts["pretrain_chars"]
    train_chars, _, train_digests = _write_text(
        tmp / "pretrain" / "train.txt",
        documents(component_rng(seed, "pretrain/train"), world, seed, heldout),
        budget,
        "pretrain train",
        set(),
    )
    val_chars, _, _ = _write_text(
        tmp / "pretrain" / "val.txt",
        documents(component_rng(seed, "pretrain/val"), world, seed, heldout),
        max(1000, budget // VAL_FRACTION),
        "pretrain val",
        train_digests,
    )

    quotas = {
        "train": counts["train_per_family"],
        "val": counts["val_per_family"],
        "test": counts["test_per_family"],
    }
    with progress(total=len(FAMILIES), desc="instructions", unit="family") as bar:
        instructions = build_instructions(
            world, seed, quotas, on_family=lambda _: bar.update(1), heldout_tasks=heldout
        )
    for name, rows in instructions.items():
        _verify(rows, f"instructions/{name}")
        _write_jsonl(tmp / "instructions" / f"{name}.jsonl", rows)

    dialogues = build_dialogues(
        world, seed, counts["dialogues_train"], counts["dialogues_test"], counts["dialogues_val"]
    )
    for name, rows in dialogues.items():
        _verify(rows, f"dialogues/{name}")
        _write_jsonl(tmp / "dialogues" / f"{name}.jsonl", rows)

    prefs = build_preferences(
        world, seed, counts["preferences_train"], counts["preferences_val"], heldout
    )
    for name, rows in prefs.items():
        _verify(rows, f"preferences/{name}")
        _write_jsonl(tmp / "preferences" / f"{name}.jsonl", rows)
    rankings = build_rankings(
        world, seed, counts["rankings_train"], counts["rankings_val"], heldout
    )
    for name, rows in rankings.items():
        _verify(rows, f"preferences/rankings_{name}")
        _write_jsonl(tmp / "preferences" / f"rankings_{name}.jsonl", rows)

    sets = build_classification(
        world,
        seed,
        counts["classification_train_per_label"],
        counts["classification_test_per_label"],
    )
    for set_name, splits in sets.items():
        for split, rows in splits.items():
            _write_jsonl(tmp / "classification" / set_name / f"{split}.jsonl", rows)
        _write_json(tmp / "classification" / set_name / "labels.json", labels_json(set_name))

    # Evaluation sets in the LAMBADA and TriviaQA formats (docs/evaluations.md).
    n_test = 2 * counts["test_per_family"]
    eval_sets = {
        "long_range": build_long_range(world, seed, counts["test_per_family"], n_test),
        "trivia": build_trivia(world, seed, counts["train_per_family"], n_test),
    }
    for set_name, splits in eval_sets.items():
        for split, rows in splits.items():
            _write_jsonl(tmp / set_name / f"{split}.jsonl", rows)
    _write_json(tmp / "long_range" / "candidates.json", candidates(world))

    families = {
        name: {
            "templates": list(fam.templates),
            "heldout_templates": list(fam.heldout_templates),
            "difficulties": list(fam.difficulties),
            "answer_types": list(fam.answer_types),
            "has_cot": fam.has_cot,
            "heldout_task": name in heldout,
            "records": {
                split: sum(1 for r in rows if r["task"] == name)
                for split, rows in instructions.items()
            },
        }
        for name, fam in FAMILIES.items()
    }
    (tmp / "README.md").write_text(
        readme_text(seed, cfg.size, counts, families), encoding="utf-8", newline="\n"
    )
    files = {}
    for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
        rel = path.relative_to(tmp).as_posix()
        files[rel] = {
            "sha256": _sha256(path),
            "bytes": path.stat().st_size,
            "records": _count_records(path),
        }
    manifest = {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "size": cfg.size,
        "counts": counts,
        "heldout_tasks": list(heldout),
        "pretrain_chars": {"train": train_chars, "val": val_chars},
        "families": families,
        "files": files,
    }
    _write_json(tmp / MANIFEST, manifest)
    return manifest


def build_world(cfg: WorldConfig) -> dict:
    """Build the world described by `cfg` into `cfg.out`; returns the manifest."""
    validate(cfg)  # bounds and the required --out, also for configs made in Python
    # Resolved, so that "--out ." or "--out world/" still have a real name and parent.
    out = Path(cfg.out).expanduser().resolve()
    check_out_folder(out, cfg.force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        manifest = _write_world(tmp, cfg, cfg.counts())
        replace_folder(tmp, out)  # OUT always names a complete world, the old or the new
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def timed_build(cfg: WorldConfig) -> tuple[dict, float]:
    """build_world plus its wall time in seconds (for the CLI summary and docs)."""
    start = time.perf_counter()
    manifest = build_world(cfg)
    return manifest, time.perf_counter() - start
