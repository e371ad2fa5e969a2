"""`lmforge recipe`: every stage of a recipe YAML, in order, each a folder under one root.

Each stage runs as a subprocess, `python -m lmforge VERB ...` (the same verb, flags and
code a person would type; `recipe_state.json` records the exact command), so a stage's
memory, threads and signal handling are its own and a killed recipe kills its stage
(`PR_SET_PDEATHSIG` on Linux). The report card is written in-process
(`recipe_report.write_recipe_report`).

A stage is skipped when its folder holds what the verb writes last: a training run's
report.md (written after the final checkpoint), a world's manifest.json, a tokenizer's
tokenizer.json, shards' meta.json, an evaluation's results.json. An interrupted training
stage with a checkpoint continues with the verb's own `--resume`; any other unfinished
stage starts over with `--force` (world, tokenizer, shards and evaluations are written
atomically, so an unfinished one is at most a temporary folder). Finished stages are
never redone.

The root is marked with `.lmforge-recipe`: a non-empty folder without the mark, a folder
whose finished stages ran with other settings (another recipe's runs), or a folder inside
another recipe's root is refused (`--force` starts a recipe's own root over, deleting only
what the recipe wrote). Settings of stages not yet finished may change between runs (fix
a failing stage's options and run again).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..common import LmforgeError, atomic_write_text
from ..outputs import has_results_of_kind
from .recipe_config import Recipe, Step, load_recipe

MARKER = ".lmforge-recipe"
STATE_FILE = "recipe_state.json"
LOGS_DIR = "logs"
REPORT_STAGE = "report"
MARKER_KIND = "lmforge recipe"
OWN_FILES = (STATE_FILE, LOGS_DIR, "report.md", "report.html", MARKER)


def stage_of(step: Step) -> str:
    """The recipe stage a step belongs to (the `eval` stage has one step per model)."""
    return step.kind


def is_complete(step: Step) -> bool:
    """Does the step's folder hold what its verb writes last?"""
    folder = Path(step.folder)
    if step.training:
        return (folder / "report.md").is_file() and (folder / "latest").is_file()
    if step.results_kind:
        return has_results_of_kind(folder, step.results_kind)
    if step.compare:
        return folder.is_file()
    return (folder / step.done_file).is_file()


def read_marker(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("kind") == MARKER_KIND else None


def check_root(root: Path, recipe: Recipe, *, force: bool) -> bool:
    """Refuse a root lmforge recipe may not write; True when it must be cleared (--force)."""
    for parent in root.resolve().parents:
        if (parent / MARKER).is_file():
            raise LmforgeError(
                f"--out {root}: is inside the recipe folder {parent}; choose an --out outside it"
            )
    if not root.exists():
        return False
    if not root.is_dir():
        raise LmforgeError(f"--out {root}: exists and is not a folder; choose another --out")
    if not any(root.iterdir()):
        return False
    marker = read_marker(root)
    if marker is None:
        raise LmforgeError(
            f"--out {root}: exists and was not made by `lmforge recipe`; lmforge replaces only "
            "what it wrote, even with --force; choose a new or empty --out"
        )
    if not force:
        done = read_state(root).get("steps", {})
        for st in recipe.steps:
            rec = done.get(st.name, {})
            if rec.get("status") == "done" and rec.get("recipe_command") != command_line(st.argv):
                raise LmforgeError(
                    f"--out {root}: its stage {st.name} was run with other settings (recipe "
                    f"{marker.get('recipe')}); pass --force to start over with this recipe, or "
                    "choose another --out"
                )
    return force


def clear_root(root: Path) -> None:
    """Delete what a recipe wrote in `root` (the folders its state names, its own files)."""
    state = read_state(root)
    names = {Path(r["folder"]).name for r in state.get("steps", {}).values() if r.get("folder")}
    for p in root.iterdir():
        temp = p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name)
        if p.name in names or p.name in OWN_FILES or temp:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def read_state(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"steps": {}}
    return data if isinstance(data, dict) and isinstance(data.get("steps"), dict) else {"steps": {}}


