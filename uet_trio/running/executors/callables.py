"""In-process attempts: a task's async callable awaited under the attempt's timeout."""

from __future__ import annotations

from typing import Any

import trio

from ...deciding.attempts import AttemptRequest, AttemptResult


async def run_call(request: AttemptRequest) -> AttemptResult:
    """Await `request`'s callable; an exception is a failure, the deadline a timeout."""
    assert request.call is not None
    started = trio.current_time()
    value: Any = None
    exit_code: int | None = 0
    error = None
    timeout = request.timeout if request.timeout is not None else float("inf")
    with trio.move_on_after(timeout) as deadline:
        try:
            value = await request.call(*request.args)
        except Exception as exc:
            exit_code = 1
            error = f"{type(exc).__name__}: {exc}"
    if deadline.cancelled_caught:
        exit_code = None
    return AttemptResult(
        index=request.index,
        attempt=request.attempt,
        started=started,
        ended=trio.current_time(),
        exit_code=exit_code,
        timed_out=deadline.cancelled_caught,
        error=error,
        result=value,
    )
