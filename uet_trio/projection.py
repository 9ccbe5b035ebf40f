"""
The projection of events onto the ``runs``, ``tasks`` and ``attempts`` tables.

`Store.write_batch` builds one `Projection` per batch: it turns the events
into rows and updates that are applied, with the event rows themselves, in a
single transaction, so the tables can never disagree with the event log.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .events import Event, EventKind


def storable_text(value: str | None) -> str | None:
    """
    `value` as storable text: surrogate escapes (non-UTF-8 bytes in a path or an
    argument) become U+FFFD, since SQLite TEXT must be valid UTF-8.
    """
    if value is None:
        return None
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


_TASK_STATE = {
    EventKind.TASK_READY: "ready",
    EventKind.TASK_RETRY_WAIT: "retry_wait",
    EventKind.TASK_SUCCEEDED: "succeeded",
    EventKind.TASK_FAILED: "failed",
    EventKind.TASK_SKIPPED: "skipped",
    EventKind.TASK_CANCELLED: "cancelled",
}


_encode_data = json.JSONEncoder(default=str).encode
"""``json.dumps(data, default=str)`` without building a new encoder for every event."""


# Columns of an attempt row as `Projection` builds it, in insert order.
_ATTEMPT_COLUMNS = (
    "run_id, task_id, attempt, tool, argv, status, started_at, "
    "pid, proc_start, worker, out_path, out_offset, err_path, err_offset, "
    "finished_at, duration, exit_code, signal, timed_out, error, result, out_length, err_length"
)
_SPAWN_SLICE = slice(7, 14)
_FINISH_SLICE = slice(14, 23)


class Projection:
    """
    Turns a batch of events into rows and updates, applied in one transaction.

    An attempt that starts in the batch is inserted once, complete: its spawn
    and finish events in the same batch fill the new row instead of becoming
    two UPDATEs (most attempts of short tasks start and end within one
    batch). Events for attempts inserted by earlier batches become UPDATEs.
    """

    def __init__(self, wall_start: float) -> None:
        self.wall_start = wall_start
        self.run_id: str | None = None
        self.event_rows: list[tuple[Any, ...]] = []
        self.new_attempts: dict[tuple[str | None, int | None], list[Any]] = {}
        self.spawned: list[tuple[Any, ...]] = []
        self.finished: list[tuple[Any, ...]] = []
        self.task_changes: dict[str, dict[str, Any]] = {}
        self.run_changes: dict[str, Any] = {}
        self.last_seq = 0

    def add(self, event: Event) -> None:
        at = self.wall_start + event.time
        self.run_id = event.run_id
        self.last_seq = max(self.last_seq, event.seq)
        data = event.data
        self.event_rows.append(
            (
                event.run_id,
                event.seq,
                event.kind.value,
                event.task_id,
                event.attempt,
                event.time,
                at,
                _encode_data(data) if data else None,
            )
        )
        kind = event.kind
        task_id = event.task_id
        if kind is EventKind.ATTEMPT_STARTED:
            assert task_id is not None
            self.new_attempts[task_id, event.attempt] = [
                event.run_id,
                task_id,
                event.attempt,
                data.get("tool"),
                json.dumps(data.get("argv")),
                "running",
                at,
                *(None,) * 11,
                0,
                *(None,) * 4,
            ]
            change = {"state": "running", "attempts": event.attempt, "tool": data.get("tool")}
            if event.attempt == 1:
                change["started_at"] = at
            self.task_changes.setdefault(task_id, {}).update(change)
        elif kind is EventKind.ATTEMPT_SPAWNED:
            spawn = (
                data.get("pid"),
                data.get("proc_start"),
                data.get("worker"),
                data.get("out_path"),
                data.get("out_offset"),
                data.get("err_path"),
                data.get("err_offset"),
            )
            row = self.new_attempts.get((task_id, event.attempt))
            if row is not None:
                row[_SPAWN_SLICE] = spawn
            else:
                self.spawned.append((*spawn, event.run_id, task_id, event.attempt))
        elif kind is EventKind.ATTEMPT_FINISHED or kind is EventKind.ATTEMPT_LOST:
            result = data.get("result")
            status = data.get("status", "lost")
            finish = (
                at,
                data.get("duration"),
                data.get("exit_code"),
                data.get("signal"),
                int(bool(data.get("timed_out"))),
                storable_text(data.get("error")),
                json.dumps(result) if result is not None else None,
                data.get("out_length"),
                data.get("err_length"),
            )
            row = self.new_attempts.get((task_id, event.attempt))
            if row is None:
                self.finished.append((status, *finish, event.run_id, task_id, event.attempt))
            elif row[5] == "running":
                # Terminal attempt states are final, as the UPDATE's guard below.
                row[5] = status
                row[_FINISH_SLICE] = finish
        elif kind in _TASK_STATE:
            assert task_id is not None
            change = {"state": _TASK_STATE[kind]}
            if kind is EventKind.TASK_READY:
                change.update(finished_at=None, exit_code=None)
            elif kind is not EventKind.TASK_RETRY_WAIT:
                change.update(finished_at=at, exit_code=data.get("exit_code"))
            self.task_changes.setdefault(task_id, {}).update(change)
        elif kind is EventKind.RUN_STARTED or kind is EventKind.RUN_RESUMED:
            self.run_changes.update(status="running", finished_at=None)
            if kind is EventKind.RUN_STARTED:
                self.run_changes["started_at"] = at
        elif kind is EventKind.RUN_FINISHED:
            self.run_changes.update(
                status=data["status"], finished_at=at, owner_pid=None, owner_start=None
            )

    def apply(self, conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT OR IGNORE INTO events (run_id, seq, kind, task_id, attempt, t, at, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            self.event_rows,
        )
        if self.new_attempts:
            conn.executemany(
                f"INSERT OR IGNORE INTO attempts ({_ATTEMPT_COLUMNS}) VALUES "
                f"({', '.join('?' * 23)})",
                self.new_attempts.values(),
            )
        if self.spawned:
            conn.executemany(
                "UPDATE attempts SET pid = ?, proc_start = ?, worker = ?, out_path = ?, "
                "out_offset = ?, err_path = ?, err_offset = ? "
                "WHERE run_id = ? AND task_id = ? AND attempt = ?",
                self.spawned,
            )
        if self.finished:
            # Terminal attempt states are final: only a running attempt may finish.
            conn.executemany(
                "UPDATE attempts SET status = ?, finished_at = ?, duration = ?, exit_code = ?, "
                "signal = ?, timed_out = ?, error = ?, result = ?, out_length = ?, "
                "err_length = ? WHERE run_id = ? AND task_id = ? AND attempt = ? "
                "AND status = 'running'",
                self.finished,
            )
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for task_id, change in self.task_changes.items():
            columns = tuple(sorted(change))
            groups.setdefault(columns, []).append(
                (*(change[c] for c in columns), self.run_id, task_id)
            )
        for columns, rows in groups.items():
            assignments = ", ".join(f"{column} = ?" for column in columns)
            conn.executemany(
                f"UPDATE tasks SET {assignments} WHERE run_id = ? AND task_id = ?", rows
            )
        changes = dict(self.run_changes)
        columns = tuple(sorted(changes))
        assignments = "".join(f"{column} = ?, " for column in columns)
        conn.execute(
            f"UPDATE runs SET {assignments}last_seq = max(last_seq, ?) WHERE run_id = ?",
            (*(changes[c] for c in columns), self.last_seq, self.run_id),
        )
