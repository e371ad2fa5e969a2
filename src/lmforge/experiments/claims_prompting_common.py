"""What C4 (few-shot, example order) and C5 (contextual calibration) share.

Both score the base's pretrained model on the world's `sentiment` and `topic` classification
tasks with `lmforge.prompting` (the sweeps of `prompting.sensitivity`, one loaded model):
`open_bench` loads the model once and opens each task with its builder and a fixed test
subset; `write_sweep_folder` keeps every trial (results.json, results.md and the library's
own plots) under the experiment's ``sweeps/`` folder, so any number in the table can be
traced to the prompts that gave it; `threads` pins torch's thread count for the run.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..common import LmforgeError
from .claims import ClaimContext

WORLD_TASKS = ("sentiment", "topic")
SWEEP_FOLDER = "sweeps"


@dataclass(frozen=True)
class TaskBench:
    """One task ready to score: its builder (format 0 unless said), test subset, base rates."""

    task: Any  # prompting.tasks.ClassificationTask
    builder: Any  # prompting.builder.PromptBuilder
    test: list  # prompting.tasks.Example, a fixed subset (take_test)
    base_rate: dict[str, float]  # label -> share of the test subset's gold labels

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def chance(self) -> float:
        """The accuracy of always answering the most common gold label."""
        return max(self.base_rate.values())


@dataclass(frozen=True)
class Bench:
    model: Any  # a decoder (torch.nn.Module) with max_seq_len
    params: int
    context: int
    tasks: list[TaskBench]


def open_bench(ctx: ClaimContext, limit: int, tasks: Sequence[str] = WORLD_TASKS) -> Bench:
    """The base's pretrained model and the world's tasks (see the module doc)."""
    from ..prompting.builder import PromptBuilder, take_test
    from ..prompting.sensitivity import base_rates
    from ..prompting.tasks import load_task
    from ..runs import load_run

    base = ctx.base
    if base is None or base.pretrain is None or base.world is None:
        raise LmforgeError("this experiment needs the base's world and pretrained model")
    run = load_run(base.pretrain, need="decoder")
    run.model.eval()
    benches = []
    for name in tasks:
        task = load_task(name, world=base.world)
        test = take_test(task, limit)
        benches.append(
            TaskBench(task, PromptBuilder(task, run.tokenizer), test, base_rates(test, task.labels))
        )
    params = sum(p.numel() for p in run.model.parameters())
    return Bench(run.model, params, int(getattr(run.model, "max_seq_len", 0) or 0), benches)


@contextlib.contextmanager
def threads(ctx: ClaimContext) -> Iterator[None]:
    """torch's thread count for the experiment, restored after it.

    Without ``--threads`` one thread: a 1.3 M-parameter model's matrices are too small to
    gain from more, and on a shared 2-core machine one thread was several times faster
    than torch's default (docs/prompting.md, "Experiments at CPU scale").
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(ctx.threads or 1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def wilson(accuracy: float, n: int) -> tuple[float, float]:
    """The 95 % Wilson interval of an accuracy measured on n examples."""
    from ..eval.tasks_stats import wilson_interval

    return wilson_interval(round(accuracy * n), n)


def pct(x: float, digits: int = 1) -> str:
    """A share as percent, ``0.523`` -> ``52.3``; NaN as ``–``."""
    return "–" if x != x else f"{100 * x:.{digits}f}"


def points(x: float) -> str:
    """A difference of shares in points with its sign: ``0.012`` -> ``+1.2``."""
    return "–" if x != x else f"{100 * x:+.1f}"


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt n; NaN below two values)."""
    v = [x for x in values if x == x]
    if not v:
        return math.nan, math.nan
    m = sum(v) / len(v)
    if len(v) < 2:
        return m, math.nan
    var = sum((x - m) ** 2 for x in v) / (len(v) - 1)
    return m, math.sqrt(var / len(v))


def write_sweep_folder(ctx: ClaimContext, sweeps: Sequence[Any], config: Any) -> list[str]:
    """Every trial, the library's tables and plots in ctx.out/sweeps; returns the plots'
    paths relative to ctx.out."""
    from ..prompting.sensitivity_report import write_sweeps

    files = write_sweeps(ctx.out / SWEEP_FOLDER, sweeps, config=config)
    return [f"{SWEEP_FOLDER}/{f}" for f in files if f.endswith(".png")]


def skip_notes(sweeps: Sequence[Any]) -> list[str]:
    """One note per point a sweep skipped (a k whose prompts do not fit the context...)."""
    from ..prompting.sensitivity_report import skip_text

    notes = []
    for s in sweeps:
        for skip in s.skipped:
            notes.append(f"{s.task}, {s.name} sweep: {skip_text(s, skip)}")
    return list(dict.fromkeys(notes))
