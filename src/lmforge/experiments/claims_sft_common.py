"""What the SFT experiments (C7 mixtures, C8 chain of thought) share.

- `sft_argv`: the `lmforge sft` command line both run, from the base's pretrained model, with
  a fixed step budget (steps, not seconds, so runs compared with each other train equally
  however busy the machine is);
- `pick_records`: a seeded, per-family sample of a world instruction file (eval stays fast
  and every family is represented, not only the first lines of a file);
- `evaluate_run`: a run's model scored in-process with `eval.tasks.evaluate_tasks` (greedy,
  the chat template);
- `accuracy_of` / `diff_interval`: accuracy with its Wilson interval, and the 95% interval of
  a difference of two accuracies (Newcombe's hybrid score interval, built from the two
  Wilson intervals) that the verdicts call "beyond noise" when it excludes 0.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common import LmforgeError, iter_jsonl
from ..eval.tasks_stats import Accuracy


@dataclass(frozen=True)
class SFTBudget:
    """One SFT run's optimizer settings (the base recipe's, with a step budget)."""

    steps: int
    batch_size: int = 16
    lr: float = 2.0e-3
    min_lr: float = 2.0e-4
    warmup: int = 20


def sft_argv(
    parent: Path, data: Path, out: Path, budget: SFTBudget, *, val: Path | None, seed: int,
    threads: list[str], quick: bool,
) -> list[str]:  # fmt: skip
    """`lmforge sft` from `parent` on `data` (JSONL or mixture YAML) into `out`."""
    argv = [
        "sft", "--from", str(parent), "--data", str(data), "--out", str(out),
        "--max-steps", str(budget.steps), "--batch-size", str(budget.batch_size),
        "--lr", str(budget.lr), "--min-lr", str(budget.min_lr), "--warmup", str(budget.warmup),
        "--eval-every", "0", "--eval-batches", "5", "--save-every", "0", "--keep-last", "1",
        "--seed", str(1337 + seed), *threads,
    ]  # fmt: skip
    if val is not None:
        argv += ["--val-data", str(val)]
    if quick:  # the quick base is fp32 on one thread; bf16 autocast only slows tiny models
        argv += ["--dtype", "fp32"]
    return argv


def read_records(path: Path) -> list[dict[str, Any]]:
    return [rec for _, rec in iter_jsonl(path)]


def pick_records(
    records: Sequence[dict[str, Any]],
    per_family: int,
    *,
    seed: int,
    keep: Callable[[dict[str, Any]], bool] = lambda r: True,
) -> list[dict[str, Any]]:
    """At most `per_family` records of each task family that `keep` accepts, seeded, in
    file order (the same seed picks the same records)."""
    by_family: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        if keep(rec):
            by_family.setdefault(str(rec.get("task")), []).append(i)
    rng = random.Random(f"lmforge-claims/{seed}")
    chosen: list[int] = []
    for family in sorted(by_family):
        idx = by_family[family]
        chosen += idx if len(idx) <= per_family else rng.sample(idx, per_family)
    return [records[i] for i in sorted(chosen)]


def paired(records: Sequence[dict[str, Any]], pool: Iterable[dict[str, Any]]) -> list[dict]:
    """The records of `pool` with the same (problem_id, cot) as one of `records` (the same
    problems rendered another way, e.g. through held-out templates)."""
    want = {(r.get("problem_id"), bool(r.get("cot"))) for r in records}
    return [r for r in pool if (r.get("problem_id"), bool(r.get("cot"))) in want]


@dataclass
class Scored:
    """One run's evaluation: the step it was at and every record's (meta, split, correct)."""

    step: int
    rows: list[tuple[dict[str, Any], str, bool]]
    eval_s: float

    def accuracy(self, keep: Callable[[dict[str, Any], str], bool]) -> Accuracy:
        return accuracy_of(ok for meta, split, ok in self.rows if keep(meta, split))


def evaluate_run(
    run: Path,
    sets: dict[str, Sequence[dict[str, Any]]],
    *,
    max_new_tokens: int,
    batch_size: int,
    threads: int | None,
) -> Scored:
    """Greedy answers of `run`'s latest model to every record of `sets` (split -> records),
    scored by the world's checker."""
    import time

    import torch

    from ..eval.tasks import TaskEvalConfig, evaluate_tasks
    from ..eval.tasks_data import TaskRecord
    from ..runs.load import load_run

    if threads:
        torch.set_num_threads(threads)
    opened = load_run(run, need="decoder")
    records = [
        TaskRecord(dict(rec), split=split, line=i)
        for split, recs in sets.items()
        for i, rec in enumerate(recs)
    ]
    cfg = TaskEvalConfig(max_new_tokens=max_new_tokens, batch_size=batch_size)
    t0 = time.time()
    with torch.no_grad():
        result = evaluate_tasks(opened.model, opened.tokenizer, records, cfg, desc=run.name)
    rows = [(p.meta, p.split, p.correct) for p in result.predictions]
    return Scored(opened.step, rows, time.time() - t0)


def accuracy_of(correct: Iterable[bool]) -> Accuracy:
    flags = list(correct)
    return Accuracy(sum(bool(c) for c in flags), len(flags))


def diff_interval(a: Accuracy, b: Accuracy) -> tuple[float, float, float]:
    """(a - b, low, high): the 95% interval of a difference of two proportions (Newcombe's
    method 10, from each one's Wilson interval; conservative for paired records)."""
    if a.n == 0 or b.n == 0:
        raise LmforgeError("a difference of accuracies needs records on both sides")
    pa, pb = a.accuracy, b.accuracy
    (la, ua), (lb, ub) = a.interval, b.interval
    d = pa - pb
    return d, d - math.hypot(pa - la, ub - pb), d + math.hypot(ua - pa, pb - lb)


def pct(acc: Accuracy) -> str:
    """``23.0% (69/300)``."""
    return f"{100 * acc.accuracy:.1f}% ({acc.correct}/{acc.n})"


def diff_text(d: tuple[float, float, float]) -> str:
    """``+4.3 pts [-1.2, +9.8]``."""
    return f"{100 * d[0]:+.1f} pts [{100 * d[1]:+.1f}, {100 * d[2]:+.1f}]"
