"""C4: few-shot prompts beat zero-shot ones, and the order of the examples biases the answer.

The base's pretrained model answers the world's `sentiment` and `topic` tasks by label
scoring (`lmforge.prompting`, one loaded model, a fixed subset of test examples):

* accuracy against k (`sensitivity.sweep_k`): k = 0, 1, 2, 3, 4, 8 shown examples, balanced
  over the labels, several draws (seeds) per k; a k whose prompts do not fit the model's
  context is skipped and said so. Few-shot beats zero-shot when the best k > 0's mean over
  draws lies above the 95 % Wilson interval of the zero-shot accuracy;
* the order of the same examples (`sensitivity.sweep_permutations`): each draw of k = 4
  examples (3 or 2 where 4 do not fit the context) in several orders. Reported: the accuracy range within a draw, how often the
  answer is the last shown example's label against that label's base rate (chance), and
  the *last-label gap* per draw — how much more often a label is predicted when it is last
  than when another label is (`Sweep.gap`, the library's recency measure, applied to the
  orders of each draw); it is a bias when its mean over draws is at least `MIN_GAP` and
  more than two standard errors. The library's recency probe (each label's examples in
  one block, each label last once) is reported beside it.

The verdict (`verdict`) is computed from these numbers: reproduced when both halves hold on
every task, partly when either holds somewhere (or orders move accuracy by `ORDER_RANGE`
without a pull toward the last label), not reproduced otherwise, with why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .claims import NOT_REPRODUCED, PARTLY, REPRODUCED, ClaimContext, ClaimResult, Verdict
from .claims_plot import bar_plot
from .claims_prompting_common import (
    Bench,
    TaskBench,
    mean_se,
    open_bench,
    pct,
    points,
    skip_notes,
    threads,
    wilson,
    write_sweep_folder,
)

MIN_GAP = 0.03  # a last-label pull under 3 points is no bias worth the name
ORDER_RANGE = 0.05  # orders of the same examples that move accuracy by 5+ points matter
UNCAL = "uncalibrated"  # C4 is about the plain prompts; C5 is calibration's


@dataclass(frozen=True)
class Settings:
    k: tuple[int, ...]
    seeds: int  # example draws per k
    limit: int  # test examples per task
    order_k: tuple[int, ...]  # the permutations sweep's k: the largest of these that fits
    permutations: int  # orders per draw
    probe_per_label: int  # recency probe: examples per label (0: the library's default)


# k = 3 beside the chapter's 0, 1, 2, 4, 8: topic's 4-shot prompts outgrow the base's 256-token
# context at some draws (and 8-shot ones everywhere), so 3 is its largest k that fits.
FULL = Settings(k=(0, 1, 2, 3, 4, 8), seeds=5, limit=200, order_k=(4, 3, 2), permutations=8,
                probe_per_label=0)  # fmt: skip
QUICK = Settings(k=(0, 1, 2), seeds=2, limit=10, order_k=(2,), permutations=2, probe_per_label=1)


@dataclass(frozen=True)
class TaskFindings:
    """What the verdict reads about one task (shares in [0, 1])."""

    task: str
    n_test: int
    chance: float  # always answering the most common gold label
    zero_shot: float
    zero_hi: float  # upper end of the zero-shot accuracy's 95 % Wilson interval
    best_k: int  # the k > 0 with the best mean accuracy over draws (0: none evaluated)
    best_mean: float
    order_range: float  # mean over draws of (max - min) accuracy across its orders
    last_share: float  # share of answers equal to the last shown example's label
    last_chance: float  # that label's base rate, averaged the same way
    # the share that label gets over every order of the same draw, averaged the same way: what
    # the last label would get if position did not matter (a model answering one label for
    # everything gets its share here, not its base rate)
    last_blind: float
    last_gap: float  # mean over draws of the last-label gap
    last_gap_se: float  # its standard error over draws (NaN with one draw)

    def beats_zero_shot(self) -> bool:
        return self.best_mean == self.best_mean and self.best_mean > self.zero_hi

    def order_biased(self) -> bool:
        se = self.last_gap_se
        return self.last_gap >= MIN_GAP and se == se and self.last_gap > 2 * se

    def order_moves(self) -> bool:
        return self.order_range >= ORDER_RANGE

    def summary(self) -> str:
        best = f"best k={self.best_k} {pct(self.best_mean)} %" if self.best_k else "no k > 0 fits"
        head = (
            f"{self.task}: {best} vs zero-shot {pct(self.zero_shot)} % (95 % CI up to "
            f"{pct(self.zero_hi)} %, chance {pct(self.chance)} %)"
        )
        if self.order_range != self.order_range:
            return f"{head}, no reordered prompt fits the context"
        return (
            f"{head}, orders of the same examples move accuracy by {pct(self.order_range)} "
            f"points and give the last label {pct(self.last_share)} % of the answers vs "
            f"{pct(self.last_blind)} % if position did not matter and its "
            f"{pct(self.last_chance)} % base rate (gap {points(self.last_gap)} ± "
            f"{pct(self.last_gap_se)} points)"
        )


def verdict(tasks: Sequence[TaskFindings], params: int) -> Verdict:
    """Reproduced / partly / not, from the per-task findings (see the module doc)."""
    said = "; ".join(t.summary() for t in tasks)
    few = [t.task for t in tasks if t.beats_zero_shot()]
    biased = [t.task for t in tasks if t.order_biased()]
    moves = [t.task for t in tasks if t.order_moves()]
    if len(few) == len(tasks) and len(biased) == len(tasks):
        return Verdict(REPRODUCED, f"{said}: few-shot beats zero-shot beyond noise and the "
                                   "order pulls answers toward the last label on every task")  # fmt: skip
    if few or biased or moves:
        held = []
        if few:
            held.append(f"few-shot beats zero-shot beyond noise on {', '.join(few)}")
        if biased:
            held.append(f"the last label pulls the answer on {', '.join(biased)}")
        elif moves:
            held.append(f"the order moves accuracy (not toward the last label) on "
                        f"{', '.join(moves)}")  # fmt: skip
        missing = []
        if len(few) < len(tasks):
            missing.append("a few-shot gain beyond the zero-shot interval elsewhere")
        if len(biased) < len(tasks):
            missing.append(f"a last-label gap of {100 * MIN_GAP:.0f}+ points beyond two "
                           "standard errors" + (" elsewhere" if biased else ""))  # fmt: skip
        return Verdict(PARTLY, f"{said}: {'; '.join(held)}, but not {' nor '.join(missing)}")
    return Verdict(
        NOT_REPRODUCED,
        f"{said}: the model is too small ({params / 1e6:.2f} M parameters) to read the examples "
        "it is shown — no k beats zero-shot beyond its 95 % interval and the order of the same "
        f"examples neither moves accuracy by {100 * ORDER_RANGE:.0f} points nor pulls the "
        "answer toward the last label",
    )


# ---------------------------------------------------------------------------
# From sweeps to findings


def by_k(sweep: Any, variant: str = UNCAL) -> dict[int, dict[str, float]]:
    """k -> spread (mean, std, min, max, n) of the accuracy over the draws."""
    from ..prompting.metrics import spread

    out: dict[int, list[float]] = {}
    for t in sweep.trials:
        out.setdefault(t.k, []).append(t.accuracy[variant])
    return {k: spread(v) for k, v in sorted(out.items())}


def as_recency(sweep: Any, trials: Sequence[Any]) -> Any:
    """`trials` (orders of shown examples) as a recency probe about their last labels, so
    `Sweep.gap` measures the last label's pull on them."""
    probed = [dataclasses.replace(t, probe=f"last={t.last_label}") for t in trials]
    return dataclasses.replace(sweep, name="recency", trials=probed)


