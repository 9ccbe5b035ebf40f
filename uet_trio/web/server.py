"""
Serving a store's web view with Hypercorn's Trio worker, inside the caller's Trio run.

`serve_web` opens the store read-only, builds the app (`app.build_app`) and
serves it until `shutdown_trigger` returns or the caller cancels it; once
it listens it reports the addresses it is bound to through ``task_status``
(start it with ``nursery.start`` to learn the port when asking for port 0).
It prints nothing: Hypercorn's access and error logs are off, and the
caller says where the view is.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from typing import cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import Framework

from .app import build_app
from .data import ViewStore

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

GRACE_SECONDS = 1.0
"""How long open connections (live streams never end by themselves) get to close at shutdown."""


async def serve_web(
    db: str | os.PathLike[str],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """
    Serve the web view of the store at `db` on `host`:`port` until shut down.

    Raises:
        StoreError: the store cannot be opened (it is never created).
        OSError: the address cannot be listened on (in use, not local).
    """
    store = ViewStore.open_view(db)
    try:
        config = Config()
        config.bind = [f"fd://{_listen(host, port)}"]
        config.accesslog = None
        config.errorlog = None
        config.graceful_timeout = GRACE_SECONDS
        await serve(
            # Starlette's ASGI types are its own; they describe the same protocol.
            cast(Framework, build_app(store, host=host)),
            config,
            shutdown_trigger=shutdown_trigger,
            task_status=task_status,
        )
    finally:
        store.close()


def _listen(host: str, port: int) -> int:
    """
    A listening socket on `host`:`port`, as a descriptor Hypercorn takes over.

    Bound here rather than by Hypercorn so that an address that cannot be
    used raises `OSError` with the socket already closed.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family)
    return listener.detach()
