"""What the serving benchmarks share: the model setup, server processes, one load generator.

`serve_load.py` (lmforge alone under malformed and disconnecting clients) and
`serve_peer.py` (lmforge vs `transformers serve`) drive every server with the
same client code, so their numbers differ only by the server.

* **The model** (`setup_model`): a byte-level BPE tokenizer (4096 ids, lmforge's
  special and chat tokens at 0..8) trained on Tiny Shakespeare, and a random-init
  LLaMA (d_model 256, 6 layers, 4 heads of 64, SwiGLU 768, context 256, untied
  embeddings: 7.2M parameters) saved as an lmforge run folder (checkpoint step 0 +
  tokenizer, what `lmforge pretrain` writes) and exported with `lmforge export hf`,
  so both servers load the same weights. Everything lands under ``--work``.
* **The prompts**: a random model may end a reply early at a stop token, or emit
  byte tokens that are not whole characters (which a server may hold back, so
  content chunks would not count tokens). So a prompt is kept only when its greedy
  reply under lmforge's engine is 64 tokens with no stop token, every token
  completes text of its own, and transformers' `generate` on the exported folder
  gives the same 64 tokens from the same prompt ids (its chat template renders
  them). Every kept request therefore generates exactly 64 tokens on both servers,
  and the benchmarks check that they did.
* **The client** (`stream_chat`, `run_level`): asyncio + httpx, ``POST
  /v1/chat/completions`` with ``stream: true``, ``temperature: 0``, ``max_tokens:
  64``. Tokens are counted as content chunks (and the final ``usage`` when a server
  sends one); a stream ends at ``data: [DONE]``, or at the chunk with a
  ``finish_reason`` followed by the connection closing (transformers sends no
  ``[DONE]``). TTFT is request start to the first content chunk; ITL the gaps
  between a request's successive content chunks, as the client sees them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
from _bench import SHARED_DATA  # noqa: E402

DEFAULT_WORK = Path("/tmp/lmforge_bench_serve")
CORPUS = SHARED_DATA / "corpora" / "tinyshakespeare.txt"
VOCAB = 4096
MODEL = dict(
    d_model=256, n_layer=6, n_head=4, block_size=256, tie_embeddings=False
)  # heads of 64 as in llama-cpu-14m; untied: the ~7M parameters of the measurement
NEW_TOKENS = 64
SEED = 0


# ---------------------------------------------------------------------------
# The model and the prompts


@dataclass
class Prompt:
    """One user message whose greedy reply is NEW_TOKENS tokens on both implementations."""

    text: str
    prompt_ids: list[int]
    reply_ids: list[int]
    reply: str


@dataclass
class Setup:
    work: Path
    run: Path
    hf: Path
    prompts: list[Prompt]
    params: int

    @property
    def replies(self) -> dict[str, str]:
        return {p.text: p.reply for p in self.prompts}


def setup_model(work: Path = DEFAULT_WORK, *, n_prompts: int = 32, force: bool = False) -> Setup:
    """The run folder, its HF export and the checked prompts under `work` (reused if there)."""
    work = Path(work)
    run, hf, saved = work / "run", work / "hf", work / "prompts.json"
    if not force and saved.is_file() and (hf / "config.json").is_file():
        info = json.loads(saved.read_text())
        if info.get("model") == MODEL and len(info["prompts"]) >= n_prompts:
            prompts = [Prompt(**p) for p in info["prompts"][:n_prompts]]
            return Setup(work, run, hf, prompts, info["params"])
    work.mkdir(parents=True, exist_ok=True)
    tok, model = _make_run(run)
    _export(run, hf)
    prompts = _pick_prompts(tok, model, hf, n_prompts)
    params = sum(p.numel() for p in model.parameters())
    saved.write_text(
        json.dumps(
            {"model": MODEL, "params": params, "prompts": [dataclasses.asdict(p) for p in prompts]},
            indent=1,
        )
        + "\n"
    )
    return Setup(work, run, hf, prompts, params)


def _make_run(run: Path):
    """A tokenizer and a random-init LLaMA written as an lmforge run folder (step 0)."""
    import shutil

    import torch

    from lmforge.models import build_model, save_model
    from lmforge.runs.checkpoint import save_checkpoint
    from lmforge.tokenizers.train import TokenizerConfig, train_tokenizer

    if not CORPUS.is_file():
        sys.exit(f"{CORPUS}: not found (the benchmark trains its tokenizer on it)")
    tok = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=VOCAB), [CORPUS])
    torch.manual_seed(SEED)
    model = build_model("llama", {**MODEL, "vocab_size": tok.vocab_size}).eval()
    if run.exists():
        shutil.rmtree(run)
    save_checkpoint(
        run,
        0,
        write_weights=lambda path: save_model(model, path),
        optimizer_state={},
        trainer_state={"tokenizer_hash": tok.hash, "stage": "init"},
    )
    tok.save(run / "tokenizer")
    return tok, model


def _export(run: Path, hf: Path) -> None:
    cmd = [sys.executable, "-m", "lmforge", "export", "hf", "--run", str(run), "--out", str(hf)]
    subprocess.run([*cmd, "--force"], check=True, capture_output=True, text=True)


def _clean_reply(tok, ids: list[int]) -> bool:
    """NEW_TOKENS ids, each completing visible text (no held-back bytes, no special token)."""
    from lmforge.tokenizers.detok import IncrementalDecoder

    if len(ids) != NEW_TOKENS:
        return False
    dec = IncrementalDecoder(tok)
    for i in ids:
        delta = dec.push(i)
        if not delta or "\ufffd" in delta:
            return False
    return not dec.flush()


def _pick_prompts(tok, model, hf: Path, n_prompts: int) -> list[Prompt]:
    """Shakespeare lines as user messages, kept as the module docstring says."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.inference import SamplingConfig, generate
    from lmforge.inference.engine import default_stop_ids
    from lmforge.tokenizers.chat import generation_prompt

    lines = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if 24 <= len(line) <= 72 and line not in lines:
            lines.append(line)
    hf_tok = AutoTokenizer.from_pretrained(hf)
    hf_model = AutoModelForCausalLM.from_pretrained(hf).eval()
    cfg = SamplingConfig(max_new_tokens=NEW_TOKENS, temperature=0.0)
    out: list[Prompt] = []
    tried = 0
    while len(out) < n_prompts and tried < min(len(lines), 16 * n_prompts):
        chunk = lines[tried : tried + 2 * n_prompts]  # about a third qualify
        tried += len(chunk)
        messages = [[{"role": "user", "content": text}] for text in chunk]
        ids = [generation_prompt(tok, m) for m in messages]
        replies = generate(model, ids, cfg, stop_ids=[default_stop_ids(tok)] * len(ids))
        for text, m, p, r in zip(chunk, messages, ids, replies):
            if not _clean_reply(tok, r):
                continue
            hf_ids = hf_tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True)
            hf_ids = list(getattr(hf_ids, "input_ids", hf_ids))
            if hf_ids != p:
                raise SystemExit(f"chat template mismatch for {text!r}: {hf_ids} vs {p}")
            with torch.inference_mode():
                g = hf_model.generate(
                    torch.tensor([p]), max_new_tokens=NEW_TOKENS, do_sample=False,
                    attention_mask=torch.ones(1, len(p), dtype=torch.long),
                )  # fmt: skip
            if g[0, len(p) :].tolist() != r:
                continue  # a near-tie in a random model's logits decided differently
            out.append(Prompt(text, p, r, tok.decode(r)))
            if len(out) == n_prompts:
                return out
    raise SystemExit(f"only {len(out)} of {tried} prompts qualify; need {n_prompts}")


