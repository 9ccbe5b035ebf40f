"""
From Dask futures to Trio: how the runner learns that a remote function returned.

Dask's synchronous ``Client`` runs its asyncio event loop in a thread of its
own, and ``Future.add_done_callback`` calls its callback in one more thread,
shared by every future of the process (Dask's callback executor). The
callback here reads how the future ended there (for an error, its
exception, which may need a round trip to the client's loop: that thread
can block, the Trio thread must not) and hands the outcome to the Trio run
with ``TrioToken.run_sync_soon``, the thread-safe way into a Trio run.
So a run has the same two helper threads whatever number of attempts is
in flight: no thread per attempt, and the Trio thread never blocks on Dask.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import attrs
import trio


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

    future.add_done_callback(finished)
