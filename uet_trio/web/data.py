"""
What the web view reads from a store, as JSON-ready dictionaries.

`ViewStore` is a `Store` opened read-only with the few queries the pages
need beyond the store's own: a cheap "has anything changed?" probe for
polling, a run's snapshot (run, tasks with their DAG levels, edges,
attempts, failed tasks' output tails), and the changes since an event
sequence number, which is what the live page is fed. Every method reads and
is synchronous; the app calls them from a worker thread.

The JSON names are those of the CLI's ``--json`` (docs/cli.md): a task is
``{"task_id", "index" (in declaration order), "state", "attempts" (how
many), "tool", "started_at", "finished_at", "exit_code", "level"}``; an
attempt ``{"task_id", "attempt", "worker", "status", "tool", "started_at",
"finished_at", "exit_code", "signal", "timed_out"}``; ``*_at`` are Unix
times, in seconds.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

from ..errors import RunNotFound
from ..recording.logs import LogUnavailable, output_size, read_output, tail_lines
from ..recording.records import AttemptRecord, RunRecord
from ..recording.states import TaskState
from ..recording.store import Store
from .dag import RunGraph, run_graph

TAIL_LINES = 20
"""Lines of each stream shown for a failed task."""

MAX_FAILURE_TAILS = 50
"""Failed tasks whose tails a run's page reads; the others are listed without them."""

GRAPHS_KEPT = 8
"""Runs whose edges (read from their workflow files) a `ViewStore` keeps in memory."""

LOG_CHUNK = 256 * 1024
"""The most bytes of a log one read returns: a follower asks again for the rest."""

_CHUNK = 500
"""Ids per ``IN (...)`` list, well below SQLite's limit on parameters."""

_TASK_COLUMNS = "task_id, idx, state, attempts, tool, started_at, finished_at, exit_code"
_ATTEMPT_COLUMNS = (
    "task_id, attempt, worker, status, tool, started_at, finished_at, exit_code, signal, timed_out"
)


