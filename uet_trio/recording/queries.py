"""
The store's read queries: what the CLI, reports and resumes read back.

`Queries` is the reading half of `Store` (a mixin over its connection), kept
apart from opening and writing so that each half reads as one idea. Rows come
back as `records` classes, or as plain tuples where a large run makes
building records too slow.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from ..errors import RunNotFound
from .connection import translated
from .events import RELEASING_KINDS, EventKind
from .records import (
    AttemptRecord,
    AttemptTiming,
    EventRecord,
    RouterStateRecord,
    RunRecord,
    TaskRecord,
)
from .states import AttemptStatus, RunStatus

RESUMED = EventKind.RUN_RESUMED.value
"""The kind `idle_seconds` reads, spelled into its SQL for the partial index (`schema`)."""

FINISHED_RUN = tuple(status.value for status in RunStatus if status.finished)
"""The statuses of a finished run, as SQL parameters."""
_FINISHED_MARKS = ", ".join("?" for _ in FINISHED_RUN)


class Queries:
    """The read queries of a `Store`: every method reads, none writes."""

    _conn: sqlite3.Connection
    path: str

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with translated(self.path, "read the database"):
            return self._conn.execute(sql, params).fetchall()

    def get_run(self, run_id: str) -> RunRecord:
        """
        The run with exactly this id.

        Raises:
            RunNotFound: there is none.
        """
        rows = self._query("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise RunNotFound(f"no run {run_id!r} in {self.path}")
        return RunRecord.from_row(rows[0])

    def resolve_run(self, prefix: str) -> str:
        """
        The id of the one run whose id starts with `prefix`.

        Raises:
            RunNotFound: no run matches, or several do (the message lists them).
        """
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._query(
            "SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY run_id LIMIT 11",
            (escaped + "%",),
        )
        ids = [row[0] for row in rows]
        if prefix in ids:
            return prefix
        if not ids:
            raise RunNotFound(f"no run matches {prefix!r} in {self.path}")
        if len(ids) > 1:
            shown = ", ".join(ids[:10]) + (", ..." if len(ids) > 10 else "")
            raise RunNotFound(f"{prefix!r} is ambiguous; it matches {shown}")
        return str(ids[0])

    def last_run(self) -> str:
        """
        The id of the most recently created run.

        Raises:
            RunNotFound: the store has no runs.
        """
        rows = self._query("SELECT run_id FROM runs ORDER BY created_at DESC, run_id DESC LIMIT 1")
        if not rows:
            raise RunNotFound(f"no runs in {self.path}")
        return str(rows[0][0])

    def list_runs(self, *, limit: int = 20, status: str | None = None) -> list[RunRecord]:
        """The most recent runs, newest first."""
        if status is None:
            rows = self._query("SELECT * FROM runs ORDER BY created_at DESC LIMIT ?", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM runs WHERE status = ? ORDER BY created_at DESC LIMIT ?",
                (status, limit),
            )
        return [RunRecord.from_row(row) for row in rows]

    def task_counts(self, run_id: str) -> dict[str, int]:
        """How many tasks of the run are in each state."""
        rows = self._query(
            "SELECT state, count(*) FROM tasks WHERE run_id = ? GROUP BY state", (run_id,)
        )
        return {row[0]: row[1] for row in rows}

    def tasks(self, run_id: str, *, states: Collection[str] = ()) -> list[TaskRecord]:
        """
        The run's tasks in declaration order; only those in `states` when any are given.

        Filtering here rather than in the caller keeps ``uet show --failed`` on
        a run of a million tasks from building a million records.
        """
        if not states:
            rows = self._query("SELECT * FROM tasks WHERE run_id = ? ORDER BY idx", (run_id,))
        else:
            marks = ", ".join("?" for _ in states)
            rows = self._query(
                f"SELECT * FROM tasks WHERE run_id = ? AND state IN ({marks}) ORDER BY idx",
                (run_id, *states),
            )
        return [TaskRecord.from_row(row) for row in rows]

    def busy_seconds(self, run_id: str, *, now: float | None = None) -> float:
        """
        The sum of the run's attempt durations: what `report.busy_seconds` adds up, summed here.

        The same rule (the runner's duration; else the recorded start to end;
        else, for an attempt still running, its start to `now`, or nothing
        when `now` is None), so a view of a large run reads one number
        instead of a row per attempt.
        """
        rows = self._tuples(
            "SELECT total(CASE WHEN duration IS NOT NULL THEN duration "
            "WHEN finished_at IS NOT NULL THEN max(0.0, finished_at - started_at) "
            "WHEN ?2 IS NOT NULL THEN max(0.0, ?2 - started_at) ELSE 0.0 END) "
            "FROM attempts WHERE run_id = ?1",
            (run_id, now),
        )
        return float(rows[0][0])

    def attempts(self, run_id: str, task_id: str | None = None) -> list[AttemptRecord]:
        """The run's attempts (optionally of one task), by task then attempt number."""
        if task_id is None:
            rows = self._query(
                "SELECT * FROM attempts WHERE run_id = ? ORDER BY task_id, attempt", (run_id,)
            )
        else:
            rows = self._query(
                "SELECT * FROM attempts WHERE run_id = ? AND task_id = ? ORDER BY attempt",
                (run_id, task_id),
            )
        return [AttemptRecord.from_row(row) for row in rows]

    def events(
        self,
        run_id: str,
        *,
        after_seq: int = 0,
        kinds: Sequence[str] = (),
        task_id: str | None = None,
        limit: int | None = None,
    ) -> list[EventRecord]:
        """The run's events in sequence order, filtered by kind and task."""
        where, params = _event_filter(run_id, after_seq, kinds, task_id)
        sql = f"SELECT * FROM events WHERE {where} ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [EventRecord.from_row(row) for row in self._query(sql, params)]

    def load_router_state(self, workflow: str) -> dict[str, Any] | None:
        """The router snapshot saved by the last run of `workflow`, if any."""
        rows = self._query("SELECT state FROM router_state WHERE workflow = ?", (workflow,))
        return json.loads(rows[0][0]) if rows else None

    def router_states(self) -> list[RouterStateRecord]:
        """Every saved router snapshot, by workflow name."""
        rows = self._query("SELECT * FROM router_state ORDER BY workflow")
        return [RouterStateRecord.from_row(row) for row in rows]

    def recent_durations(self, workflow: str, *, runs: int = 5) -> dict[str, list[float]]:
        """
        Durations of each task's successful attempts in recent runs of `workflow`.

        Only the `runs` most recent runs that recorded a successful attempt are
        read, so the cost stays flat however long the history grows (the
        attempts primary key starts with the run id).
        """
        rows = self._query(
            "SELECT task_id, duration FROM attempts WHERE run_id IN ("
            "SELECT run_id FROM runs AS r WHERE workflow = ?1 AND EXISTS ("
            "SELECT 1 FROM attempts AS a WHERE a.run_id = r.run_id AND a.status = ?3) "
            "ORDER BY created_at DESC, run_id DESC LIMIT ?2) "
            "AND status = ?3 AND duration IS NOT NULL",
            (workflow, runs, AttemptStatus.SUCCEEDED.value),
        )
        durations: dict[str, list[float]] = {}
        for task_id, duration in rows:
            durations.setdefault(task_id, []).append(duration)
        return durations

    def integrity_check(self) -> str:
        """Run ``PRAGMA integrity_check``; ``"ok"`` when the file is sound."""
        return str(self._query("PRAGMA integrity_check")[0][0])

    def task_counts_by_run(self, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """
        How many tasks of each of `run_ids` are in each state.

        One `task_counts` per run: each reads its run's rows in key order and
        counts a handful of states, where one query grouping by run and state
        sorts every row (half as fast again on a run of a million tasks).
        """
        return {run_id: self.task_counts(run_id) for run_id in run_ids}

    def idle_seconds(self, run_ids: Sequence[str]) -> dict[str, float]:
        """
        For each of `run_ids` that was resumed, the seconds it lay idle before its resumptions.

        A run taken up again (``uet resume``, ``uet run --retry-failed``)
        keeps its first start, so its span from start to finish counts the
        time it lay finished or crashed. Each gap runs from the last event
        before a ``run_resumed`` to that event. Runs never resumed are left
        out. Read through the partial index of ``run_resumed`` events, so the
        cost does not grow with a run's other events.
        """
        idle: dict[str, float] = {}
        if not run_ids:
            return idle
        marks = ", ".join("?" for _ in run_ids)
        # Through the partial index of resumptions (`schema`), named so that
        # SQLite cannot choose to scan every event of each run instead; its
        # condition is spelled in the SQL, as an index's use requires.
        rows = self._tuples(
            "SELECT r.run_id, r.at - (SELECT e.at FROM events AS e WHERE e.run_id = r.run_id "
            "AND e.seq < r.seq ORDER BY e.seq DESC LIMIT 1) "
            f"FROM events AS r INDEXED BY events_resumed "
            f"WHERE r.run_id IN ({marks}) AND r.kind = '{RESUMED}'",
            run_ids,
        )
        for run_id, gap in rows:
            if gap is not None:
                idle[run_id] = idle.get(run_id, 0.0) + max(0.0, gap)
        return idle

    def runs_of(
        self,
        workflow: str,
        *,
        status: str | None = None,
        workers: int | None = None,
        limit: int = 1,
    ) -> list[RunRecord]:
        """The most recent runs of `workflow` (in `status`, on `workers`), newest first."""
        sql = "SELECT * FROM runs WHERE workflow = ?"
        params: list[Any] = [workflow]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if workers is not None:
            sql += " AND max_workers = ?"
            params.append(workers)
        sql += " ORDER BY created_at DESC, run_id DESC LIMIT ?"
        params.append(limit)
        return [RunRecord.from_row(row) for row in self._query(sql, params)]

    def last_run_of(self, workflow: str) -> str:
        """
        The id of the most recently created run of `workflow`.

        Raises:
            RunNotFound: the store has no run of it.
        """
        rows = self._query(
            "SELECT run_id FROM runs WHERE workflow = ? ORDER BY created_at DESC, run_id DESC "
            "LIMIT 1",
            (workflow,),
        )
        if not rows:
            raise RunNotFound(f"no run of workflow {workflow!r} in {self.path}")
        return str(rows[0][0])

    def ready_causes(self, run_id: str) -> dict[str, str | None]:
        """
        For each task that became ready, the task whose end made it ready.

        The events name no dependencies; what they record is the order of
        emission declared with `events.RELEASING_KINDS`: the task releasing
        another is the last task to end (by one of those kinds) before that
        task's first ``task_ready``, which is its last dependency to finish.
        None for tasks made ready by the run's (or resumed part's) start.
        One pass over those events in sequence order.
        """
        starts = (EventKind.RUN_STARTED, EventKind.RUN_RESUMED)
        kinds = (EventKind.TASK_READY, *RELEASING_KINDS, *starts)
        rows = self._tuples(
            f"SELECT kind, task_id FROM events WHERE run_id = ? "
            f"AND kind IN ({', '.join('?' for _ in kinds)}) ORDER BY seq",
            (run_id, *kinds),
        )
        causes: dict[str, str | None] = {}
        last_ended: str | None = None
        for kind, task_id in rows:
            if kind != EventKind.TASK_READY:
                last_ended = task_id
            elif task_id not in causes:
                causes[task_id] = last_ended
        return causes

    def attempt_timings(self, run_id: str) -> list[AttemptTiming]:
        """
        The run's attempts without argv, result and log locations, by task then attempt.

        What summaries of large runs need (`uet show` on 10,000 tasks), at a
        fraction of the cost of building full `AttemptRecord` objects.
        """
        rows = self._tuples(
            "SELECT task_id, attempt, status, started_at, finished_at, duration, exit_code, "
            "signal, timed_out FROM attempts WHERE run_id = ? ORDER BY task_id, attempt",
            (run_id,),
        )
        return [AttemptTiming.from_tuple(row) for row in rows]

    def events_json(
        self,
        run_id: str,
        *,
        after_seq: int = 0,
        kinds: Sequence[str] = (),
        task_id: str | None = None,
    ) -> list[tuple[int, str, str | None, int | None, float, float, str | None]]:
        """
        The rows `events` returns, as plain tuples with ``data`` left as its JSON text.

        (seq, kind, task_id, attempt, t, at, data) in sequence order; for
        callers that print events as JSON, so the stored JSON is not decoded
        and encoded again.
        """
        where, params = _event_filter(run_id, after_seq, kinds, task_id)
        return self._tuples(
            f"SELECT seq, kind, task_id, attempt, t, at, data FROM events WHERE {where} "
            "ORDER BY seq",
            params,
        )

    def _tuples(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Like `_query`, but plain tuples: much cheaper than rows for tens of thousands."""
        with translated(self.path, "read the database"):
            cursor = self._conn.cursor()
            cursor.row_factory = None
            return cursor.execute(sql, params).fetchall()

    def find_attempt(
        self, run_id: str, task_id: str, attempt: int | None = None
    ) -> AttemptRecord | None:
        """Attempt number `attempt` of the task (default: its latest), or None if there is none."""
        if attempt is None:
            rows = self._query(
                "SELECT * FROM attempts WHERE run_id = ? AND task_id = ? "
                "ORDER BY attempt DESC LIMIT 1",
                (run_id, task_id),
            )
        else:
            rows = self._query(
                "SELECT * FROM attempts WHERE run_id = ? AND task_id = ? AND attempt = ?",
                (run_id, task_id, attempt),
            )
        return AttemptRecord.from_row(rows[0]) if rows else None

    def task(self, run_id: str, task_id: str) -> TaskRecord | None:
        """The run's task with this id, or None if it has none."""
        rows = self._query(
            "SELECT * FROM tasks WHERE run_id = ? AND task_id = ?", (run_id, task_id)
        )
        return TaskRecord.from_row(rows[0]) if rows else None

    def has_task(self, run_id: str, task_id: str) -> bool:
        """Whether the run has a task with this id."""
        rows = self._query(
            "SELECT 1 FROM tasks WHERE run_id = ? AND task_id = ?", (run_id, task_id)
        )
        return bool(rows)

    def runs_to_collect(
        self, *, keep: int | None = None, created_before: float | None = None
    ) -> list[RunRecord]:
        """
        The finished runs that retention may delete, oldest first.

        A run qualifies when it is not among the `keep` most recent runs (when
        `keep` is given) and was created before `created_before` (when given).
        Runs still ``pending`` or ``running`` never qualify: they may be in
        progress or waiting for ``uet resume``.
        """
        sql = f"SELECT * FROM runs WHERE status IN ({_FINISHED_MARKS})"
        params: list[Any] = [*FINISHED_RUN]
        if keep is not None:
            sql += (
                " AND run_id NOT IN (SELECT run_id FROM runs "
                "ORDER BY created_at DESC, run_id DESC LIMIT ?)"
            )
            params.append(keep)
        if created_before is not None:
            sql += " AND created_at < ?"
            params.append(created_before)
        sql += " ORDER BY created_at, run_id"
        return [RunRecord.from_row(row) for row in self._query(sql, params)]


def _event_filter(
    run_id: str, after_seq: int, kinds: Sequence[str], task_id: str | None
) -> tuple[str, list[Any]]:
    """The WHERE clause and parameters selecting a run's events after `after_seq`."""
    where = "run_id = ? AND seq > ?"
    params: list[Any] = [run_id, after_seq]
    if kinds:
        where += f" AND kind IN ({', '.join('?' for _ in kinds)})"
        params.extend(kinds)
    if task_id is not None:
        where += " AND task_id = ?"
        params.append(task_id)
    return where, params
