"""C7: multi-template instruction mixtures generalise better than one template (FLAN, T0).

Three SFT runs start from the base's pretrained model with the same step budget and
optimizer, on mixtures (`data.instructions.mixture`, written as mixture YAMLs) of the
world's `instructions/train.jsonl`:

- **single**: one template per (sub)task (`templates: ["*/t1"]`): about a third of the rows;
- **multi**: every training template, capped to the single mixture's size (a seeded
  sample), so it differs from single only in how many phrasings it shows;
- **multi (all rows)**: every training template and row (3x the data: the usual setup).

Each model answers (greedy, the chat template, in-process `eval.tasks.evaluate_tasks`) a
seeded per-family sample of `test.jsonl`'s direct-answer records written through each
subtask's `t1` template (seen by every run), the same problems through templates no run
saw (`heldout_templates.jsonl`), the same number of `test.jsonl` records through the other
training templates (seen only by the multi runs), and the held-out task family
(`heldout_tasks.jsonl`, `comparing`: never trained on). Chain-of-thought records are left
to C8.

The verdict compares multi with single (same data size) on held-out templates and on the
held-out task: "beyond noise" means the 95% interval of the difference (Newcombe's, from
the two Wilson intervals) excludes 0.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..eval.tasks_stats import Accuracy
from .claims import NOT_REPRODUCED, PARTLY, REPRODUCED, ClaimContext, ClaimResult, Verdict
from .claims_plot import bar_plot
from .claims_sft_common import (
    SFTBudget,
    diff_interval,
    diff_text,
    evaluate_run,
    paired,
    pct,
    pick_records,
    read_records,
    sft_argv,
)

# task_records: held-out task records evaluated (0: all 150). Big eval batches: generation
# of a model this small is per-step overhead, so 128 rows cost little more than 16.
# --quick skips the third run (its code path is the same as multi's).
FULL = {"steps": 120, "per_family": 60, "task_records": 0, "max_new_tokens": 32,
        "batch_size": 128, "runs": ("single", "multi", "multi_all")}  # fmt: skip
QUICK = {"steps": 4, "per_family": 2, "task_records": 6, "max_new_tokens": 8,
         "batch_size": 64, "runs": ("single", "multi")}  # fmt: skip
SINGLE_TEMPLATE = "*/t1"  # every (sub)task's first template: `arithmetic/t1`, `sorting/words/t1`
# Accuracy at or under this on both sides counts as "nothing learnt" (chance on the held-out
# task's two-way choices is 50%: a model at ~0 does not even answer with one of the two).
FLOOR = 0.05
RUN_LABELS = {"single": "single template", "multi": "multi (same rows)",
              "multi_all": "multi (all rows)"}  # fmt: skip
# The groups evaluated, in table order: split label -> what a reader sees.
GROUPS = {
    "seen_t1": "seen template (t1)",
    "other_train": "other training templates (t2+)",
    "heldout_templates": "held-out templates (h*)",
    "heldout_task": "held-out task (comparing)",
}
DECIDING = ("heldout_templates", "heldout_task")


def beats(multi: Accuracy, single: Accuracy) -> bool:
    """Multi above single beyond noise: the difference's 95% interval lies above 0."""
    return diff_interval(multi, single)[1] > 0


def verdict(single: Mapping[str, Accuracy], multi: Mapping[str, Accuracy]) -> Verdict:
    """Reproduced when multi beats single on held-out templates and the held-out task,
    partly when on one of them, not at this scale otherwise (saying why)."""
    said = {
        g: f"{GROUPS[g].split(' (')[0]} multi {pct(multi[g])} vs single {pct(single[g])} "
        f"({diff_text(diff_interval(multi[g], single[g]))})"
        for g in DECIDING
    }
    text = "; ".join(said.values())
    won = [g for g in DECIDING if beats(multi[g], single[g])]
    if len(won) == len(DECIDING):
        return Verdict(REPRODUCED, f"{text}: multi-template tuning generalises better on both")
    if won:
        lost = next(g for g in DECIDING if g not in won)
        return Verdict(PARTLY, f"{text}: better beyond noise on {GROUPS[won[0]]} only "
                               f"({_why_not(lost, single[lost], multi[lost])})")  # fmt: skip
    reasons = [_why_not(g, single[g], multi[g]) for g in DECIDING]
    return Verdict(NOT_REPRODUCED, f"{text}: {'; '.join(reasons)}")


