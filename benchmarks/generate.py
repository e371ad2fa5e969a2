"""Batch-1 greedy generation speed: lmforge's KV-cache engine vs transformers `generate`.

Both run the SAME weights: a seeded random LLaMA-architecture model is built in
lmforge, exported with `lmforge.export.hf.export_hf`, and loaded back with
`AutoModelForCausalLM.from_pretrained`. fp32 on CPU, batch 1, greedy, a fixed
prompt, every new token up to the context length; tokens/s is the median over
several runs after a warm-up. The two outputs are checked to be identical.

Sizes ("small" = d_model 128, 4 layers, 4 heads, context 64; "14m" = d_model 384,
6 layers, 6 heads, context 256) are the presets llama-cpu-small / llama-cpu-14m
(tied embeddings) with a 4096-token vocabulary by default, the size
`lmforge tokenizer train` makes (--vocab changes it). At batch 1 each new token
reads every weight once, so the vocabulary's share of the weights (the output
layer) sets how much of a step is memory-bound matrix-vector work, the same for
both, and how much is per-step overhead, where the two differ.

`--sizes tiny` adds llama-tiny (d_model 64, 2 layers, its 512-token vocabulary),
small enough that a step is almost all per-step overhead.

The "compiled" columns run lmforge's engine with ``compile=True`` (torch.compile
of the model; its first call, which compiles, is timed separately as "compile
s" and is not in tok/s). transformers runs eager, its default.

The "floor" column is the weight-streaming limit no fp32 implementation can beat:
one new token's matrix-vector products alone (every linear layer of the model,
in order, on one row, with the model's own weights), repeated as many times as
there are new tokens. "Ceiling" is floor / HF: the best ratio the memory system
allows against transformers at that size.

    .venv/bin/python benchmarks/generate.py [--sizes small 14m tiny] [--vocab 4096] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
sys.path.insert(0, _HERE)
from _bench import print_table, write_result  # noqa: E402

# size -> (preset, prompt tokens, fixed vocabulary or None for --vocab)
SIZES = {
    "small": ("llama-cpu-small", 16, None),
    "14m": ("llama-cpu-14m", 32, None),
    "tiny": ("llama-tiny", 16, 512),
}
DEFAULT_SIZES = ["small", "14m"]


def bench_size(name: str, repeats: int, vocab: int) -> dict:
    import dataclasses
    import statistics

    import torch
    from transformers import AutoModelForCausalLM

    from lmforge.export.hf import export_hf
    from lmforge.inference import SamplingConfig, generate
    from lmforge.models import build_model, get_preset

    preset, prompt_len, fixed_vocab = SIZES[name]
    arch, cfg = get_preset(preset)
    cfg = dataclasses.replace(cfg, vocab_size=fixed_vocab or vocab)
    torch.manual_seed(0)
    model = build_model(arch, cfg).eval()
    new_tokens = cfg.block_size - prompt_len
    prompt = torch.randint(
        0, cfg.vocab_size, (prompt_len,), generator=torch.Generator().manual_seed(1)
    )
    prompt_ids = prompt.tolist()
    with tempfile.TemporaryDirectory() as d:
        export_hf(model, None, Path(d) / "hf")
        hf = AutoModelForCausalLM.from_pretrained(Path(d) / "hf").eval()
    sampling = SamplingConfig(max_new_tokens=new_tokens, temperature=0.0)

    def run_lmforge():
        return generate(model, [prompt_ids], sampling)[0]

    def run_compiled():
        return generate(model, [prompt_ids], sampling, compile=True)[0]

    def run_hf():
        with torch.inference_mode():
            out = hf.generate(
                prompt[None],
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
            )
        return out[0, prompt_len:].tolist()

    linears = [m.weight.detach() for m in model.modules() if isinstance(m, torch.nn.Linear)]
    rows1 = [torch.randn(1, w.shape[1]) for w in linears]

    def run_floor():
        with torch.inference_mode():
            for _ in range(new_tokens):
                for x, w in zip(rows1, linears):
                    torch.nn.functional.linear(x, w)

    same = run_lmforge() == run_hf()  # also the warm-up
    t0 = time.perf_counter()
    same_compiled = run_compiled() == run_lmforge()  # compiles: prompt and one-token graphs
    compile_s = time.perf_counter() - t0
    run_floor()
    labels = ("lmforge", "compiled", "transformers", "floor")
    times: dict[str, list[float]] = {k: [] for k in labels}
    cpu: dict[str, list[float]] = {k: [] for k in labels}
    # Interleave the two so that a noisy neighbour on a shared machine hits both alike.
    for _ in range(repeats):
        for label, fn in zip(labels, (run_lmforge, run_compiled, run_hf, run_floor)):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[label].append(time.perf_counter() - t0)
            cpu[label].append(time.process_time() - c0)
    med = {k: statistics.median(v) for k, v in times.items()}
    # CPU time of this process: with one thread, what the wall time would be on a quiet
    # machine (preemption by other jobs does not count); with more threads it sums them.
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "size": name,
        "preset": preset,
        "params": model.num_params(),
        "vocab_size": cfg.vocab_size,
        "prompt_tokens": prompt_len,
        "new_tokens": new_tokens,
        "lmforge_tok_s": new_tokens / med["lmforge"],
        "transformers_tok_s": new_tokens / med["transformers"],
        "ratio": med["transformers"] / med["lmforge"],
        "compiled_tok_s": new_tokens / med["compiled"],
        "compiled_ratio": med["transformers"] / med["compiled"],
        "compile_warmup_s": compile_s,
        "compiled_identical_tokens": same_compiled,
        "floor_tok_s": new_tokens / med["floor"],
        "ceiling_vs_transformers": med["transformers"] / med["floor"],
        "cpu_time_ratio": cpu_med["transformers"] / cpu_med["lmforge"],
        "identical_tokens": same,
        "times_s": times,
        "cpu_times_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vocab", type=int, default=4096, help="vocabulary size (default 4096)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: tiny size, 1 repeat, nothing written"
    )
    parser.add_argument(
        "--tag", default="", help="results go to results/generate_TAG.json (default: generate.json)"
    )
    args = parser.parse_args()

    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.sizes, args.repeats = ["tiny"], 1
    results = [bench_size(s, args.repeats, args.vocab) for s in args.sizes]
    rows = [
        [
            r["size"],
            f"{r['params'] / 1e6:.1f}M",
            r["vocab_size"],
            r["new_tokens"],
            r["lmforge_tok_s"],
            r["transformers_tok_s"],
            f"{r['ratio']:.2f}x",
            f"{r['cpu_time_ratio']:.2f}x",
            f"{r['compiled_tok_s']:.1f}",
            f"{r['compiled_ratio']:.2f}x",
            f"{r['compile_warmup_s']:.0f}",
            f"{r['floor_tok_s']:.1f}",
            f"{r['ceiling_vs_transformers']:.2f}x",
            "yes" if r["identical_tokens"] and r["compiled_identical_tokens"] else "NO",
        ]
        for r in results
    ]
    print_table(
        [
            "size",
            "params",
            "vocab",
            "new tokens",
            "lmforge tok/s",
            "HF tok/s",
            "ratio",
            "CPU-time ratio",
            "compiled tok/s",
            "compiled ratio",
            "compile s",
            "floor tok/s",
            "ceiling",
            "same tokens",
        ],
        rows,
    )
    print(
        "ratio (lmforge / transformers generate, batch 1, greedy, KV cache, fp32 CPU): "
        + ", ".join(
            f"{r['size']} {r['ratio']:.2f}x (CPU time {r['cpu_time_ratio']:.2f}x, compiled "
            f"{r['compiled_ratio']:.2f}x, ceiling {r['ceiling_vs_transformers']:.2f}x)"
            for r in results
        )
    )
    if args.quick:
        return
    path = write_result(
        f"generate_{args.tag}" if args.tag else "generate",
        {
            "transformers": transformers.__version__,
            "settings": {
                "batch": 1,
                "greedy": True,
                "dtype": "float32",
                "repeats": args.repeats,
                "vocab_size": args.vocab,
                "threads": torch.get_num_threads(),
            },
            "results": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
