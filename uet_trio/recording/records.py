"""
Records read from the store: one frozen class per table row, built with ``from_row``.

Keeping rows as plain records lets the CLI, reports and tests work with them
without a database; `NewRun` is what a run needs to be created. Statuses and
states are read as their enums (`states`), which compare equal to the text
stored.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

import attrs

from .states import AttemptStatus, RunStatus, TaskState


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


_RUN_STATUSES = {status.value: status for status in RunStatus}
_TASK_STATES = {state.value: state for state in TaskState}
_ATTEMPT_STATUSES = {status.value: status for status in AttemptStatus}


# Dictionary lookups rather than calls of the enums: several times cheaper,
# for runs of tens of thousands of tasks. A member finds itself.
def run_status(text: str) -> RunStatus:
    """The `RunStatus` of a stored text (or of a member)."""
    return _RUN_STATUSES[text]


def task_state(text: str) -> TaskState:
    """The `TaskState` of a stored text (or of a member)."""
    return _TASK_STATES[text]


def attempt_status(text: str) -> AttemptStatus:
    """The `AttemptStatus` of a stored text (or of a member)."""
    return _ATTEMPT_STATUSES[text]


def _span(started_at: float | None, finished_at: float | None) -> float | None:
    """``finished_at - started_at``, or None if either is missing."""
    if started_at is None or finished_at is None:
        return None
    return finished_at - started_at


@attrs.frozen(kw_only=True)
class RunRecord:
    """One row of ``runs``."""

    run_id: str
    workflow: str
    source: str | None
    base_dir: str | None
    spec_hash: str
    status: RunStatus = attrs.field(converter=run_status)
    created_at: float
    started_at: float | None
    finished_at: float | None
    max_workers: int | None
    task_count: int
    log_dir: str | None
    owner_pid: int | None
    owner_start: int | None
    last_seq: int

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish; None until the run has both started and finished."""
        return _span(self.started_at, self.finished_at)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        """Build a record from a ``SELECT * FROM runs`` row."""
        return cls(**{key: row[key] for key in row.keys()})  # noqa: SIM118 (Row has no iterator of keys)


@attrs.frozen(kw_only=True)
class TaskRecord:
    """One row of ``tasks``: a task's state within one run."""

    run_id: str
    task_id: str
    idx: int
    kind: str | None
    state: TaskState = attrs.field(converter=task_state)
    attempts: int
    tool: str | None
    started_at: float | None
    finished_at: float | None
    exit_code: int | None

    @property
    def duration(self) -> float | None:
        """
        Seconds from the task's start to its end; None until it has both.

        For a retried task this spans its attempts and the waits between them.
        """
        return _span(self.started_at, self.finished_at)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TaskRecord:
        """Build a record from a ``SELECT * FROM tasks`` row."""
        return cls(**{key: row[key] for key in row.keys()})  # noqa: SIM118


@attrs.frozen(kw_only=True)
class AttemptRecord:
    """One row of ``attempts``: one execution of one task."""

    run_id: str
    task_id: str
    attempt: int
    tool: str | None
    argv: list[str] | None
    status: AttemptStatus = attrs.field(converter=attempt_status)
    started_at: float
    finished_at: float | None
    duration: float | None
    exit_code: int | None
    signal: int | None
    timed_out: bool
    error: str | None
    result: Any
    pid: int | None
    proc_start: int | None
    worker: int | None
    out_path: str | None
    out_offset: int | None
    out_length: int | None
    err_path: str | None
    err_offset: int | None
    err_length: int | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> AttemptRecord:
        """Build a record from a ``SELECT * FROM attempts`` row."""
        values = {key: row[key] for key in row.keys()}  # noqa: SIM118
        values["argv"] = _loads(values["argv"])
        values["result"] = _loads(values["result"])
        values["timed_out"] = bool(values["timed_out"])
        return cls(**values)


@attrs.frozen(kw_only=True)
class EventRecord:
    """One row of ``events``: an `Event` plus the wall-clock time it was recorded for."""

    run_id: str
    seq: int
    kind: str
    task_id: str | None
    attempt: int | None
    t: float
    at: float
    data: dict[str, Any]

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> EventRecord:
        """Build a record from a ``SELECT * FROM events`` row."""
        values = {key: row[key] for key in row.keys()}  # noqa: SIM118
        values["data"] = _loads(values["data"]) or {}
        return cls(**values)


class AttemptTiming(NamedTuple):
    """The timing and outcome columns of one ``attempts`` row (see `Store.attempt_timings`)."""

    task_id: str
    attempt: int
    status: AttemptStatus
    started_at: float
    finished_at: float | None
    duration: float | None
    exit_code: int | None
    signal: int | None
    timed_out: int

    @classmethod
    def from_tuple(cls, row: tuple[Any, ...]) -> AttemptTiming:
        """Build one from a row of those columns, in this order, with the status as text."""
        return cls._make((row[0], row[1], attempt_status(row[2]), *row[3:]))


@attrs.frozen(kw_only=True)
class RouterStateRecord:
    """One row of ``router_state``: the router snapshot last saved for a workflow."""

    workflow: str
    state: dict[str, Any]
    updated_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RouterStateRecord:
        """Build a record from a ``SELECT * FROM router_state`` row."""
        return cls(
            workflow=row["workflow"], state=_loads(row["state"]) or {}, updated_at=row["updated_at"]
        )


@attrs.frozen(kw_only=True)
class NewRun:
    """
    What `Store.create_run` needs to know about a run that is starting.

    The engine fills every field; the defaults describe a run with no source
    file, owner or log directory, as tests and benchmarks create directly.
    """

    run_id: str
    workflow: str
    task_ids: Sequence[str]
    """In declaration order."""
    task_kinds: Sequence[str | None] = ()
    """Each task's kind, in the same order; empty when no task has one. Two
    sequences, not a (id, kind) pair per task: the engine passes what it
    already holds, and allocates nothing per task."""
    source: str | None = None
    base_dir: str = "."
    spec_hash: str = ""
    max_workers: int = 1
    log_dir: str = ""
    owner_pid: int = 0
    owner_start: int | None = None