def _why_not(group: str, single: Accuracy, multi: Accuracy) -> str:
    name = GROUPS[group]
    if max(single.accuracy, multi.accuracy) <= FLOOR:
        return (
            f"{name}: both at most {FLOOR:.0%}, the model is too small to transfer to it "
            "at all, so there is no difference to see"
        )
    d = diff_interval(multi, single)
    if d[0] <= 0:
        return f"{name}: multi is not better ({100 * d[0]:+.1f} pts)"
    return f"{name}: the gain is within noise (its 95% interval includes 0)"


def widest_gap(single: Mapping[str, Accuracy], multi: Mapping[str, Accuracy]) -> str:
    """A note naming the family whose held-out template accuracy differs most between runs."""
    gaps = {f: multi[f].accuracy - single[f].accuracy for f in single if f in multi}
    if not gaps:
        return "No held-out template records were evaluated."
    f = max(gaps, key=lambda k: (abs(gaps[k]), k))
    same = sum(abs(g) < 0.1 for g in gaps.values())
    return (
        f"Per family on held-out templates, the widest gap is {f}: multi {pct(multi[f])} vs "
        f"single {pct(single[f])}; {same} of {len(gaps)} families differ by under 10 points "
        "(numbers: heldout_templates_by_family)."
    )


def mixture_yaml(path: Path, train: Path, *, seed: int, templates: list[str] | None,
                 cap: int | None) -> Path:  # fmt: skip
    """Write a one-source mixture of the world's training rows."""
    source: dict[str, Any] = {"name": "world", "path": str(train)}
    if templates:
        source["templates"] = templates
    if cap is not None:
        source["cap"] = cap
    path.write_text(yaml.safe_dump({"seed": seed, "sources": [source]}, sort_keys=False))
    return path


def mixture_size(path: Path) -> int:
    from ..data.instructions.mixture import load_mixture

    return len(load_mixture(path).conversations)


def eval_sets(world: Path, per_family: int, task_records: int, seed: int) -> dict[str, list[dict]]:
    """split -> records: t1 problems, the same problems through held-out templates, other
    training templates' problems, and the held-out task's records."""
    inst = world / "instructions"
    test = read_records(inst / "test.jsonl")

    def t1(rec: dict) -> bool:
        return not rec.get("cot") and str(rec.get("template", "")).endswith("/t1")

    seen = pick_records(test, per_family, seed=seed, keep=t1)
    other = pick_records(test, per_family, seed=seed,
                         keep=lambda r: not r.get("cot") and not t1(r))  # fmt: skip
    held = paired(seen, read_records(inst / "heldout_templates.jsonl"))
    tasks = read_records(inst / "heldout_tasks.jsonl")
    tasks = tasks[:task_records] if task_records else tasks
    return {"seen_t1": seen, "other_train": other, "heldout_templates": held,
            "heldout_task": tasks}  # fmt: skip


