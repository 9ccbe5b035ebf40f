"""
The persister task: events in, SQLite transactions out, nothing dropped.

Design. The scheduler sends every event on the persister's own bounded
channel; a full channel makes the scheduler wait (backpressure), it never
drops. Sending encodes the event on the spot (`projection.EventBuffer`), so
what waits in the channel is statement parameters, not event objects. The
persister group-commits: it waits for one event, takes everything queued (up
to `max_batch`) as a few insert statements, and writes the lot in one
transaction from a worker thread, which holds the GIL only to start each
statement (the projection runs inside SQLite). While that write runs, new
events queue up and form the next batch, so batches grow with load by
themselves and a lone event is durable within one commit's time; no flush
timer sits on the hot path. By default the channel holds up to four
batches (65,536 events, about 20 MiB encoded), so the scheduler runs on
while a batch is written instead of stopping for it; a run adds room for
its first level's ready events, which all come at once.

A program that owns its process can ask for a short GIL switch interval
while a batch is written during a busy loop (`short_switch_interval`), so
the writer thread gets the GIL back promptly after each statement. The
interval is process-wide, so nobody gets it without asking.

The channel is that buffer, not a `trio.MemorySendChannel`: sending is an
append (no task switch, no per-event bookkeeping) and taking a batch is one
slice, where a memory channel costs a call on each side per event and keeps
every event object alive (and scanned by the garbage collector) until it is
written. It keeps a memory channel's contract: bounded, `send` waits for room
and is cancellation-atomic, `send_nowait` raises `trio.WouldBlock` when full,
and senders see `trio.BrokenResourceError` once the persister is gone.

Errors. A batch refused transiently (another process held the database
locked past the busy timeout, or a passing I/O error) is written again by
the store itself, in the same thread call, after short pauses, under the
one retry policy of every write (`recording.connection.retrying`); that is
safe because a batch is one transaction and every row has a natural key.
Any other error, or a fault that outlasts the retries, ends the run with
`StoreError`.

Cancellation. The loop runs inside its own shielded cancel scope, so
cancelling the run does not cut a flush short. The owner (`open_persister`)
closes the channel when the run ends; the loop then writes what is queued and
returns. If the run was cancelled, the shielded scope gets a deadline
(`flush_deadline`) so a locked or hung database cannot hang shutdown forever.
Each thread call writes one transaction (never "until the queue is empty"),
and the thread is not abandoned on cancel, so a COMMIT is never
half-observed.
"""

from __future__ import annotations

import functools
import math
import sys
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, nullcontext
from types import TracebackType
from typing import Any

import attrs
import trio

from ..errors import StoreError
from ..recording.events import EventFields
from ..recording.projection import EventBuffer, EventRows
from ..recording.signatures import FileState
from ..recording.store import Store

DEFAULT_CAPACITY = 65536
DEFAULT_MAX_BATCH = 16384
DEFAULT_FLUSH_DEADLINE = 10.0
WRITER_SWITCH_INTERVAL = 5e-6
"""
Seconds: the interpreter's GIL switch interval while a batch is written during
a busy loop. Shorter is better down to a few microseconds: with both threads
near their limits, 20 us left the writer waiting for the GIL hundreds of times
per batch, and 100 us cost a fifth of the throughput (docs/performance.md).
"""
PROMPT_HANDOFF_BATCH = 2048
"""Events in a batch from which its write gets the short switch interval."""


