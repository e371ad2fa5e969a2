"""Serving throughput and latency: `lmforge serve` vs `transformers serve`, same model.

    .venv/bin/python benchmarks/serve_peer.py [--work /tmp/lmforge_bench_serve] [--quick]
        [--peers cb plain] [--requests 8 16 48]

Both servers load the same weights (`setup_model` in _serve_client.py: a random
7.2M-parameter LLaMA, d_model 256, 6 layers, as an lmforge run folder and its
`lmforge export hf` folder) and are driven by the same client (_serve_client.py:
asyncio + httpx, streamed ``POST /v1/chat/completions``, temperature 0, max_tokens
64, prompts whose greedy replies are 64 tokens on both, so every request generates
64 tokens; the script checks the counts and that both servers give the same
greedy text for every prompt). One server runs at a time, on 127.0.0.1.

For each server: start it, send every prompt once alone (its greedy replies, and the
warm-up: transformers builds its continuous-batching manager on the first request),
one untimed round at concurrency 16, then ``--requests`` requests at concurrency 1,
4 and 16. Reported per level: generated tokens/s (all the level's tokens over its
wall time), time to first token and inter-token latency (p50/p99), server RSS.

The peer, in its best configuration for this model: ``transformers serve HF
--continuous-batching --cb-num-blocks 64 --cb-block-size 32 --cb-max-batch-tokens
512 --device cpu`` ("cb"). Its default paged cache sizes itself for a GPU (about
21 GB for this model); 64 blocks of 32 tokens hold 16 requests of ~20 + 64 tokens.
``--peers plain`` also runs it without continuous batching (one `generate` per
request) for reference. The ratio is lmforge / the best peer at each concurrency.
Targets: >= 3x at concurrency 16, >= 1x at concurrency 1.

**The peer's venv.** transformers serve needs fastapi, which the project does not
pin, so the peer runs from its own venv (``--peer-venv``, default
/tmp/bench_venv_tserve), made on first use as::

    python3 -m venv /tmp/bench_venv_tserve
    /tmp/bench_venv_tserve/bin/pip install torch==2.13.0 transformers==5.24.0 \\
        tokenizers==0.23.3 safetensors==0.8.0 huggingface_hub==2.4.0 accelerate==1.15.0 \\
        numpy==2.4.6 fastapi==0.165.0 starlette==1.10.0 uvicorn==0.54.0 pydantic==2.14.4 \\
        openai==2.54.0 rich==15.0.0 typer==0.29.2

(the same torch, transformers, starlette and uvicorn as lmforge's own venv).
Writes benchmarks/results/serve_peer.json (not with --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _serve_client as sc  # noqa: E402
from _bench import print_table, write_result  # noqa: E402

PEER_VENV = Path("/tmp/bench_venv_tserve")
PEER_PINS = [
    "torch==2.13.0", "transformers==5.24.0", "tokenizers==0.23.3", "safetensors==0.8.0",
    "huggingface_hub==2.4.0", "accelerate==1.15.0", "numpy==2.4.6", "fastapi==0.165.0",
    "starlette==1.10.0", "uvicorn==0.54.0", "pydantic==2.14.4", "openai==2.54.0",
    "rich==15.0.0", "typer==0.29.2",
]  # fmt: skip
# The paged cache that fits: 64 blocks x 32 tokens, 512 tokens per batch.
CB_FLAGS = ["--cb-num-blocks", "64", "--cb-block-size", "32", "--cb-max-batch-tokens", "512"]
LEVELS = (1, 4, 16)


def ensure_peer_venv(venv: Path) -> Path:
    """The `transformers` entry point of the peer's venv, made as the module doc says."""
    exe = venv / "bin" / "transformers"
    if exe.is_file():
        return exe
    print(f"making {venv} (transformers serve and its serving dependencies)", flush=True)
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PEER_PINS], check=True)
    return exe


def peer_versions(venv: Path) -> dict[str, str]:
    code = (
        "import json; from importlib import metadata as m; print(json.dumps({n: m.version(n) "
        "for n in ('torch', 'transformers', 'fastapi', 'starlette', 'uvicorn', 'pydantic')}))"
    )
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-300:]}