class ViewStore(Store):
    """A store opened read-only for the web view, with the view's queries."""

    def __init__(self, connection: sqlite3.Connection, path: str) -> None:
        super().__init__(connection, path)
        # Per run: its graph and the last event number it was made at.
        self._graphs: dict[str, tuple[RunGraph, int]] = {}

    @classmethod
    def open_view(cls, path: str | os.PathLike[str]) -> ViewStore:
        """
        Open the database at `path` read-only (it must exist; nothing is created).

        Raises:
            StoreError: the file cannot be opened or is not a uet-trio database.
        """
        # `Store.open` builds an instance of the class it is called on.
        return cast(ViewStore, cls.open(path, readonly=True))

    def graph(self, run_id: str, task_ids: Sequence[str], last_seq: int) -> RunGraph:
        """
        The run's edges and levels (`dag.run_graph`) when its last event is `last_seq`.

        Remembered for the last `GRAPHS_KEPT` runs: loading a large workflow
        file takes a while (0.4 s for 10,000 tasks), and its edges never
        change for a run. Edges rebuilt from the events grow while the run
        goes on, so they are rebuilt when it has recorded more events, but
        the file, once found not to match, is not read again.
        """
        cached = self._graphs.get(run_id)
        if cached is not None and (cached[0].source == "workflow" or cached[1] == last_seq):
            return cached[0]
        found = run_graph(self, run_id, task_ids, from_file=cached is None)
        self._graphs.pop(run_id, None)
        if len(self._graphs) >= GRAPHS_KEPT:
            del self._graphs[next(iter(self._graphs))]
        self._graphs[run_id] = (found, last_seq)
        return found

    # ---------------------------------------------------------------- probes

    def runs_token(self) -> tuple[int, int, float]:
        """
        (number of runs, sum of their last event numbers, latest creation time):
        changes whenever a run is created, records an event or is deleted.
        """
        count, total, latest = self._tuples(
            "SELECT count(*), coalesce(sum(last_seq), 0), coalesce(max(created_at), 0) FROM runs"
        )[0]
        return int(count), int(total), float(latest)

    def run_token(self, run_id: str) -> tuple[int, str]:
        """
        (last event number, status) of the run: changes whenever the run does.

        Raises:
            RunNotFound: no such run (it may have been collected meanwhile).
        """
        rows = self._tuples("SELECT last_seq, status FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise RunNotFound(f"no run {run_id!r} in {self.path}")
        return int(rows[0][0]), str(rows[0][1])

    # ---------------------------------------------------------------- runs

    def runs_summary(self, *, limit: int = 200) -> list[dict[str, Any]]:
        """The most recent runs, newest first, with their task counts by state."""
        records = self.list_runs(limit=limit)
        counts = self.task_counts_by_run([record.run_id for record in records])
        return [_run_json(record, counts[record.run_id]) for record in records]

    def run_snapshot(self, run_id: str, *, now: float | None = None) -> dict[str, Any]:
        """
        Everything a run's page draws: the run, its tasks, edges, attempts and failures.

        Raises:
            RunNotFound: no such run.
        """
        record = self.get_run(run_id)
        tasks = self._tuples(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE run_id = ? ORDER BY idx", (run_id,)
        )
        graph = self.graph(run_id, [row[0] for row in tasks], record.last_seq)
        counts: dict[str, int] = {}
        for row in tasks:
            counts[row[2]] = counts.get(row[2], 0) + 1
        attempts = self._tuples(
            f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE run_id = ? ORDER BY started_at",
            (run_id,),
        )
        failed = [row[0] for row in tasks if row[2] == TaskState.FAILED]
        return {
            "run": _run_json(record, counts),
            "tasks": [_task_json(row, graph.levels[n]) for n, row in enumerate(tasks)],
            "edges": [list(edge) for edge in graph.edges],
            "edge_source": graph.source,
            "attempts": [_attempt_json(row) for row in attempts],
            "failures": self.failures(run_id, failed[:MAX_FAILURE_TAILS]),
            "failed": len(failed),
            "last_seq": record.last_seq,
            "now": time.time() if now is None else now,
        }

    def run_changes(self, run_id: str, after_seq: int) -> dict[str, Any]:
        """
        What changed in the run after event `after_seq`: the run, and the tasks
        and attempts its later events touched (with the failures among them).

        Raises:
            RunNotFound: no such run.
        """
        record = self.get_run(run_id)
        touched = sorted(
            {
                row[0]
                for row in self._tuples(
                    "SELECT DISTINCT task_id FROM events WHERE run_id = ? AND seq > ? "
                    "AND seq <= ? AND task_id IS NOT NULL",
                    (run_id, after_seq, record.last_seq),
                )
            }
        )
        tasks: list[Any] = []
        attempts: list[Any] = []
        for chunk in _chunks(touched):
            marks = ", ".join("?" for _ in chunk)
            tasks += self._tuples(
                f"SELECT {_TASK_COLUMNS} FROM tasks WHERE run_id = ? AND task_id IN ({marks})",
                (run_id, *chunk),
            )
            attempts += self._tuples(
                f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE run_id = ? "
                f"AND task_id IN ({marks})",
                (run_id, *chunk),
            )
        failed = [row[0] for row in tasks if row[2] == TaskState.FAILED]
        return {
            "run": _run_json(record, self.task_counts(run_id)),
            "tasks": [_task_json(row, None) for row in tasks],
            "attempts": [_attempt_json(row) for row in attempts],
            "failures": self.failures(run_id, failed[:MAX_FAILURE_TAILS]),
            "last_seq": record.last_seq,
            "now": time.time(),
        }

    # ---------------------------------------------------------------- tasks

    def failures(self, run_id: str, task_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Each task's latest attempt with the last lines of its stdout and stderr."""
        found = []
        for task_id in task_ids:
            attempt = self.find_attempt(run_id, task_id)
            if attempt is not None:
                found.append({"task_id": task_id, **_attempt_detail(attempt), **_tails(attempt)})
        return found

    def task_detail(self, run_id: str, task_id: str) -> dict[str, Any]:
        """
        One task: its row, every attempt (with argv, error and output sizes),
        and the last lines of its latest attempt's output.

        Raises:
            RunNotFound: no such run, or the run has no such task.
        """
        record = self.get_run(run_id)
        rows = self._tuples(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE run_id = ? AND task_id = ?",
            (run_id, task_id),
        )
        if not rows:
            raise RunNotFound(f"run {run_id} has no task {task_id!r}")
        attempts = self.attempts(run_id, task_id)
        latest = attempts[-1] if attempts else None
        return {
            "run": _run_json(record, {}),
            "task": _task_json(rows[0], None),
            "attempts": [_attempt_detail(attempt) for attempt in attempts],
            "tail": _tails(latest) if latest is not None else None,
            "now": time.time(),
        }

    def task_progress(self, run_id: str, task_id: str) -> tuple[str, int]:
        """
        (state, number of attempts) of one task: what a follower of its log polls.

        Raises:
            RunNotFound: the run has no such task.
        """
        rows = self._tuples(
            "SELECT state, attempts FROM tasks WHERE run_id = ? AND task_id = ?", (run_id, task_id)
        )
        if not rows:
            raise RunNotFound(f"run {run_id} has no task {task_id!r}")
        return str(rows[0][0]), int(rows[0][1])

    def log_size(self, run_id: str, task_id: str, attempt: int, stderr: bool) -> int:
        """
        How many bytes the attempt's stream holds (so far, while it runs); 0 without an attempt.

        Raises:
            LogUnavailable: the attempt runs and its log file is gone or truncated.
        """
        record = self.find_attempt(run_id, task_id, attempt)
        return 0 if record is None else output_size(record, stderr=stderr)

    def log_slice(
        self, run_id: str, task_id: str, attempt: int, stderr: bool, offset: int
    ) -> tuple[bytes, bool]:
        """
        (bytes of the attempt's stream from `offset`, at most `LOG_CHUNK`; whether it has ended).

        An attempt has ended when it is finished and everything up to its
        recorded length has been read.

        Raises:
            RunNotFound: no such attempt.
            LogUnavailable: its log file is gone or truncated.
        """
        record = self.find_attempt(run_id, task_id, attempt)
        if record is None:
            raise RunNotFound(f"run {run_id} has no attempt {attempt} of task {task_id!r}")
        data = read_output(record, stderr=stderr, skip=offset, limit=LOG_CHUNK)
        length = record.err_length if stderr else record.out_length
        finished = record.finished_at is not None and (
            length is None or offset + len(data) >= length
        )
        return data, finished


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _run_json(record: RunRecord, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "workflow": record.workflow,
        "status": record.status.value,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration": record.duration,
        "task_count": record.task_count,
        "counts": counts,
        "max_workers": record.max_workers,
        "last_seq": record.last_seq,
    }


def _task_json(row: Sequence[Any], level: int | None) -> dict[str, Any]:
    task_id, idx, state, attempts, tool, start, end, exit_code = row
    found = {
        "task_id": task_id,
        "index": idx,
        "state": state,
        "attempts": attempts,
        "tool": tool,
        "started_at": start,
        "finished_at": end,
        "exit_code": exit_code,
    }
    if level is not None:
        found["level"] = level
    return found


def _attempt_json(row: Sequence[Any]) -> dict[str, Any]:
    task_id, attempt, worker, status, tool, start, end, exit_code, signal, timed_out = row
    return {
        "task_id": task_id,
        "attempt": attempt,
        "worker": worker,
        "status": status,
        "tool": tool,
        "started_at": start,
        "finished_at": end,
        "exit_code": exit_code,
        "signal": signal,
        "timed_out": bool(timed_out),
    }


def _attempt_detail(attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "status": attempt.status.value,
        "tool": attempt.tool,
        "argv": attempt.argv,
        "worker": attempt.worker,
        "started_at": attempt.started_at,
        "finished_at": attempt.finished_at,
        "exit_code": attempt.exit_code,
        "signal": attempt.signal,
        "timed_out": attempt.timed_out,
        "error": attempt.error,
        "out_length": attempt.out_length,
        "err_length": attempt.err_length,
    }


def _tails(attempt: AttemptRecord) -> dict[str, Any]:
    """
    The last `TAIL_LINES` lines of both streams (``stdout_tail``, ``stderr_tail``),
    or why one cannot be read (``stdout_unavailable``, ``stderr_unavailable``).
    """
    tails: dict[str, Any] = {}
    for name, stderr in (("stdout", False), ("stderr", True)):
        try:
            tails[f"{name}_tail"] = tail_lines(attempt, TAIL_LINES, stderr=stderr)
            tails[f"{name}_unavailable"] = None
        except LogUnavailable as error:
            tails[f"{name}_tail"] = None
            tails[f"{name}_unavailable"] = str(error)
    return tails
