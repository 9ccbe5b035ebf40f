"""
The web view's ASGI application (Starlette): its pages, JSON endpoints and live streams.

Three pages (the runs list, a run, a task) are the one ``static/index.html``,
whose script draws whichever the address names from the JSON endpoints:

- ``GET /api/runs``: the recent runs; ``GET /api/runs/live``: the same as
  server-sent events, sent again whenever a run changes;
- ``GET /api/runs/{run}``: a run's snapshot (`ViewStore.run_snapshot`);
  ``GET /api/runs/{run}/live?after=SEQ``: server-sent ``update`` events with
  what changed after event SEQ, then ``end`` once the run has finished;
- ``GET /api/runs/{run}/trace``: the run as Chrome trace-event JSON
  (`recording.trace`), as a file to download;
- ``GET /api/runs/{run}/task?id=TASK``: a task, its attempts and tails;
- ``GET /api/runs/{run}/log?task=&attempt=&stream=out|err&offset=``: a slice
  of an attempt's output as bytes (``X-Next-Offset``, ``X-Finished``);
- ``GET /api/runs/{run}/follow?task=&stream=``: server-sent ``chunk`` events
  with a task's output as it is written, attempt after attempt, then ``end``.

The streams are fed by polling the store every `POLL_SECONDS` (the run's
last event number is one indexed lookup), so they see runs made by any
process. The store is read from a worker thread, one call at a time
(SQLite connections are not shared between threads); nothing is ever
written. Pages are served with a content security policy that allows only
this server's own script and style, and when the server listens on loopback
only requests addressed to a loopback name are answered, so a web page
elsewhere cannot read the store through DNS rebinding.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any, TypeVar

import trio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import RunNotFound, StoreError
from ..recording.logs import LogUnavailable
from ..recording.states import RunStatus, TaskState
from ..recording.trace import chrome_trace
from .data import ViewStore

POLL_SECONDS = 0.25
"""How often a live stream asks the store whether anything changed."""

FOLLOW_FROM_END = 1024 * 1024
"""A followed log starts at most this many bytes before the end of each attempt's stream."""

KEEPALIVE_SECONDS = 15.0
"""Longest silence on a live stream: a comment line is sent after it."""

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
"""The host names a server listening on loopback answers to (the ``Host`` header's)."""

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

T = TypeVar("T")

_FINISHED_RUN = frozenset(status.value for status in RunStatus if status.finished)
_FINISHED_TASK = frozenset(state.value for state in TaskState if state.finished)


class _Reader:
    """Runs the store's synchronous reads in a worker thread, one at a time."""

    def __init__(self, store: ViewStore) -> None:
        self.store = store
        self._limiter = trio.CapacityLimiter(1)

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)


