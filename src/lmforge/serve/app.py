"""The OpenAI-compatible HTTP API as a Starlette app: `build_app(state)`.

Routes: ``GET /health``, ``GET /v1/models`` (and ``/v1/models/{id}``), ``POST
/v1/chat/completions``, ``POST /v1/completions``, and the web page (``/`` is
``static/index.html``, ``/static/...`` the folder's other files; no listings).

* **Auth**: with an API key every ``/v1`` route needs ``Authorization: Bearer KEY``
  (compared with ``hmac.compare_digest``); ``/health`` and the page do not.
* **Errors** are OpenAI's JSON (``{"error": {"message", "type", "param",
  "code"}}``) with the status that names the fault: 400 bad JSON or fields, 401 key,
  404 model or route, 405 method, 413 body over ``max_body_bytes``, 429 queue
  still full after ``queue_wait`` seconds, 503 shutting down. A client's mistake is
  never a 500; anything else (a bug) is logged with its traceback and answered with
  a 500 JSON, and the server keeps serving.
* **Streaming** (``stream: true``) is server-sent events: one ``data: {chunk}`` per
  new text of a choice, then ``data: [DONE]``. A client that disconnects (streaming
  or not) cancels its request at once: the scheduler frees its slots at the next step.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..common import LmforgeError
from ..inference.scheduler import Scheduler
from .bridge import Job
from .protocol import (
    ApiError,
    GenerationRequest,
    ModelInfo,
    parse_body,
    parse_chat,
    parse_completion,
)
from .responses import DONE, Answer, sse

log = logging.getLogger("lmforge.serve")

STATIC_DIR = Path(__file__).with_name("static")
MAX_BODY_BYTES = 1 << 20


@dataclass
class ServerState:
    """What the app serves and how."""

    scheduler: Scheduler
    model: ModelInfo
    stop_ids: list[int]  # tokens that end an answer (EOS, and <|end|> for chat runs)
    api_key: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    queue_wait: float = 2.0  # seconds a request waits for room in a full queue before a 429
    static_dir: Path = STATIC_DIR
    created: int = field(default_factory=lambda: int(time.time()))


def error_response(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


def build_app(state: ServerState) -> Starlette:
    """The Starlette app serving `state`'s model (see the module doc)."""

    def api(handler: Callable[[Request], Awaitable[Response]]):
        """Auth, then the handler; every exception becomes OpenAI's error JSON."""

        async def endpoint(request: Request) -> Response:
            try:
                _authorize(request, state.api_key)
                return await handler(request)
            except ApiError as e:
                return error_response(e)
            except LmforgeError as e:  # a check below the protocol layer: still the client's
                return error_response(ApiError(400, str(e)))
            except Exception:
                log.exception("%s %s failed", request.method, request.url.path)
                return error_response(_internal())

        return endpoint

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": state.model.name, **state.scheduler.stats()})

    def model_card() -> dict[str, Any]:
        return {
            "id": state.model.name,
            "object": "model",
            "created": state.created,
            "owned_by": "lmforge",
            "context_length": state.model.context,
            "chat": state.model.chat,
        }

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [model_card()]})

    async def model(request: Request) -> Response:
        name = request.path_params["model"]
        if name != state.model.name:
            raise ApiError(
                404,
                f"the model {name!r} does not exist; this server serves {state.model.name!r}",
                param="model",
                code="model_not_found",
            )
        return JSONResponse(model_card())

    async def chat(request: Request) -> Response:
        body = await _read_json(request, state.max_body_bytes)
        return await _generate(request, state, parse_chat(body, state.model))

    async def completions(request: Request) -> Response:
        body = await _read_json(request, state.max_body_bytes)
        return await _generate(request, state, parse_completion(body, state.model))

    async def page(request: Request) -> Response:
        index = state.static_dir / "index.html"
        if not index.is_file():
            raise HTTPException(404, "the web page is not installed (static/index.html)")
        return FileResponse(index)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", api(models), methods=["GET"]),
        Route("/v1/models/{model:path}", api(model), methods=["GET"]),
        Route("/v1/chat/completions", api(chat), methods=["POST"]),
        Route("/v1/completions", api(completions), methods=["POST"]),
        Route("/", page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=state.static_dir, check_dir=False)),
    ]
    handlers = {HTTPException: _http_error, Exception: _unhandled}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.lmforge = state
    return app


