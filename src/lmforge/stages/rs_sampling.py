"""One round of rejection sampling: N samples per prompt from the engine, scored, the best kept.

`sample_round(model, tok, prompts, prompt_ids, reward, settings, iteration, ...)`
generates with the one engine (`inference.engine.generate_full`): each batch of
prompts is prefilled once and every prompt's prefill is shared by its N samples
(``cfg.n``); a reply ends at ``<|end|>`` or EOS (`default_stop_ids`). Every
sample's seed depends only on the iteration, the prompt's index and the sample's
index (`prompt_seed`; the engine adds ``1000003 × j``), never on the batching or
on which process drew it, so under torchrun each process samples an interleaved
share of the prompts and the gathered round is the one a single process draws.

`select_best(rewards, rng)` keeps the highest reward, ties broken by a seeded RNG
(`tie_rng`: one per iteration and prompt); a prompt whose best is below
``min_reward`` is not trained on, nor, with ``skip_solved``, one whose every
sample reaches it (the policy already solves it).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..common import LmforgeError

# Prompt seeds of iteration k are seed + (k-1) × this + index. Not a multiple of 2**32:
# torch's CPU generator keeps only the low 32 bits of a seed (5 and 5 + 2**32 draw alike).
ITERATION_SEED_STRIDE = 100_000_007


@dataclass(frozen=True)
class SamplingSettings:
    """How a round samples and selects (from `RSConfig`)."""

    n: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 128
    batch_size: int = 16
    seed: int = 0
    min_reward: float | None = None
    skip_solved: bool = False  # a prompt whose every sample reaches min_reward is not kept


@dataclass
class PromptResult:
    """One prompt's N samples: texts, rewards, seeds, and which one is kept (if any)."""

    index: int  # the prompt's position in the prompt list
    texts: list[str]
    rewards: list[float]
    seeds: list[int]
    finish: list[str]  # "stop" or "length" per sample
    new_tokens: list[int]
    best: int = -1  # the chosen sample
    kept: bool = False  # the best reached min_reward: it becomes a training target
    solved: bool = False  # every sample reached min_reward


@dataclass
class Round:
    """What `sample_round` gives: every prompt's result, in prompt order, and its timing."""

    results: list[PromptResult]
    generate_s: float
    score_s: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return sum(len(r.texts) for r in self.results)

    @property
    def kept(self) -> list[PromptResult]:
        return [r for r in self.results if r.kept]


def prompt_seed(seed: int, iteration: int, index: int) -> int:
    """The seed of prompt `index` in `iteration` (its sample j draws from this + 1000003 j)."""
    return seed + (iteration - 1) * ITERATION_SEED_STRIDE + index


def tie_rng(seed: int, iteration: int, index: int) -> random.Random:
    """The generator that breaks a tie between equally rewarded samples of one prompt."""
    return random.Random(f"rs-tie:{seed}:{iteration}:{index}")  # str seeds are stable (sha512)


def select_best(rewards: Sequence[float], rng: random.Random) -> int:
    """The index of the highest reward (NaN counts as lowest); a tie goes to `rng`'s pick."""
    vals = [-math.inf if math.isnan(r) else r for r in rewards]
    top = max(vals)
    ties = [j for j, r in enumerate(vals) if r == top]
    return ties[0] if len(ties) == 1 else ties[rng.randrange(len(ties))]


def choose(results: Sequence[PromptResult], settings: SamplingSettings, iteration: int) -> None:
    """Mark each result's best sample, whether it is solved, and whether it is kept.

    Kept: the best reaches `min_reward` (any best, without one), and with `skip_solved`
    not every sample does. A NaN reward reaches nothing.
    """
    floor = settings.min_reward
    for r in results:
        r.best = select_best(r.rewards, tie_rng(settings.seed, iteration, r.index))
        reached = [floor is None or (not math.isnan(x) and x >= floor) for x in r.rewards]
        r.solved = floor is not None and all(reached)
        r.kept = reached[r.best] and not (settings.skip_solved and r.solved)


