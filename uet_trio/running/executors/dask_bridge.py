"""
From Dask futures to Trio: how the runner learns that a remote function returned.

Dask's synchronous ``Client`` runs its asyncio event loop in a thread of its
own. `watch` has that loop call back as the future finishes (the coroutine
``distributed.client.done_callback``, which ``Future.add_done_callback``
itself schedules there); a plain end is handed to the Trio run at once with
``TrioToken.run_sync_soon``, the thread-safe way into a Trio run. An end
that must be read through the client (an error's exception, a callable's
value) may wait on that very loop, so it is read in a thread of its own
(`_BLOCKING`) and handed over from there. ``Future.add_done_callback``
would run every callback in Dask's callback thread: one more hand-off per
attempt, which measured 4% of a run of 1000 ``true`` on Dask (paired
rounds), and it is the fallback where ``done_callback`` is missing. Either
way a run has a fixed number of helper threads whatever number of attempts
is in flight, and the Trio thread never blocks on Dask.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import trio

_BLOCKING = ThreadPoolExecutor(1, thread_name_prefix="uet-dask-ended")
"""Where an end that needs a round trip to the client's loop is read (its thread starts on use)."""


@attrs.define
class Ended:
    """How a Dask future ended, as its callback saw it."""

    status: str
    """Dask's status: ``finished``, ``error``, ``cancelled`` or ``lost``."""
    error: str | None = None
    """For ``error``: the exception, as ``Type: message``."""
    value: Any = None
    """For ``finished``, when asked for: the function's return value."""


def watch(
    future: Any,
    token: trio.lowlevel.TrioToken,
    ended: Callable[[Ended], None],
    *,
    value: bool = False,
) -> None:
    """
    Call `ended` in the Trio run of `token` once `future` has finished.

    With `value`, the function's return value is fetched too (in the
    callback's thread: it may travel from the worker).

    Never blocks. `ended` runs on the Trio thread; if the Trio run is over
    by then, nobody is left to tell and the outcome is dropped.
    """

    def on_loop(done: Any) -> None:
        # The client's event loop thread: must not block. A plain end is
        # handed over at once; one that needs a round trip goes to `finished`.
        if done.status == "finished" and not value:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(ended, Ended("finished"))
            return
        _BLOCKING.submit(finished, done)

    def finished(done: Any) -> None:
        # Dask's callback thread.
        outcome = Ended(str(done.status))
        if value and outcome.status == "finished":
            try:
                outcome.value = done.result(timeout=60)
            except Exception as error:
                outcome = Ended("error", f"{type(error).__name__}: {error}")
        if outcome.status == "error" and outcome.error is None:
            try:
                exception = done.exception(timeout=10)
            except Exception as error:
                exception = error
            outcome.error = f"{type(exception).__name__}: {exception}"
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(ended, outcome)

    try:
        from distributed.client import done_callback
    except ImportError:  # not in this version of distributed: the public way
        future.add_done_callback(finished)
        return
    future.client.loop.add_callback(done_callback, future, on_loop)
