"""Experiment C6: prompt tuning with 20 soft tokens vs full fine-tuning, by model size.

The claim (Lester et al. 2021): soft tokens trained in front of a frozen model approach
full fine-tuning at a tiny fraction of the trained parameters, and the gap shrinks as
the model grows. Here two LLaMA sizes are compared on one of the world's classification
tasks: a smaller model (the `tiny` preset) pretrained inside the experiment on the
base's shards, and the base's own pretrained model. Each size is scored untuned
(zero-shot label scoring on the bare query), then tuned twice with `lmforge
prompt-tune` on the same rows, loss (label tokens only), steps, batch and seed: 20 soft
tokens (10 before the input, 10 after it) with the model frozen, and `--full` (every
weight, no soft tokens). The table gives parameters, trained parameters and their
fraction, the three accuracies and the gap; the plot, accuracy against parameters.

The verdict (`verdict`) is computed from those numbers: prompt tuning "approaches"
full fine-tuning at a size when it trains < 1% of the weights and is within
`WITHIN_POINTS` of its accuracy; "the gap shrinks" when the largest size's gap is at
least `MIN_SHRINK` points below the smallest's (a test set of 400 has a standard error
of ~2.5 points, so smaller moves are noise). Both: reproduced; one: partly; neither
(or full fine-tuning itself not learning the task): not reproduced at this scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..common import LmforgeError
from .claims import NOT_REPRODUCED, PARTLY, REPRODUCED, ClaimContext, ClaimResult, Verdict
from .claims_plot import line_plot
from .claims_prompt_tuning_runs import (
    SizeSpec,
    TuneSettings,
    pretrain_size,
    tune,
    zero_shot_accuracy,
)

WITHIN_POINTS = 5.0  # "approaches": prompt tuning at most this many points below full FT
MAX_FRACTION = 0.01  # ... while training under 1% of the model's parameters
MIN_SHRINK = 3.0  # "the gap shrinks": by at least this many points, smallest -> largest
MIN_LEARNED = 10.0  # full FT must beat the untuned model by this much, or nothing is learned

# The full run: the tiny preset pretrained for 90 s (the base had 210 s), the same context.
SMALL = SizeSpec(
    "llama-tiny", "tiny", ("--model.block-size", "256"),
    ("--seq-len", "256", "--max-time", "90", "--max-steps", "none", "--batch-size", "16",
     "--lr", "3e-3", "--min-lr", "3e-4", "--warmup", "50"),
)  # fmt: skip
SETTINGS = TuneSettings(
    task="topic",
    steps=200,
    batch_size=16,
    warmup=10,
    soft_lr=3e-2,
    full_lr=1e-3,
    n_before=10,
    n_after=10,
    init="vocab",
    test_limit=0,
)
# --quick: a still smaller model for a few steps, a handful of test rows (seconds).
QUICK_SMALL = SizeSpec(
    "llama-micro", "tiny", ("--model.block-size", "256", "--model.n-layer", "1",
                            "--model.d-model", "32", "--model.n-head", "2"),
    ("--seq-len", "128", "--max-steps", "8", "--batch-size", "8", "--dtype", "fp32"),
)  # fmt: skip
QUICK = TuneSettings(task="topic", steps=6, batch_size=8, warmup=2, soft_lr=3e-2,
                     full_lr=1e-3, n_before=10, n_after=10, init="vocab", test_limit=16,
                     extra=("--dtype", "fp32"))  # fmt: skip


@dataclass(frozen=True)
class SizeResult:
    """One model size: its parameters and the three accuracies (fractions in [0, 1])."""

    size: str
    params: int
    soft_params: int  # trained by prompt tuning
    full_params: int  # trained by full fine-tuning
    zero_shot: float
    prompt_tuned: float
    fine_tuned: float

    @property
    def fraction(self) -> float:
        return self.soft_params / self.full_params

    @property
    def gap(self) -> float:
        """Full fine-tuning's lead over prompt tuning, in points."""
        return 100 * (self.fine_tuned - self.prompt_tuned)

    @property
    def recovered(self) -> float:
        """The share of full FT's gain over the untuned model that prompt tuning gets
        (nan when full FT gains nothing)."""
        gain = self.fine_tuned - self.zero_shot
        return (self.prompt_tuned - self.zero_shot) / gain if gain > 0 else math.nan

    def approaches(self) -> bool:
        return self.fraction < MAX_FRACTION and self.gap <= WITHIN_POINTS


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _who(r: SizeResult) -> str:
    return f"{r.params / 1e6:.2f}M"


def verdict(results: Sequence[SizeResult]) -> Verdict:
    """Reproduced: prompt tuning approaches full FT at the largest size and the gap
    shrinks with size; partly: one of the two; not: neither, or full FT learns nothing."""
    if len(results) < 2:
        raise ValueError("verdict needs at least two model sizes")
    rs = sorted(results, key=lambda r: r.params)
    small, large = rs[0], rs[-1]
    at = (f"at {_who(large)} parameters prompt tuning ({large.soft_params:,} trained, "
          f"{100 * large.fraction:.2f}%) reaches {_pct(large.prompt_tuned)} vs full "
          f"fine-tuning {_pct(large.fine_tuned)} (untuned {_pct(large.zero_shot)})")  # fmt: skip
    trend = f"the gap goes from {small.gap:.1f} points at {_who(small)} to {large.gap:.1f}"
    if 100 * (large.fine_tuned - large.zero_shot) < MIN_LEARNED:
        return Verdict(NOT_REPRODUCED, f"the task is not learned at this budget: {at}, so "
                       "there is no fine-tuning result for prompt tuning to approach")  # fmt: skip
    close, shrinks = large.approaches(), small.gap - large.gap >= MIN_SHRINK
    if close and shrinks:
        return Verdict(REPRODUCED, f"{at}, within {WITHIN_POINTS:g} points, and {trend}")
    if close:
        return Verdict(PARTLY, f"{at}, within {WITHIN_POINTS:g} points, but {trend}: not "
                       f"{MIN_SHRINK:g} points smaller")  # fmt: skip
    if shrinks:
        return Verdict(PARTLY, f"{trend}, but {at}: {large.gap:.1f} points short, more than "
                       f"{WITHIN_POINTS:g}")  # fmt: skip
    return Verdict(NOT_REPRODUCED, f"the models are too small for soft prompts to steer: "
                   f"{at}, and {trend}")  # fmt: skip


