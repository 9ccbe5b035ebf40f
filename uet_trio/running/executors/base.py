"""
The executor seam: what runs the scheduler's attempts.

The engine gives each of its worker tasks a *slot* of the executor
(`AttemptRunner.slot`): a place that runs one attempt at a time and holds
what it needs meanwhile (the local executor: the worker's log files). A slot
runs an `AttemptRequest`, reports a `Started` notice with an opaque location
as soon as the attempt runs, and returns its `AttemptResult`. After a
crash, `reclaim` stops what a dead runner's attempt left running, from the
location it recorded. Implementations: `LocalRunner` (processes and
in-process callables), and `uet_trio.testing.FakeRunner` (scripted, under a
mock clock); the engine never knows which one it drives.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Protocol

import trio

from ...deciding.attempts import AttemptRequest, AttemptResult, Started
from ...recording.records import AttemptRecord

Report = Callable[[Started], None]
"""How a slot reports that an attempt has started (never blocks)."""

RunAttempt = Callable[[AttemptRequest, Report], Awaitable[AttemptResult]]
"""A slot: runs one attempt, reports its start, returns its result."""


class AttemptRunner(Protocol):
    """What executes attempts for the engine's workers."""

    def slot(self, worker: int, log_dir: Path | None) -> AbstractAsyncContextManager[RunAttempt]:
        """
        Open worker `worker`'s slot for one run; closing it releases what it held.

        `log_dir` is the run's log directory (None: output is discarded).
        The slot's callable executes a request and returns its result; it
        never raises for a failed attempt. On cancellation it stops the
        attempt completely (no process left) and lets `trio.Cancelled`
        propagate.
        """
        ...

    async def settle(self) -> None:
        """
        Let results that became due at the current clock instant reach the scheduler.

        The engine awaits this before reading results, so that results of
        one instant are processed together, in canonical order.
        """
        ...

    async def reclaim(self, attempt: AttemptRecord) -> bool:
        """
        Stop what remains of `attempt`, recorded as running by a runner that died.

        Called on resume, before the run continues; returns whether anything
        was stopped. Never stops what is not the attempt's (a recycled pid).
        """
        ...


class StatelessRunner(ABC):
    """
    A base for executors that hold nothing per worker and leave nothing behind.

    Every slot is `run` itself, and a lost attempt never has remains to stop.
    Scripted and in-process runners (tests, benchmarks) subclass it and
    write `run` and `settle` only.
    """

    @asynccontextmanager
    async def slot(self, worker: int, log_dir: Path | None) -> AsyncIterator[RunAttempt]:
        yield self.run

    async def reclaim(self, attempt: AttemptRecord) -> bool:
        await trio.lowlevel.checkpoint()
        return False

    @abstractmethod
    async def run(self, request: AttemptRequest, report: Report) -> AttemptResult:
        """Execute `request` and return its result (see `AttemptRunner.slot`)."""

    @abstractmethod
    async def settle(self) -> None:
        """See `AttemptRunner.settle`."""