# ---------------------------------------------------------------------------
# Server processes


def thread_env(threads: int | None) -> dict[str, str]:
    """Environment that gives a server process `threads` torch threads (None: torch's default)."""
    if not threads:
        return {}
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int, key: str = "VmRSS") -> int | None:
    """A process's resident memory (or VmHWM, its peak) in KiB from /proc/PID/status."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Server:
    """One server as a child process on 127.0.0.1:`port`, its output in `log`."""

    def __init__(self, name: str, cmd: list[str], port: int, log: Path, env: dict | None = None):
        self.name, self.cmd, self.port, self.log = name, cmd, port, log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.base = f"http://127.0.0.1:{port}"
        self.model_id: str | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 300) -> Server:
        import httpx

        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "w")
        self.proc = subprocess.Popen(
            self.cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}:\n{tail}")
            try:
                r = httpx.get(self.base + "/v1/models", timeout=5, trust_env=False)
                if r.status_code == 200:
                    data = r.json().get("data") or [{}]
                    self.model_id = data[0].get("id")
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise SystemExit(
            f"{self.name} did not answer /v1/models in {timeout:.0f} s (see {self.log})"
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# ---------------------------------------------------------------------------
# The load generator


@dataclass
class Outcome:
    """What one request saw. Times are seconds from the request's start."""

    kind: str  # "good", "malformed:<what>", "disconnect"
    prompt: str = ""
    status: int | None = None
    ttft: float | None = None
    chunk_times: list[float] = field(default_factory=list)  # arrival of each content chunk
    text: str = ""
    usage_tokens: int | None = None
    finish_reason: str | None = None
    done_marker: bool = False  # the stream ended with data: [DONE]
    total: float = 0.0
    error: str | None = None

    @property
    def tokens(self) -> int:
        return self.usage_tokens if self.usage_tokens is not None else len(self.chunk_times)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None and self.finish_reason is not None