def _generate(model, tok, prompt_ids, indices, settings, iteration, stops) -> list[PromptResult]:
    """Samples of the prompts `indices` (batches of similar length; seeds by prompt index)."""
    from ..inference.engine import generate_full, per_prompt, row_seeds
    from ..inference.sampling import SamplingConfig

    cfg = SamplingConfig(
        max_new_tokens=settings.max_new_tokens, n=settings.n, temperature=settings.temperature,
        top_k=settings.top_k, top_p=settings.top_p, seed=None,
    )  # fmt: skip
    pad = tok.pad_id if tok.pad_id is not None else 0
    order = sorted(indices, key=lambda i: (len(prompt_ids[i]), i))  # little padding per batch
    out: dict[int, PromptResult] = {}
    for s in range(0, len(order), settings.batch_size):
        chunk = order[s : s + settings.batch_size]
        seeds = [prompt_seed(settings.seed, iteration, i) for i in chunk]
        gens = generate_full(
            model, [prompt_ids[i] for i in chunk], cfg, pad_id=pad, seeds=seeds,
            stop_ids=[stops] * len(chunk),
        )  # fmt: skip
        rows = row_seeds(cfg, len(chunk), seeds)
        for k, (i, group) in enumerate(zip(chunk, per_prompt(gens, settings.n), strict=True)):
            out[i] = PromptResult(
                index=i,
                texts=[tok.decode(g.tokens) for g in group],
                rewards=[],
                seeds=rows[k * settings.n : (k + 1) * settings.n],
                finish=[g.finish_reason for g in group],
                new_tokens=[len(g.tokens) for g in group],
            )
    return [out[i] for i in indices]


def sample_round(
    model: torch.nn.Module,
    tok: Any,
    prompts: Sequence[Any],
    prompt_ids: Sequence[Sequence[int]],
    reward: Any,
    settings: SamplingSettings,
    iteration: int,
    *,
    ctx: Any = None,
    amp_dtype: torch.dtype | None = None,
) -> Round:
    """Sample, score and select one round over every prompt (this process's share, gathered)."""
    from ..inference.engine import default_stop_ids
    from ..train import distributed as D
    from ..train.precision import autocast

    rank, world = (ctx.rank, ctx.world_size) if ctx is not None else (0, 1)
    device = str(next(model.parameters()).device)
    mine = list(range(rank, len(prompts), world))
    stops = default_stop_ids(tok)
    t0 = time.perf_counter()
    with autocast(device, amp_dtype):
        results = _generate(model, tok, prompt_ids, mine, settings, iteration, stops)
    t1 = time.perf_counter()
    flat_prompts = [prompts[r.index] for r in results for _ in r.texts]
    flat_texts = [t for r in results for t in r.texts]
    scores = reward.score(flat_prompts, flat_texts) if flat_texts else []
    if len(scores) != len(flat_texts):
        raise LmforgeError(f"the reward gave {len(scores)} scores for {len(flat_texts)} samples")
    k = 0
    for r in results:
        r.rewards, k = scores[k : k + len(r.texts)], k + len(r.texts)
    t2 = time.perf_counter()
    if ctx is not None and ctx.distributed:
        shares = D.gather_objects(results, ctx)
        results = sorted((r for share in shares for r in share), key=lambda r: r.index)
        # The slowest process decides how long the round took.
        times = D.gather_objects((t1 - t0, t2 - t1), ctx)
        gen_s, score_s = max(t[0] for t in times), max(t[1] for t in times)
    else:
        gen_s, score_s = t1 - t0, t2 - t1
    choose(results, settings, iteration)
    return Round(results, gen_s, score_s)


def round_summary(rnd: Round, iteration: int, settings: SamplingSettings) -> dict[str, Any]:
    """The numbers an iteration reports: samples, throughput, kept, rewards."""
    rewards = [x for r in rnd.results for x in r.rewards]
    best = [r.rewards[r.best] for r in rnd.results]
    seconds = rnd.generate_s + rnd.score_s
    tokens = sum(t for r in rnd.results for t in r.new_tokens)
    finite = [x for x in rewards if math.isfinite(x)]
    return {
        "iteration": iteration,
        "prompts": len(rnd.results),
        "n": settings.n,
        "samples": rnd.samples,
        "new_tokens": tokens,
        "generate_s": round(rnd.generate_s, 3),
        "score_s": round(rnd.score_s, 3),
        "samples_per_s": rnd.samples / seconds if seconds > 0 else None,
        "new_tokens_per_s": tokens / rnd.generate_s if rnd.generate_s > 0 else None,
        "stopped_by_length": sum(f == "length" for r in rnd.results for f in r.finish),
        "kept": len(rnd.kept),
        "solved": sum(r.solved for r in rnd.results),
        "skip_solved": settings.skip_solved,
        "min_reward": settings.min_reward,
        "mean_reward": sum(finite) / len(finite) if finite else None,
        "mean_best_reward": sum(best) / len(best) if best else None,
        "max_reward": max(finite) if finite else None,
        "temperature": settings.temperature,
    }