def order_numbers(perm: Any, base_rate: dict[str, float], variant: str = UNCAL) -> dict[str, Any]:
    """The permutations sweep's order effects: range within a draw, last-label share, gap."""
    draws: dict[int, list[Any]] = {}
    for t in perm.trials:
        draws.setdefault(t.seed, []).append(t)
    ranges = [max(t.accuracy[variant] for t in g) - min(t.accuracy[variant] for t in g)
              for g in draws.values()]  # fmt: skip
    gaps = [as_recency(perm, g).gap(variant) for g in draws.values()]
    # per draw, label -> its mean share over all the draw's orders (position averaged out)
    blind = {
        seed: {c: sum(t.share(c, variant) for t in g) / len(g) for c in perm.labels}
        for seed, g in draws.items()
    }
    gap, se = mean_se(gaps)
    trials = perm.trials
    n = len(trials)
    return {
        "draws": len(draws),
        "orders": max((len(g) for g in draws.values()), default=0),
        "range": sum(ranges) / len(ranges) if ranges else math.nan,
        "range_max": max(ranges, default=math.nan),
        "last_share": sum(t.share(t.last_label, variant) for t in trials) / n if n else math.nan,
        "last_chance": sum(base_rate[t.last_label] for t in trials) / n if n else math.nan,
        "last_blind": sum(blind[t.seed][t.last_label] for t in trials) / n if n else math.nan,
        "gap": gap,
        "gap_se": se,
        "gaps": gaps,
    }


