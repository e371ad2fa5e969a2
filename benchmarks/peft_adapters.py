"""Adapter training throughput on CPU: lmforge's prompt tuning and LoRA vs PEFT's, and full
fine-tuning vs transformers, on the same random LLaMA and the same batches.

The model: a random LLaMA (d_model 256, 6 layers, 4 heads, SwiGLU d_ff 768, untied
embeddings, fp32), built by lmforge with seed 0 and exported with
`lmforge.export.hf.export_hf`; the transformers/PEFT side loads that folder, so
both start from the same weights (checked: the same loss on the first batch).
Vocabulary: 32,000 ids (LLaMA's; `--vocab` to change it, both sides alike).
Batch 8, sequence 128, the same AdamW (fused, lr 1e-3, betas 0.9/0.95), clipping
at 1.0, torch threads the same on both sides.

Six implementations, each the ordinary way to use its library:

* PEFT prompt tuning, 20 virtual tokens (`PromptTuningConfig`) vs lmforge
  `attach_soft_prompt` 10 before + 10 after the input (the same 20 × 256 trainable
  numbers, the same 148 positions per row);
* PEFT LoRA r 8, alpha 16 on q_proj, v_proj vs lmforge `apply_lora` r 8 on q, v
  (slices of its fused q|k|v: the same trainable count);
* full fine-tuning: `LlamaForCausalLM` vs lmforge's GPT.

lmforge trains through its real loop (`lmforge.train.loop.train`: token-weighted
loss, clipping, NaN guard), with the objective its stage uses; the HF side
through the plain loop an HF user writes (forward with labels, backward,
`clip_grad_norm_`, fused AdamW over the trainable parameters).

Two kinds of data, both sides get the same ids:

* ``cls`` (the prompt-tuning setting: a classification row, loss on its label):
  127 query tokens + 1 label token (one of two label ids); lmforge: the stage's
  `SFTObjective` (`targets_only`: only the label positions reach the output
  layer) on `SoftPromptBatches` rows; HF: labels -100 everywhere but the label.
* ``lm`` (next-token loss on all 128 tokens), LoRA and full fine-tuning only:
  lmforge's `CausalLMObjective`; HF `labels=input_ids`. Here no implementation can
  skip the output layer: the rows show what is left when the work is the same.

Every (implementation, data) runs in a fresh worker process per round (its peak
RSS, VmHWM, is its own; "RSS growth" is the peak minus the worker's after importing
its libraries), rounds interleaved so that load from other jobs on a shared
machine hits all alike; a rate is 1 / the median step time over the timed steps of
all rounds (after `--warmup` untimed steps per worker); the ratio to the peer is
the median over rounds of the per-round ratio (each worker against its peer run
just before it, under much the same load). The matmul work of each
step is counted (2·m·n·k for every product the step must do, attention included)
to show where the time goes: the frozen weights' gradient products and the output
layer over the vocabulary.

Run (about 10 minutes on 2 busy cores; `--quick` is a smoke run that writes nothing):

    .venv/bin/python benchmarks/peft_adapters.py
    .venv/bin/python benchmarks/peft_adapters.py --vocab 2048 --tag v2048
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _bench import print_table, write_result  # noqa: E402

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = dict(n_layer=6, n_head=4, d_model=256, block_size=256, tie_embeddings=False, dropout=0.0)
BATCH, SEQ, N_SOFT, RANK = 8, 128, 20, 8
IMPLS = {  # name -> (library, method)
    "PEFT prompt tuning": ("hf", "pt"),
    "lmforge prompt tuning": ("lmforge", "pt"),
    "PEFT LoRA": ("hf", "lora"),
    "lmforge LoRA": ("lmforge", "lora"),
    "HF full fine-tuning": ("hf", "full"),
    "lmforge full fine-tuning": ("lmforge", "full"),
}
PEERS = {"lmforge prompt tuning": "PEFT prompt tuning", "lmforge LoRA": "PEFT LoRA",
         "lmforge full fine-tuning": "HF full fine-tuning"}  # fmt: skip
LABELS = (11, 12)  # the two label ids of the cls rows


# -- data ---------------------------------------------------------------------------------
def cls_rows(vocab: int, n: int, seed: int) -> list[tuple[list[int], int]]:
    """`n` (query of SEQ - 1 ids, label id) pairs."""
    import torch

    g = torch.Generator().manual_seed(seed)
    q = torch.randint(16, vocab, (n, SEQ - 1), generator=g).tolist()
    lab = torch.randint(0, 2, (n,), generator=g).tolist()
    return [(row, LABELS[k]) for row, k in zip(q, lab)]


def lm_rows(vocab: int, n: int, seed: int) -> list[list[int]]:
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randint(16, vocab, (n, SEQ + 1), generator=g).tolist()


# -- matmul work per step -------------------------------------------------------------------
def step_gflop(method: str, lib: str, objective: str, vocab: int) -> dict[str, float]:
    """The products the step must compute, in GFLOP: body forward, backward (input and,
    for trained weights, weight gradients), output layer, attention."""
    d, L = MODEL["d_model"], MODEL["n_layer"]
    ff = 768
    body = d * 3 * d + d * d + d * 2 * ff + ff * d  # one block's linear weights
    T = SEQ + N_SOFT if method == "pt" else SEQ
    rows = BATCH * T
    head_rows = rows if (lib == "hf" or objective == "lm") else BATCH  # targets_only
    g = 1e-9 * 2
    out = {
        "body_forward": g * rows * L * body,
        "body_input_grad": g * rows * L * body,
        "body_weight_grad": g * rows * L * body if method == "full" else 0.0,
        "head_forward": g * head_rows * d * vocab,
        "head_input_grad": g * head_rows * d * vocab,
        "head_weight_grad": g * head_rows * d * vocab if method == "full" else 0.0,
        # QK^T and AV: 2 products of B x T x T x d per layer forward, twice that backward.
        "attention": g * 3 * 2 * BATCH * T * T * d * L,
    }
    out["total"] = sum(out.values())
    return out


# -- workers (one process each) -------------------------------------------------------------
def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: per address space, so a worker's own, not
    the parent's that getrusage's ru_maxrss carries over a fork)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(args) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    lib, method = IMPLS[args.worker]
    n = args.warmup + args.steps + 1  # one more request closes the last timed step
    if lib == "hf":
        import peft  # noqa: F401 (both sides' libraries loaded before the baseline)
        import transformers  # noqa: F401
    else:
        import lmforge.train.loop  # noqa: F401
    rss0 = peak_rss_mb()
    if lib == "lmforge":
        res = run_lmforge(args, method, n)
    else:
        res = run_hf(args, method, n)
    st = res.pop("stamps")
    secs = [st[k + 1] - st[k] for k in range(len(st) - 1)][args.warmup : args.warmup + args.steps]
    return {**res, "seconds": secs, "rss_peak_mb": peak_rss_mb(), "rss_before_mb": rss0}


def run_lmforge(args, method: str, n: int) -> dict[str, Any]:
    import torch

    from lmforge.models import load_model
    from lmforge.models.lora import apply_lora, count_trainable, parse_lora_spec
    from lmforge.models.soft_prompt import SoftLayout, attach_soft_prompt
    from lmforge.prompting.soft_batches import LabelledRow, SoftPromptBatches
    from lmforge.train.causal_lm import CausalLMObjective
    from lmforge.train.config import TrainConfig
    from lmforge.train.loop import train
    from lmforge.train.sft import SFTObjective

    work = Path(args.work_dir)
    model = load_model(work / "init.safetensors")
    layout = SoftLayout(args.vocab, 0, 0)
    if method == "pt":
        soft = attach_soft_prompt(model, N_SOFT // 2, N_SOFT // 2, init="vocab")
        layout = soft.layout
    elif method == "lora":
        apply_lora(model, parse_lora_spec(f"r={RANK},alpha=16,targets=q,v"))
    losses: list[float] = []
    stamps: list[float] = []
    if args.objective == "cls":
        rows = [LabelledRow(tuple(layout.surround(q, [lab])), 1)
                for q, lab in cls_rows(args.vocab, BATCH * n, args.seed)]  # fmt: skip
        inner = SoftPromptBatches(rows, BATCH, 0, shuffle=False)
        objective = SFTObjective()
    else:
        windows = torch.tensor(lm_rows(args.vocab, BATCH * n, args.seed))

        class Windows:
            def __init__(self):
                self.i = 0

            def next_batch(self):
                w = windows[self.i * BATCH : (self.i + 1) * BATCH]
                self.i += 1
                return w[:, :-1], w[:, 1:]

            def state_dict(self):
                return {"i": self.i}

            def load_state_dict(self, s):
                self.i = s["i"]

        inner, objective = Windows(), CausalLMObjective()

    class Stamped:
        def next_batch(self):
            stamps.append(time.perf_counter())
            return inner.next_batch()

        def state_dict(self):
            return inner.state_dict()

        def load_state_dict(self, s):
            inner.load_state_dict(s)

    class Losses:
        def after_step(self, loop, record):
            losses.append(float(record.loss_sum) / max(1, int(record.n_tokens)))

    cfg = TrainConfig(
        batch_size=BATCH, max_steps=n, lr=args.lr, min_lr=args.lr, warmup=0, schedule="constant",
        weight_decay=0.0, betas=(0.9, 0.95), grad_clip=1.0, dtype="fp32", compile=args.compile,
        eval_every=0, save_every=0, log_every=n, device="cpu", parallel="none",
        threads=args.threads, seed=0,
    )  # fmt: skip
    train(model, objective, Stamped(), cfg, run_dir=None, hooks=[Losses()], desc="bench")
    trainable, total = count_trainable(model)
    return {"stamps": stamps[:n], "losses": losses, "trainable": trainable, "params": total}


def run_hf(args, method: str, n: int) -> dict[str, Any]:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        Path(args.work_dir) / "hf", dtype=torch.float32, attn_implementation="sdpa"
    )
    if method == "pt":
        import peft

        model = peft.get_peft_model(model, peft.PromptTuningConfig(
            task_type=peft.TaskType.CAUSAL_LM, num_virtual_tokens=N_SOFT))  # fmt: skip
    elif method == "lora":
        import peft

        model = peft.get_peft_model(model, peft.LoraConfig(
            r=RANK, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
            task_type=peft.TaskType.CAUSAL_LM))  # fmt: skip
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0, fused=True)
    if args.objective == "cls":
        data = cls_rows(args.vocab, BATCH * n, args.seed)
        ids = torch.tensor([q + [lab] for q, lab in data])  # (N, SEQ)
        labels = torch.full_like(ids, -100)
        labels[:, -1] = ids[:, -1]  # HF shifts: position SEQ-2 predicts the label
    else:
        ids = torch.tensor(lm_rows(args.vocab, BATCH * n, args.seed))[:, :SEQ]
        labels = ids
    stamps, losses = [], []
    for s in range(n):
        stamps.append(time.perf_counter())
        if s == n - 1:
            break
        x, y = ids[s * BATCH : (s + 1) * BATCH], labels[s * BATCH : (s + 1) * BATCH]
        loss = model(input_ids=x, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    trainable, total = (model.get_nb_trainable_parameters() if method != "full" else
                        (sum(p.numel() for p in params), sum(p.numel() for p in params)))  # fmt: skip
    return {"stamps": stamps, "losses": losses, "trainable": trainable, "params": total}


# -- parent ---------------------------------------------------------------------------------
def prepare(work: Path, vocab: int) -> dict[str, Any]:
    """Initial weights (lmforge, seed 0), their HF export, and a same-loss check."""
    import torch
    import transformers

    from lmforge.export.hf import export_hf
    from lmforge.models import build_model, save_model

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    model = build_model("llama", dict(vocab_size=vocab, **MODEL)).eval()
    save_model(model, work / "init.safetensors")
    export_hf(model, None, work / "hf", force=True)
    hf = transformers.AutoModelForCausalLM.from_pretrained(work / "hf").eval()
    q, lab = cls_rows(vocab, 1, 0)[0]
    x = torch.tensor([q + [lab]])
    with torch.no_grad():
        ours = model(x)[0]
        theirs = hf(x).logits
    diff = (ours - theirs).abs().max().item()
    if diff > 1e-4:
        raise SystemExit(f"peft benchmark: the exported model differs (max |logit diff| {diff})")
    return {"max_logit_diff": diff, "parameters": sum(p.numel() for p in model.parameters())}


def run_worker(args, impl: str, objective: str, work: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", impl, "--objective", objective, "--work-dir",
           str(work), "--vocab", str(args.vocab), "--steps", str(args.steps), "--warmup",
           str(args.warmup), "--threads", str(args.threads), "--lr", str(args.lr)]  # fmt: skip
    if args.compile:
        cmd.append("--compile")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"worker {impl} ({objective}) failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=32000, help="vocabulary (both sides)")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per worker")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first, per worker")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    ap.add_argument("--threads", type=int, default=2, help="torch threads, both sides")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--objectives", default="cls,lm", help="cls, lm or both")
    ap.add_argument("--compile", action="store_true", help="lmforge with --compile")
    ap.add_argument("--tag", default="", help="suffix of the result file")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round, 1 step, no JSON")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--objective", default="cls", help=argparse.SUPPRESS)
    ap.add_argument("--work-dir", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.quick:
        args.steps, args.warmup, args.rounds = 1, 1, 1
    objectives = [o for o in args.objectives.split(",") if o]
    tmp = tempfile.TemporaryDirectory(prefix="lmforge-bench-peft-")
    work = Path(tmp.name)
    facts = prepare(work, args.vocab)
    import gc

    gc.collect()  # the parent's models are gone before the workers start
    print(f"model: {facts['parameters']:,} parameters, vocab {args.vocab}; exported logits equal "
          f"(max diff {facts['max_logit_diff']:.1e})", flush=True)  # fmt: skip
    plan = [(impl, obj) for obj in objectives for impl in IMPLS
            if not (obj == "lm" and IMPLS[impl][1] == "pt")]  # fmt: skip
    got: dict[tuple[str, str], list[dict[str, Any]]] = {k: [] for k in plan}
    for r in range(args.rounds):
        for impl, obj in plan:
            res = run_worker(args, impl, obj, work)
            got[(impl, obj)].append(res)
            med = statistics.median(res["seconds"])
            print(
                f"round {r + 1}/{args.rounds} {obj:3} {impl:26} {1 / med:6.2f} steps/s "
                f"(loss {res['losses'][0]:.3f} -> {res['losses'][-1]:.3f})",
                flush=True,
            )
    rows, results = [], []
    for impl, obj in plan:
        runs = got[(impl, obj)]
        secs = [s for run in runs for s in run["seconds"]]
        lib, method = IMPLS[impl]
        flops = step_gflop(method, lib, obj, args.vocab)
        sps = 1 / statistics.median(secs)
        results.append({
            "impl": impl, "objective": obj, "steps_per_s": sps, "step_s_median":
            statistics.median(secs), "step_s_all": [round(s, 4) for s in secs],
            "trainable": runs[0]["trainable"], "params": runs[0]["params"],
            "rss_peak_mb": max(run["rss_peak_mb"] for run in runs),
            "rss_training_mb": max(run["rss_peak_mb"] - run["rss_before_mb"] for run in runs),
            "gflop_per_step": flops, "gflop_per_s": flops["total"] * sps,
            "first_losses": runs[0]["losses"][:3],
        })  # fmt: skip
    by = {(x["impl"], x["objective"]): x for x in results}
    for x in results:
        peer = PEERS.get(x["impl"])
        x["ratio_vs_peer"] = None
        if peer:
            # Per round, against the peer run just before it (the same load, mostly); the
            # reported ratio is the median over rounds.
            mine, theirs = got[(x["impl"], x["objective"])], got[(peer, x["objective"])]
            per = [statistics.median(b["seconds"]) / statistics.median(a["seconds"])
                   for a, b in zip(mine, theirs)]  # fmt: skip
            x["ratio_per_round"] = per
            x["ratio_vs_peer"] = statistics.median(per)
            x["ratio_pooled"] = x["steps_per_s"] / by[(peer, x["objective"])]["steps_per_s"]
        rows.append([x["objective"], x["impl"], x["steps_per_s"],
                     x["ratio_vs_peer"] if peer else "-", f"{x['trainable']:,}",
                     x["gflop_per_step"]["total"], x["gflop_per_s"], x["rss_training_mb"]])  # fmt: skip
    print()
    print_table(["data", "impl", "steps/s", "× peer", "trainable", "GFLOP/step", "GFLOP/s",
                 "RSS growth MB"], rows)  # fmt: skip
    if not args.quick:
        payload = {"config": {"vocab": args.vocab, "model": MODEL, "batch": BATCH, "seq": SEQ,
                              "soft_tokens": N_SOFT, "lora_r": RANK, "threads": args.threads,
                              "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds,
                              "compile": args.compile},
                   "parity": facts, "results": results}  # fmt: skip
        name = "peft_adapters" + (f"_{args.tag}" if args.tag else "")
        print(f"wrote {write_result(name, payload)}")


if __name__ == "__main__":
    main()