class _PromptHandoffs:
    """
    A short GIL switch interval, process-wide, while any persister that asked writes a large batch.

    The writer thread needs the GIL back after each statement of its
    transaction. CPython asks the holder to hand it over only when a waiting
    thread's timed wait (the switch interval, 5 ms by default) runs out
    undisturbed; but the event loop's thread releases and re-takes the GIL
    in every poll of Trio's run loop, which wakes the waiter and restarts its
    wait, so a busy loop starved the writer for milliseconds per statement
    and the run waited on the disk. With an interval shorter than the loop's
    polls the request is made, and granted, within microseconds: 17,000-
    18,200 to 26,600-27,600 in-process tasks/s (docs/performance.md).

    Why it is asked for, not always on. In interleaved runs on a 2-core
    machine (13 each, medians), 100,000 in-process tasks
    (perf/bench_inprocess.py) ran 34,332 tasks/s with it and 24,816 without
    (1.38x; quicker in 12 of the 13 pairs). A whole `uet run` of a layered
    DAG of tasks of `true` on 8 workers gained nothing: 1000 tasks took
    0.908 s with it and 0.897 s without; 5000 tasks, in 11 pairs while the
    machine was loaded, 5.138 s with it and 4.848 s without. So an
    application that runs many in-process tasks in a process of its own can
    ask for it; the `uet` command, whose runs spawn processes and write
    small batches, does not.

    Only a write while the loop is busy, which is when the writer starves,
    gets it: a large batch (`PROMPT_HANDOFF_BATCH`; events piled up while
    the last one was written), and a run's first batch, which is written
    while the scheduler readies the first level (a 1-event transaction took
    60 ms with 100,000 tasks to ready, and the writer stayed that much
    behind to the end of the run). With small batches the loop has idle
    moments in which the writer gets the GIL anyway, and a short interval
    only adds switches between the loop, the writer and spawning threads (a
    run of 1000 real processes took half as much CPU again). Counted, so
    concurrent runs (in any thread) share the setting, and the interval in
    force before the first such write (if not already shorter) is restored
    after the last.
    """

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._writers = 0
        self._saved = 0.0
        """The interval in force before the first writer; read when `_writers` goes 0 to 1."""

    def __enter__(self) -> None:
        with self._lock:
            if not self._writers:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, self._interval))
            self._writers += 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            self._writers -= 1
            if not self._writers:
                sys.setswitchinterval(self._saved)


_prompt_handoffs = _PromptHandoffs(WRITER_SWITCH_INTERVAL)


@attrs.frozen
class PersisterStatistics:
    """Counters of one persister."""

    events_written: int
    """Events committed so far."""
    batches_written: int
    """Transactions committed so far."""
    largest_batch: int
    retries: int
    """Batches written again after a transient error."""
    queued: int
    """Events waiting in the channel right now."""


class Persister:
    """
    The sending side of a running persister: a bounded channel of events.

    Use `send` (or `send_nowait`) for every event; the persister owns the
    store's writes until the `open_persister` block ends.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._buffer = EventBuffer()
        self._queued = 0
        """Events in the buffer (kept here: `len` of the buffer is a Python call)."""
        self._closed = False
        self._broken = False
        self._writer_waiting = False
        self._has_events = trio.lowlevel.ParkingLot()
        self._has_room = trio.lowlevel.ParkingLot()
        self._counters = {"events": 0, "batches": 0, "largest": 0, "retries": 0}

    def send_nowait(self, event: EventFields) -> None:
        """
        Queue `event` without waiting.

        `event` is an `Event` or a plain tuple of its fields, which is what
        the scheduler sends when nobody else needs the event: building the
        named tuple would cost it a call per event.

        Raises:
            trio.WouldBlock: the channel is full.
            trio.BrokenResourceError: the persister has stopped.
            trio.ClosedResourceError: the channel was closed.
        """
        if self._broken:
            raise trio.BrokenResourceError("the persister has stopped")
        if self._closed:
            raise trio.ClosedResourceError("the persister channel is closed")
        if self._queued >= self._capacity:
            raise trio.WouldBlock
        self._buffer.add(event)
        self._queued += 1
        if self._writer_waiting:
            self._writer_waiting = False
            self._has_events.unpark()

    async def send(self, event: EventFields) -> None:
        """
        Queue `event`; waits only when the channel is full.

        Cancellation-atomic (as `trio.MemorySendChannel.send`): if this raises
        `trio.Cancelled`, the event was not queued.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while self._queued >= self._capacity and not (self._broken or self._closed):
            await self._has_room.park()
        self.send_nowait(event)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def statistics(self) -> PersisterStatistics:
        """A snapshot of the persister's counters."""
        return PersisterStatistics(
            events_written=self._counters["events"],
            batches_written=self._counters["batches"],
            largest_batch=self._counters["largest"],
            retries=self._counters["retries"],
            queued=self._queued,
        )

    def _close(self) -> None:
        """No more events: the persister writes what is queued and stops."""
        self._closed = True
        self._has_events.unpark_all()
        self._has_room.unpark_all()

    def _stop(self) -> None:
        """The persister is gone: senders, waiting or not, get BrokenResourceError."""
        self._broken = True
        self._has_room.unpark_all()

    async def _take(self, max_batch: int, wall_start: float) -> EventRows | None:
        """Everything queued (up to `max_batch`) once there is something; None when closed."""
        while not self._queued:
            if self._closed:
                return None
            self._writer_waiting = True
            await self._has_events.park()
        rows = self._buffer.take(max_batch, wall_start)
        self._queued -= rows.count
        self._has_room.unpark_all()
        return rows


