"""C10: PPO raises the reward while the KL to the reference stays bounded (InstructGPT).

Two `lmforge ppo` runs from the base's SFT model, identical but for β, the weight of the
per-token KL penalty in the reward: β = `BETA` (the recipe's kind of run) and β = 0 (the
control: nothing holds the policy near the reference). Both optimise the world's
right/wrong checker on its training prompts. Each iteration's mean score and KL to the
reference (nats per answer) come from the run's ppo/iterations.jsonl.

The verdict asks two things of the β run: did the score rise beyond noise (the mean of
the last `WINDOW` iterations against the first `WINDOW`, more than two binomial standard
errors of the pooled episodes apart), and is the KL bounded: has it stopped growing (the
mean of the last `WINDOW` iterations at most `GROWTH` × the mean of the `WINDOW` ending at
mid-run) and does it end below the control's (the penalty is what holds it)?
A fixed cap in nats was the first rule; it said nothing about boundedness (a KL that
settles at 3 nats is bounded, one that creeps past any cap is not), so the plateau test
replaced it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .claims import NOT_REPRODUCED, PARTLY, REPRODUCED, ClaimContext, ClaimResult, Verdict
from .claims_plot import line_plot

BETA = 0.05
WINDOW = 5  # iterations averaged at the start and at the end
GROWTH = 1.25  # the KL "keeps growing" when its last window exceeds mid-run's by this factor
FULL = {"iterations": 30, "episodes": 64, "minibatches": 4, "ppo_epochs": 4, "lr": 1e-4,
        "max_new_tokens": 64, "max_prompts": 1024}  # fmt: skip
QUICK = {"iterations": 4, "episodes": 4, "minibatches": 1, "ppo_epochs": 1, "lr": 1e-4,
         "max_new_tokens": 12, "max_prompts": 16}  # fmt: skip


def summarize(rows: Sequence[Mapping[str, Any]], episodes: int, window: int = WINDOW) -> dict:
    """Start and end means of score and KL over `window` iterations, and the score's noise."""
    w = max(1, min(window, len(rows) // 2))
    first, last = rows[:w], rows[-w:]
    s0 = sum(r["mean_score"] for r in first) / w
    s1 = sum(r["mean_score"] for r in last) / w
    k1 = sum(r["kl"] for r in last) / w
    mid = rows[len(rows) // 2 - w : len(rows) // 2]  # the window that ends mid-run
    k_mid = sum(r["kl"] for r in mid) / len(mid)
    n = w * episodes
    # Binomial standard error of a difference of two pooled means of 0/1 rewards.
    se = math.sqrt(max(s0 * (1 - s0), 0.0) / n + max(s1 * (1 - s1), 0.0) / n)
    return {
        "iterations": len(rows),
        "window": w,
        "score_start": s0,
        "score_end": s1,
        "score_rise": s1 - s0,
        "score_se": se,
        "kl_end": k1,
        "kl_mid": k_mid,
        "kl_growth": k1 / k_mid if k_mid > 0 else (1.0 if k1 == 0 else float("inf")),
        "kl_max": max(r["kl"] for r in rows),
    }


def verdict(run: Mapping[str, float], control: Mapping[str, float]) -> Verdict:
    """From the β run's and the β = 0 control's summaries."""
    rose = run["score_rise"] > 2 * run["score_se"] and run["score_rise"] > 0
    settled = run["kl_growth"] <= GROWTH
    bounded = settled and run["kl_end"] < control["kl_end"]
    said = (
        f"with β = {BETA} the score goes {run['score_start']:.3f} → {run['score_end']:.3f} "
        f"({run['score_rise']:+.3f}, 2 s.e. = {2 * run['score_se']:.3f}) and the KL ends at "
        f"{run['kl_end']:.2f} nats per answer, ×{run['kl_growth']:.2f} of mid-run (β = 0: score "
        f"→ {control['score_end']:.3f}, KL {control['kl_end']:.2f}, ×{control['kl_growth']:.2f})"
    )
    if rose and bounded:
        return Verdict(REPRODUCED, f"{said}: the reward rises while the KL stays bounded")
    if rose:
        why = "still growing" if not settled else "no lower than without the penalty"
        return Verdict(PARTLY, f"{said}: the reward rises but the KL is {why}")
    if bounded:
        return Verdict(
            PARTLY,
            f"{said}: the KL stays bounded but the reward does not rise beyond noise (too few "
            "iterations or too weak a policy at this scale)",
        )
    return Verdict(NOT_REPRODUCED, f"{said}: neither holds at this scale")


def _ppo_argv(ctx: ClaimContext, out: str, beta: float, p: Mapping[str, Any]) -> list[str]:
    assert ctx.base is not None and ctx.base.sft is not None
    return [
        "ppo", "--from", str(ctx.base.sft), "--out", out,
        "--prompts", str(ctx.base.world / "instructions" / "train.jsonl"),
        "--reward", "checker", "--max-prompts", str(p["max_prompts"]),
        "--iterations", str(p["iterations"]), "--episodes", str(p["episodes"]),
        "--minibatches", str(p["minibatches"]), "--ppo-epochs", str(p["ppo_epochs"]),
        "--lr", str(p["lr"]), "--min-lr", str(p["lr"]), "--beta", str(beta),
        "--temperature", "0.7", "--max-new-tokens", str(p["max_new_tokens"]),
        "--seed", str(ctx.seed), *ctx.thread_flags(),
    ]  # fmt: skip


def run(ctx: ClaimContext) -> ClaimResult:
    from ..stages.ppo_rollout import read_iterations

    p = QUICK if ctx.quick else FULL
    runs = {"beta": BETA, "control": 0.0}
    rows_of: dict[str, list[dict[str, Any]]] = {}
    for name, beta in runs.items():
        out = ctx.out / f"ppo_{name}"
        ctx.verb(_ppo_argv(ctx, str(out), beta, p), f"ppo_{name}")
        rows_of[name] = read_iterations(out)
    sums = {name: summarize(rows, p["episodes"]) for name, rows in rows_of.items()}
    table = [
        [f"β = {runs[name]:g}" + (" (control)" if name == "control" else ""),
         s["iterations"], f"{s['score_start']:.3f}", f"{s['score_end']:.3f}",
         f"{s['score_rise']:+.3f} ± {2 * s['score_se']:.3f}", f"{s['kl_end']:.2f}",
         f"×{s['kl_growth']:.2f}", f"{s['kl_max']:.2f}"]
        for name, s in sums.items()
    ]  # fmt: skip
    it = {name: [r["iteration"] for r in rows] for name, rows in rows_of.items()}
    plots = [
        line_plot(
            ctx.out / "ppo_score.png",
            {f"β = {runs[n]:g}": (it[n], [r["mean_score"] for r in rows_of[n]]) for n in runs},
            title="C10 PPO: mean checker score per iteration", xlabel="iteration",
            ylabel="mean score (0/1 checker)",
        ),
        line_plot(
            ctx.out / "ppo_kl.png",
            {f"β = {runs[n]:g}": (it[n], [r["kl"] for r in rows_of[n]]) for n in runs},
            title="C10 PPO: KL to the reference per iteration", xlabel="iteration",
            ylabel="KL (nats per answer)",
        ),
    ]  # fmt: skip
    return ClaimResult(
        verdict=verdict(sums["beta"], sums["control"]),
        columns=[
            "run",
            "iterations",
            f"score, first {sums['beta']['window']}",
            f"score, last {sums['beta']['window']}",
            "rise ± 2 s.e.",
            "KL at the end",
            "KL end / mid-run",
            "KL max",
        ],
        rows=table,
        plots=plots,
        numbers={"summaries": sums, "iterations": rows_of, "settings": p, "beta": BETA},
        notes=[
            f"Both runs: `lmforge ppo --from {ctx.base.sft}` on a seeded {p['max_prompts']} of "
            f"the world's instructions/train.jsonl, checker reward, {p['iterations']} "
            f"iterations × {p['episodes']} episodes, {p['ppo_epochs']} epochs × "
            f"{p['minibatches']} minibatches, lr {p['lr']:g}, temperature 0.7; only β differs.",
            f"Rule: the score rises by more than 2 binomial s.e. (first vs last {WINDOW} "
            f"iterations); the KL has stopped growing (last {WINDOW} iterations ≤ {GROWTH} × the "
            f"{WINDOW} from mid-run) and ends below the β = 0 control's.",
        ],
    )
