"""Prompt tuning vs LoRA vs full fine-tuning on one task, same objective, same budget.

    python scripts/prompting_adapters.py --from RUN --task sentiment --world WORLD --out DIR
    python scripts/prompting_adapters.py --from RUN --task sst2 --out DIR

Runs `lmforge prompt-tune` three times from RUN (each in its own process, so its peak
memory is its own): 20 soft tokens (10 before the input, 10 after it), LoRA r=8 on
q,v, and every weight; the same rows (query + label, loss on the label), batch,
steps and seed, each with its own learning rate (soft tokens need a large one).
Writes DIR/<method>/ (the runs), DIR/adapters.json and DIR/adapters.md (accuracy on
the test split by label scoring, trainable parameters, wall time, peak RSS).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

METHODS = {
    "prompt tuning (20 soft tokens)": ("soft", ["--n-before", "10", "--n-after", "10",
                                                "--lr", "3e-2", "--min-lr", "3e-3"]),
    "LoRA r=8 on q,v": ("lora", ["--n-before", "0", "--n-after", "0",
                                 "--lora", "r=8,alpha=16,targets=q,v",
                                 "--lr", "3e-3", "--min-lr", "3e-4"]),
    "full fine-tuning": ("full", ["--n-before", "0", "--n-after", "0", "--full",
                                  "--lr", "3e-4", "--min-lr", "3e-5"]),
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from", dest="run", required=True, help="the run to tune")
    ap.add_argument("--task", required=True, help="task name or spec file (lmforge fewshot)")
    ap.add_argument("--world", default="", help="world folder (sentiment, topic)")
    ap.add_argument("--out", required=True, help="folder for the three runs and the table")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--test-limit", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="replace earlier runs in --out")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, (name, flags) in METHODS.items():
        cmd = [sys.executable, "-m", "lmforge", "prompt-tune", "--from", args.run,
               "--task", args.task, "--out", str(out / name), "--max-steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--test-limit", str(args.test_limit),
               "--seed", str(args.seed), "--eval-every", "0", "--save-every", "0",
               "--warmup", "10", *flags]  # fmt: skip
        if args.world:
            cmd += ["--world", args.world]
        if args.force:
            cmd.append("--force")
        print(f"== {label}", flush=True)
        r = subprocess.run(cmd)
        if r.returncode != 0:
            return r.returncode
        result = json.loads((out / name / "result.json").read_text())
        rows.append({"method": label, **result})
    (out / "adapters.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        f"task {rows[0]['task']}, {rows[0]['test_examples']} test examples, "
        f"{args.steps} steps of batch {args.batch_size}, seed {args.seed}",
        "",
        "| method | test accuracy | trainable params | share of the model | wall s | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        acc = "n/a" if r["test_accuracy"] is None else f"{100 * r['test_accuracy']:.1f}%"
        rss = "n/a" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f}"
        lines.append(
            f"| {r['method']} | {acc} | {r['trainable_params']:,} | "
            f"{100 * r['trainable_params'] / r['total_params']:.3f}% | {r['wall_s']:.0f} | {rss} |"
        )
    table = "\n".join(lines) + "\n"
    (out / "adapters.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
