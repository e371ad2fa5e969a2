"""One PPO iteration and one GRPO step: lmforge against TRL 1.12, same model, same work.

    .venv/bin/python benchmarks/ppo.py [--iterations 3] [--warmup 1]

Both sides start from the same seeded tiny LLaMA (`_pairs_bench.MODEL`: d_model 256,
6 layers, 4 heads, vocab 2048, fp32; TRL loads its `export_hf` folder) and do the
same work per iteration (`_trl_rl.RLShape`):

* PPO: a rollout of 16 prompts of exactly 32 tokens, 32 new tokens each (no stop
  token), scored by a reward model of the same size, the reference policy's
  log-probabilities, values; then 4 epochs × 2 minibatches of 8 rows, each an
  optimizer step of policy + value. TRL 1.12's `PPOTrainer` has four separate
  models (policy, reference, value, reward); lmforge's value head shares the
  policy's trunk (its default; the textbook's "same model with a linear head"), so
  its update runs one trunk where TRL runs two — part of what the ratio measures;
* GRPO: 8 prompts × 8 completions of 32 tokens, a Python reward (distinct tokens),
  β = 0.04 so that both run the reference model, one optimizer step. lmforge runs
  the stage's default, each prompt's 8 completions as branches of one row (the
  prompt once: 8 rows × 295 tokens where TRL runs 64 × 64; the same numbers,
  tests/test_shared_prompt.py); `--no-share-prompt` runs a row per completion.

lmforge runs its real stage machinery (`stages.ppo_rollout.RolloutBatches`, the PPO
and GRPO objectives, the one loop); an iteration is timed from one rollout's start
to the next (rollout + update, read from RUN/ppo/iterations.jsonl), after `warmup`
iterations. TRL's side is `_trl_rl.py` (the same boundaries, instrumented inside).
Writes benchmarks/results/ppo.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _pairs_bench as pb  # noqa: E402 (sets HF_HUB_OFFLINE first)
import _trl_rl as trl  # noqa: E402
import torch  # noqa: E402
from _bench import machine, print_table, write_result  # noqa: E402

LMFORGE = "lmforge"


def _prompts(setup: pb.Setup, n: int, length: int):
    """`n` (Conversation, ids) prompts: the texts and exact ids TRL gets (`rl_prompts`)."""
    from lmforge.tokenizers.chat import Conversation

    pairs = trl.rl_prompts(setup.hf_dir, n, length, seed=0)
    convs = [Conversation.from_dicts([{"role": "user", "content": t}], {"where": f"p{i}"})
             for i, (t, _) in enumerate(pairs)]  # fmt: skip
    return convs, [ids for _, ids in pairs]


def _reward_model(setup: pb.Setup):
    """A reward of the same size as the policy, scoring prompt + answer ids like TRL's."""
    from lmforge.models.heads import WithScalarHead
    from lmforge.stages.rewards import Reward

    torch.manual_seed(1)
    rm = WithScalarHead(pb.lmforge_model(setup, frozen=True)).eval()

    def score(convs, texts):
        # The ids the rollout holds are not passed to a reward; re-encode prompt + answer
        # (what a reward model with its own tokenizer does), one batch.
        rows = [setup.tok.encode(c.messages[-1].content + t) for c, t in zip(convs, texts)]
        T = max(len(r) for r in rows)
        ids = torch.full((len(rows), T), setup.pad, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        with torch.no_grad():
            return rm(ids, lengths=torch.tensor([len(r) for r in rows])).tolist()

    return Reward("model", "a random reward model of the policy's size", score, None, model=rm)


def _distinct(convs, texts) -> list[float]:
    return [float(len(set(t.split()))) for t in texts]


def lmforge_times(setup: pb.Setup, shape: trl.RLShape, algorithm: str, iterations: int,
                  warmup: int, share: bool = True) -> dict[str, Any]:  # fmt: skip
    """Median seconds per iteration (rollout + update) of lmforge's PPO or GRPO, split."""
    from lmforge.models.heads import WithValueHead
    from lmforge.stages.ppo_rollout import RolloutBatches, RolloutSettings, read_iterations
    from lmforge.stages.rewards import Reward
    from lmforge.train.config import TrainConfig
    from lmforge.train.loop import train
    from lmforge.train.ppo import GRPOObjective, PPOObjective
    from lmforge.train.ppo_math import AdaptiveKL

    ppo = algorithm == "ppo"
    n = 1 if ppo else shape.grpo_completions
    share = share and n > 1  # the stage's default: a prompt's answers run it once (--share-prompt)
    episodes = shape.episodes if ppo else shape.grpo_rows
    epochs, minibatches = (shape.ppo_epochs, shape.minibatches) if ppo else (1, 1)
    convs, ids = _prompts(setup, episodes // n * (iterations + warmup), shape.prompt)
    policy = pb.lmforge_model(setup)
    torch.manual_seed(0)
    model = WithValueHead(policy) if ppo else policy
    reference = pb.lmforge_model(setup, frozen=True)
    reward = _reward_model(setup) if ppo else Reward("function", "distinct tokens", _distinct, None)
    settings = RolloutSettings(
        algorithm=algorithm, episodes=episodes, n=n, ppo_epochs=epochs, minibatches=minibatches,
        max_new_tokens=shape.response, temperature=1.0, seed=shape.seed, stop_ids=(),
        share_prompts=share,
    )  # fmt: skip
    objective = (PPOObjective(share_prompts=share) if ppo
                 else GRPOObjective(beta=trl.GRPO_BETA, share_prompts=share))  # fmt: skip
    steps = (iterations + warmup) * epochs * minibatches
    cfg = TrainConfig(
        batch_size=settings.rows, max_steps=steps, lr=shape.lr, min_lr=shape.lr, warmup=0,
        schedule="constant", weight_decay=0.1, betas=(0.9, 0.95), grad_clip=1.0, dtype="fp32",
        eval_every=0, save_every=0, log_every=1, device="cpu", parallel="none", seed=0,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="lmforge-bench-ppo-") as tmp:
        batches = RolloutBatches(
            model, reference, setup.tok, convs, ids, reward, settings, AdaptiveKL(0.05),
            objective.stats, run_dir=tmp, log=lambda _: None,
        )  # fmt: skip
        train(model, objective, batches, cfg, run_dir=tmp)
        batches.finish()
        rows = read_iterations(tmp)[warmup:]
    assert all(r["mean_length"] == shape.response for r in rows), "answers of another length"
    wall = [r["rollout_s"] + r["update_s"] for r in rows]
    parts = {
        "generation": [r["generate_s"] for r in rows],
        "rollout_rest": [r["rollout_s"] - r["generate_s"] for r in rows],
        "update": [r["update_s"] for r in rows],
    }
    return {
        "impl": LMFORGE,
        "steps_timed": len(rows),
        "step_s_median": statistics.median(wall),
        "step_s_best": min(wall),
        "step_s_all": [round(w, 4) for w in wall],
        "split_s": {k: statistics.median(v) for k, v in parts.items()},
        "share": {k: sum(v) / sum(wall) for k, v in parts.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=3, help="timed iterations per side")
    ap.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--no-share-prompt", action="store_true",
                    help="lmforge GRPO: a row per completion instead of the stage's default, "
                    "a prompt's completions as branches of one row")  # fmt: skip
    ap.add_argument("--tag", default="", help="suffix of the result file (ppo_<tag>.json)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pb.quiet()
    shape = trl.RLShape()
    with tempfile.TemporaryDirectory(prefix="lmforge-bench-ppo-") as tmp:
        setup = pb.prepare(Path(tmp))
        # Interleaved: each side's PPO, then each side's GRPO, so a busy spell hits both.
        ppo_ours = lmforge_times(setup, shape, "ppo", args.iterations, args.warmup)
        ppo_trl = trl.trl_ppo_times(setup, shape, iterations=args.iterations, warmup=args.warmup)
        grpo_ours = lmforge_times(setup, shape, "grpo", args.iterations, args.warmup,
                                  share=not args.no_share_prompt)  # fmt: skip
        grpo_trl = trl.trl_grpo_times(setup, shape, steps=args.iterations, warmup=args.warmup)
    rows = []
    for name, ours, peer in (("PPO iteration", ppo_ours, ppo_trl),
                             ("GRPO step", grpo_ours, grpo_trl)):  # fmt: skip
        gen_o = ours["share"]["generation"]
        gen_p = peer["share"].get("generation", float("nan"))
        rows.append([name, f"{ours['step_s_median']:.3f}", f"{peer['step_s_median']:.3f}",
                     f"{peer['step_s_median'] / ours['step_s_median']:.2f}x",
                     f"{gen_o:.0%}", f"{gen_p:.0%}"])  # fmt: skip
    print_table(["work", "lmforge s", "TRL 1.12 s", "speed-up", "lmforge generation",
                 "TRL generation"], rows)  # fmt: skip
    write_result("ppo" + (f"_{args.tag}" if args.tag else ""), {
        "machine": machine(), "shape": vars(shape), "iterations": args.iterations,
        "warmup": args.warmup, "grpo_share_prompt": not args.no_share_prompt,
        "ppo": {"lmforge": ppo_ours, "trl": ppo_trl},
        "grpo": {"lmforge": grpo_ours, "trl": grpo_trl},
    })  # fmt: skip


if __name__ == "__main__":
    main()
