"""Lineage: Kneser-Ney 3/5-grams vs LSTM vs GPT vs LLaMA, one tokenizer, one CPU budget each.

Runs `lmforge.experiments.lineage.run_lineage` on Tiny Shakespeare and on War and Peace
(Russian) from ../shared/data/corpora, copies the plots to docs/img/lineage_*.png,
writes benchmarks/results/lineage.json and prints one table per corpus whose last
line is the ratio best neural bpc / best n-gram bpc.

    .venv/bin/python benchmarks/lineage.py --budget-s 60 --threads 1

Timings depend on the machine and on whatever else runs on it: the results
record the machine, the torch thread count and the budget.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from _bench import SHARED_DATA, print_table, write_result

from lmforge.experiments.lineage import run_lineage
from lmforge.experiments.lineage_config import LineageConfig
from lmforge.experiments.lineage_report import HEADERS, best_ratio, table_rows

CORPORA = {
    "shakespeare": "tinyshakespeare.txt",
    "war_and_peace": "war_and_peace_ru.txt",
}
IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-s", type=float, default=60.0, help="training seconds per model")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", default="runs/lineage", help="folder for the run folders")
    ap.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    args = ap.parse_args()
    if not SHARED_DATA.is_dir():
        print(f"reference data not found at {SHARED_DATA}", file=sys.stderr)
        return 2
    payload = {"budget_s": args.budget_s, "threads": args.threads, "corpora": {}}
    for key in args.corpora:
        corpus = SHARED_DATA / "corpora" / CORPORA[key]
        out = Path(args.out) / key
        cfg = LineageConfig(
            corpus=str(corpus),
            out=str(out),
            budget_s=args.budget_s,
            threads=args.threads,
            overwrite=True,
        )
        result = run_lineage(cfg)
        IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "plots" / "val_curve.png", IMG / f"lineage_{key}_curve.png")
        shutil.copy(out / "plots" / "loss_by_position.png", IMG / f"lineage_{key}_position.png")
        print(f"\n## {CORPORA[key]} (budget {args.budget_s:g} s per neural model)\n")
        rows = table_rows(result)
        ratio = best_ratio(result)
        if ratio is not None:
            rows.append([ratio[0], "", "", "", ratio[1], ""])
        print_table(HEADERS, rows)
        payload["corpora"][key] = result
    path = write_result("lineage", payload)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
