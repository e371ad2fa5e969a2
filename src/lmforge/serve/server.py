"""`lmforge serve`: a run's model behind the OpenAI-compatible API, on uvicorn.

`serve_run` checks the address first (a non-loopback host needs an API key; the
port is bound before the model is loaded, so a port in use is one line at once),
opens the run (`load_run(need="decoder")`), starts a continuously batching
`Scheduler` and runs uvicorn on the bound socket. SIGTERM or SIGINT stops
accepting connections, lets the requests in flight finish (streams included),
drains the scheduler and returns 0; a second SIGINT quits at once.

`open_server` builds the same thing without running it (tests run it on a thread).
"""

from __future__ import annotations

import errno
import ipaddress
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from ..common import LmforgeError, get_logger, pick_device
from .app import MAX_BODY_BYTES, STATIC_DIR, ServerState, build_app
from .protocol import ModelInfo

log = get_logger("serve")

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """Whether `host` only reaches this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_address(host: str, api_key: str | None) -> None:
    """Refuse a host other machines can reach unless requests need a key."""
    if api_key is not None and not api_key.strip():
        raise LmforgeError("--api-key (or LMFORGE_API_KEY) is empty; give a key or leave it unset")
    if api_key is None and not is_loopback(host):
        raise LmforgeError(
            f"--host {host} is reachable from other machines: give an API key (--api-key or "
            "the LMFORGE_API_KEY environment variable), or bind 127.0.0.1"
        )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one); one-line errors."""
    try:
        infos = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise LmforgeError(
            f"--host {host}: cannot resolve it ({e.strerror}); give an address"
        ) from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT, not a server
        sock.bind(addr)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        where = f"{host}:{port}"
        if e.errno == errno.EADDRINUSE:
            raise LmforgeError(
                f"port {port} on {host} is in use; stop what listens there or choose another --port"
            ) from None
        if e.errno == errno.EACCES:
            raise LmforgeError(
                f"{where}: no permission to listen there (ports below 1024 need privileges); "
                "choose another --port"
            ) from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise LmforgeError(
                f"--host {host} is not an address of this machine; use 127.0.0.1 or 0.0.0.0"
            ) from None
        raise LmforgeError(f"{where}: cannot listen: {e.strerror}") from None
    return sock


def bound_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass
class Server:
    """A built server: the uvicorn server, its bound socket and the scheduler behind it."""

    uvicorn: object  # uvicorn.Server
    socket: socket.socket
    state: ServerState

    @property
    def url(self) -> str:
        return bound_url(self.socket)

    def run(self) -> None:
        """Serve until a signal (main thread) or ``uvicorn.should_exit``; then drain."""
        self.state.scheduler.start()
        try:
            self.uvicorn.run(sockets=[self.socket])  # type: ignore[attr-defined]
        finally:
            self.state.scheduler.shutdown(drain=True)
            self.socket.close()


def open_server(
    run: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    slots: int = 16,
    max_queue: int = 64,
    device: str = "auto",
    compile: bool = False,
    model_name: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    queue_wait: float = 2.0,
    step: int | None = None,
    log_level: str = "info",
    static_dir: Path = STATIC_DIR,
) -> Server:
    """Everything `serve_run` runs, built and bound but not started."""
    import uvicorn

    from ..inference.engine import default_stop_ids
    from ..inference.scheduler import Scheduler
    from ..runs import load_run
    from ..tokenizers.chat import has_chat_tokens

    check_address(host, api_key)
    if max_body_bytes < 1024:
        raise LmforgeError(f"--max-body-bytes must be at least 1024, got {max_body_bytes}")
    sock = bind(host, port)
    try:
        opened = load_run(run, step, device=pick_device(device), need="decoder")
        tok = opened.tokenizer
        scheduler = Scheduler(
            opened.model, tok, slots=slots, max_queue=max_queue, compile=compile
        )  # fmt: skip
        name = model_name or Path(run).resolve().name
        info = ModelInfo(name, tok, scheduler.context, has_chat_tokens(tok))
        state = ServerState(
            scheduler, info, default_stop_ids(tok), api_key=api_key,
            max_body_bytes=max_body_bytes, queue_wait=queue_wait, static_dir=static_dir,
        )  # fmt: skip
        config = uvicorn.Config(
            build_app(state), log_level=log_level, lifespan="off", timeout_graceful_shutdown=None
        )
        return Server(uvicorn.Server(config), sock, state)
    except BaseException:
        sock.close()
        raise


def serve_run(run: str | Path, **options) -> int:
    """Serve `run` until SIGTERM/SIGINT (see `open_server` for the options); returns 0."""
    server = open_server(run, **options)
    state = server.state
    log.info(
        f"serving {run} as {state.model.name!r} on {server.url} "
        f"(context {state.model.context} tokens, {state.scheduler.slots} slots"
        f"{', API key required' if state.api_key else ''}); SIGTERM or Ctrl-C stops it"
    )
    if not state.model.chat:
        log.info(
            "this run's tokenizer has no chat role tokens (a pretraining run): serving "
            "/v1/completions only; /v1/chat/completions answers 400"
        )
    previous = {}

    def stop(signum, frame) -> None:
        # uvicorn catches SIGINT/SIGTERM while it serves and, once it has drained, raises
        # them again with the handlers it found: this one, so that a signal ends in exit 0.
        # (One that comes before uvicorn listens stops it as soon as it starts.)
        server.uvicorn.should_exit = True  # type: ignore[attr-defined]

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, stop)
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped: the requests in flight have finished")
    return 0