def server_cmds(setup: sc.Setup, port: int, exe: Path, lmforge_args: str) -> dict[str, list[str]]:
    """name -> command of every server this script knows."""
    peer = [str(exe), "serve", str(setup.hf), "--device", "cpu", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning"]  # fmt: skip
    return {
        "lmforge": [
            sys.executable,
            "-m",
            "lmforge",
            "serve",
            "--run",
            str(setup.run),
            "--port",
            str(port),
            *lmforge_args.split(),
        ],  # fmt: skip
        "transformers-cb": [*peer, "--continuous-batching", *CB_FLAGS],
        "transformers-plain": peer,
    }


async def bench_server(
    name: str, cmd: list[str], port: int, setup: sc.Setup, requests: list[int], threads: int | None
) -> dict[str, Any]:
    prompts = [p.text for p in setup.prompts]
    log = setup.work / f"serve_peer_{name}.log"
    server = sc.Server(name, cmd, port, log, sc.thread_env(threads)).start()
    try:
        async with sc.new_client(4) as client:
            lone = {p: await sc.stream_chat(client, server.base, sc.chat_body(server.model_id, p))
                    for p in prompts}  # fmt: skip
        await sc.run_level(server, prompts, 16, 16)  # warm-up at the widest batch
        levels = {}
        for c, n in zip(LEVELS, requests):
            levels[c] = await sc.run_level(server, prompts, c, n)
            print(f"  {name} c={c}: {levels[c]['tokens_per_s']} tok/s", flush=True)
        rss = sc.rss_kib(server.pid)
        hwm = sc.rss_kib(server.pid, "VmHWM")
    finally:
        server.stop()
    outcomes = [o for lv in levels.values() for o in lv["_outcomes"]] + list(lone.values())
    return {
        "cmd": " ".join(cmd[1:] if cmd[0] == sys.executable else cmd),
        "levels": {c: sc.public(lv) for c, lv in levels.items()},
        "replies": {p: o.text for p, o in lone.items()},
        "errors": [f"{o.status} {o.error} {o.finish_reason}" for o in outcomes if not o.ok][:10],
        "token_counts": sorted({o.tokens for o in outcomes if o.ok}),
        "rss_mib": round(rss / 1024, 1) if rss else None,
        "hwm_mib": round(hwm / 1024, 1) if hwm else None,
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


async def main_async(args: argparse.Namespace) -> int:
    setup = sc.setup_model(Path(args.work), n_prompts=args.prompts, force=args.fresh)
    exe = ensure_peer_venv(Path(args.peer_venv))
    names = ["lmforge", *[f"transformers-{p}" for p in args.peers]]
    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    for name in names:
        port = sc.free_port()
        cmd = server_cmds(setup, port, exe, args.lmforge_args)[name]
        print(f"{name}: {' '.join(cmd)}", flush=True)
        results[name] = await bench_server(name, cmd, port, setup, args.requests, args.threads)
    ours = results["lmforge"]
    peers = [n for n in names if n != "lmforge"]
    rows, ratios = [], {}
    for c in LEVELS:
        best = max(peers, key=lambda n: results[n]["levels"][c]["tokens_per_s"] or 0)
        mine, theirs = ours["levels"][c], results[best]["levels"][c]
        ratios[str(c)] = {
            "best_peer": best,
            "tokens_per_s": ratio(mine["tokens_per_s"], theirs["tokens_per_s"]),
            "ttft_p50_speedup": ratio(theirs["ttft_ms_p50"], mine["ttft_ms_p50"]),
            "itl_p50_speedup": ratio(theirs["itl_ms_p50"], mine["itl_ms_p50"]),
        }
        for n in names:
            lv = results[n]["levels"][c]
            rows.append([c, n, lv["tokens_per_s"], lv["ttft_ms_p50"], lv["ttft_ms_p99"],
                         lv["itl_ms_p50"], lv["itl_ms_p99"]])  # fmt: skip
    differ = {
        n: sum(results[n]["replies"][p] != ours["replies"][p] for p in ours["replies"])
        for n in peers
    }
    counts = {n: results[n]["token_counts"] for n in names}
    checks = {
        "same_greedy_text": all(v == 0 for v in differ.values()),
        "all_requests_64_tokens": all(v == [sc.NEW_TOKENS] for v in counts.values()),
        "no_errors": not any(results[n]["errors"] for n in names),
        "c16_at_least_3x": (ratios["16"]["tokens_per_s"] or 0) >= 3,
        "c1_no_slower": (ratios["1"]["tokens_per_s"] or 0) >= 1,
    }
    print_table(["concurrency", "server", "tok/s", "TTFT p50 ms", "TTFT p99 ms", "ITL p50 ms",
                 "ITL p99 ms"], rows)  # fmt: skip
    for c, r in ratios.items():
        print(f"c={c}: lmforge / {r['best_peer']} = {r['tokens_per_s']}x tokens/s, "
              f"TTFT {r['ttft_p50_speedup']}x, ITL {r['itl_p50_speedup']}x")  # fmt: skip
    print("replies differing from lmforge's:", differ, " token counts:", counts)
    for n in names:
        for e in results[n]["errors"]:
            print(f"  {n} error: {e}")
    for k, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'} {k}")
    payload = {
        "settings": {
            "model": {**sc.MODEL, "vocab_size": sc.VOCAB, "params": setup.params},
            "new_tokens": sc.NEW_TOKENS,
            "temperature": 0,
            "distinct_prompts": len(setup.prompts),
            "requests": dict(zip(LEVELS, args.requests)),
            "peers": peers,
            "peer_cb_flags": CB_FLAGS,
            "server_threads": args.threads or "torch default (one per core)",
        },  # fmt: skip
        "versions": {
            "lmforge_side": sc.versions(),
            "peer_venv": peer_versions(Path(args.peer_venv)),
        },
        "servers": {n: {k: v for k, v in r.items() if k != "replies"} for n, r in results.items()},
        "ratios": ratios,
        "replies_differing": differ,
        "checks": checks,
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    if not args.quick:
        print("wrote", write_result("serve_peer", payload))
    return 0 if all(checks.values()) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=str(sc.DEFAULT_WORK), help="setup folder (model, logs)")
    ap.add_argument("--peer-venv", default=str(PEER_VENV), help="the venv of transformers serve")
    ap.add_argument("--peers", nargs="+", default=["cb", "plain"], choices=["cb", "plain"],
                    help="transformers serve with/without --continuous-batching")  # fmt: skip
    ap.add_argument(
        "--requests",
        type=int,
        nargs=3,
        default=[8, 16, 48],
        metavar=("C1", "C4", "C16"),
        help="requests at concurrency 1, 4, 16",
    )
    ap.add_argument("--prompts", type=int, default=32, help="distinct prompts")
    ap.add_argument("--fresh", action="store_true", help="rebuild the model and prompts in --work")
    ap.add_argument("--lmforge-args", default="", help="extra `lmforge serve` flags")
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS of both servers (default: unset)")
    ap.add_argument("--quick", action="store_true", help="4/8/16 requests; writes no JSON")
    args = ap.parse_args()
    if args.quick:
        args.requests = [4, 8, 16]
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
