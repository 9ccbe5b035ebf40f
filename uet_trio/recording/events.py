"""
Events: the record of everything that happens in a run.

The scheduler is the only producer of a run's events and numbers them with a
per-run sequence number. An event carries plain Python values (strings,
numbers, lists, dicts); JSON encoding happens only in the store. ``time`` is
seconds on the run's Trio clock since the run (or its resumed part) started,
so under a `trio.testing.MockClock` it is virtual and reproducible.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple


class Severity(enum.IntEnum):
    """How much an event matters to a person reading the log."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


class EventKind(enum.StrEnum):
    """What happened."""

    RUN_STARTED = "run_started"
    RUN_RESUMED = "run_resumed"
    RUN_FINISHED = "run_finished"
    TASK_READY = "task_ready"
    ROUTE_CHOSEN = "route_chosen"
    ATTEMPT_STARTED = "attempt_started"
    ATTEMPT_SPAWNED = "attempt_spawned"
    ATTEMPT_FINISHED = "attempt_finished"
    ATTEMPT_LOST = "attempt_lost"
    TASK_RETRY_WAIT = "task_retry_wait"
    TASK_SUCCEEDED = "task_succeeded"
    TASK_FAILED = "task_failed"
    TASK_SKIPPED = "task_skipped"
    TASK_CANCELLED = "task_cancelled"

    @property
    def severity(self) -> Severity:
        """The default severity of events of this kind."""
        return _SEVERITY.get(self, Severity.INFO)


_SEVERITY = {
    EventKind.TASK_READY: Severity.DEBUG,
    EventKind.ROUTE_CHOSEN: Severity.DEBUG,
    EventKind.ATTEMPT_SPAWNED: Severity.DEBUG,
    EventKind.ATTEMPT_LOST: Severity.WARNING,
    EventKind.TASK_RETRY_WAIT: Severity.WARNING,
    EventKind.TASK_FAILED: Severity.ERROR,
    EventKind.TASK_SKIPPED: Severity.WARNING,
    EventKind.TASK_CANCELLED: Severity.WARNING,
}


_NO_DATA: Mapping[str, Any] = MappingProxyType({})
"""The data of an event that carries none."""


EventFields = tuple[str, int, EventKind, float, str | None, int | None, Mapping[str, Any]]
"""An event's fields in `Event`'s order: an `Event`, or a plain tuple (cheaper to build)."""


class Event(NamedTuple):
    """
    One thing that happened in a run.

    A named tuple, so that creating one is cheap on the scheduler's path
    and the persister's encoder reads its fields by position. Treat ``data``
    as read-only: it is shared with every subscriber.
    """

    run_id: str
    seq: int
    """Position in the run's event log, from 1, gap-free, assigned by the scheduler."""
    kind: EventKind
    time: float
    """Seconds on the run's clock since this run (or resumed part of it) started."""
    task_id: str | None = None
    attempt: int | None = None
    data: Mapping[str, Any] = _NO_DATA

    @property
    def severity(self) -> Severity:
        """How much this event matters; failures are errors, skips and retries warnings."""
        if self.kind is EventKind.RUN_FINISHED and self.data.get("status") != "succeeded":
            return Severity.ERROR
        return self.kind.severity
