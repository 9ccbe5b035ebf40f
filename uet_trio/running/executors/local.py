"""
The local executor: commands as process groups on this machine, callables in-process.

Each slot owns its worker's two append-only log files for the run; a
command's stdout and stderr are those descriptors, and its `Started`
location names the process (pid and start time, for `reclaim`) and the byte
offsets where its output begins.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from ...deciding.attempts import AttemptRequest, AttemptResult, Started
from ...recording.logs import WorkerLogs
from ...recording.records import AttemptRecord
from .base import Report, RunAttempt
from .callables import run_call
from .process import run_attempt
from .procfs import kill_group_if_owned


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

    async def reclaim(self, attempt: AttemptRecord) -> bool:
        """SIGKILL what is left of the attempt's process group, if it is still the attempt's."""
        if attempt.pid is None:
            return False
        key = f"{attempt.run_id}/{attempt.task_id}/{attempt.attempt}"
        return kill_group_if_owned(attempt.pid, attempt.proc_start, key)

    @asynccontextmanager
    async def slot(self, worker: int, log_dir: Path | None) -> AsyncIterator[RunAttempt]:
        logs = WorkerLogs(log_dir, worker)
        try:

            async def run(request: AttemptRequest, report: Report) -> AttemptResult:
                if request.call is not None:
                    return await run_call(request)
                return await self._run_command(request, logs, report)

            yield run
        finally:
            logs.close()

    async def _run_command(
        self, request: AttemptRequest, logs: WorkerLogs, report: Report
    ) -> AttemptResult:
        assert request.argv is not None
        started = trio.current_time()

        def spawned(pid: int, proc_start: int | None, out_offset: int, err_offset: int) -> None:
            location: dict[str, Any] = {
                "pid": pid,
                "proc_start": proc_start,
                "worker": logs.worker,
                "out_path": logs.out_path,
                "out_offset": out_offset,
                "err_path": logs.err_path,
                "err_offset": err_offset,
            }
            report(Started(index=request.index, attempt=request.attempt, location=location))

        outcome = await run_attempt(
            request.argv,
            cwd=request.cwd,
            env=request.env,
            timeout=request.timeout,
            kill_grace=request.kill_grace,
            logs=logs,
            hurry=self._hurry,
            on_spawn=spawned,
            key=request.idempotency_key,
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
