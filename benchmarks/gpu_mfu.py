"""Model FLOPs utilisation of GPT-2 124M training in bf16 on one GPU, through lmforge's loop.

GPT-2 small (12 layers, 12 heads, width 768, vocab padded to 50,304, context
1,024), bf16 autocast, torch.compile, fused AdamW, random tokens on the device;
the real training loop (`lmforge.train.loop.train`: clipping, NaN guard, no
per-step host sync on the GPU). MFU = achieved model FLOP/s (6 N + 12 L d T per
token, PaLM's formula; N excludes the position table) / the card's dense bf16
peak. Target: at least 45% on an H100. Standalone, under 5 minutes.

    python benchmarks/gpu_mfu.py                          # on a GPU machine
    python benchmarks/gpu_mfu.py --device cpu --tiny --steps 2   # smoke test, no GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _bench import print_table, write_result  # noqa: E402

# Keep benchmarks/ off the import path: its scripts (e.g. tokenizers.py) shadow packages.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, by a substring of the card's name.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.0,  # SXM
    "GH200": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10G": 70.0,
    "L4": 121.0,
    "RTX 4090": 165.0,
}
TARGET_MFU = 0.45


def card_peak(name: str) -> float | None:
    for key, tflops in PEAK_BF16_TFLOPS.items():  # the more specific names come first
        if key in name:
            return tflops * 1e12
    return None


class DeviceBatches:
    """One random batch kept on the device; synchronises and stamps the time at given steps."""

    def __init__(self, x, y, stamp_at: set[int], device: str):
        self.xy, self.stamp_at, self.device = (x, y), stamp_at, device
        self.step, self.stamps = 0, {}

    def next_batch(self):
        if self.step in self.stamp_at:
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()  # the GPU has finished every earlier step
            self.stamps[self.step] = time.perf_counter()
        self.step += 1
        return self.xy

    def state_dict(self):
        return {"step": self.step}

    def load_state_dict(self, state):
        self.step = state["step"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu for a smoke run")
    ap.add_argument("--tiny", action="store_true", help="a tiny GPT instead of GPT-2 124M")
    ap.add_argument("--batch-size", type=int, default=16, help="sequences per step (default 16)")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20, help="steps per timed window")
    ap.add_argument("--windows", type=int, default=3, help="timed windows; the median is kept")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps (compilation)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="torch.compile (default: on for cuda, off for cpu)")  # fmt: skip
    ap.add_argument("--peak-tflops", type=float, help="the card's dense bf16 peak, if unknown")
    args = ap.parse_args()

    from lmforge.models import build_model, get_preset
    from lmforge.train.causal_lm import CausalLMObjective
    from lmforge.train.config import TrainConfig
    from lmforge.train.loop import train

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device: run on a GPU machine, or use --device cpu --tiny for a smoke run")
    compile_ = args.compile if args.compile is not None else args.device.startswith("cuda")
    _, mcfg = get_preset("gpt2", "gpt")
    mcfg = dataclasses.replace(mcfg, vocab_size=50304, dropout=0.0)  # 50257 padded to 64k
    seq = args.seq_len
    if args.tiny:
        seq = min(seq, 64)
        mcfg = dataclasses.replace(mcfg, n_layer=2, n_head=2, d_model=64, vocab_size=512)
    mcfg = dataclasses.replace(mcfg, block_size=max(mcfg.block_size, seq))
    torch.manual_seed(0)
    model = build_model("gpt", mcfg)
    n_params = sum(p.numel() for p in model.parameters())
    n_flop = n_params - model.pos_emb.weight.numel()
    flops_per_token = 6 * n_flop + 12 * mcfg.n_layer * mcfg.d_model * seq

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, mcfg.vocab_size, (args.batch_size, seq), generator=g).to(args.device)
    y = torch.randint(0, mcfg.vocab_size, (args.batch_size, seq), generator=g).to(args.device)
    bounds = [args.warmup + w * args.steps for w in range(args.windows + 1)]
    src = DeviceBatches(x, y, set(bounds), args.device)
    total = bounds[-1] + 1
    cfg = TrainConfig(
        batch_size=args.batch_size,
        max_steps=total,
        lr=6e-4,
        min_lr=6e-5,
        warmup=0,
        weight_decay=0.1,
        betas=(0.9, 0.95),
        dtype="bf16",
        compile=compile_,
        eval_every=0,
        save_every=0,
        log_every=total,
        device=args.device,
        parallel="none",
    )
    t0 = time.perf_counter()
    train(model, CausalLMObjective(), src, cfg, run_dir=None)
    warm_s = src.stamps[bounds[0]] - t0
    tokens = args.batch_size * seq * args.steps
    rates = [tokens / (src.stamps[b] - src.stamps[a]) for a, b in zip(bounds, bounds[1:])]
    tok_s = statistics.median(rates)
    achieved = tok_s * flops_per_token

    if args.device.startswith("cuda"):
        card = torch.cuda.get_device_name(0)
        peak = args.peak_tflops * 1e12 if args.peak_tflops else card_peak(card)
    else:
        card = "cpu (smoke run: MFU is not measured against a GPU peak)"
        peak = args.peak_tflops * 1e12 if args.peak_tflops else None
    mfu = achieved / peak if peak else None
    print_table(
        ["model", "params", "batch × seq", "compile", "warm-up s", "tok/s", "TFLOP/s", "MFU"],
        [[
            "tiny GPT" if args.tiny else "GPT-2 124M", f"{n_params / 1e6:.1f}M",
            f"{args.batch_size} × {seq}", compile_, f"{warm_s:.0f}", f"{tok_s:,.0f}",
            f"{achieved / 1e12:.2f}", f"{100 * mfu:.1f}%" if mfu is not None else "n/a",
        ]],
    )  # fmt: skip
    if mfu is not None:
        print(f"ratio MFU / target {TARGET_MFU:.0%} on {card}: {mfu / TARGET_MFU:.2f}×")
    else:
        print(f"device: {card}; no peak known (pass --peak-tflops)")
    if args.device.startswith("cuda") and not args.tiny:
        path = write_result(
            "gpu_mfu",
            {"card": card, "peak_bf16_tflops": (peak or 0) / 1e12, "params": n_params,
             "batch_size": args.batch_size, "seq_len": seq, "compile": compile_,
             "tok_s": tok_s, "tflops": achieved / 1e12, "mfu": mfu, "warmup_s": warm_s},
        )  # fmt: skip
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