def write_state(root: Path, state: dict[str, Any]) -> None:
    atomic_write_text(root / STATE_FILE, json.dumps(state, indent=1) + "\n")


def command_line(argv: list[str]) -> str:
    return shlex.join(["lmforge", *argv])


def select(recipe: Recipe, only: list[str] | None, until: str | None) -> list[str]:
    """The step names to run: all, the `--only` stages, or up to `--until` (inclusive)."""
    stages = [*dict.fromkeys(stage_of(s) for s in recipe.steps), REPORT_STAGE]
    for name in [*(only or []), *([until] if until else [])]:
        if name not in stages:
            raise LmforgeError(f"no stage {name!r} in {recipe.path}; stages: {', '.join(stages)}")
    names = [s.name for s in recipe.steps] + [REPORT_STAGE]

    def stage(n: str) -> str:
        return REPORT_STAGE if n == REPORT_STAGE else stage_of(recipe.step(n))

    if only:
        return [n for n in names if stage(n) in only]
    if until:
        keep = set(stages[: stages.index(until) + 1])
        return [n for n in names if stage(n) in keep]
    return names


def planned_argv(step: Step) -> tuple[list[str], str]:
    """The command for an unfinished step and how it starts: run, resume or restart."""
    from ..runs.checkpoint import list_checkpoints

    folder = Path(step.folder)
    if step.compare or not folder.exists():
        return step.argv, "run"
    if step.training and list_checkpoints(folder):
        return [*step.argv, "--resume"], "resume"
    return [*step.argv, "--force"], "restart"


