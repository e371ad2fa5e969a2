"""Load test of `lmforge serve`: good, malformed and disconnecting clients together.

    .venv/bin/python benchmarks/serve_load.py [--work /tmp/lmforge_bench_serve] [--quick]

On loopback only, bounded in count (the flags below) and in time (``--max-seconds``
for the whole run, ``--request-timeout`` for one request). Steps:

1. `setup_model` (_serve_client.py): the random 7.2M-parameter LLaMA run folder and
   32 prompts whose greedy replies are 64 tokens.
2. Start `lmforge serve --run WORK/run` and send every prompt alone (concurrency 1):
   the lone replies every later answer is compared with. Then a warm-up round (64
   requests at concurrency 16 with a few malformed and disconnecting clients) so the
   allocator's pools reach their working size; wait until the server is idle and
   read its RSS (VmRSS in /proc/PID/status): the "warm" level.
3. The load: 200 streamed good requests, 50 malformed ones (16 kinds: bad JSON,
   wrong types, unknown role, too-long prompt, unknown model, wrong method, a 2 MiB
   body, ...) and 20 clients that drop the connection mid-stream (after 0 to 40
   chunks), shuffled (seed 0) and run 16 at a time. RSS is sampled every 0.1 s.
4. Wait until idle (``/health``: nothing running or queued), read RSS again: "after".
   "Back" means after <= warm + max(5% of warm, 32 MiB): allocators keep freed pools,
   so the level to return to is the warmed one, not the first request's.
5. Throughput and latency at concurrency 1, 4 and 16 (good requests only); a last
   lone pass checks the replies did not change.

Checks (exit 1 if any fails): no 5xx and no transport error anywhere; every good
request finished with 64 tokens and the lone request's text; every malformed one got
a 4xx; nothing running or queued once the disconnected clients are gone; memory back.
Writes benchmarks/results/serve_load.json (not with --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _serve_client as sc  # noqa: E402
from _bench import print_table, write_result  # noqa: E402

MiB = 1024


def malformed_cases(model: str | None, context: int) -> list[tuple[str, dict[str, Any]]]:
    """(name, httpx request keywords) of requests a server must refuse with a 4xx."""
    ok = sc.chat_body(model, "Hello there.")
    path = "/v1/chat/completions"

    def with_(**kw: Any) -> dict[str, Any]:
        return {"method": "POST", "url": path, "json": {**ok, **kw}}

    long_text = " ".join(["word"] * (4 * context))  # far more tokens than the context
    return [
        ("not_json", {"method": "POST", "url": path, "content": b'{"messages": [',
                      "headers": {"content-type": "application/json"}}),
        ("array_body", {"method": "POST", "url": path, "json": [1, 2, 3]}),
        ("no_messages", {"method": "POST", "url": path,
                         "json": {k: v for k, v in ok.items() if k != "messages"}}),
        ("messages_not_list", with_(messages="hello")),
        ("empty_messages", with_(messages=[])),
        ("unknown_role", with_(messages=[{"role": "wizard", "content": "hi"}])),
        ("content_not_text", with_(messages=[{"role": "user", "content": 42}])),
        ("max_tokens_negative", with_(max_tokens=-5)),
        ("max_tokens_string", with_(max_tokens="lots")),
        ("temperature_string", with_(temperature="hot")),
        ("top_p_out_of_range", with_(top_p=7.5)),
        ("n_zero", with_(n=0)),
        ("prompt_too_long", with_(messages=[{"role": "user", "content": long_text}])),
        ("unknown_model", with_(model="no-such-model")),
        ("wrong_method", {"method": "GET", "url": path}),
        ("body_2mib", {"method": "POST", "url": path, "content": b'{"x": "' + b"a" * 2**21 + b'"}',
                       "headers": {"content-type": "application/json"}}),
    ]  # fmt: skip


async def send_malformed(client, base: str, name: str, kw: dict[str, Any]) -> sc.Outcome:
    import httpx

    out = sc.Outcome(f"malformed:{name}")
    t0 = time.perf_counter()
    try:
        r = await client.request(kw["method"], base + kw["url"],
                                 **{k: v for k, v in kw.items() if k not in ("method", "url")})  # fmt: skip
        out.status = r.status_code
        out.text = r.text[:200]
    except httpx.HTTPError as e:
        out.error = f"{type(e).__name__}: {e}"[:300]
    out.total = time.perf_counter() - t0
    return out


DROP_AFTER = [0, 1, 2, 5, 10, 20, 40]  # content chunks a disconnecting client reads


def build_mix(
    client, server: sc.Server, prompts: list[str], n_good: int, n_bad: int, n_drop: int, seed: int
) -> list:
    """Coroutine factories of the mixed load, shuffled."""
    bad = malformed_cases(server.model_id, 256)
    jobs = []
    for i in range(n_good):
        body = sc.chat_body(server.model_id, prompts[i % len(prompts)])
        jobs.append(lambda b=body: sc.stream_chat(client, server.base, b))
    for i in range(n_bad):
        name, kw = bad[i % len(bad)]
        jobs.append(lambda n=name, k=kw: send_malformed(client, server.base, n, k))
    for i in range(n_drop):
        body = sc.chat_body(server.model_id, prompts[(7 * i) % len(prompts)])
        k = DROP_AFTER[i % len(DROP_AFTER)]
        jobs.append(
            lambda b=body, k=k: sc.stream_chat(client, server.base, b, kind="disconnect",
                                               stop_after=k)
        )  # fmt: skip
    random.Random(seed).shuffle(jobs)
    return jobs


async def sample_rss(pid: int, samples: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        v = sc.rss_kib(pid)
        if v is not None:
            samples.append(v)
        await asyncio.sleep(0.1)


async def wait_idle(server: sc.Server, timeout: float = 60) -> dict[str, Any]:
    """/health until nothing runs or waits (lmforge reports `running`, `queued`); then 1 s."""
    import httpx

    deadline = time.monotonic() + timeout
    health: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                health = (await client.get(server.base + "/health")).json()
            except (httpx.HTTPError, ValueError):
                health = {}
            if health.get("running", 0) == 0 and health.get("queued", 0) == 0:
                break
            await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    return health


async def lone_pass(server: sc.Server, prompts: list[str]) -> dict[str, sc.Outcome]:
    async with sc.new_client(4) as client:
        return {p: await sc.stream_chat(client, server.base, sc.chat_body(server.model_id, p))
                for p in prompts}  # fmt: skip


async def mixed_round(server, prompts, n_good, n_bad, n_drop, concurrency, seed):
    samples: list[int] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(server.pid, samples, stop))
    async with sc.new_client(concurrency + 4) as client:
        jobs = build_mix(client, server, prompts, n_good, n_bad, n_drop, seed)
        outcomes, wall = await sc.run_jobs(jobs, concurrency)
    stop.set()
    await sampler
    return outcomes, wall, samples


def check_good(outcomes: list[sc.Outcome], lone: dict[str, str]) -> list[str]:
    """Why each good request is wrong (empty: all fine)."""
    bad = []
    for o in outcomes:
        if o.kind != "good":
            continue
        if not o.ok:
            bad.append(f"status {o.status} error {o.error} finish {o.finish_reason}")
        elif o.tokens != sc.NEW_TOKENS or o.finish_reason != "length":
            bad.append(f"{o.tokens} tokens, finish {o.finish_reason}: {o.prompt[:30]!r}")
        elif o.text != lone[o.prompt]:
            bad.append(f"text differs from the lone request: {o.prompt[:30]!r}")
    return bad


async def main_async(args: argparse.Namespace) -> int:
    setup = sc.setup_model(Path(args.work), n_prompts=args.prompts, force=args.fresh)
    prompts = [p.text for p in setup.prompts]
    port = sc.free_port()
    cmd = [sys.executable, "-m", "lmforge", "serve", "--run", str(setup.run), "--port", str(port),
           *args.server_args.split()]  # fmt: skip
    log = setup.work / "serve_load_server.log"
    server = sc.Server("lmforge serve", cmd, port, log, sc.thread_env(args.threads))
    server.start()
    t_start = time.perf_counter()
    rss: dict[str, Any] = {"loaded_kib": sc.rss_kib(server.pid)}
    report: dict[str, Any] = {}
    try:
        every: list[sc.Outcome] = []
        lone = await lone_pass(server, prompts)
        every += lone.values()
        lone_text = {p: o.text for p, o in lone.items()}
        engine_mismatch = [p for p in prompts if lone_text[p] != setup.replies[p]]

        w_out, _, _ = await mixed_round(server, prompts, args.warm_good, 8, 4, args.concurrency, 1)
        every += w_out
        await wait_idle(server)
        rss["warm_kib"] = sc.rss_kib(server.pid)

        outcomes, wall, samples = await asyncio.wait_for(
            mixed_round(server, prompts, args.good, args.malformed, args.disconnects,
                        args.concurrency, args.seed),
            timeout=args.max_seconds,
        )  # fmt: skip
        every += outcomes
        health = await wait_idle(server)
        rss["peak_during_load_kib"] = max(samples) if samples else None
        rss["after_load_kib"] = sc.rss_kib(server.pid)
        rss["hwm_kib"] = sc.rss_kib(server.pid, "VmHWM")
        allowed = max(int(0.05 * rss["warm_kib"]), 32 * MiB)
        rss["tolerance_kib"] = allowed
        rss["growth_kib"] = rss["after_load_kib"] - rss["warm_kib"]

        levels = {}
        for c, n in zip((1, 4, 16), args.level_requests):
            levels[c] = await sc.run_level(server, prompts, c, n)
            every += levels[c]["_outcomes"]
        last = await lone_pass(server, prompts)
        every += last.values()

        bad_kinds = sorted({o.kind for o in outcomes if o.kind.startswith("malformed")})
        malformed = {k: sorted({o.status for o in outcomes if o.kind == k}, key=str)
                     for k in bad_kinds}  # fmt: skip
        drops = [o for o in outcomes if o.kind == "disconnect"]
        good_errors = check_good(outcomes + w_out, lone_text)
        for lv in levels.values():
            good_errors += check_good(lv["_outcomes"], lone_text)
        good_errors += check_good(list(last.values()), lone_text)
        checks = {
            "no_5xx": sum(1 for o in every if o.status is not None and o.status >= 500) == 0,
            "no_transport_errors": not [o for o in every if o.status is None
                                        and o.kind != "disconnect"],
            "good_requests_match_lone": not good_errors,
            "malformed_get_4xx": all(o.status is not None and 400 <= o.status < 500
                                     for o in outcomes if o.kind.startswith("malformed")),
            "idle_after_disconnects": health.get("running") == 0 and health.get("queued") == 0,
            "server_alive": server.alive(),
            "memory_back": rss["growth_kib"] <= allowed,
        }  # fmt: skip
        report = {
            "settings": {
                "model": {**sc.MODEL, "vocab_size": sc.VOCAB, "params": setup.params},
                "new_tokens": sc.NEW_TOKENS, "temperature": 0, "distinct_prompts": len(prompts),
                "good": args.good, "malformed": args.malformed, "disconnects": args.disconnects,
                "concurrency": args.concurrency, "disconnect_after_chunks": DROP_AFTER,
                "level_requests": dict(zip((1, 4, 16), args.level_requests)),
                "server_cmd": " ".join(cmd[1:]), "seed": args.seed,
                "server_threads": args.threads or "torch default (one per core)",
                "memory_rule": "after <= warm + max(5% of warm, 32 MiB)",
            },
            "versions": sc.versions(),
            "checks": checks,
            "good_errors": good_errors[:20],
            "lone_vs_engine_mismatches": len(engine_mismatch),
            "load": {
                **{k: v for k, v in sc.summarize(outcomes, wall).items()},
                "statuses": _count(o.status for o in outcomes),
                "malformed_statuses": malformed,
                "disconnects": {"clients": len(drops),
                                "chunks_read": sorted(len(o.chunk_times) for o in drops)},
                "health_after": health,
            },
            "rss": {**rss, **{k.replace("_kib", "_mib"): round(v / MiB, 1)
                              for k, v in rss.items() if isinstance(v, int)}},
            "levels": {str(c): sc.public(lv) for c, lv in levels.items()},
            "elapsed_s": round(time.perf_counter() - t_start, 1),
        }  # fmt: skip
    finally:
        server.stop()
    print_report(report)
    if not args.quick:
        print("wrote", write_result("serve_load", report))
    return 0 if all(report["checks"].values()) else 1


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return dict(sorted(out.items()))


def print_report(r: dict[str, Any]) -> None:
    rows = [[c, lv["requests"], lv["tokens_per_s"], lv["ttft_ms_p50"], lv["ttft_ms_p99"],
             lv["itl_ms_p50"], lv["itl_ms_p99"]] for c, lv in r["levels"].items()]  # fmt: skip
    print_table(["concurrency", "requests", "tok/s", "TTFT p50 ms", "TTFT p99 ms",
                 "ITL p50 ms", "ITL p99 ms"], rows)  # fmt: skip
    load, m = r["load"], r["rss"]
    print(f"\nload: {load['completed']}/{load['requests']} good completed, "
          f"{load['tokens_per_s']} tok/s, statuses {load['statuses']}")  # fmt: skip
    print(f"malformed: {load['malformed_statuses']}")
    print(f"RSS MiB: loaded {m.get('loaded_mib')}, warm {m.get('warm_mib')}, peak "
          f"{m.get('peak_during_load_mib')}, after {m.get('after_load_mib')} "
          f"(growth {m.get('growth_mib')}, allowed {m.get('tolerance_mib')})")  # fmt: skip
    print(
        f"lone replies differing from the engine's greedy reply: {r['lone_vs_engine_mismatches']}"
    )
    for e in r["good_errors"]:
        print("  good request:", e)
    for name, ok in r["checks"].items():
        print(f"{'PASS' if ok else 'FAIL'} {name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=str(sc.DEFAULT_WORK), help="setup folder (model, logs)")
    ap.add_argument("--good", type=int, default=200)
    ap.add_argument("--malformed", type=int, default=50)
    ap.add_argument("--disconnects", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--warm-good", type=int, default=64, help="good requests of the warm-up")
    ap.add_argument(
        "--level-requests",
        type=int,
        nargs=3,
        default=[16, 32, 64],
        metavar=("C1", "C4", "C16"),
        help="requests at concurrency 1, 4, 16",
    )
    ap.add_argument("--prompts", type=int, default=32, help="distinct prompts")
    ap.add_argument("--fresh", action="store_true", help="rebuild the model and prompts in --work")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=1200, help="limit of the load round")
    ap.add_argument("--server-args", default="", help="extra `lmforge serve` flags")
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the server (default: unset)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run (20 good, 8 malformed, 4 disconnects); writes no JSON",
    )
    args = ap.parse_args()
    if args.quick:
        args.good, args.malformed, args.disconnects, args.warm_good = 20, 8, 4, 8
        args.level_requests = [4, 8, 16]
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
