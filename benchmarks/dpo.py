"""DPO training throughput on CPU: lmforge's DPO stage vs TRL's `DPOTrainer`.

Both sides train the same tiny LLaMA policy (d_model 256, 6 layers, 4 heads,
fp32, vocab 2048, same initial weights) against an explicit frozen reference
(a second copy of the initial model, run without gradients on every batch)
with the sigmoid DPO loss (β 0.1) on the same pairs in the same order: 8 pairs
per step (16 rows: chosen then rejected), each a 32-token prompt with two
33-token answers of random token ids (no padding anywhere;
benchmarks/_pairs_bench.py builds the tokenizer, model and pairs), the same
AdamW (lr, betas, weight decay, clipping at 1, constant schedule, no warmup)
and 2 torch threads:

* lmforge: `DPOObjective(reference=frozen_model)` through the one loop,
  `lmforge.train.loop.train`, on `PreferenceBatches` in the stage's default
  layout (one row per pair, the prompt once: 8 rows × 99 tokens where TRL runs
  16 × 65; `--two-rows` for TRL's layout); log-probabilities by
  `lmforge.train.logprobs.masked_token_logps` (only answer positions reach the
  output layer);
* lmforge with its stage's default, `DPOObjective(ref_logps=table)`: the
  reference's log-probabilities computed once before training (timed apart,
  not in the steps). A second row, not the comparison the ratio is about;
* TRL 1.12 `DPOTrainer` with `ref_model=` (both loaded from the exported
  folder), fp32 (`bf16=False`: TRL 1.12 defaults to bf16 autocast, which also
  wraps the reference), no gradient checkpointing, on a dataset of
  `prompt_ids` / `chosen_ids` / `rejected_ids`. DPOTrainer has no pre-tokenized
  path (it always tokenizes text columns once at start-up), so its
  `_prepare_dataset` is overridden to pass the ids through: that one-off step
  is outside the timed steps anyway; the collator, loss and training step are
  TRL's own.

Rounds are interleaved (lmforge, lmforge precomputed, TRL, then again) so that
load from other jobs on a shared machine hits them alike; each round its own
pair order (seed = round), the same for every side. A step is timed from one
batch request to the next (data, forward, backward, optimizer, logging);
pairs/s is 8 over the median step time of the timed steps of all rounds
(after `--warmup` untimed steps per round). The first step's loss is log 2 on
any setup (policy = reference), so the first step's policy log-probabilities
(mean over the chosen answers) must agree to 1e-4 between lmforge and TRL, and
the losses of later steps show that the updates agree too. The step is then
split into forward (with the reference's share), backward and optimizer for
each side.

TRL is in lmforge's `peers` extra (`pip install -e '.[peers]'`: trl 1.12.0,
transformers 5.24.0); the project's venv has it. Run (about 2 minutes on 2
cores; `--quick` is a smoke run that writes no result):

    .venv/bin/python benchmarks/dpo.py
    .venv/bin/python benchmarks/dpo.py --quick
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
# path so that it cannot shadow packages of the same name (this file is `dpo`).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import torch  # noqa: E402

BETA = 0.1
LM, LM_CACHED, TRL = (
    "lmforge (per-batch reference)",
    "lmforge (precomputed reference)",
    "TRL DPOTrainer",
)


def reference_table(setup: pb.Setup, args) -> tuple[torch.Tensor, float]:
    """(POOL, 2) the reference's summed answer log-probs of every pair, and the seconds taken."""
    from lmforge.train.logprobs import answer_logps

    ref = pb.lmforge_model(setup, frozen=True)
    t0 = time.perf_counter()
    table = torch.zeros(len(setup.pairs), 2)
    src = pb.batches(setup, args, seed=0)
    with torch.no_grad():
        for b in src.eval_batches():
            logps = answer_logps(ref, b)  # (2B,)
            table[b["index"]] = torch.stack(logps.chunk(2), dim=1)  # (B, 2)
    return table, time.perf_counter() - t0