def findings(tb: TaskBench, ks: Any, perm: Any) -> tuple[TaskFindings, dict[str, Any]]:
    """The verdict's inputs for one task, and the order numbers for the table."""
    acc = by_k(ks)
    if 0 not in acc:
        raise ValueError(f"task {tb.name}: the k sweep has no zero-shot trial")
    zero = acc[0]["mean"]
    shots = {k: s for k, s in acc.items() if k > 0}
    best_k = max(shots, key=lambda k: shots[k]["mean"]) if shots else 0
    order = order_numbers(perm, tb.base_rate)
    found = TaskFindings(
        task=tb.name, n_test=len(tb.test), chance=tb.chance, zero_shot=zero,
        zero_hi=wilson(zero, len(tb.test))[1], best_k=best_k,
        best_mean=shots[best_k]["mean"] if shots else math.nan,
        order_range=order["range"], last_share=order["last_share"],
        last_chance=order["last_chance"], last_blind=order["last_blind"], last_gap=order["gap"],
        last_gap_se=order["gap_se"],
    )  # fmt: skip
    return found, order


# ---------------------------------------------------------------------------
# The experiment


def fitting_k(model: Any, tb: TaskBench, cfg: Any, candidates: Sequence[int]) -> int:
    """The largest of `candidates` whose prompts and content-free inputs fit the model's
    context at every draw (the smallest when none does: its sweep then says why)."""
    from ..prompting.evaluate import draw_demos
    from ..prompting.sensitivity import fit_reason

    seeds = range(cfg.first_seed, cfg.first_seed + cfg.seeds)
    for k in sorted(candidates, reverse=True):
        fits = True
        for seed in seeds:
            demos, _ = draw_demos(tb.task, k, seed, cfg)
            prompts = tb.builder.build_many(demos, tb.test)
            extra = tb.builder.content_free(demos, cfg.content_free)
            if fit_reason(model, tb.builder, prompts, k=k, seed=seed, extra=extra) is not None:
                fits = False
                break
        if fits:
            return k
    return min(candidates)


def _most_predicted(sweep: Any, k: int) -> str:
    shares: dict[str, list[float]] = {}
    for t in sweep.trials:
        if t.k == k:
            for label, x in t.predicted_share.get(UNCAL, {}).items():
                shares.setdefault(label, []).append(x)
    if not shares:
        return ""
    label = max(shares, key=lambda c: sum(shares[c]))
    return f"most answered: {label} {pct(sum(shares[label]) / len(shares[label]), 0)} %"


def table(bench: Bench, sweeps: dict[str, dict[str, Any]], found: dict[str, TaskFindings],
          orders: dict[str, dict[str, Any]]) -> list[list[Any]]:  # fmt: skip
    rows: list[list[Any]] = []
    for tb in bench.tasks:
        s = sweeps[tb.name]
        for k, a in by_k(s["k"]).items():
            note = _most_predicted(s["k"], k)
            if k == 0:
                lo, hi = wilson(a["mean"], len(tb.test))
                note = f"95 % CI {pct(lo)}–{pct(hi)}; chance {pct(tb.chance)} %; {note}"
            rows.append([tb.name, "k-shot", k, a["n"], f"{pct(a['mean'])} ± {pct(a['std'])}",
                         f"{pct(a['min'])}–{pct(a['max'])}", note])  # fmt: skip
        for skip in s["k"].skipped:
            rows.append([tb.name, "k-shot", skip.k, 0, "skipped", "", "does not fit the "
                         f"{bench.context}-token context (notes)"])  # fmt: skip
        o, p = orders[tb.name], by_k(s["perm"])
        for k, a in p.items():
            rows.append([
                tb.name, f"{o['orders']} orders × {o['draws']} draws", k, a["n"],
                f"{pct(a['mean'])} ± {pct(a['std'])}", f"{pct(a['min'])}–{pct(a['max'])}",
                f"range within a draw {100 * o['range']:.1f} points (max "
                f"{100 * o['range_max']:.1f}); last label answered {pct(o['last_share'])} % "
                f"vs {pct(o['last_blind'])} % if position did not matter "
                f"({pct(o['last_chance'])} % base rate); gap {points(o['gap'])} ± "
                f"{100 * o['gap_se']:.1f} points",
            ])  # fmt: skip
        rec = s["recency"]
        if rec.trials:
            h = rec.headline()[UNCAL]
            a = by_k(rec)
            k = next(iter(a))
            rows.append([
                tb.name, "recency probe", k, len(rec.trials),
                f"{pct(a[k]['mean'])} ± {pct(a[k]['std'])}",
                f"{pct(a[k]['min'])}–{pct(a[k]['max'])}",
                f"last label answered {pct(h['share'])} % vs {pct(h['base_rate'])} % base rate; "
                f"gap {points(h['gap'])} points (probability {points(h['prob_gap'])})",
            ])  # fmt: skip
    return rows


