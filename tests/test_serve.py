"""`lmforge serve`: the OpenAI-compatible API, driven by the official `openai` client.

One server per module on a free loopback port (a thread of this process), over a
tiny untrained GPT that can never emit a stop token (`make_endless_run`: every
answer is as long as asked); raw HTTP (httpx) for malformed requests; a subprocess
for SIGTERM.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from conftest import assert_clean_error, run_lmforge_inprocess
from openai import OpenAI
from serve_helpers import make_endless_run
from starlette.testclient import TestClient
from test_chat_template import _gpt2_like
from test_pretrain_helpers import make_corpus, make_tokenizer

from lmforge.inference.scheduler import Request
from lmforge.serve.app import ServerState, build_app
from lmforge.serve.server import open_server

KEY = "sk-test-key"
CONTEXT = 1024
MODEL = "tiny"


@pytest.fixture(scope="session")
def chat_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serve_chat")
    make_tokenizer(root / "tok", make_corpus(100))
    return make_endless_run(root, root / "tok", context=CONTEXT)


@pytest.fixture(scope="session")
def plain_run(tmp_path_factory) -> Path:
    """A run whose tokenizer has no chat role tokens (as imported from GPT-2)."""
    root = tmp_path_factory.mktemp("serve_plain")
    _gpt2_like(docs=make_corpus(100)).save(root / "tok")
    return make_endless_run(root, root / "tok", context=CONTEXT)


@pytest.fixture(scope="module")
def static(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("static")
    (folder / "index.html").write_text("<!doctype html><title>chat</title>", encoding="utf-8")
    (folder / "chat.js").write_text("console.log('hi');", encoding="utf-8")
    (folder / "sub").mkdir()
    (folder / "sub" / "x.css").write_text("body{}", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def server(chat_run, static):
    srv = open_server(chat_run, port=0, api_key=KEY, slots=4, max_queue=8, device="cpu",
                      model_name=MODEL, max_body_bytes=16384, log_level="warning",
                      static_dir=static)  # fmt: skip
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.uvicorn.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    yield srv
    srv.uvicorn.should_exit = True
    thread.join(20)


@pytest.fixture(scope="module")
def client(server) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# One client for the raw requests: a new httpx client builds an SSL context (~0.1 s).
HTTP = httpx.Client(timeout=60)


def post(server, path: str, body=None, *, content=None, headers=None) -> httpx.Response:
    return HTTP.post(server.url + path, json=body, content=content,
                     headers=auth() if headers is None else headers)  # fmt: skip


def get(server, path: str, headers=None) -> httpx.Response:
    return HTTP.get(server.url + path, headers=headers)


def chat_ids(server, content: str) -> list[int]:
    from lmforge.tokenizers.chat import render_chat

    msgs = [{"role": "user", "content": content}]
    return render_chat(server.state.model.tokenizer, msgs, add_generation_prompt=True).ids


# --- the happy paths ---------------------------------------------------------------


def test_models_lists_the_served_model(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4")


def test_chat_completion_with_usage(client, server):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    r = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=7, temperature=0)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    (choice,) = r.choices
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason == "length"
    from lmforge.tokenizers.chat import render_chat

    ids = render_chat(server.state.model.tokenizer, msgs, add_generation_prompt=True).ids
    assert r.usage.prompt_tokens == len(ids)
    assert r.usage.completion_tokens == 7
    assert r.usage.total_tokens == len(ids) + 7


def test_streamed_chat_equals_the_whole_answer(client):
    args = dict(model=MODEL, messages=[{"role": "user", "content": "Tell me"}], max_tokens=12,
                temperature=0)  # fmt: skip
    whole = client.chat.completions.create(**args).choices[0].message.content
    chunks = list(
        client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True})
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12


def test_completions_n_samples_and_seed(client, server):
    args = dict(model=MODEL, prompt="Anna went", max_tokens=10, n=3, seed=42, temperature=1.0)
    a = client.completions.create(**args)
    b = client.completions.create(**args)
    assert a.object == "text_completion" and [c.index for c in a.choices] == [0, 1, 2]
    texts = [c.text for c in a.choices]
    assert texts == [c.text for c in b.choices]  # the seed makes it reproducible
    assert len(set(texts)) > 1  # the samples draw from their own generators
    assert a.usage.prompt_tokens == len(server.state.model.tokenizer.encode("Anna went"))
    assert a.usage.completion_tokens == 30
    other = client.completions.create(**{**args, "seed": 43})
    assert [c.text for c in other.choices] != texts
    streamed = [""] * 3
    for chunk in client.completions.create(**args, stream=True):
        for c in chunk.choices:
            streamed[c.index] += c.text
    assert streamed == texts  # streamed and whole answers agree, sample by sample


def test_several_prompts_and_token_id_prompts(client, server):
    tok = server.state.model.tokenizer
    r = client.completions.create(model=MODEL, prompt=["Anna", "Boris went"], n=2, max_tokens=4,
                                  temperature=0)  # fmt: skip
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.choices[0].text == r.choices[1].text  # greedy: both samples of a prompt agree
    ids = tok.encode("Boris went")
    by_ids = client.completions.create(model=MODEL, prompt=ids, max_tokens=4, temperature=0)
    assert by_ids.choices[0].text == r.choices[2].text
    assert r.usage.prompt_tokens == len(tok.encode("Anna")) + len(ids)


def test_stop_strings_cut_the_text(client):
    args = dict(model=MODEL, prompt="Clara saw", max_tokens=40, temperature=0)
    full = client.completions.create(**args).choices[0].text
    clean = [i for i in range(10, len(full) - 3) if "\ufffd" not in full[i : i + 3]]
    assert clean, full
    stop = full[clean[0] : clean[0] + 3]
    want = full[: full.find(stop)]
    r = client.completions.create(**args, stop=[stop, "never-there"])
    assert r.choices[0].text == want and r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens < 40
    streamed = "".join(
        c.choices[0].text for c in client.completions.create(**args, stop=stop, stream=True)
    )
    assert streamed == want


def test_default_max_tokens_is_the_room_left_and_echo(client, server):
    ids = [20] * (CONTEXT - 5)
    r = client.completions.create(model=MODEL, prompt=ids, temperature=0)
    assert r.usage.completion_tokens == 5 and r.choices[0].finish_reason == "length"
    e = client.completions.create(model=MODEL, prompt="Dmitri", max_tokens=3, temperature=0,
                                  echo=True)  # fmt: skip
    assert e.choices[0].text.startswith("Dmitri")


def test_unknown_fields_are_ignored(server):
    r = post(server, "/v1/chat/completions", {
        "model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 2,
        "frobnicate": {"a": 1}, "user": "someone", "presence_penalty": 0,
    })  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["finish_reason"] == "length"


def test_health_and_the_page(server, static):
    h = get(server, "/health")  # no key needed
    assert h.status_code == 200 and h.json()["status"] == "ok" and h.json()["slots"] == 4
    page = get(server, "/")
    assert page.status_code == 200 and "<title>chat</title>" in page.text
    assert get(server, "/static/chat.js").text == "console.log('hi');"
    assert get(server, "/static/sub/x.css").status_code == 200
    for path in ("/static/", "/static/sub", "/static/../test_serve.py", "/static/nope.js"):
        r = get(server, path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path


# --- errors ----------------------------------------------------------------------------


def _error(r: httpx.Response, status: int, *needles: str, param=None) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    for n in needles:
        assert n.lower() in err["message"].lower(), (n, err["message"])
    if param is not None:
        assert err["param"] == param
    return err


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}


def test_malformed_bodies_are_400(server):
    url = "/v1/chat/completions"
    _error(post(server, url, content=b"{not json"), 400, "not valid JSON", "line 1")
    _error(post(server, url, content=b"[1, 2]"), 400, "JSON object")
    _error(post(server, url, content=b""), 400, "empty")
    _error(post(server, url, content=b"\xff\xfe{}"), 400, "UTF-8")
    _error(post(server, url, content=b"[" * 10000), 400, "nested")


@pytest.mark.parametrize(
    "change, param, needle",
    [
        ({"model": None}, "model", "required"),
        ({"messages": []}, "messages", "non-empty"),
        ({"messages": "hi"}, "messages", "array"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role", "not supported"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "string"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
         "messages[0].content[0]", "text parts"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]},
         "messages", "first message"),
        ({"temperature": 3}, "temperature", "between 0 and 2"),
        ({"temperature": "hot"}, "temperature", "number"),
        ({"top_p": 0}, "top_p", "(0, 1]"),
        ({"n": 9}, "n", "between 1 and 8"),
        ({"n": 2.5}, "n", "integer"),
        ({"max_tokens": 0}, "max_tokens", ">= 1"),
        ({"max_tokens": True}, "max_tokens", "integer"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"stop": 3}, "stop", "string"),
        ({"stop": [""]}, "stop", "empty"),
        ({"stream": "yes"}, "stream", "true or false"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "stream: true"),
        ({"logprobs": True}, "logprobs", "not supported"),
        ({"tools": [{"type": "function"}]}, "tools", "not supported"),
        ({"frequency_penalty": 0.5}, "frequency_penalty", "not supported"),
        ({"seed": "x"}, "seed", "integer"),
    ],
)  # fmt: skip
def test_bad_parameters_are_400_naming_the_field(server, change, param, needle):
    body = {**CHAT, **change}
    _error(post(server, "/v1/chat/completions", body), 400, needle, param=param)


def test_context_limits_are_400_with_the_limit(server):
    long_ids = [20] * CONTEXT
    err = _error(post(server, "/v1/completions", {"model": MODEL, "prompt": long_ids}), 400,
                 f"context is {CONTEXT}", param="prompt")  # fmt: skip
    assert err["code"] == "context_length_exceeded"
    n = len(chat_ids(server, "hello"))
    room = CONTEXT - n
    _error(post(server, "/v1/chat/completions", {**CHAT, "max_tokens": room + 1}), 400,
           f"at most {room}", param="max_tokens")  # fmt: skip
    assert post(server, "/v1/chat/completions", {**CHAT, "max_tokens": room}).status_code == 200
    _error(post(server, "/v1/completions", {"model": MODEL, "prompt": [1, 99999]}), 400,
           "outside the vocabulary")  # fmt: skip


def test_model_route_key_and_size_errors(server):
    _error(post(server, "/v1/chat/completions", {**CHAT, "model": "gpt-4"}), 404, "gpt-4",
           param="model")  # fmt: skip
    _error(post(server, "/v1/nothing", CHAT), 404, "no such route")
    r = get(server, "/v1/chat/completions", headers=auth())
    _error(r, 405, "not allowed")
    assert _error(post(server, "/v1/chat/completions", CHAT, headers={}), 401,
                  "Authorization")["code"] == "invalid_api_key"  # fmt: skip
    _error(post(server, "/v1/chat/completions", CHAT, headers=auth("sk-wrong")), 401, "incorrect")
    r = get(server, "/v1/models", headers={"Authorization": "Basic x"})
    _error(r, 401, "Bearer")
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 20000}]}
    _error(post(server, "/v1/chat/completions", big), 413, "16384 bytes")


def test_the_openai_client_sees_typed_errors(client):
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model=MODEL, messages=CHAT["messages"], temperature=5)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x", max_tokens=1)
    bad = OpenAI(base_url=client.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_garbage_never_gets_a_500(server):
    values = [None, True, -1, 0, 1e308, "", "x", [], [None], {}, {"role": "user"}, [[1, -5]]]
    fields = ["model", "messages", "prompt", "max_tokens", "temperature", "top_p", "n", "stop",
              "seed", "stream", "stream_options", "echo", "top_k"]  # fmt: skip
    for path, base in (("/v1/chat/completions", CHAT),
                       ("/v1/completions", {"model": MODEL, "prompt": "a", "max_tokens": 1})):  # fmt: skip
        for f in fields:
            for v in values:
                if f == "max_tokens" and v is None:
                    continue  # valid, and the whole context long
                r = post(server, path, {**base, f: v})
                assert r.status_code < 500, (path, f, v, r.text)
                assert r.status_code == 200 or "error" in r.json(), (path, f, v, r.text)


# --- the scheduler behind it -----------------------------------------------------------


def _wait_idle(server, timeout: float) -> float:
    start = time.monotonic()
    while server.state.scheduler.stats()["running"]:
        assert time.monotonic() - start < timeout, server.state.scheduler.stats()
        time.sleep(0.01)
    return time.monotonic() - start


def test_a_disconnecting_client_frees_its_slot(server, monkeypatch):
    sched = server.state.scheduler
    # 2 ms a decode step, so 1,000 tokens take >= 2 s whatever the CPU: a fast machine ran
    # the untrained tiny model's 1,000 tokens inside the client's 0.3 s read timeout.
    fast_step = sched.step

    def slow_step() -> bool:
        time.sleep(0.002)
        return fast_step()

    monkeypatch.setattr(sched, "step", slow_step)
    before = sched.stats()["generated_tokens"]
    body = {"model": MODEL, "prompt": "Anna", "max_tokens": 1000, "temperature": 0,
            "stream": True}  # fmt: skip
    with httpx.stream("POST", server.url + "/v1/completions", json=body, headers=auth()) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data:"):
                break
        assert sched.stats()["running"] == 1
    _wait_idle(server, 2.0)
    assert sched.stats()["generated_tokens"] - before < 900  # it stopped, it did not finish
    # Not streamed: a client that gives up waiting frees its slot too.
    before = sched.stats()["generated_tokens"]
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/completions", json={**body, "stream": False},
                   headers=auth(), timeout=httpx.Timeout(5, read=0.3))  # fmt: skip
    _wait_idle(server, 2.0)
    assert sched.stats()["generated_tokens"] - before < 900


def test_a_full_queue_answers_429_after_a_bounded_wait(chat_run):
    from lmforge.inference.scheduler import Scheduler
    from lmforge.runs import load_run
    from lmforge.serve.protocol import ModelInfo

    opened = load_run(chat_run, need="decoder")
    sched = Scheduler(opened.model, opened.tokenizer, slots=1, max_queue=1)  # never started
    sched.submit(Request([5, 6, 7], max_tokens=2), lambda events: None)  # the queue is full
    info = ModelInfo(MODEL, opened.tokenizer, sched.context, True)
    app = build_app(ServerState(sched, info, [2], queue_wait=0.2))
    with TestClient(app) as tc:
        start = time.monotonic()
        r = tc.post("/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 2})
        assert time.monotonic() - start >= 0.2
        err = _error(r, 429, "busy")
        assert err["code"] == "rate_limit_exceeded" and r.headers["retry-after"] == "1"
        assert sched.stats()["queued"] == 1  # the refused request left nothing behind


def test_a_run_without_chat_tokens_serves_completions_only(plain_run):
    from lmforge.inference.scheduler import Scheduler
    from lmforge.runs import load_run
    from lmforge.serve.protocol import ModelInfo

    opened = load_run(plain_run, need="decoder")
    sched = Scheduler(opened.model, opened.tokenizer, slots=2)
    info = ModelInfo(MODEL, opened.tokenizer, sched.context, False)
    sched.start()
    try:
        with TestClient(build_app(ServerState(sched, info, [opened.tokenizer.eos_id]))) as tc:
            err = _error(tc.post("/v1/chat/completions", json=CHAT), 400, "/v1/completions",
                         "no chat template")  # fmt: skip
            assert err["code"] == "chat_not_supported"
            r = tc.post("/v1/completions", json={"model": MODEL, "prompt": "the cat",
                                                 "max_tokens": 3, "temperature": 0})  # fmt: skip
            assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
    finally:
        sched.shutdown()


# --- the command ---------------------------------------------------------------------------


def test_the_packaged_page_is_served(server):
    from lmforge.serve.app import STATIC_DIR

    state = dataclasses.replace(server.state, static_dir=STATIC_DIR)
    with TestClient(build_app(state)) as tc:
        page = tc.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        for name in ("chat.js", "chat.css"):
            assert f"/static/{name}" in page.text
            assert tc.get(f"/static/{name}").status_code == 200


def test_address_errors_are_one_line(chat_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run_lmforge_inprocess("serve", "--run", chat_run, "--port", port)
        assert_clean_error(r, f"port {port}", "in use")
    r = run_lmforge_inprocess("serve", "--run", chat_run, "--host", "0.0.0.0", "--port", "0")
    assert_clean_error(r, "0.0.0.0", "API key")
    r = run_lmforge_inprocess("serve", "--run", chat_run, "--api-key", " ", "--port", "0")
    assert_clean_error(r, "empty")
    r = run_lmforge_inprocess("serve", "--run", chat_run, "--max-queue", "0")
    assert_clean_error(r, "--max-queue", "at least 1")


def _start_serving(run: Path, *args: str) -> tuple[subprocess.Popen, str, list[str]]:
    """`lmforge serve` in a subprocess on a free port; returns it, its URL and its output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lmforge", "serve", "--run", str(run), "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ},
    )  # fmt: skip
    lines: list[str] = []
    found: list[str] = []

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if not found and " on http://" in line:
                found.append(line.split(" on ", 1)[1].split()[0])

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while not found:
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.05)
    return proc, found[0], lines


def test_sigterm_finishes_the_stream_in_flight_and_exits_0(plain_run):
    proc, url, lines = _start_serving(plain_run)
    try:
        deadline = time.monotonic() + 30
        while True:  # the socket listens before uvicorn accepts: wait for it to answer
            try:
                httpx.get(url + "/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "".join(lines)
                time.sleep(0.05)
        assert any("completions only" in line for line in lines), lines  # logged before serving
        body = {"model": "endless", "prompt": "the cat", "max_tokens": 300, "temperature": 0,
                "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
        events = []
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as r:
            assert r.status_code == 200
            proc.send_signal(signal.SIGTERM)  # the answer has begun: 300 tokens take > 1 s
            for line in r.iter_lines():
                if line.startswith("data:"):
                    events.append(line[5:].strip())
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert chunks[-2]["choices"][0]["finish_reason"] == "length"
        assert chunks[-1]["usage"]["completion_tokens"] == 300  # the whole answer, after SIGTERM
        assert proc.wait(timeout=30) == 0, "".join(lines)
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