def lmforge_objective(setup: pb.Setup, table: torch.Tensor | None = None):
    from lmforge.train.dpo import DPOObjective

    if table is not None:
        return DPOObjective(beta=BETA, ref_logps=table)
    return DPOObjective(beta=BETA, reference=pb.lmforge_model(setup, frozen=True))


def first_chosen_logps(setup: pb.Setup, args, seed: int) -> float:
    """Mean summed log-prob of the chosen answers of round `seed`'s first batch (initial model)."""
    from lmforge.train.logprobs import answer_logps

    b = pb.batches(setup, args, seed).next_batch()
    with torch.no_grad():
        logps = answer_logps(pb.lmforge_model(setup, frozen=True), b)  # (2B,)
    return float(logps[: args.batch].mean())


def trl_trainer(setup: pb.Setup, args, steps: int, seed: int):
    """A DPOTrainer (recording losses and policy log-probs) on round `seed`'s pairs."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    class Trainer(pb.RecordLosses, DPOTrainer):
        def _prepare_dataset(self, dataset, *a, **kw):
            return dataset  # already prompt_ids / chosen_ids / rejected_ids

        def compute_loss(self, model, inputs, *a, **kw):
            loss = super().compute_loss(model, inputs, *a, **kw)
            if model.training and hasattr(self, "bench_losses"):
                self.bench_logps.append(self._metrics["train"]["logps/chosen"][-1])
            return loss

    def hf():
        return AutoModelForCausalLM.from_pretrained(
            setup.hf_dir, dtype=torch.float32, attn_implementation="sdpa"
        )

    cfg = DPOConfig(**pb.trl_args(setup, args, steps, seed), beta=BETA, loss_type=["sigmoid"])
    order = pb.round_order(setup, args, seed, steps)
    ds = Dataset.from_list([
        {"prompt_ids": setup.pairs[i].chosen[: pb.PROMPT],
         "chosen_ids": setup.pairs[i].chosen[pb.PROMPT :],
         "rejected_ids": setup.pairs[i].rejected[pb.PROMPT :]}
        for i in order
    ])  # fmt: skip
    trainer = Trainer(
        model=hf(), ref_model=hf().eval(), args=cfg, train_dataset=ds,
        processing_class=AutoTokenizer.from_pretrained(setup.hf_dir),
    )  # fmt: skip
    trainer.bench_logps = []
    return trainer


def split_lmforge(setup: pb.Setup, args, reps: int, table=None) -> dict[str, float]:
    from lmforge.train.optim import build_optimizer

    model = pb.lmforge_model(setup).train()
    opt = build_optimizer(model, args.lr, 0.1, (0.9, 0.95))
    src = pb.batches(setup, args, seed=100)
    objective = lmforge_objective(setup, table)
    return pb.split(
        lambda b: objective.compute_loss(model, b).loss_sum, src.next_batch, opt, reps,
        reference=objective.reference,
    )  # fmt: skip


def split_trl(setup: pb.Setup, args, reps: int) -> dict[str, float]:
    trainer = trl_trainer(setup, args, reps + 1, seed=100)
    trainer.model.train()
    trainer.create_optimizer()
    it = iter(trainer.get_train_dataloader())
    return pb.split(
        lambda b: trainer.compute_loss(trainer.model, dict(b)), lambda: next(it),
        trainer.optimizer, reps, reference=trainer.ref_model,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    pb.add_common_args(ap)
    args = ap.parse_args()
    pb.require_trl("dpo")
    if args.quick:
        args.steps, args.warmup, args.rounds = 2, 1, 1
    torch.set_num_threads(args.threads)
    pb.quiet()

    tmp = None
    if args.work:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="lmforge-bench-dpo-")
        work = Path(tmp.name)
    t0 = time.perf_counter()
    setup = pb.prepare(work)
    table, table_s = reference_table(setup, args)
    n = args.warmup + args.steps
    print(f"set-up {time.perf_counter() - t0:.0f} s: vocab {setup.tok.vocab_size}, "
          f"{args.batch} pairs/step ({pb.PROMPT}-token prompts, {pb.ANSWER}-token answers); "
          f"reference table of {len(setup.pairs)} pairs in {table_s:.1f} s", flush=True)  # fmt: skip

    variants = [LM, LM_CACHED, TRL]
    rounds = pb.Rounds(variants, args.warmup, args.steps)
    logps: list[tuple[float, float]] = []  # (lmforge, TRL) of each round's first batch
    for r in range(args.rounds):
        objective = lmforge_objective(setup)
        rounds.add(LM, pb.run_lmforge(setup, args, pb.lmforge_model(setup), objective, n, r))
        objective = lmforge_objective(setup, table)
        rounds.add(LM_CACHED, pb.run_lmforge(setup, args, pb.lmforge_model(setup), objective, n, r))
        trainer = trl_trainer(setup, args, n + 1, r)
        rounds.add(TRL, pb.run_trl(trainer))
        logps.append((first_chosen_logps(setup, args, r), trainer.bench_logps[0]))
        print(rounds.line(r, args.rounds), flush=True)
    agree = pb.loss_agreement(rounds.losses[LM], rounds.losses[TRL])
    agree["cached_vs_trl_all_steps_max_abs_diff"] = pb.loss_agreement(
        rounds.losses[LM_CACHED], rounds.losses[TRL]
    )["all_steps_max_abs_diff"]
    agree["first_batch_chosen_logps"] = [{"lmforge": a, "trl": b} for a, b in logps]
    logps_diff = max(abs(a - b) for a, b in logps)
    agree["first_batch_chosen_logps_max_abs_diff"] = logps_diff
    first = agree["first_step"][0]
    print(f"first step: loss lmforge {first['lmforge']:.6f}, TRL {first['trl']:.6f}; policy "
          f"log-prob of the chosen answers lmforge {logps[0][0]:.5f}, TRL {logps[0][1]:.5f} "
          f"(max |diff| over rounds {logps_diff:.1e}); loss max |diff| over all steps "
          f"{agree['all_steps_max_abs_diff']:.1e} (precomputed reference vs TRL "
          f"{agree['cached_vs_trl_all_steps_max_abs_diff']:.1e})")  # fmt: skip
    if logps_diff > 1e-4 * max(1.0, abs(logps[0][1])) or agree["first_step_max_abs_diff"] > 1e-4:
        raise SystemExit("dpo benchmark: the first step differs between lmforge and TRL")

    reps = 2 if args.quick else 6
    splits = {LM: split_lmforge(setup, args, reps), LM_CACHED: split_lmforge(setup, args, reps, table),
              TRL: split_trl(setup, args, reps)}  # fmt: skip
    gflops = pb.matmul_gflops()
    results = rounds.results(args.batch, splits)
    print(f"{args.batch} pairs per step (TRL {2 * args.batch} rows × {pb.PROMPT + pb.ANSWER} tokens, "
          f"lmforge {pb.layout_note(args)}), "
          f"β {BETA}, lr {args.lr}, fp32, {torch.get_num_threads()} threads; pairs/s = pairs per "
          f"step / median step time over {args.rounds} rounds × {args.steps} timed steps after "
          f"{args.warmup} warm-up steps; fp32 2048² matmul {gflops:,.0f} GFLOP/s")  # fmt: skip
    pb.print_results(results)
    base = {s["impl"]: s for s in results}
    ratio = {
        "per_batch_reference": base[LM]["pairs_s"] / base[TRL]["pairs_s"],
        "precomputed_reference": base[LM_CACHED]["pairs_s"] / base[TRL]["pairs_s"],
    }
    print(f"ratio lmforge / TRL DPOTrainer (both with an explicit reference model): pairs/s "
          f"{ratio['per_batch_reference']:.2f}×; lmforge with its precomputed reference: "
          f"{ratio['precomputed_reference']:.2f}×")  # fmt: skip
    if not args.quick:
        payload = {
            "config": {**pb.config_record(setup, args), "beta": BETA, "loss_type": "sigmoid"},
            "reference_table_s": table_s,
            "loss_agreement": agree,
            "matmul_fp32_gflops": gflops,
            "load_average_end": pb.load_average(),
            "results": results,
            "ratio": ratio,
        }
        name = "dpo" + (f"_{args.tag}" if args.tag else "")
        print(f"wrote {write_result(name, payload)}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
