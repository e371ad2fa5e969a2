"""`lmforge experiments run`: run claims into OUT/<id>-<slug>/, then rewrite OUT/claims.md.

Each experiment writes into a fresh temporary folder that replaces its old one only when
it finished (a failed or interrupted rerun leaves the last good result in place).
`result.json` holds the verdict, the numbers, the table and the wall time; `README.md` the
table, the plots and the verdict for a reader. OUT/claims.md (and claims.html) list every
experiment found under OUT, so running them one at a time builds the same table as
`run all`. OUT is marked `.lmforge-experiments`; a non-empty folder without the mark is
refused (lmforge replaces only what it wrote).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ..common import LmforgeError, atomic_write_text, replace_folder
from .claims import CLAIMS, ClaimContext, ClaimResult, ClaimSpec, select_claims
from .claims_base import BASE_FOLDER, deepest_need, ensure_base
from .recipe_report import Block, machine, to_html, to_markdown

MARKER = ".lmforge-experiments"
RESULT = "result.json"
SUMMARY = "claims.md"


def check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise LmforgeError(f"--out {out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise LmforgeError(
            f"--out {out}: exists and was not made by `lmforge experiments`; choose a new or "
            "empty --out"
        )


def command_for(spec: ClaimSpec, out: Path, quick: bool) -> str:
    return f"lmforge experiments run {spec.id} --out {out}" + (" --quick" if quick else "")


def md_table(columns: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def result_document(spec: ClaimSpec, res: ClaimResult, wall_s: float, ctx: ClaimContext,
                    command: str) -> dict[str, Any]:  # fmt: skip
    return {
        "kind": "lmforge experiment",
        "id": spec.id,
        "title": spec.title,
        "claim": spec.claim,
        "status": res.verdict.status,
        "reason": res.verdict.reason,
        "columns": res.columns,
        "rows": res.rows,
        "plots": res.plots,
        "numbers": res.numbers,
        "notes": res.notes,
        "wall_s": round(wall_s, 1),
        "quick": ctx.quick,
        "seed": ctx.seed,
        "base": str(ctx.base.root) if ctx.base else None,
        "command": command,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def claim_blocks(doc: dict[str, Any], folder: Path) -> list[Block]:
    blocks: list[Block] = [
        ("h2", f"{doc['id']}: {doc['title']}"),
        ("p", f"Claim: {doc['claim']}"),
        ("p", f"**Verdict: {doc['status']}** — {doc['reason']}"),
        ("table", md_table(doc["columns"], doc["rows"])),
    ]
    blocks += [("img", folder / p) for p in doc["plots"] if (folder / p).is_file()]
    if doc["notes"]:
        blocks.append(("list", doc["notes"]))
    quick = " (--quick: tiny settings, the numbers say nothing about the claim)"
    blocks.append(
        ("p", f"{doc['wall_s']:.0f} s; `{doc['command']}`" + (quick if doc["quick"] else ""))
    )
    return blocks


def run_one(spec: ClaimSpec, out: Path, ctx_args: dict[str, Any]) -> dict[str, Any]:
    """Run one experiment into a temporary folder, then put it in place."""
    final = out / spec.folder
    tmp = out / f".{spec.folder}.tmp-{int(time.time())}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    ctx = ClaimContext(out=tmp, **ctx_args)
    command = command_for(spec, out, ctx.quick)
    print(f"\n== {spec.id} {spec.title}: {command}", flush=True)
    t0 = time.time()
    try:
        res = spec.runner()(ctx)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    doc = result_document(spec, res, time.time() - t0, ctx, command)
    atomic_write_text(tmp / RESULT, json.dumps(doc, indent=1, default=str) + "\n")
    atomic_write_text(tmp / "README.md", to_markdown(claim_blocks(doc, tmp), tmp))
    replace_folder(tmp, final)
    print(f"{spec.id}: {doc['status']}: {doc['reason']} ({doc['wall_s']:.0f} s)", flush=True)
    return doc


def read_results(out: Path) -> list[tuple[ClaimSpec, dict[str, Any]]]:
    found = []
    for spec in CLAIMS:
        try:
            doc = json.loads((out / spec.folder / RESULT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("kind") == "lmforge experiment":
            found.append((spec, doc))
    return found


def summary_blocks(out: Path) -> list[Block]:
    results = read_results(out)
    rows = [
        [spec.id, spec.claim, f"**{doc['status']}**", doc["reason"], f"{doc['wall_s'] / 60:.1f}",
         f"`{doc['command']}`"]
        for spec, doc in results
    ]  # fmt: skip
    missing = [s.id for s in CLAIMS if s.id not in {spec.id for spec, _ in results}]
    blocks: list[Block] = [
        ("h1", "The textbook's claims, measured"),
        ("p", "Each row is one experiment of `lmforge experiments`; the verdict is computed "
              "from the numbers in its folder (result.json), never written by hand."),
        ("table", md_table(["id", "claim", "verdict", "why (the numbers)", "min", "command"],
                           rows)),
    ]  # fmt: skip
    if missing:
        blocks.append(("p", f"Not run yet: {', '.join(missing)}."))
    if any(doc["quick"] for _, doc in results):
        blocks.append(("p", "Rows run with --quick used tiny settings: they check that the "
                            "experiment runs, not the claim."))  # fmt: skip
    base = out / BASE_FOLDER / "recipe_state.json"
    if base.is_file():
        steps = json.loads(base.read_text(encoding="utf-8")).get("steps", {})
        wall = sum(r.get("wall_s", 0.0) for r in steps.values())
        blocks.append(("p", f"The shared base (C4-C10: {', '.join(steps)}) took "
                            f"{wall / 60:.1f} min, once."))  # fmt: skip
    for spec, doc in results:
        blocks += claim_blocks(doc, out / spec.folder)
    blocks += [("h2", "Machine"), ("table", md_table(["", ""], [list(r) for r in machine()]))]
    return blocks


def write_summary(out: Path) -> list[Path]:
    blocks = summary_blocks(out)
    md, page = out / SUMMARY, out / "claims.html"
    atomic_write_text(md, to_markdown(blocks, out))
    atomic_write_text(page, to_html(blocks))
    return [md, page]


def run_claims(
    names: list[str],
    out: str | Path,
    *,
    quick: bool = False,
    seed: int = 0,
    base: str | Path | None = None,
    threads: int | None = None,
) -> int:
    """Run the named experiments (or `all`) into `out`; 0 when every one finished."""
    out = Path(out)
    specs = select_claims(names)
    check_out(out)
    given = Path(base) if base is not None else None
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / MARKER, json.dumps({"kind": "lmforge experiments"}) + "\n")
    need = deepest_need([s.needs for s in specs])
    base_runs = ensure_base(out, need, quick=quick, given=given)
    ctx_args = {"quick": quick, "seed": seed, "threads": threads}
    failed: list[str] = []
    for spec in specs:
        try:
            run_one(spec, out, {**ctx_args, "base": base_runs if spec.needs else None})
        except KeyboardInterrupt:
            print(f"lmforge: interrupted in {spec.id}; its last finished result (if any) is "
                  "kept", file=sys.stderr)  # fmt: skip
            write_summary(out)
            return 130
        except Exception as e:  # one failing experiment does not stop the others
            failed.append(spec.id)
            detail = str(e) if isinstance(e, LmforgeError) else traceback.format_exc()
            print(f"lmforge: experiment {spec.id} failed: {detail}", file=sys.stderr)
    paths = write_summary(out)
    print("\nwrote " + ", ".join(str(p) for p in paths))
    if failed:
        print(f"lmforge: {len(failed)} experiment(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
