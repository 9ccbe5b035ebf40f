"""
The interface between the scheduler and whatever executes attempts.

The engine hands a worker an `AttemptRequest`; the worker asks an
`AttemptRunner` to execute it and sends the `AttemptResult` back to the
scheduler. `LocalRunner` is the real runner: commands through
`process.run_attempt`, async callables in-process. `uet_trio.testing` plugs a
scripted runner into the same interface, so the engine never knows which one
it is driving.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs
import trio

from ...workflow.spec import TaskCallable
from .process import WorkerLogs, run_attempt


@attrs.define(kw_only=True)
class AttemptRequest:
    """
    Everything needed to execute one attempt of one task.

    The attempt messages (this, `Spawned`, `AttemptResult`) are plain slotted
    classes, not frozen ones: each is built once and read by one task, and a
    frozen class's constructor costs twice as much, once per attempt.
    """

    run_id: str
    task_id: str
    index: int
    """The task's position in declaration order."""
    attempt: int
    """1 for the first attempt; numbering continues across resumes."""
    tool: str | None
    argv: tuple[str, ...] | None
    call: TaskCallable | None = attrs.field(default=None, eq=False)
    args: tuple[Any, ...] = attrs.field(default=(), eq=False)
    cwd: str | None
    base_env: Mapping[str, str] | None = attrs.field(default=None, eq=False)
    """The environment shared by the run's commands of this tool (None for callables)."""
    task_env: Mapping[str, str] = attrs.field(factory=dict)
    """The task's own variables, on top of `base_env`."""
    timeout: float | None
    kill_grace: float

    @property
    def env(self) -> dict[str, str] | None:
        """
        The complete environment of the command (None for callables): the
        tool's, the task's, then ``UET_RUN_ID``, ``UET_TASK_ID``,
        ``UET_ATTEMPT`` and ``UET_IDEMPOTENCY_KEY``.

        Built when asked for (by a runner that starts a process), so an
        attempt that never does costs no copy of the environment.
        """
        if self.base_env is None:
            return None
        return {
            **self.base_env,
            **self.task_env,
            "UET_RUN_ID": self.run_id,
            "UET_TASK_ID": self.task_id,
            "UET_ATTEMPT": str(self.attempt),
            "UET_IDEMPOTENCY_KEY": f"{self.run_id}/{self.task_id}/{self.attempt}",
        }


@attrs.define(kw_only=True)
class Spawned:
    """A worker's notice that an attempt's process exists (recorded for resume)."""

    index: int
    attempt: int
    pid: int
    proc_start: int | None
    worker: int
    out_path: str
    out_offset: int
    err_path: str
    err_offset: int


@attrs.define(kw_only=True)
class AttemptResult:
    """How one attempt ended, as reported to the scheduler."""

    index: int
    attempt: int
    started: float
    """Run-clock time the attempt began executing."""
    ended: float
    exit_code: int | None
    signal: int | None = None
    timed_out: bool = False
    error: str | None = None
    result: Any = None
    """The return value of a callable task."""
    out_length: int = 0
    err_length: int = 0

    @property
    def ok(self) -> bool:
        """Whether the attempt succeeded."""
        return self.exit_code == 0 and not self.timed_out and self.error is None

    @property
    def duration(self) -> float:
        return self.ended - self.started


Report = Callable[[Spawned], None]


class AttemptRunner(Protocol):
    """What executes attempts for the engine's workers."""

    async def run(self, request: AttemptRequest, logs: WorkerLogs, report: Report) -> AttemptResult:
        """
        Execute `request` and return its result; never raise for a failed attempt.

        On cancellation, stop the attempt completely (no process left) and let
        `trio.Cancelled` propagate.
        """
        ...

    async def settle(self) -> None:
        """
        Let results that became due at the current clock instant reach the scheduler.

        The scheduler awaits this before reading results, so that results of
        one instant are processed together, in canonical order.
        """
        ...


class LocalRunner:
    """
    Runs commands as real processes and callables in-process.

    `kill_now()` ends every grace period in progress (SIGKILL at once); the
    CLI calls it on a second Ctrl-C.
    """

    def __init__(self) -> None:
        self._hurry = trio.Event()

    def kill_now(self) -> None:
        """Skip the rest of every SIGTERM grace period, now and later."""
        self._hurry.set()

    async def settle(self) -> None:
        await trio.lowlevel.checkpoint()

    async def run(self, request: AttemptRequest, logs: WorkerLogs, report: Report) -> AttemptResult:
        if request.call is not None:
            return await _run_call(request)
        assert request.argv is not None
        started = trio.current_time()

        def spawned(pid: int, proc_start: int | None, out_offset: int, err_offset: int) -> None:
            report(
                Spawned(
                    index=request.index,
                    attempt=request.attempt,
                    pid=pid,
                    proc_start=proc_start,
                    worker=logs.worker,
                    out_path=logs.out_path,
                    out_offset=out_offset,
                    err_path=logs.err_path,
                    err_offset=err_offset,
                )
            )

        outcome = await run_attempt(
            request.argv,
            cwd=request.cwd,
            env=request.env,
            timeout=request.timeout,
            kill_grace=request.kill_grace,
            logs=logs,
            hurry=self._hurry,
            on_spawn=spawned,
        )
        return AttemptResult(
            index=request.index,
            attempt=request.attempt,
            started=started,
            ended=trio.current_time(),
            exit_code=outcome.exit_code,
            signal=outcome.signal,
            timed_out=outcome.timed_out,
            error=outcome.error,
            out_length=outcome.out_length,
            err_length=outcome.err_length,
        )


async def _run_call(request: AttemptRequest) -> AttemptResult:
    """Await a callable task under the attempt's timeout; an exception is a failure."""
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