def plots(ctx: ClaimContext, bench: Bench, sweeps: dict[str, dict[str, Any]],
          orders: dict[str, dict[str, Any]]) -> list[str]:  # fmt: skip
    ks = sorted({k for s in sweeps.values() for k in by_k(s["k"])})
    means, errors = {}, {}
    for tb in bench.tasks:
        acc = by_k(sweeps[tb.name]["k"])
        means[tb.name] = [acc[k]["mean"] * 100 if k in acc else math.nan for k in ks]
        errors[tb.name] = [
            tuple(100 * x for x in wilson(acc[k]["mean"], len(tb.test))) if k == 0
            else ((acc[k]["min"] * 100, acc[k]["max"] * 100) if k in acc else (math.nan,) * 2)
            for k in ks
        ]  # fmt: skip
    first = bar_plot(
        ctx.out / "fewshot_k.png", [f"k={k}" for k in ks], means, errors=errors,
        title="accuracy against k (bars: mean over draws; whiskers: min–max, k=0: 95 % Wilson)",
        ylabel="accuracy (%)",
    )  # fmt: skip
    names = [tb.name for tb in bench.tasks]
    bars = {
        "orders: last label answered": [100 * orders[n]["last_share"] for n in names],
        "if position did not matter": [100 * orders[n]["last_blind"] for n in names],
        "its base rate": [100 * orders[n]["last_chance"] for n in names],
    }
    probe = [sweeps[n]["recency"] for n in names]
    if all(r.trials for r in probe):
        bars["recency probe: last label answered"] = [100 * r.headline()[UNCAL]["share"]
                                                      for r in probe]  # fmt: skip
        bars["probe base rate"] = [100 * r.headline()[UNCAL]["base_rate"] for r in probe]
    second = bar_plot(ctx.out / "order_bias.png", names, bars, ylabel="share of answers (%)",
                      title="does the last shown example's label pull the answer?")  # fmt: skip
    return [first, second]


def run(ctx: ClaimContext) -> ClaimResult:
    from ..prompting.evaluate import FewShotConfig
    from ..prompting.sensitivity import probe_recency, sweep_k, sweep_permutations

    s = QUICK if ctx.quick else FULL
    cfg = FewShotConfig(k=list(s.k), seeds=s.seeds, first_seed=ctx.seed, limit=s.limit,
                        permutations=s.permutations, probe_per_label=s.probe_per_label)  # fmt: skip
    sweeps: dict[str, dict[str, Any]] = {}
    with threads(ctx):
        bench = open_bench(ctx, s.limit)
        for tb in bench.tasks:
            m, b, test = bench.model, tb.builder, tb.test
            order_k = fitting_k(m, tb, cfg, s.order_k)
            sweeps[tb.name] = {
                "k": sweep_k(m, b, test, cfg),
                "perm": sweep_permutations(m, b, test, dataclasses.replace(cfg, k=[order_k])),
                "recency": probe_recency(m, b, test, cfg),
            }
    found, orders = {}, {}
    for tb in bench.tasks:
        found[tb.name], orders[tb.name] = findings(tb, sweeps[tb.name]["k"],
                                                   sweeps[tb.name]["perm"])  # fmt: skip
    every = [sw for v in sweeps.values() for sw in v.values()]
    shown = plots(ctx, bench, sweeps, orders) + write_sweep_folder(ctx, every, cfg)
    numbers = {
        "params": bench.params,
        "context": bench.context,
        "settings": dataclasses.asdict(s),
        "tasks": {n: dataclasses.asdict(f) for n, f in found.items()},
        "accuracy_by_k": {
            n: {str(k): a for k, a in by_k(v["k"]).items()} for n, v in sweeps.items()
        },  # fmt: skip
        "orders": orders,
        "recency_probe": {n: v["recency"].headline().get(UNCAL, {}) for n, v in sweeps.items()},
    }
    notes = [
        f"Model: the base's pretrained LLaMA ({bench.params / 1e6:.2f} M parameters, "
        f"{bench.context}-token context); tasks: the world's "
        f"{', '.join(tb.name for tb in bench.tasks)}, {s.limit} fixed test examples each; "
        "label scoring, no calibration (C5 is calibration's).",
        f"k = {', '.join(map(str, s.k))} with {s.seeds} balanced draws each (k = 0 once); "
        f"{s.permutations} orders of each draw's k examples (the largest k of "
        f"{', '.join(map(str, s.order_k))} whose prompts fit the context); every order shows "
        "the same examples to the same test set, so the range across orders is the model's "
        "order effect, not test sampling noise.",
        f"Few-shot beats zero-shot when the best k's mean lies above the zero-shot 95 % Wilson "
        f"interval; the order biases the answer when the last-label gap is {100 * MIN_GAP:.0f}+ "
        "points and more than two standard errors over draws.",
        *skip_notes(every),
    ]
    cols = ["task", "prompts", "k", "n", "accuracy % (mean ± std)", "min–max", "what else"]
    return ClaimResult(verdict(list(found.values()), bench.params), cols,
                       table(bench, sweeps, found, orders), shown, numbers, notes)  # fmt: skip