COLUMNS = ["size", "parameters", "trained: prompt tuning", "trained: full FT",
           "fraction trained", "untuned (zero-shot)", "prompt tuning (20 soft tokens)",
           "full fine-tuning", "gap (points)", "share of FT gain"]  # fmt: skip


def table_rows(results: Sequence[SizeResult]) -> list[list[str]]:
    rows = []
    for r in results:
        share = "n/a" if math.isnan(r.recovered) else f"{100 * r.recovered:.0f}%"
        rows.append([r.size, f"{r.params:,}", f"{r.soft_params:,}", f"{r.full_params:,}",
                     f"{100 * r.fraction:.2f}%", _pct(r.zero_shot), _pct(r.prompt_tuned),
                     _pct(r.fine_tuned), f"{r.gap:.1f}", share])  # fmt: skip
    return rows


def measure(ctx: ClaimContext, s: TuneSettings, size: str, key: str,
            run: Path) -> tuple[SizeResult, dict[str, float]]:  # fmt: skip
    """The untuned, prompt-tuned and fine-tuned accuracy of one pretrained model, and the
    two runs' wall times (runs are named tune/<key>_soft, tune/<key>_full)."""
    zero = zero_shot_accuracy(ctx, s, run)
    soft = tune(ctx, s, run, f"{key}_soft", full=False)
    full = tune(ctx, s, run, f"{key}_full", full=True)
    res = SizeResult(size, full.total, soft.trainable, full.trainable, zero, soft.accuracy,
                     full.accuracy)  # fmt: skip
    return res, {"soft_wall_s": soft.wall_s, "full_wall_s": full.wall_s}


def run(ctx: ClaimContext) -> ClaimResult:
    if ctx.base is None or ctx.base.pretrain is None:
        raise LmforgeError("C6 needs the base's pretrained model (`--base DIR` or OUT/base)")
    s, spec = (QUICK, QUICK_SMALL) if ctx.quick else (SETTINGS, SMALL)
    from ..runs.load import read_run_config

    base_preset = read_run_config(ctx.base.pretrain).get("preset") or "base"
    models = [(spec.name, spec.name, pretrain_size(ctx, spec)),
              (f"llama-{base_preset} (base)", "base", ctx.base.pretrain)]  # fmt: skip
    measured = sorted((measure(ctx, s, *m) for m in models), key=lambda m: m[0].params)
    results = [r for r, _ in measured]
    xs = [r.params for r in results]
    plot = line_plot(
        ctx.out / "accuracy_by_size.png",
        {"full fine-tuning": (xs, [100 * r.fine_tuned for r in results]),
         "prompt tuning (20 soft tokens)": (xs, [100 * r.prompt_tuned for r in results]),
         "untuned (zero-shot)": (xs, [100 * r.zero_shot for r in results])},
        title=f"C6: {s.task} test accuracy by model size", xlabel="model parameters",
        ylabel="test accuracy (%)", logx=True,
    )  # fmt: skip
    numbers = {
        "task": s.task, "steps": s.steps, "batch_size": s.batch_size, "soft_lr": s.soft_lr,
        "full_lr": s.full_lr, "soft_tokens": s.n_before + s.n_after,
        "thresholds": {"within_points": WITHIN_POINTS, "max_fraction": MAX_FRACTION,
                       "min_shrink": MIN_SHRINK, "min_learned": MIN_LEARNED},
        "sizes": [{"size": r.size, "params": r.params, "soft_params": r.soft_params,
                   "full_params": r.full_params, "fraction": r.fraction,
                   "zero_shot": r.zero_shot, "prompt_tuned": r.prompt_tuned,
                   "fine_tuned": r.fine_tuned, "gap_points": r.gap, **walls}
                  for r, walls in measured],
    }  # fmt: skip
    notes = [
        f"Task: the world's {s.task} set, label scoring of the main label word on "
        f"{'the first ' + str(s.test_limit) if s.test_limit else 'all'} test examples; both "
        f"methods train {s.steps} steps of batch {s.batch_size} on the same rows (query + "
        f"label, loss on the label tokens), seed {ctx.seed}, warmup {s.warmup}, cosine decay.",
        f"Learning rates: {s.soft_lr:g} for the soft tokens (init {s.init}), {s.full_lr:g} "
        "for full fine-tuning; the same for every size.",
        f"Sizes: {spec.name} pretrained inside the experiment on the base's shards "
        f"(`lmforge pretrain --preset {spec.preset} {' '.join(spec.model_flags)} "
        f"{' '.join(spec.pretrain_flags)}`); the base model as built (its own, longer budget), "
        "so the larger model is also the longer-trained one.",
        f"Verdict rule: approaches = within {WITHIN_POINTS:g} points of full fine-tuning at "
        f"< {100 * MAX_FRACTION:g}% of the parameters trained; the gap shrinks = by at least "
        f"{MIN_SHRINK:g} points from the smallest to the largest size; full fine-tuning must "
        f"beat the untuned model by {MIN_LEARNED:g} points for either to mean anything.",
    ]
    return ClaimResult(verdict(results), COLUMNS, table_rows(results), [plot], numbers, notes)