def _die_with_parent():
    """A function for Popen's preexec_fn: the child gets SIGKILL when the recipe dies (Linux
    PR_SET_PDEATHSIG), so a killed recipe leaves no stage running; None elsewhere. Built in
    the parent: the child only calls prctl between fork and exec."""
    if sys.platform != "linux":
        return None
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def run_verb(argv: list[str], log: Path, capture: Path | None = None) -> int:
    """`python -m lmforge ARGV`, its output to the terminal and `log` (and stdout to `capture`)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "lmforge", *argv]
    captured: list[str] = []
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ {command_line(argv)}\n")
        f.flush()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
            errors="replace", preexec_fn=_die_with_parent(),
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                f.write(line)
                captured.append(line)
            rc = proc.wait()
        except KeyboardInterrupt:
            rc = proc.wait()  # the stage got the same SIGINT: let it save and stop
            raise
    if capture is not None and rc == 0:
        atomic_write_text(capture, "".join(captured))
    return rc


def run_recipe(
    recipe_path: str | Path,
    out: str | Path,
    *,
    force: bool = False,
    dry_run: bool = False,
    only: list[str] | None = None,
    until: str | None = None,
) -> int:
    """Run (or, with `dry_run`, print) the recipe into `out`; returns the exit status."""
    root = Path(out)
    recipe = load_recipe(recipe_path, root)
    clear = check_root(root, recipe, force=force)
    chosen = select(recipe, only, until)
    if dry_run:
        print(f"recipe {recipe.path} -> {root} (dry run: nothing is written)")
        for name in chosen:
            print(_plan_line(recipe, name, root, clear))
        return 0
    if clear:
        clear_root(root)
    root.mkdir(parents=True, exist_ok=True)
    marker = {"kind": MARKER_KIND, "recipe": str(recipe.path), "fingerprint": recipe.fingerprint}
    atomic_write_text(root / MARKER, json.dumps(marker, indent=1) + "\n")
    state = read_state(root)
    state.update(recipe=str(recipe.path), fingerprint=recipe.fingerprint)
    records = state["steps"]
    for s in recipe.steps:  # every step's folder, so --force later knows what to delete
        records.setdefault(s.name, {"status": "pending"}).update(folder=str(s.folder))
        if records[s.name]["status"] != "done":
            records[s.name]["recipe_command"] = command_line(s.argv)
    write_state(root, state)
    total = len(chosen)
    for i, name in enumerate(chosen, 1):
        rec = records.setdefault(name, {"status": "pending"})
        if name == REPORT_STAGE:
            print(f"\n== [{i}/{total}] report card")
            from .recipe_report import write_recipe_report

            t0 = time.time()
            paths = write_recipe_report(root, recipe, state)
            rec.update(status="done", wall_s=round(time.time() - t0, 2), finished=_now())
            write_state(root, state)
            print("wrote " + ", ".join(str(p) for p in paths))
            continue
        step = recipe.step(name)
        if is_complete(step):
            print(f"== [{i}/{total}] {name}: already complete in {step.folder}, skipped")
            if rec.get("status") != "done":
                rec.update(status="done", finished=rec.get("finished") or _now())
                write_state(root, state)
            continue
        argv, how = planned_argv(step)
        print(f"\n== [{i}/{total}] {name} ({how}): {command_line(argv)}", flush=True)
        rec.update(status="running", started=_now(), command=command_line(argv))
        rec["attempts"] = rec.get("attempts", 0) + 1
        write_state(root, state)
        t0 = time.time()
        capture = Path(step.folder) if step.compare else None
        try:
            rc = run_verb(argv, root / LOGS_DIR / f"{name}.log", capture)
        except KeyboardInterrupt:
            rec.update(status="interrupted", wall_s=_wall(rec, t0))
            write_state(root, state)
            print(f"lmforge: interrupted: recipe stopped in {name}; run the same command "
                  "again to resume", file=sys.stderr)  # fmt: skip
            return 130
        rec["wall_s"] = _wall(rec, t0)
        # A run killed after its last checkpoint but before its report: `--resume` says it is
        # complete and writes nothing, which is a success.
        finished = is_complete(step) or (
            rc == 0 and step.training and (Path(step.folder) / "latest").is_file()
        )
        if rc != 0 or not finished:
            rec["status"] = "interrupted" if rc == 130 else "failed"
            write_state(root, state)
            if rc == 130:
                print(f"lmforge: interrupted: recipe stopped in {name}; run the same command "
                      "again to resume", file=sys.stderr)  # fmt: skip
                return 130
            raise LmforgeError(
                f"recipe stage {name} failed (exit {rc}); see {root / LOGS_DIR / (name + '.log')}"
                "; fix it and run the same command again to resume"
            )
        rec.update(status="done", finished=_now())
        write_state(root, state)
    if chosen[-1] == REPORT_STAGE and len(chosen) == len(recipe.steps) + 1:
        _print_next(recipe, root)
    else:
        print(f"\nrecipe: ran {', '.join(chosen)}; run without --only/--until to finish it")
    return 0


def _wall(rec: dict[str, Any], t0: float) -> float:
    return round(rec.get("wall_s", 0.0) + time.time() - t0, 2)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _plan_line(recipe: Recipe, name: str, root: Path, clear: bool) -> str:
    if name == REPORT_STAGE:
        return f"  {name:12s} write {root}/report.md and report.html"
    step = recipe.step(name)
    if not clear and is_complete(step):
        return f"  {name:12s} skip (complete in {step.folder})"
    argv, how = (step.argv, "run") if clear else planned_argv(step)
    return f"  {name:12s} {how}: {command_line(argv)}"


def _print_next(recipe: Recipe, root: Path) -> None:
    """How to talk to the result: the last policy stage's run."""
    runs = [s for s in recipe.steps if s.kind in ("ppo", "rs", "sft", "pretrain")]
    if not runs:
        return
    run = runs[-1].folder
    print(f"\nrecipe done: {root}/report.md (and report.html)")
    print(f"chat with the result:  lmforge chat --run {run}")
    print(f"serve it (OpenAI API): lmforge serve --run {run}")