def _sse(event: str, data: Any) -> str:
    """One server-sent event: a name and a JSON payload on one ``data:`` line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _int(request: Request, name: str, default: int) -> int:
    """A non-negative integer query parameter (`default` when absent or not a number)."""
    text = request.query_params.get(name, "")
    return int(text) if text.isdigit() else default


class _SecurityHeaders:
    """Adds the content security policy and no-sniffing headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"content-security-policy", _CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build_app(store: ViewStore, *, host: str = "127.0.0.1") -> Starlette:
    """
    The ASGI app serving `store` (which it reads, never writes, and does not close).

    `host` is the address the server listens on: on a loopback address, only
    requests for a loopback host name are answered.
    """
    read = _Reader(store)
    index = resources.files(__package__).joinpath("static", "index.html").read_text("utf-8")

    async def page(request: Request) -> Response:
        return HTMLResponse(index, headers={"Cache-Control": "no-store"})

    async def runs(request: Request) -> Response:
        return JSONResponse({"runs": await read(store.runs_summary)})

    async def runs_live(request: Request) -> Response:
        async def events() -> AsyncIterator[str]:
            token: tuple[int, int, float] | None = None
            quiet = 0.0
            while True:
                now = await read(store.runs_token)
                if now != token:
                    token = now
                    quiet = 0.0
                    yield _sse("runs", {"runs": await read(store.runs_summary)})
                elif quiet >= KEEPALIVE_SECONDS:
                    quiet = 0.0
                    yield ": keepalive\n\n"
                await trio.sleep(POLL_SECONDS)
                quiet += POLL_SECONDS

        return _stream(events())

    async def run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        return JSONResponse(await read(store.run_snapshot, run_id))

    async def run_live(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        after = _int(request, "after", 0)
        await read(store.run_token, run_id)

        async def events() -> AsyncIterator[str]:
            seq = after
            quiet = 0.0
            while True:
                last, status = await read(store.run_token, run_id)
                if last != seq:
                    changes = await read(store.run_changes, run_id, seq)
                    seq = changes["last_seq"]
                    quiet = 0.0
                    yield _sse("update", changes)
                    continue
                if status in _FINISHED_RUN:
                    yield _sse("end", {"last_seq": seq, "status": status})
                    return
                if quiet >= KEEPALIVE_SECONDS:
                    quiet = 0.0
                    yield ": keepalive\n\n"
                await trio.sleep(POLL_SECONDS)
                quiet += POLL_SECONDS

        return _stream(events())

    async def trace(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        document = await read(chrome_trace, store, run_id)
        return JSONResponse(
            document,
            headers={"Content-Disposition": f'attachment; filename="{run_id}.trace.json"'},
        )

    async def task(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        return JSONResponse(await read(store.task_detail, run_id, request.query_params["id"]))

    async def log(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        task_id = request.query_params["task"]
        attempt = _int(request, "attempt", 1)
        offset = _int(request, "offset", 0)
        stderr = request.query_params.get("stream", "out") == "err"
        data, finished = await read(store.log_slice, run_id, task_id, attempt, stderr, offset)
        return Response(
            data,
            media_type="text/plain; charset=utf-8",
            headers={
                "X-Next-Offset": str(offset + len(data)),
                "X-Finished": "1" if finished else "0",
                "Cache-Control": "no-store",
            },
        )

    async def follow(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        task_id = request.query_params["task"]
        stderr = request.query_params.get("stream", "out") == "err"
        await read(store.task_progress, run_id, task_id)
        return _stream(_follow(read, run_id, task_id, stderr=stderr))

    async def not_found(request: Request, error: Exception) -> Response:
        return _error(404, str(error))

    async def unavailable(request: Request, error: Exception) -> Response:
        return _error(503, str(error))

    async def missing_parameter(request: Request, error: Exception) -> Response:
        return _error(400, f"missing query parameter {error}")

    static = StaticFiles(packages=[(__package__, "static")])
    routes = [
        Route("/", page),
        Route("/runs/{run_id}", page),
        Route("/runs/{run_id}/task", page),
        Route("/api/runs", runs),
        Route("/api/runs/live", runs_live),
        Route("/api/runs/{run_id}", run),
        Route("/api/runs/{run_id}/live", run_live),
        Route("/api/runs/{run_id}/trace", trace),
        Route("/api/runs/{run_id}/task", task),
        Route("/api/runs/{run_id}/log", log),
        Route("/api/runs/{run_id}/follow", follow),
        Mount("/static", static, name="static"),
    ]
    loopback = host in LOOPBACK_NAMES or host.startswith("127.")
    allowed = [*LOOPBACK_NAMES, host] if loopback else ["*"]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=allowed),
            Middleware(_SecurityHeaders),
        ],
        exception_handlers={
            RunNotFound: not_found,
            LogUnavailable: not_found,
            StoreError: unavailable,
            KeyError: missing_parameter,
        },
    )


async def _follow(read: _Reader, run_id: str, task_id: str, *, stderr: bool) -> AsyncIterator[str]:
    """
    A task's output as ``chunk`` events while it is written, attempt after attempt.

    Each attempt starts with an ``attempt`` event; its bytes are decoded
    incrementally (a character split between reads is kept whole, bad bytes
    replaced). Of a stream longer than `FOLLOW_FROM_END`, only its end is
    sent, after a ``chunk`` saying how many bytes were ``skipped`` (the
    ``log`` endpoint reads them). A log file that is gone or truncated is
    reported once, as a
    ``chunk`` with an ``error``, and that attempt's output taken as ended.
    Ends with ``end`` once the task has finished and its last attempt's
    output has been read.
    """
    store = read.store
    attempt = 1
    offset = 0
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    announced = 0
    unreadable = 0
    quiet = 0.0
    while True:
        state, attempts = await read(store.task_progress, run_id, task_id)
        if attempt <= attempts:
            if announced < attempt:
                announced = attempt
                yield _sse("attempt", {"attempt": attempt})
                try:
                    size = await read(store.log_size, run_id, task_id, attempt, stderr)
                except LogUnavailable:
                    size = 0
                if size > FOLLOW_FROM_END:
                    offset = size - FOLLOW_FROM_END
                    yield _sse("chunk", {"attempt": attempt, "skipped": offset})
            data, ended = b"", True
            if unreadable < attempt:
                try:
                    data, ended = await read(
                        store.log_slice, run_id, task_id, attempt, stderr, offset
                    )
                except LogUnavailable as error:
                    # Said once; the attempt's output is then taken as ended.
                    unreadable = attempt
                    yield _sse("chunk", {"attempt": attempt, "error": str(error)})
            offset += len(data)
            text = decoder.decode(data, final=ended)
            if text:
                quiet = 0.0
                yield _sse("chunk", {"attempt": attempt, "text": text})
            if data and not ended:
                continue
            if ended and attempt < attempts:
                attempt, offset = attempt + 1, 0
                decoder.reset()
                continue
            if ended and state in _FINISHED_TASK:
                yield _sse("end", {"attempts": attempts, "state": state})
                return
        elif state in _FINISHED_TASK:
            yield _sse("end", {"attempts": attempts, "state": state})
            return
        if quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": keepalive\n\n"
        await trio.sleep(POLL_SECONDS)
        quiet += POLL_SECONDS
