"""
Events: the record of everything that happens in a run, and what each kind carries.

The scheduler is the only producer of a run's events and numbers them with a
per-run sequence number. An event carries plain Python values (strings,
numbers, lists, dicts); JSON encoding happens only in the store. ``time`` is
seconds on the run's Trio clock since the run (or its resumed part) started,
so under a `trio.testing.MockClock` it is virtual and reproducible.

Everything the store reads from events is declared here, once: each kind's
data fields (`PAYLOAD`, keys named by `DataField`), the task state each kind
of task event leads to (`TASK_STATE_AFTER`), the run status each run-level
event leads to (`RUN_STATUS_AFTER`), and the order of emission that the
store's `ready_causes` relies on (`RELEASING_KINDS`). The projection's SQL is
generated from these tables, and a test checks real runs' events against them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType, NoneType
from typing import Any, NamedTuple

import attrs

from .states import RunStatus, TaskState


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
    TASK_UP_TO_DATE = "task_up_to_date"
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
        if (
            self.kind is EventKind.RUN_FINISHED
            and self.data.get(DataField.STATUS) != RunStatus.SUCCEEDED
        ):
            return Severity.ERROR
        return self.kind.severity


class DataField(enum.StrEnum):
    """
    A key of an event's data. `PAYLOAD` says which kinds carry which.

    Code that reads event data names keys through these members, so a key
    that is renamed or dropped here fails at import, not silently in SQL.
    """

    WORKFLOW = "workflow"
    TASKS = "tasks"
    WORKERS = "workers"
    KEPT = "kept"
    STATUS = "status"
    TOOL = "tool"
    STRATEGY = "strategy"
    CANDIDATES = "candidates"
    REASON = "reason"
    FALLBACK_FROM = "fallback_from"
    ARGV = "argv"
    ARGV_BYTES = "argv_bytes"
    PID = "pid"
    PROC_START = "proc_start"
    WORKER = "worker"
    OUT_PATH = "out_path"
    OUT_OFFSET = "out_offset"
    ERR_PATH = "err_path"
    ERR_OFFSET = "err_offset"
    ADDRESS = "address"
    EXIT_CODE = "exit_code"
    DURATION = "duration"
    OUT_LENGTH = "out_length"
    ERR_LENGTH = "err_length"
    SIGNAL = "signal"
    TIMED_OUT = "timed_out"
    ERROR = "error"
    RESULT = "result"
    GROUP_KILLED = "group_killed"
    DELAY = "delay"
    RETRY = "retry"
    UPSTREAM = "upstream"
    SIGNATURE = "signature"
    DETAIL = "detail"


FieldType = type | tuple[type, ...]
"""What a data field's value may be, as `isinstance` takes it (after a JSON round trip)."""

_NUMBER = (int, float)
_JSON = object
"""Any JSON value (a callable task's return value)."""


def _read_only(fields: Mapping[str, FieldType]) -> Mapping[str, FieldType]:
    """A read-only copy of `fields`."""
    return MappingProxyType(dict(fields))


@attrs.frozen
class Payload:
    """
    The data fields of one kind of event: each key with the types its value may have.

    A required field is in every event of the kind; an optional one only
    when it has a value (``attempt_finished`` records a signal only when
    there was one).
    """

    required: Mapping[str, FieldType] = attrs.field(factory=dict, converter=_read_only)
    optional: Mapping[str, FieldType] = attrs.field(factory=dict, converter=_read_only)

    @property
    def fields(self) -> tuple[str, ...]:
        """Every key, required ones first, in declaration order."""
        return (*self.required, *self.optional)

    def problems(self, data: Mapping[str, Any]) -> list[str]:
        """What is wrong with `data` for this kind: undeclared, missing or mistyped keys."""
        found = []
        for key, value in data.items():
            expected = self.required.get(key) or self.optional.get(key)
            if expected is None:
                found.append(f"undeclared key {key!r}")
            elif not isinstance(value, expected):
                found.append(f"{key!r} is {type(value).__name__}, declared {expected}")
        found += [f"missing key {key!r}" for key in self.required if key not in data]
        return found


_F = DataField
_LOCATION: Mapping[str, FieldType] = {
    _F.PID: int,
    _F.PROC_START: (int, NoneType),
    _F.WORKER: int,
    _F.OUT_PATH: str,
    _F.OUT_OFFSET: int,
    _F.ERR_PATH: str,
    _F.ERR_OFFSET: int,
}
"""Where a process attempt runs: its process (to stop it on resume) and its log slices."""

