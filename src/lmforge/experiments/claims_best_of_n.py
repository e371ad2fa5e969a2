"""C9: best-of-N sampling — the max reward rises with N, the median stays flat (LLaMA-2 Fig. 7).

The base's SFT model samples N answers (temperature 1, the world's test prompts, the same
seeds rejection sampling uses: `stages.rs_sampling.sample_round`) and two rewards score
each: the world's right/wrong checker and its graded checker (closeness × form, 0..1).
For every n = 1, 2, 4, ..., N the expected max and median of n of a prompt's samples are
computed exactly from its N (`stages.rs_curve.best_of_n_curve`), averaged over prompts.

The verdict asks, per reward, whether the max rises by at least `MIN_RISE` from n = 1 to
N and the median moves by at most `FLAT_SHARE` of that rise; the claim is reproduced when
both rewards show it. A right/wrong reward need not: the median of n samples of a prompt
drifts to its majority (up where most samples are right, down where most are wrong), and
the verdict says so rather than hiding it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from .claims import NOT_REPRODUCED, PARTLY, REPRODUCED, ClaimContext, ClaimResult, Verdict
from .claims_plot import line_plot

MIN_RISE = 0.05  # the max must gain at least this much reward (rewards lie in [0, 1])
FLAT_SHARE = 0.25  # the median may move by at most this share of the max's rise
FULL = {"prompts": 160, "n": 32, "max_new_tokens": 96, "batch_size": 8}
QUICK = {"prompts": 6, "n": 4, "max_new_tokens": 12, "batch_size": 6}


def curve_shape(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The max's and the median's change from the first n to the last."""
    a, b = rows[0], rows[-1]
    return {
        "n_max": b["n"],
        "max_1": a["max"],
        "max_n": b["max"],
        "median_1": a["median"],
        "median_n": b["median"],
        "max_rise": b["max"] - a["max"],
        "median_change": b["median"] - a["median"],
    }


def shows_claim(shape: Mapping[str, float]) -> bool:
    rise = shape["max_rise"]
    return rise >= MIN_RISE and abs(shape["median_change"]) <= FLAT_SHARE * rise


def verdict(shapes: Mapping[str, Mapping[str, float]]) -> Verdict:
    """Reproduced when every reward's curve shows it, partly when some do."""
    held = [name for name, s in shapes.items() if shows_claim(s)]
    parts = [
        f"{name}: max {s['max_1']:.3f} → {s['max_n']:.3f} ({s['max_rise']:+.3f}), median "
        f"{s['median_1']:.3f} → {s['median_n']:.3f} ({s['median_change']:+.3f}) from n = 1 to "
        f"{s['n_max']:.0f}"
        for name, s in shapes.items()
    ]
    said = "; ".join(parts)
    if len(held) == len(shapes):
        return Verdict(REPRODUCED, f"{said}: the max rises and the median stays flat")
    if held:
        others = [n for n in shapes if n not in held]
        why = _why_not(shapes[others[0]])
        return Verdict(PARTLY, f"{said}: shown by {', '.join(held)}, not by {others[0]} ({why})")
    return Verdict(NOT_REPRODUCED, f"{said}: {_why_not(next(iter(shapes.values())))}")


def _why_not(s: Mapping[str, float]) -> str:
    if s["max_rise"] < MIN_RISE:
        return (
            f"the max rises by less than {MIN_RISE}: a prompt's samples score alike, "
            "so there is little to choose from"
        )
    way = "up" if s["median_change"] > 0 else "down"
    return (
        f"the median moves {way} by {abs(s['median_change']) / s['max_rise']:.0%} of the "
        "max's rise: the median of n samples drifts to a prompt's majority reward"
    )


def run(ctx: ClaimContext) -> ClaimResult:
    import torch

    from ..data.preferences import read_prompts
    from ..runs.load import load_run
    from ..stages.rewards import checker_reward, graded_reward
    from ..stages.rs_curve import best_of_n_curve
    from ..stages.rs_sampling import SamplingSettings, sample_round
    from ..tokenizers.chat import generation_prompt

    assert ctx.base is not None and ctx.base.sft is not None
    p = QUICK if ctx.quick else FULL
    if ctx.threads:
        torch.set_num_threads(ctx.threads)
    run_ = load_run(ctx.base.sft, need="decoder")
    tok = run_.tokenizer
    prompts_file = ctx.base.world / "instructions" / "test.jsonl"
    convs = read_prompts([str(prompts_file)])
    chosen = sorted(
        random.Random(ctx.seed).sample(range(len(convs)), min(p["prompts"], len(convs)))
    )
    prompts = [convs[i] for i in chosen]
    ids = [generation_prompt(tok, c.messages) for c in prompts]
    settings = SamplingSettings(
        n=p["n"], temperature=1.0, max_new_tokens=p["max_new_tokens"],
        batch_size=p["batch_size"], seed=ctx.seed,
    )  # fmt: skip
    checker, graded = checker_reward(prompts), graded_reward(prompts)
    with torch.no_grad():
        rnd = sample_round(run_.model, tok, prompts, ids, checker, settings, iteration=1)
    per_reward: dict[str, list[list[float]]] = {
        "checker": [r.rewards for r in rnd.results],
        "graded": [graded.score([prompts[r.index]] * len(r.texts), r.texts) for r in rnd.results],
    }
    curves = {name: best_of_n_curve(rs) for name, rs in per_reward.items()}
    shapes = {name: curve_shape(rows) for name, rows in curves.items()}
    rows: list[list[Any]] = []
    for c, g in zip(curves["checker"], curves["graded"], strict=True):
        rows.append([c["n"], f"{c['max']:.3f}", f"{c['median']:.3f}", f"{g['max']:.3f}",
                     f"{g['median']:.3f}"])  # fmt: skip
    series = {
        f"{name} {stat}": ([r["n"] for r in rs], [r[stat] for r in rs])
        for name, rs in curves.items()
        for stat in ("max", "median")
    }
    plot = line_plot(
        ctx.out / "best_of_n.png", series, logx=True, xlabel="samples per prompt (n)",
        ylabel="reward (mean over prompts)",
        title=f"C9 best-of-n: {len(prompts)} test prompts, N = {p['n']}, temperature 1",
    )  # fmt: skip
    tokens = sum(t for r in rnd.results for t in r.new_tokens)
    return ClaimResult(
        verdict=verdict(shapes),
        columns=["n", "checker max", "checker median", "graded max", "graded median"],
        rows=rows,
        plots=[plot],
        numbers={
            "curves": curves,
            "shapes": shapes,
            "prompts": len(prompts),
            "N": p["n"],
            "new_tokens": tokens,
            "generate_s": round(rnd.generate_s, 1),
        },  # fmt: skip
        notes=[
            f"policy: the base's SFT model ({ctx.base.sft}); prompts: a seeded {len(prompts)} of "
            f"{prompts_file.name}; {p['n']} samples each at temperature 1, at most "
            f"{p['max_new_tokens']} new tokens ({tokens:,} sampled in {rnd.generate_s:.0f} s).",
            "Expected max and median of n samples are exact order statistics of each prompt's "
            "N samples (without replacement), averaged over prompts.",
            f"Rule: the max rises by ≥ {MIN_RISE} and the median moves by ≤ {FLAT_SHARE:.0%} of "
            "that rise, for both rewards.",
        ],
    )