def _internal() -> ApiError:
    return ApiError(
        500, "internal server error (logged on the server)", type="server_error", code="internal"
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """The router's and static files' errors (404 route, 405 method) in OpenAI's shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = exc.detail if exc.detail != "Not Found" else "no such route"
        message = f"{message}: {request.method} {request.url.path}"
        e = ApiError(404, message, code="not_found")
    elif exc.status_code == 405:
        e = ApiError(405, f"{request.method} is not allowed on {request.url.path}")
    else:
        e = ApiError(exc.status_code, str(exc.detail))
    e.headers.update(exc.headers or {})
    return error_response(e)


async def _unhandled(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(_internal())


def _authorize(request: Request, key: str | None) -> None:
    if key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if not header:
        message = "no API key: send the header 'Authorization: Bearer <key>'"
    elif scheme.lower() != "bearer" or not given.strip():
        message = "the Authorization header must be 'Bearer <key>'"
    elif hmac.compare_digest(given.strip().encode(), key.encode()):
        return
    else:
        message = "incorrect API key"
    raise ApiError(
        401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
    )  # fmt: skip


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, f"the body is larger than {limit} bytes; send a smaller request", code="too_large"
    )


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body (at most `limit` bytes, else 413) as a JSON object (else 400)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return parse_body(b"".join(chunks))


async def _generate(request: Request, state: ServerState, req: GenerationRequest) -> Response:
    job = Job(state.scheduler, req, state.stop_ids)
    await job.start(state.queue_wait)
    answer = Answer(req.kind, state.model.name, include_usage=req.include_usage)
    if req.stream:
        return EventStream(_stream(job, answer), on_close=job.cancel)
    watcher = asyncio.ensure_future(_disconnected(request))
    collecting = asyncio.ensure_future(job.collect())
    try:
        await asyncio.wait({watcher, collecting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not collecting.done():
            collecting.cancel()
            job.cancel()  # the client went away: free its slots now
    if not collecting.done() or collecting.cancelled():
        return Response(status_code=499)  # nobody is there to read it
    collecting.result()
    if job.error is not None:
        log.error("generation failed: %s", job.error)
        raise _internal()
    texts = [c.text for c in job.choices]
    reasons = [c.finish_reason or "length" for c in job.choices]
    return JSONResponse(answer.complete(texts, reasons, job.prompt_tokens, job.completion_tokens))


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone away (the body is read: only a disconnect is left)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _stream(job: Job, answer: Answer) -> AsyncIterator[str]:
    """The SSE body of a streamed answer; an error after the headers is an error event."""
    try:
        for i, choice in enumerate(job.choices):
            if answer.kind == "chat":
                yield sse(answer.chunk(i, role=True))
            elif choice.prefix:  # echo: the prompt's text first
                yield sse(answer.chunk(i, choice.prefix))
        async for updates in job.updates():
            for u in updates:
                if u.text:
                    yield sse(answer.chunk(u.index, u.text))
                if u.finish_reason is not None and u.finish_reason != "error":
                    yield sse(answer.chunk(u.index, finish_reason=u.finish_reason))
        if job.error is not None:
            log.error("generation failed: %s", job.error)
            yield sse(_internal().body())
        elif answer.include_usage:
            yield sse(answer.usage_chunk(job.prompt_tokens, job.completion_tokens))
        yield DONE
    except Exception:  # a bug: the headers are sent, so the error goes in-band
        log.exception("streaming an answer failed")
        yield sse(_internal().body())
    finally:
        job.cancel()


class EventStream(StreamingResponse):
    """Server-sent events that stop (and call `on_close`) as soon as the client disconnects.

    Starlette's own response watches for the disconnect only under ASGI spec < 2.4; this
    one always does, so a client that goes away frees its slots at once whatever the
    server, even while no token is being sent (a queued request).
    """

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]):
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def run(func) -> None:
                    try:
                        await func()
                    except OSError:  # the client closed the socket mid-send
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(run, partial(self.stream_response, send))
                await run(partial(self.listen_for_disconnect, receive))
        finally:
            self.on_close()
