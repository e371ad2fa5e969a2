"""Reward-model training throughput on CPU: lmforge's reward stage vs TRL's `RewardTrainer`.

Both sides train the same tiny LLaMA reward model (d_model 256, 6 layers, 4
heads, fp32, vocab 2048, same initial weights and score head) on the same pairs
in the same order: 8 pairs per step (16 rows: chosen then rejected), each a
32-token prompt with two 33-token answers of random token ids (no padding
anywhere; benchmarks/_pairs_bench.py builds the tokenizer, model and pairs),
the pairwise ranking loss with each pair's margin, the same AdamW (lr, betas,
weight decay, clipping at 1, constant schedule, no warmup) and 2 torch threads:

* lmforge: `WithScalarHead(llama)` (the head reads each answer's last hidden
  state) and `RewardObjective` through the one loop, `lmforge.train.loop.train`,
  on `PreferenceBatches` in the stage's default layout: one row per pair, the
  prompt once and both answers as branches (8 rows × 99 tokens where TRL runs
  16 × 65; the same scores, tests/test_shared_prompt.py); `--two-rows` runs
  TRL's layout instead;
* TRL 1.12 `RewardTrainer` on `AutoModelForSequenceClassification` (num_labels=1)
  loaded from the exported folder with lmforge's head weight copied into
  `score.weight` (HF's score has no bias; lmforge's starts at 0), on the
  pre-tokenized `chosen_ids` / `rejected_ids` / `margin` columns, fp32
  (`bf16=False`: TRL 1.12 defaults to bf16 autocast), no gradient checkpointing.

Rounds are interleaved (lmforge, TRL, then again) so that load from other jobs
on a shared machine hits both alike; each round its own pair order (seed =
round), the same for both sides. A step is timed from one batch request to the
next (data, forward, backward, optimizer, logging); pairs/s is 8 over the
median step time of the timed steps of all rounds (after `--warmup` untimed
steps per round). Both sides' losses are compared step by step: the first
step's (same weights, same batch) must agree to 1e-4, later ones show that the
updates agree too. The step is then split into forward, backward and optimizer
for each side.

TRL is in lmforge's `peers` extra (`pip install -e '.[peers]'`: trl 1.12.0,
transformers 5.24.0); the project's venv has it. Run (about 1 minute on 2
cores; `--quick` is a smoke run that writes no result):

    .venv/bin/python benchmarks/reward.py
    .venv/bin/python benchmarks/reward.py --quick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _pairs_bench as pb  # noqa: E402
from _bench import write_result  # noqa: E402

# Scripts here are named after what they measure: keep this folder off the import
# path so that it cannot shadow packages of the same name (this file is `reward`).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import torch  # noqa: E402

LM, TRL = "lmforge", "TRL RewardTrainer"


def lmforge_reward_model(setup: pb.Setup):
    """WithScalarHead on the initial weights; the head seeded so both sides copy one head."""
    from lmforge.models.heads import WithScalarHead

    torch.manual_seed(1)
    return WithScalarHead(pb.lmforge_model(setup))


def trl_dataset(setup: pb.Setup, order: list[int]):
    from datasets import Dataset

    return Dataset.from_list([
        {"chosen_ids": setup.pairs[i].chosen, "rejected_ids": setup.pairs[i].rejected,
         "margin": setup.pairs[i].margin}
        for i in order
    ])  # fmt: skip


def trl_trainer(setup: pb.Setup, args, steps: int, seed: int):
    """A RewardTrainer (recording its losses) on round `seed`'s pairs, `steps` steps."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    class Trainer(pb.RecordLosses, RewardTrainer):
        pass

    hf = AutoModelForSequenceClassification.from_pretrained(
        setup.hf_dir, num_labels=1, dtype=torch.float32, attn_implementation="sdpa"
    )
    with torch.no_grad():
        hf.score.weight.copy_(lmforge_reward_model(setup).head.weight)
    cfg = RewardConfig(**pb.trl_args(setup, args, steps, seed))
    order = pb.round_order(setup, args, seed, steps)
    return Trainer(
        model=hf, args=cfg, train_dataset=trl_dataset(setup, order),
        processing_class=AutoTokenizer.from_pretrained(setup.hf_dir),
    )  # fmt: skip