def run(ctx: ClaimContext) -> ClaimResult:
    assert ctx.base is not None
    p = QUICK if ctx.quick else FULL
    runs: tuple[str, ...] = p["runs"]
    world = ctx.base.world
    train, val = world / "instructions" / "train.jsonl", world / "instructions" / "val.jsonl"
    single = mixture_yaml(ctx.out / "mix_single.yaml", train, seed=ctx.seed,
                          templates=[SINGLE_TEMPLATE], cap=None)  # fmt: skip
    n_single = mixture_size(single)
    caps = {"single": None, "multi": n_single, "multi_all": None}
    mixtures = {"single": single}
    for name in runs[1:]:
        mixtures[name] = mixture_yaml(ctx.out / f"mix_{name}.yaml", train, seed=ctx.seed,
                                      templates=None, cap=caps[name])  # fmt: skip
    sizes = {name: mixture_size(path) for name, path in mixtures.items()}
    sets = eval_sets(world, p["per_family"], p["task_records"], ctx.seed)
    budget = SFTBudget(steps=p["steps"])
    acc: dict[str, dict[str, Accuracy]] = {}
    timing: dict[str, dict[str, float]] = {}
    steps: dict[str, int] = {}
    by_family: dict[str, dict[str, Accuracy]] = {}  # held-out template accuracy per family
    for name, mix in mixtures.items():
        out = ctx.out / f"sft_{name}"
        t0 = time.time()
        argv = sft_argv(ctx.base.pretrain, mix, out, budget, val=val, seed=ctx.seed,
                        threads=ctx.thread_flags(), quick=ctx.quick)  # fmt: skip
        ctx.verb(argv, f"sft_{name}")
        sft_s = time.time() - t0
        scored = evaluate_run(out, sets, max_new_tokens=p["max_new_tokens"],
                              batch_size=p["batch_size"], threads=ctx.threads)  # fmt: skip
        # A held-out task record counts as held-out task whatever its file (evaluate_tasks).
        acc[name] = {g: scored.accuracy(lambda m, s, g=g: s == g) for g in GROUPS}
        timing[name] = {"sft_s": round(sft_s, 1), "eval_s": round(scored.eval_s, 1)}
        families = sorted({str(m.get("task")) for m, s, _ in scored.rows if s == DECIDING[0]})
        by_family[name] = {
            f: scored.accuracy(lambda m, s, f=f: s == DECIDING[0] and m.get("task") == f)
            for f in families
        }
        steps[name] = scored.step

    others = runs[1:]
    rows = [
        [label, *(pct(acc[r][g]) for r in runs),
         *(diff_text(diff_interval(acc[r][g], acc["single"][g])) for r in others)]
        for g, label in GROUPS.items()
    ]  # fmt: skip
    plot = bar_plot(
        ctx.out / "mixtures.png", [GROUPS[g].replace(" (", "\n(") for g in GROUPS],
        {RUN_LABELS[r]: [acc[r][g].accuracy for g in GROUPS] for r in runs},
        errors={RUN_LABELS[r]: [acc[r][g].interval for g in GROUPS] for r in runs},
        title=f"C7: SFT on one template vs many ({budget.steps} steps each), greedy accuracy",
        ylabel="accuracy (95% Wilson interval)",
    )  # fmt: skip
    n_eval = {g: len(recs) for g, recs in sets.items()}
    described = {
        "single": f'single = `templates: ["{SINGLE_TEMPLATE}"]` ({sizes["single"]:,} rows)',
        "multi": f"multi = every training template, capped to the same {n_single:,} rows",
        "multi_all": f"multi (all rows) = all {sizes.get('multi_all', 0):,} rows of train.jsonl",
    }
    return ClaimResult(
        verdict=verdict(acc["single"], acc["multi"]),
        columns=[
            "records",
            *(RUN_LABELS[r] for r in runs),
            *(f"{RUN_LABELS[r]} − single [95% CI]" for r in others),
        ],
        rows=rows,
        plots=[plot],
        numbers={
            "accuracy": {r: {g: a.to_dict() for g, a in acc[r].items()} for r in runs},
            "mixture_rows": sizes,
            "eval_records": n_eval,
            "steps": steps,
            "timing": timing,
            "heldout_templates_by_family": {
                r: {f: a.to_dict() for f, a in by_family[r].items()} for r in runs
            },
            "settings": {**p, "lr": budget.lr, "batch": budget.batch_size},
        },
        notes=[
            f"{len(runs)} SFT runs from the base's pretrained model ({ctx.base.pretrain}), "
            f"{budget.steps} steps each (batch {budget.batch_size}, lr {budget.lr}, the same "
            f"seed): {'; '.join(described[r] for r in runs)}.",
            f"Eval (greedy, chat template, ≤ {p['max_new_tokens']} new tokens): "
            f"{n_eval['seen_t1']} direct-answer test records through each subtask's t1 template "
            f"(≤ {p['per_family']} per family, seeded), the same problems through held-out "
            f"templates ({n_eval['heldout_templates']}), {n_eval['other_train']} test records "
            f"through t2+ templates (unseen by single, seen by multi), and "
            f"{n_eval['heldout_task']} records of the held-out task family comparing.",
            widest_gap(by_family["single"], by_family["multi"]),
            "Chain-of-thought records are not evaluated here (that is C8); intervals of a "
            "difference are Newcombe's, from the two Wilson intervals, and treat the paired "
            "records as independent (conservative).",
            f"Rule: reproduced when multi beats single (same rows) beyond noise on held-out "
            f"templates and on the held-out task; ≤ {FLOOR:.0%} on both sides counts as "
            "nothing transferred.",
        ],
    )
