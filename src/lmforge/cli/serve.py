"""`lmforge serve`: an OpenAI-compatible HTTP API (and the web chat page) for a run.

``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions`` (with
``stream``), ``GET /health``, the page at ``/``. Binds 127.0.0.1:8000 by default;
any other host needs an API key (``--api-key`` or ``LMFORGE_API_KEY``). SIGTERM or
Ctrl-C finishes the requests in flight and exits 0. Writes no files.
"""

from __future__ import annotations

import argparse
import os

VERB = "serve"
API_KEY_ENV = "LMFORGE_API_KEY"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        VERB,
        help="serve a run over an OpenAI-compatible HTTP API (and a web chat page)",
        description="Serve RUN's model: GET /v1/models, POST /v1/chat/completions, POST "
        "/v1/completions (stream, n, stop, seed, temperature, top_p, max_tokens), GET /health, "
        "and the chat page at /. Requests share the model through continuous batching "
        "(--slots rows decode together). A run without chat tokens (pretraining) serves "
        "completions only. SIGTERM or Ctrl-C lets the requests in flight finish, then exits.",
    )
    parser.add_argument("--run", required=True, help="run folder to serve (an SFT run for chat)")
    parser.add_argument("--step", type=int, help="checkpoint step to serve (default: latest)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; any other needs an API key)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    parser.add_argument(
        "--api-key",
        help=f"require 'Authorization: Bearer KEY' on /v1 (default: ${API_KEY_ENV}, if set)",
    )
    parser.add_argument(
        "--slots", type=int, default=16, help="answers decoded together (rows of the batch)"
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=64,
        help="requests waiting for a slot before new ones get 429 (after a 2 s wait)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the model through torch.compile (slow first requests, faster steps)",
    )
    parser.add_argument(
        "--model-name", help="the model's id in the API (default: the run folder's name)"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=1 << 20,
        help="largest request body; larger ones get 413 (default 1 MiB)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..common import LmforgeError
    from ..serve.server import serve_run

    for flag, value in (("--slots", args.slots), ("--max-queue", args.max_queue)):
        if value < 1:
            raise LmforgeError(f"{flag} must be at least 1, got {value}")
    if not 0 <= args.port <= 65535:
        raise LmforgeError(f"--port must be between 0 and 65535, got {args.port}")
    api_key = args.api_key if args.api_key is not None else (os.environ.get(API_KEY_ENV) or None)
    return serve_run(
        args.run, step=args.step, host=args.host, port=args.port, api_key=api_key,
        slots=args.slots, max_queue=args.max_queue, device=args.device, compile=args.compile,
        model_name=args.model_name, max_body_bytes=args.max_body_bytes,
        log_level="warning" if args.quiet else "info",
    )  # fmt: skip