def split_lmforge(setup: pb.Setup, args, reps: int) -> dict[str, float]:
    from lmforge.train.optim import build_optimizer
    from lmforge.train.reward import RewardObjective

    model = lmforge_reward_model(setup).train()
    opt = build_optimizer(model, args.lr, 0.1, (0.9, 0.95))
    src = pb.batches(setup, args, seed=100)
    objective = RewardObjective()
    return pb.split(lambda b: objective.compute_loss(model, b).loss_sum, src.next_batch, opt, reps)


def split_trl(setup: pb.Setup, args, reps: int) -> dict[str, float]:
    trainer = trl_trainer(setup, args, reps + 1, seed=100)
    trainer.model.train()
    trainer.create_optimizer()
    it = iter(trainer.get_train_dataloader())
    return pb.split(
        lambda b: trainer.compute_loss(trainer.model, dict(b)), lambda: next(it),
        trainer.optimizer, reps,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    pb.add_common_args(ap)
    args = ap.parse_args()
    pb.require_trl("reward")
    if args.quick:
        args.steps, args.warmup, args.rounds = 2, 1, 1
    torch.set_num_threads(args.threads)
    pb.quiet()
    from lmforge.train.reward import RewardObjective

    tmp = None
    if args.work:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="lmforge-bench-reward-")
        work = Path(tmp.name)
    t0 = time.perf_counter()
    setup = pb.prepare(work)
    n = args.warmup + args.steps
    print(f"set-up {time.perf_counter() - t0:.0f} s: vocab {setup.tok.vocab_size}, "
          f"{sum(v.numel() for v in setup.init_state.values()):,} weights in the state dict, "
          f"{args.batch} pairs/step ({pb.PROMPT}-token prompts, {pb.ANSWER}-token answers)",
          flush=True)  # fmt: skip

    variants = [LM, TRL]
    rounds = pb.Rounds(variants, args.warmup, args.steps)
    for r in range(args.rounds):
        rounds.add(
            LM, pb.run_lmforge(setup, args, lmforge_reward_model(setup), RewardObjective(), n, r)
        )
        rounds.add(TRL, pb.run_trl(trl_trainer(setup, args, n + 1, r)))
        print(rounds.line(r, args.rounds), flush=True)
    agree = pb.loss_agreement(rounds.losses[LM], rounds.losses[TRL])
    first = agree["first_step"][0]
    print(f"first-step loss: lmforge {first['lmforge']:.6f}, TRL {first['trl']:.6f} "
          f"(max |diff| over rounds {agree['first_step_max_abs_diff']:.1e}; over all steps "
          f"{agree['all_steps_max_abs_diff']:.1e})")  # fmt: skip
    if agree["first_step_max_abs_diff"] > 1e-4:
        raise SystemExit("reward benchmark: the first-step losses differ: not the same setup")

    reps = 2 if args.quick else 6
    splits = {LM: split_lmforge(setup, args, reps), TRL: split_trl(setup, args, reps)}
    gflops = pb.matmul_gflops()
    results = rounds.results(args.batch, splits)
    print(f"{args.batch} pairs per step (TRL {2 * args.batch} rows × {pb.PROMPT + pb.ANSWER} tokens, "
          f"lmforge {pb.layout_note(args)}), "
          f"lr {args.lr}, fp32, {torch.get_num_threads()} threads; pairs/s = pairs per step / "
          f"median step time over {args.rounds} rounds × {args.steps} timed steps after "
          f"{args.warmup} warm-up steps; fp32 2048² matmul {gflops:,.0f} GFLOP/s")  # fmt: skip
    pb.print_results(results)
    ratio = results[0]["pairs_s"] / results[1]["pairs_s"]
    print(f"ratio lmforge / TRL RewardTrainer: pairs/s {ratio:.2f}×")
    if not args.quick:
        payload = {
            "config": pb.config_record(setup, args),
            "loss_agreement": agree,
            "matmul_fp32_gflops": gflops,
            "load_average_end": pb.load_average(),
            "results": results,
            "ratio": {"pairs_s": ratio},
        }
        name = "reward" + (f"_{args.tag}" if args.tag else "")
        print(f"wrote {write_result(name, payload)}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
