"""The base runs experiments C4-C10 share: built once by `lmforge recipe`, or borrowed.

`bases/full.yaml` is the CPU demo's recipe up to SFT (its settings exactly, so a finished
`make demo` folder can stand in with `--base demo`); `bases/quick.yaml` is the recipe
test's tiny one. The base is a recipe root (OUT/base) like any other: resumable, its
stages skipped when complete, refused when it holds another recipe's runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..common import LmforgeError
from .claims import BASE_ORDER, NEEDS_NOTHING, NEEDS_SFT, BaseRuns

BASES = Path(__file__).parent / "bases"
BASE_FOLDER = "base"
# What a finished stage's folder holds (the recipe's own completeness rule, by stage name).
_DONE = {
    "world": "manifest.json",
    "tokenizer": "tokenizer.json",
    "shards": "meta.json",
    "pretrain": "report.md",
    "sft": "report.md",
}


def base_recipe(quick: bool) -> Path:
    return BASES / ("quick.yaml" if quick else "full.yaml")


def deepest_need(needs: list[str]) -> str:
    return max(needs, key=BASE_ORDER.index, default=NEEDS_NOTHING)


def read_base(root: Path, need: str) -> BaseRuns:
    """The run folders of a finished recipe root, checked to hold what `need` asks."""
    state_file = root / "recipe_state.json"
    try:
        steps = json.loads(state_file.read_text(encoding="utf-8"))["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        raise LmforgeError(
            f"--base {root}: not a recipe folder (no readable {state_file.name}); run "
            "`lmforge recipe --out DIR` first or leave --base out to build one"
        ) from None
    wanted = ["world", "tokenizer", "shards", "pretrain"] + (["sft"] if need == NEEDS_SFT else [])
    folders: dict[str, Path | None] = {}
    for name in (*wanted, "sft"):
        rec = steps.get(name) or {}
        folder = Path(rec["folder"]) if rec.get("folder") else None
        done = folder is not None and (folder / _DONE[name]).is_file()
        if name in wanted and not done:
            raise LmforgeError(
                f"--base {root}: its stage {name} is not complete; finish it with `lmforge "
                f"recipe --out {root}` (same --recipe) or leave --base out"
            )
        folders[name] = folder if done else None
    return BaseRuns(
        root=root, world=folders["world"], tokenizer=folders["tokenizer"],
        shards=folders["shards"], pretrain=folders["pretrain"], sft=folders["sft"],
    )  # fmt: skip


def ensure_base(out: Path, need: str, *, quick: bool, given: Path | None) -> BaseRuns | None:
    """The base `need` asks for: `given`, or OUT/base built (or resumed) up to that stage."""
    if need == NEEDS_NOTHING:
        return None
    if given is not None:
        return read_base(given, need)
    from .recipe import run_recipe

    root = out / BASE_FOLDER
    print(f"\n== experiments: the shared base ({need}) in {root}", flush=True)
    rc = run_recipe(base_recipe(quick), root, until=need)
    if rc != 0:
        raise LmforgeError(f"building the experiments' base in {root} stopped (exit {rc})")
    return read_base(root, need)