RouterSnapshot = Callable[[], tuple[str, Mapping[str, Any]] | None]
FileStates = Callable[[], Sequence[tuple[str, FileState]]]
"""Takes the stat cache rows computed since it was last called (`freshness`)."""


@asynccontextmanager
async def open_persister(
    store: Store,
    *,
    wall_start: float,
    router_state: RouterSnapshot | None = None,
    file_states: FileStates | None = None,
    capacity: int = DEFAULT_CAPACITY,
    max_batch: int = DEFAULT_MAX_BATCH,
    flush_deadline: float = DEFAULT_FLUSH_DEADLINE,
    short_switch_interval: bool = False,
) -> AsyncIterator[Persister]:
    """
    Run a persister for one run while the block is open.

    Args:
        store: where events go; the persister is its only writer meanwhile.
        wall_start: Unix time at which the run clock read zero (to stamp rows).
        router_state: called once per batch; a (workflow, snapshot) it returns
            is saved in that batch's transaction.
        file_states: called once per batch; the stat cache rows it returns
            are saved in that batch's transaction.
        capacity: channel size; a full channel applies backpressure.
        max_batch: most events per transaction.
        flush_deadline: seconds the final flush may take after a cancellation.
        short_switch_interval: while the run's first batch or a large one is
            written, set the interpreter's GIL switch interval to
            `WRITER_SWITCH_INTERVAL` (see `_PromptHandoffs`). That setting is
            process-wide, so only a program that owns its process should ask
            for it; it pays for runs of many in-process tasks, not for runs
            of external commands.

    Raises:
        StoreError: a write failed; events not yet committed are lost only
            when the store itself cannot take them.
    """
    if capacity < 1 or capacity == math.inf:
        raise ValueError("the persister channel must be bounded and non-empty")
    persister = Persister(capacity)
    shield = trio.CancelScope(shield=True)
    limiter = trio.CapacityLimiter(1)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                _persist,
                store,
                persister,
                shield,
                limiter,
                wall_start,
                (router_state, file_states),
                max_batch,
                short_switch_interval,
            )
            try:
                yield persister
            except BaseException:
                shield.deadline = min(shield.deadline, trio.current_time() + flush_deadline)
                raise
            finally:
                persister._close()
    except BaseExceptionGroup as group:
        store_errors, rest = group.split(StoreError)
        if store_errors is not None and rest is None:
            raise _first(store_errors) from group
        raise


def _first(group: BaseExceptionGroup[StoreError]) -> StoreError:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first(error)
        return error
    raise AssertionError("empty exception group")


async def _persist(
    store: Store,
    persister: Persister,
    shield: trio.CancelScope,
    limiter: trio.CapacityLimiter,
    wall_start: float,
    saved: tuple[RouterSnapshot | None, FileStates | None],
    max_batch: int,
    short_switch_interval: bool,
) -> None:
    try:
        with shield:
            await _write_batches(
                store,
                persister,
                limiter,
                wall_start,
                saved,
                max_batch,
                short_switch_interval,
            )
    finally:
        persister._stop()
    if shield.cancelled_caught:
        raise StoreError(
            f"{store.path}: the final flush did not finish in time; "
            f"{persister._queued} queued events were not recorded"
        )


async def _write_batches(
    store: Store,
    persister: Persister,
    limiter: trio.CapacityLimiter,
    wall_start: float,
    saved: tuple[RouterSnapshot | None, FileStates | None],
    max_batch: int,
    short_switch_interval: bool,
) -> None:
    """Write each batch of events, with the router state and stat cache rows that changed."""
    counters = persister._counters
    router_state, file_states = saved
    while (rows := await persister._take(max_batch, wall_start)) is not None:
        state = router_state() if router_state is not None else None
        files = file_states() if file_states is not None else ()
        write = functools.partial(store.write_rows, [rows], router_state=state, file_states=files)
        # The first batch and a large one are written while the loop is busy.
        busy_loop = rows.count >= PROMPT_HANDOFF_BATCH or not counters["batches"]
        handoffs = _prompt_handoffs if short_switch_interval and busy_loop else nullcontext()
        retries = store.retries
        with handoffs:
            await trio.to_thread.run_sync(write, limiter=limiter)
        counters["retries"] += store.retries - retries
        counters["events"] += rows.count
        counters["batches"] += 1
        counters["largest"] = max(counters["largest"], rows.count)
