"""Helpers for the serving tests: `lmforge serve` as a subprocess, a run that never stops,
and the web page in headless Chromium.

`served(run, ...)` starts ``python -m lmforge serve --run RUN --port P`` on a free
port, waits until ``GET /health`` answers and stops it (SIGTERM, then SIGKILL) on
exit. `make_endless_run` builds a chat-capable run whose model can never emit a stop
token, so an answer runs to its token limit: long streams, on purpose, for tests of
streaming and cancellation that must not race a short answer. `launch_chromium`,
`open_chat` and `send` drive the chat page with Playwright and Debian's chromium
(tests/test_serve_browser.py and scripts/screenshot_chat.py share them).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port nothing listens on now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServedRun:
    """A running `lmforge serve`: its base URL and process."""

    url: str
    proc: subprocess.Popen

    def get_json(self, path: str, headers: dict[str, str] | None = None) -> dict:
        """GET url+path as JSON (an HTTP error status raises urllib.error.HTTPError)."""
        req = urllib.request.Request(self.url + path, headers=headers or {})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def health(self) -> dict:
        """GET /health: status, model and the scheduler's stats (running, queued, ...)."""
        return self.get_json("/health")

    def wait_idle(self, timeout: float = 10.0) -> dict:
        """Poll /health until no request runs or waits; returns the last answer."""
        deadline = time.monotonic() + timeout
        while True:
            h = self.health()
            if h.get("running") == 0 and h.get("queued") == 0:
                return h
            if time.monotonic() > deadline:
                raise AssertionError(f"the server is still busy after {timeout} s: {h}")
            time.sleep(0.05)


@contextmanager
def served(run: str | Path, *args: str, timeout: float = 90.0) -> Iterator[ServedRun]:
    """`lmforge serve --run RUN ARGS` on a free port until the block ends."""
    port = free_port()
    cmd = [sys.executable, "-m", "lmforge", "serve", "--run", str(run), "--port", str(port), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )  # fmt: skip
    server = ServedRun(f"http://127.0.0.1:{port}", proc)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"lmforge serve exited {proc.returncode}:\n{_output(proc)}")
            try:
                server.health()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"lmforge serve did not answer /health in {timeout} s"
                    ) from None
                time.sleep(0.1)
        yield server
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: the server drains and exits 0
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def _output(proc: subprocess.Popen) -> str:
    return proc.stdout.read() if proc.stdout is not None else ""


def make_endless_run(root: Path, tokenizer: Path, context: int = 1024) -> Path:
    """root/endless: a seeded, untrained tiny GPT (`context` tokens) with the tokenizer at
    `tokenizer` (it must have the chat role tokens), whose stop tokens (EOS, <|end|>)
    can never be sampled: the final LayerNorm's feature 0 is the constant 1 (weight 0,
    bias 1) and only the stop tokens' logits read it, with weight -1e4."""
    import torch

    from lmforge.inference.engine import default_stop_ids
    from lmforge.models import build_model, get_preset, save_model
    from lmforge.runs import RunLayout
    from lmforge.runs.checkpoint import save_checkpoint
    from lmforge.tokenizers import Tokenizer

    tok = Tokenizer.load(tokenizer)
    arch, cfg = get_preset("gpt-tiny")
    cfg.vocab_size, cfg.block_size = tok.vocab_size, context
    torch.manual_seed(0)
    model = build_model(arch, cfg)
    stops = default_stop_ids(tok)
    with torch.no_grad():
        model.norm_f.weight[0] = 0.0
        model.norm_f.bias[0] = 1.0
        model.lm_head.weight[:, 0] = 0.0
        model.lm_head.weight[stops, 0] = -1e4
    out = root / "endless"
    tok.save(RunLayout(out).tokenizer)
    save_checkpoint(
        out, 1, write_weights=lambda p: save_model(model, p), optimizer_state={},
        trainer_state={"stage": "pretrain", "tokenizer_hash": tok.hash},
    )  # fmt: skip
    return out


# --- the page in a browser ------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright downloads nothing
# Headless, sandbox off (containers), and nothing that reaches the network on its own.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def launch_chromium(playwright):
    """A headless Chromium browser from Debian's package (Playwright's own is never used)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def open_chat(
    browser,
    url: str,
    *,
    api_key: str | None = None,
    width: int = 1100,
    height: int = 760,
    color_scheme: str = "light",
    errors: list | None = None,
):
    """A new page (fresh local storage) on the chat page at `url`; with `api_key` the key
    is in the page's saved settings before it loads, as if typed in earlier. Uncaught
    exceptions of the page's script are appended to `errors`."""
    context = browser.new_context(
        viewport={"width": width, "height": height}, color_scheme=color_scheme
    )  # fmt: skip
    page = context.new_page()
    if errors is not None:
        page.on("pageerror", lambda e: errors.append(str(e)))
    if api_key is not None:
        page.add_init_script(
            "if (!localStorage.getItem('lmforge.settings.v1')) localStorage.setItem("
            f"'lmforge.settings.v1', JSON.stringify({{apiKey: {json.dumps(api_key)}}}));"
        )
    page.goto(url + "/")
    return page


def send(page, text: str) -> None:
    """Type `text` into the message box and press Enter (Shift+Enter for its newlines)."""
    box = page.locator("#input")
    box.click()
    for k, line in enumerate(text.split("\n")):
        if k:
            box.press("Shift+Enter")
        box.press_sequentially(line)
    box.press("Enter")


def model_shown(page, name: str, timeout: float = 15.0) -> None:
    """Waits until the page shows `name` as the model (GET /v1/models answered)."""
    page.wait_for_function(
        "name => document.getElementById('model-name').textContent === name",
        arg=name,
        timeout=timeout * 1000,
    )


def answer_done(page, timeout: float = 30.0):
    """Waits until the last answer is finished; returns its element."""
    page.wait_for_function(
        "() => { const a = [...document.querySelectorAll('.msg-assistant')].pop();"
        " return a && a.dataset.state === 'done'; }",
        timeout=timeout * 1000,
    )
    return page.locator(".msg-assistant").last