def chat_body(model: str | None, text: str, max_tokens: int = NEW_TOKENS) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": text}],
        "stream": True,
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    if model is not None:
        body["model"] = model
    return body


async def stream_chat(
    client, base: str, body: dict[str, Any], *, kind: str = "good", stop_after: int | None = None
) -> Outcome:
    """POST a streamed chat completion and read it to its end (or drop it after
    `stop_after` content chunks: the connection closes mid-stream)."""
    import httpx

    out = Outcome(kind, prompt=body["messages"][0]["content"])
    t0 = time.perf_counter()
    try:
        async with client.stream("POST", base + "/v1/chat/completions", json=body) as r:
            out.status = r.status_code
            if r.status_code != 200:
                await r.aread()
                out.error = r.text[:300]
                return out
            if stop_after == 0:
                return out  # leave as soon as the headers arrive
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    out.done_marker = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    out.error = str(chunk["error"])[:300]
                    break
                for choice in chunk.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        now = time.perf_counter() - t0
                        if out.ttft is None:
                            out.ttft = now
                        out.chunk_times.append(now)
                        out.text += content
                    if choice.get("finish_reason"):
                        out.finish_reason = choice["finish_reason"]
                if chunk.get("usage"):
                    out.usage_tokens = chunk["usage"].get("completion_tokens")
                if stop_after is not None and len(out.chunk_times) >= stop_after:
                    return out
    except (httpx.HTTPError, json.JSONDecodeError) as e:
        out.error = f"{type(e).__name__}: {e}"[:300]
    finally:
        out.total = time.perf_counter() - t0
    return out


def new_client(connections: int = 64, timeout: float = 600):
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False)


async def run_jobs(jobs: list, concurrency: int) -> tuple[list[Outcome], float]:
    """Run coroutine factories `jobs` with at most `concurrency` at once: (outcomes, wall s)."""
    results: list[Outcome | None] = [None] * len(jobs)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(jobs)):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            results[i] = await jobs[i]()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [r for r in results if r is not None], time.perf_counter() - t0


async def run_level(
    server: Server, prompts: list[str], concurrency: int, n_requests: int
) -> dict[str, Any]:
    """`n_requests` good streamed requests (prompts in turn), `concurrency` at a time: stats."""
    async with new_client(max(concurrency, 4)) as client:
        jobs = [
            (lambda t=prompts[i % len(prompts)]: stream_chat(client, server.base,
                                                             chat_body(server.model_id, t)))
            for i in range(n_requests)
        ]  # fmt: skip
        outcomes, wall = await run_jobs(jobs, concurrency)
    return {"concurrency": concurrency, **summarize(outcomes, wall), "_outcomes": outcomes}


# ---------------------------------------------------------------------------
# Statistics


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between order statistics."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _ms(v: float | None) -> float | None:
    return None if v is None else round(1000 * v, 2)


def summarize(outcomes: list[Outcome], wall: float) -> dict[str, Any]:
    """Throughput and latency of the good requests among `outcomes`."""
    good = [o for o in outcomes if o.kind == "good"]
    done = [o for o in good if o.ok]
    tokens = sum(o.tokens for o in done)
    ttft = [o.ttft for o in done if o.ttft is not None]
    itl = [b - a for o in done for a, b in zip(o.chunk_times, o.chunk_times[1:])]
    return {
        "requests": len(good),
        "completed": len(done),
        "generated_tokens": tokens,
        "chunks": sum(len(o.chunk_times) for o in done),
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 1) if wall > 0 else None,
        "ttft_ms_p50": _ms(percentile(ttft, 50)),
        "ttft_ms_p99": _ms(percentile(ttft, 99)),
        "itl_ms_p50": _ms(percentile(itl, 50)),
        "itl_ms_p99": _ms(percentile(itl, 99)),
        "latency_ms_p50": _ms(percentile([o.total for o in done], 50)),
        "tokens_per_request": sorted({o.tokens for o in done}),
    }


def public(level: dict[str, Any]) -> dict[str, Any]:
    """A level's stats without the raw outcomes (what goes to the JSON)."""
    return {k: v for k, v in level.items() if not k.startswith("_")}


def versions() -> dict[str, str]:
    """Versions of what the client and lmforge's server run on (this interpreter)."""
    from importlib import metadata

    out = {}
    for name in ("lmforge", "torch", "transformers", "httpx", "starlette", "uvicorn"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out