PAYLOAD: Mapping[EventKind, Payload] = MappingProxyType(
    {
        EventKind.RUN_STARTED: Payload({_F.WORKFLOW: str, _F.TASKS: int, _F.WORKERS: int}),
        EventKind.RUN_RESUMED: Payload({_F.KEPT: int, _F.WORKERS: int}),
        EventKind.RUN_FINISHED: Payload(
            {_F.STATUS: str},
            # How many tasks ended in each state (only the states some task ended in).
            {state.value: int for state in TaskState if state.finished},
        ),
        EventKind.TASK_READY: Payload(),
        EventKind.ROUTE_CHOSEN: Payload(
            {_F.TOOL: str, _F.STRATEGY: str, _F.CANDIDATES: list, _F.REASON: str},
            {_F.FALLBACK_FROM: str},
        ),
        EventKind.ATTEMPT_STARTED: Payload(
            {_F.TOOL: (str, NoneType), _F.ARGV: (list, NoneType)},
            # The full size of a command whose argv was recorded cut short.
            {_F.ARGV_BYTES: int},
        ),
        # A remote attempt also names the worker that runs it (the pid is there).
        EventKind.ATTEMPT_SPAWNED: Payload(_LOCATION, {_F.ADDRESS: str}),
        EventKind.ATTEMPT_FINISHED: Payload(
            {_F.STATUS: str},
            # All but the status are absent for an attempt cancelled with its run.
            {
                _F.EXIT_CODE: (int, NoneType),
                _F.DURATION: _NUMBER,
                _F.OUT_LENGTH: int,
                _F.ERR_LENGTH: int,
                _F.SIGNAL: int,
                _F.TIMED_OUT: bool,
                _F.ERROR: str,
                _F.RESULT: _JSON,
            },
        ),
        EventKind.ATTEMPT_LOST: Payload({_F.STATUS: str, _F.GROUP_KILLED: bool}),
        EventKind.TASK_RETRY_WAIT: Payload({_F.DELAY: _NUMBER, _F.RETRY: int}),
        # A task that declares outputs (or feeds one that does) is recorded
        # with its signature, and what it was computed from (`freshness`).
        # A success with an exit code other than 0 (`ok_exit_codes`) records it.
        EventKind.TASK_SUCCEEDED: Payload(
            {}, {_F.EXIT_CODE: int, _F.SIGNATURE: str, _F.DETAIL: dict}
        ),
        EventKind.TASK_UP_TO_DATE: Payload({_F.SIGNATURE: str}),
        EventKind.TASK_FAILED: Payload(
            {
                _F.EXIT_CODE: (int, NoneType),
                _F.SIGNAL: (int, NoneType),
                _F.TIMED_OUT: bool,
                _F.ERROR: (str, NoneType),
            }
        ),
        EventKind.TASK_SKIPPED: Payload({_F.UPSTREAM: str}),
        EventKind.TASK_CANCELLED: Payload(),
    }
)
"""Each kind's data fields: the one declaration the store, reports and tests read."""


TASK_STATE_AFTER: Mapping[EventKind, TaskState] = MappingProxyType(
    {
        EventKind.TASK_READY: TaskState.READY,
        EventKind.ATTEMPT_STARTED: TaskState.RUNNING,
        EventKind.TASK_RETRY_WAIT: TaskState.RETRY_WAIT,
        EventKind.TASK_SUCCEEDED: TaskState.SUCCEEDED,
        EventKind.TASK_UP_TO_DATE: TaskState.UP_TO_DATE,
        EventKind.TASK_FAILED: TaskState.FAILED,
        EventKind.TASK_SKIPPED: TaskState.SKIPPED,
        EventKind.TASK_CANCELLED: TaskState.CANCELLED,
    }
)
"""
The state a task is in after an event of each kind that moves it; other
kinds leave it where it was. Once a task is in a finished state, no event
moves it again in the same part of a run (`RUN_RESUMED` starts a new part,
in which every task not succeeded is pending again).
"""

RUN_STATUS_AFTER: Mapping[EventKind, RunStatus | None] = MappingProxyType(
    {
        EventKind.RUN_STARTED: RunStatus.RUNNING,
        EventKind.RUN_RESUMED: RunStatus.RUNNING,
        EventKind.RUN_FINISHED: None,
    }
)
"""
The status a run has after each run-level event; None: the event's
``status`` field says. Only ``run_resumed`` moves a finished run again.
"""

RELEASING_KINDS = frozenset(
    {EventKind.TASK_SUCCEEDED, EventKind.TASK_UP_TO_DATE, EventKind.TASK_FAILED}
)
"""
The kinds of event whose task may release dependents, and the order of
emission that goes with them: the scheduler records the ``task_ready`` of
every task a task's end releases after that task's releasing event and
before any other task's, so the releasing task of a task is the last to end
before its first ``task_ready`` (`Store.ready_causes`). The events name no
dependencies, so this order is the only record of which dependency was last.
"""
