"""C8: chain-of-thought answers beat direct answers on multi-step problems (Wei et al. 2022),
and whether that needs a minimum model size.

The world's reasoning families (`FAMILIES[name].has_cot`: word_problem, multi_step,
fact_chain) give every problem twice with the same template: a chain-of-thought variant
(prompt ends "Let's think step by step.", the reply works one step per line, then
`Answer: X`) and a direct one (prompt asks for just the answer). So one SFT on
`instructions/train.jsonl` (both variants, as the base recipe trains) teaches a model both
ways of answering, and asking it each way on the same test problems is a paired comparison
of reasoning tokens against none.

That is done at two model sizes with the same SFT step budget: the base's pretrained
LLaMA (`cpu-small`, ~1.3M parameters) and a `tiny` LLaMA pretrained here on the base's
shards for a short wall-time budget. Each model answers a seeded sample of test problems
per family in both variants (greedy, the chat template, in-process
`eval.tasks.evaluate_tasks`, scored by the world's checker: a CoT reply counts by its last
`Answer:` line).

The verdict looks at the pooled multi-step accuracy, CoT minus direct, with Newcombe's 95%
interval of the difference (from the two Wilson intervals): beyond noise when it excludes 0.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..eval.tasks_stats import Accuracy
from .claims import NOT_REPRODUCED, PARTLY, REPRODUCED, ClaimContext, ClaimResult, Verdict
from .claims_plot import bar_plot
from .claims_sft_common import (
    SFTBudget,
    diff_interval,
    diff_text,
    evaluate_run,
    pct,
    pick_records,
    read_records,
    sft_argv,
)

# per_family counts problems: each is evaluated twice (CoT and direct). The longest CoT
# reply of these families is 73 tokens; big eval batches cost little more than small ones.
FULL = {"steps": 240, "per_family": 150, "max_new_tokens": 96, "batch_size": 128,
        "tiny_pretrain_s": 75, "tiny_pretrain_steps": None}  # fmt: skip
QUICK = {"steps": 4, "per_family": 2, "max_new_tokens": 16, "batch_size": 64,
         "tiny_pretrain_s": None, "tiny_pretrain_steps": 5}  # fmt: skip
FLOOR = 0.05  # accuracy at or under this on both sides: the model solves (almost) nothing
POOLED = "all multi-step"
Pair = tuple[Accuracy, Accuracy]  # (chain of thought, direct)


def cot_families() -> list[str]:
    from ..data.world.tasks import FAMILIES

    return sorted(name for name, f in FAMILIES.items() if f.has_cot and not f.heldout_task)


def wins(pair: Pair) -> bool:
    """CoT above direct beyond noise."""
    return diff_interval(*pair)[1] > 0


def verdict(sizes: Sequence[tuple[str, Mapping[str, Pair]]]) -> Verdict:
    """`sizes`: (model size name, {family or POOLED: (cot, direct)}), smallest first.

    Reproduced when CoT beats direct beyond noise on the pooled multi-step problems at the
    largest size (the reason says whether the smaller sizes show it: the minimum size);
    partly when it does only on some family there, or only at a smaller size."""
    said = "; ".join(
        f"{name}: CoT {pct(by[POOLED][0])} vs direct {pct(by[POOLED][1])} "
        f"({diff_text(diff_interval(*by[POOLED]))})"
        for name, by in sizes
    )
    largest, by = sizes[-1]
    smaller_won = [name for name, b in sizes[:-1] if wins(b[POOLED])]
    if wins(by[POOLED]):
        if len(sizes) == 1:
            size_note = "only one model size was measured"
        elif len(smaller_won) == len(sizes) - 1:
            size_note = "it holds at every size measured, so no minimum size shows here"
        else:
            lost = [name for name, b in sizes[:-1] if not wins(b[POOLED])]
            size_note = f"not beyond noise at {', '.join(lost)}: it needs the larger model"
        return Verdict(REPRODUCED, f"{said}: CoT beats direct at {largest}; {size_note}")
    families = [f for f in by if f != POOLED and wins(by[f])]
    if families:
        return Verdict(PARTLY, f"{said}: at {largest} CoT wins beyond noise only on "
                               f"{', '.join(families)}")  # fmt: skip
    if smaller_won:
        return Verdict(PARTLY, f"{said}: CoT wins beyond noise only at {', '.join(smaller_won)}")
    cot, direct = by[POOLED]
    if max(cot.accuracy, direct.accuracy) <= FLOOR:
        why = (
            f"both at most {FLOOR:.0%} at {largest}: the model is too small to solve these "
            "problems either way"
        )
    elif cot.accuracy <= direct.accuracy:
        why = (
            f"direct answers are as good or better at {largest}: the model does not yet "
            "carry a worked step into the next one (a larger model may be needed)"
        )
    else:
        why = f"the gain at {largest} is within noise (its 95% interval includes 0)"
    return Verdict(NOT_REPRODUCED, f"{said}: {why}")


def pairs_by_family(rows: Sequence[tuple[dict[str, Any], str, bool]],
                    families: Sequence[str]) -> dict[str, Pair]:  # fmt: skip
    """{family and POOLED: (cot accuracy, direct accuracy)} from scored rows."""

    def acc(fam: str, cot: bool) -> Accuracy:
        flags = [
            ok
            for meta, _, ok in rows
            if (fam == POOLED or meta.get("task") == fam) and bool(meta.get("cot")) == cot
        ]
        return Accuracy(sum(flags), len(flags))

    return {fam: (acc(fam, True), acc(fam, False)) for fam in [*families, POOLED]}


def eval_records(test: Sequence[dict[str, Any]], families: Sequence[str], per_family: int,
                 seed: int) -> list[dict[str, Any]]:  # fmt: skip
    """Both variants of a seeded `per_family` problems of each reasoning family."""
    cot = pick_records(test, per_family, seed=seed,
                       keep=lambda r: r.get("task") in families and bool(r.get("cot")))  # fmt: skip
    ids = {r["problem_id"] for r in cot}
    direct = [r for r in test if r.get("problem_id") in ids and not r.get("cot")]
    return cot + direct


def pretrained_steps(run) -> int:
    from ..runs.load import load_run

    return load_run(run, need="decoder").step


def model_params(run) -> int:
    from ..runs.load import load_run

    return sum(p.numel() for p in load_run(run, need="decoder").model.parameters())


def run(ctx: ClaimContext) -> ClaimResult:
    assert ctx.base is not None
    p = QUICK if ctx.quick else FULL
    world = ctx.base.world
    train, val = world / "instructions" / "train.jsonl", world / "instructions" / "val.jsonl"
    families = cot_families()
    records = eval_records(read_records(world / "instructions" / "test.jsonl"), families,
                           p["per_family"], ctx.seed)  # fmt: skip

    # The smaller model: a tiny LLaMA pretrained on the base's own shards, same context.
    tiny = ctx.out / "pretrain_tiny"
    t0 = time.time()
    budget_flags = (["--max-time", str(p["tiny_pretrain_s"]), "--max-steps", "none"]
                    if p["tiny_pretrain_s"] else ["--max-steps", str(p["tiny_pretrain_steps"])])  # fmt: skip
    ctx.verb([
        "pretrain", "--data", str(ctx.base.shards), "--out", str(tiny), "--arch", "llama",
        "--preset", "tiny", "--model.block-size", "256", "--seq-len", "256", *budget_flags,
        "--batch-size", "16", "--lr", "3e-3", "--min-lr", "3e-4", "--warmup", "50",
        "--samples", "0", "--eval-every", "0", "--save-every", "0", "--seed", str(1337 + ctx.seed),
        *ctx.thread_flags(), *(["--dtype", "fp32"] if ctx.quick else []),
    ], "pretrain_tiny")  # fmt: skip
    tiny_s = time.time() - t0
    tiny_steps = pretrained_steps(tiny)

    budget = SFTBudget(steps=p["steps"])
    parents = {"tiny": tiny, "base": ctx.base.pretrain}
    results: list[tuple[str, dict[str, Pair]]] = []
    info: dict[str, dict[str, Any]] = {}
    for name, parent in parents.items():
        out = ctx.out / f"sft_{name}"
        t0 = time.time()
        argv = sft_argv(parent, train, out, budget, val=val, seed=ctx.seed,
                        threads=ctx.thread_flags(), quick=ctx.quick)  # fmt: skip
        ctx.verb(argv, f"sft_{name}")
        sft_s = time.time() - t0
        scored = evaluate_run(out, {"seen": records}, max_new_tokens=p["max_new_tokens"],
                              batch_size=p["batch_size"], threads=ctx.threads)  # fmt: skip
        results.append((name, pairs_by_family(scored.rows, families)))
        info[name] = {"params": model_params(out), "sft_steps": scored.step,
                      "sft_s": round(sft_s, 1), "eval_s": round(scored.eval_s, 1)}  # fmt: skip
    results.sort(key=lambda item: info[item[0]]["params"])  # smallest first, for the verdict

    rows = []
    for name, by in results:
        for fam, (cot, direct) in by.items():
            rows.append([f"{name} ({info[name]['params'] / 1e6:.2f}M)", fam, pct(cot), pct(direct),
                         diff_text(diff_interval(cot, direct))])  # fmt: skip
    groups = [*families, POOLED]
    bars, errors = {}, {}
    for name, by in results:
        for mode, i in (("CoT", 0), ("direct", 1)):
            label = f"{name} {mode}"
            bars[label] = [by[g][i].accuracy for g in groups]
            errors[label] = [by[g][i].interval for g in groups]
    plot = bar_plot(
        ctx.out / "cot_vs_direct.png", groups, bars, errors=errors,
        title=f"C8: chain of thought vs direct answers, same model ({budget.steps} SFT steps)",
        ylabel="accuracy (95% Wilson interval)",
    )  # fmt: skip
    n_problems = len(records) // 2
    return ClaimResult(
        verdict=verdict(results),
        columns=["model", "family", "chain of thought", "direct", "CoT − direct [95% CI]"],
        rows=rows,
        plots=[plot],
        numbers={
            "accuracy": {
                name: {
                    fam: {"cot": c.to_dict(), "direct": d.to_dict()} for fam, (c, d) in by.items()
                }
                for name, by in results
            },
            "models": info,
            "tiny_pretrain": {"s": round(tiny_s, 1), "steps": tiny_steps},
            "problems": n_problems,
            "settings": {**p, "lr": budget.lr, "batch": budget.batch_size},
        },
        notes=[
            f"One SFT per model size on all of train.jsonl (CoT and direct variants of every "
            f"reasoning problem, as the base recipe trains), {budget.steps} steps each (batch "
            f"{budget.batch_size}, lr {budget.lr}), then each model is asked both ways.",
            f"Sizes: the base's pretrained LLaMA ({info['base']['params'] / 1e6:.2f}M parameters, "
            f"{ctx.base.pretrain}) and a tiny LLaMA ({info['tiny']['params'] / 1e6:.2f}M) "
            f"pretrained here on the base's shards ({tiny_steps} steps, {tiny_s:.0f} s); their "
            "pretraining budgets differ too, so only two sizes, not a size ladder, are compared.",
            f"Eval: {n_problems} test problems ({p['per_family']} per family of "
            f"{', '.join(families)}, seeded), each in its CoT and its direct variant; greedy, "
            f"chat template, ≤ {p['max_new_tokens']} new tokens; a CoT reply is scored by its "
            "last `Answer:` line.",
            "Design: one model trained on both variants and prompted either way (the world "
            "gives both for every problem), not two models trained on one variant each.",
            "Rule: reproduced when CoT beats direct beyond noise (Newcombe 95% interval of the "
            "difference above 0, paired records treated as independent: conservative) on the "
            "pooled multi-step problems at the larger model.",
        ],
    )
