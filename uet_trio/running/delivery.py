"""
Delivering a run's events: numbered, in order, to the persister and subscribers.

The scheduler passes each event to `Delivery.decided` as it decides it;
that numbers it, stamps it with the run clock's time and queues it without
waiting: straight into the persister's channel, as a plain tuple of its
fields, while it has room and nobody subscribes; otherwise into a backlog
that `deliver` hands on, in order and waiting for room (backpressure, never
dropping), before the run loop next waits. Queued at once, an event is
encoded into the persister's buffer at once: nothing of it stays alive for
the garbage collector to scan, even when a step decides 100,000 events.
Subscribers get the same `Event` objects, each through its own bounded
channel; one that names the kinds it reads gets only those, and an event
of a kind nobody reads takes the direct way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import trio

from ..recording.events import Event, EventFields, EventKind
from .persister import Persister

SUBSCRIBER_BUFFER = 1024


class Delivery:
    """
    The events of one run on their way out.

    Args:
        run_id: the run the events belong to.
        task_ids: task ids by declaration index.
        last_seq: the last event number already recorded (0 for a new run).
    """

    def __init__(self, run_id: str, task_ids: Sequence[str], last_seq: int) -> None:
        self._run_id = run_id
        self._task_ids = task_ids
        self._seq = last_seq
        self._persister: Persister | None = None
        self._clock: Callable[[], float] = float
        self._subscribers: list[tuple[trio.MemorySendChannel[Event], Collection[EventKind]]] = []
        self._watched: frozenset[EventKind] = frozenset()
        """The kinds some subscriber reads: events of other kinds go straight to the persister."""
        self._backlog: deque[Event] = deque()
        """Events numbered but not yet handed to the persister and subscribers."""
        self._closed = False

    def attach(self, persister: Persister, clock: Callable[[], float]) -> None:
        """
        Send events to `persister` from now on (before the first `take`).

        `clock` gives the run clock's time: seconds since the run (or its
        resumed part) started, which each event records.
        """
        self._persister = persister
        self._clock = clock

    def subscribe(
        self, buffer: int = SUBSCRIBER_BUFFER, kinds: Collection[EventKind] | None = None
    ) -> trio.MemoryReceiveChannel[Event]:
        """
        A channel of every event from now on (or of those of `kinds`); it
        ends when the run ends (`close`).
        """
        send, receive = trio.open_memory_channel[Event](buffer)
        if self._closed:
            send.close()
        else:
            read = frozenset(EventKind if kinds is None else kinds)
            self._subscribers.append((send, read))
            self._watched |= read
        return receive

    def close(self) -> None:
        """End every subscriber's channel: the run is over."""
        self._closed = True
        for subscriber, _ in self._subscribers:
            subscriber.close()

    @property
    def pending(self) -> bool:
        """Whether the backlog holds events `deliver` has yet to hand on."""
        return bool(self._backlog)

    def decided(
        self, kind: EventKind, task: int | None, attempt: int | None, data: Mapping[str, Any]
    ) -> None:
        """Number, stamp and queue one event the scheduler decided, without waiting."""
        assert self._persister is not None
        self._seq += 1
        # A plain tuple of the event's fields, not the `Event` record: the
        # persister encodes it at once, and building the record for it cost
        # 6-7% of an in-process run (perf/compare_refs.py --only inprocess,
        # 9 rounds, paired 0.925). Subscribers and the backlog get the record.
        event: EventFields = (
            self._run_id,
            self._seq,
            kind,
            self._clock(),
            self._task_ids[task] if task is not None else None,
            attempt,
            data,
        )
        if not self._backlog and kind not in self._watched:
            try:
                self._persister.send_nowait(event)
            except trio.WouldBlock:
                pass
            else:
                return
        self._backlog.append(Event._make(event))

    async def deliver(self) -> None:
        """
        Hand the backlog on in order: to the persister (waiting for room), then subscribers.

        While the persister and the subscribers have room, events go on
        without a checkpoint each: the run's task waits only when a channel
        is full, and checkpoints once at the end.
        """
        persister = self._persister
        assert persister is not None
        await trio.lowlevel.checkpoint_if_cancelled()
        backlog = self._backlog
        while backlog:
            event = backlog[0]
            try:
                persister.send_nowait(event)
            except trio.WouldBlock:
                # Cancellation-atomic: a cancelled send leaves the event in
                # the backlog, to be delivered before the run's last events.
                await persister.send(event)
            backlog.popleft()
            if event.kind in self._watched:
                await self._publish(event)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def _publish(self, event: Event) -> None:
        for entry in list(self._subscribers):
            subscriber, kinds = entry
            if event.kind not in kinds:
                continue
            try:
                try:
                    subscriber.send_nowait(event)
                except trio.WouldBlock:
                    await subscriber.send(event)
            except trio.BrokenResourceError:
                self._subscribers.remove(entry)
                self._watched = frozenset().union(*(read for _, read in self._subscribers))
