"""
The SQLite store: schema, migrations, batched writes and every query the CLI needs.

A plain synchronous class with one `sqlite3` connection. It knows nothing of
Trio: the persister calls it from a worker thread behind a `CapacityLimiter(1)`
(so the connection is opened with ``check_same_thread=False`` and never used by
two threads at once); the CLI's read commands call it directly.

Why it is written the way it is:

- ``isolation_level=None`` plus explicit ``BEGIN IMMEDIATE`` for every write:
  a deferred transaction that reads and then writes fails at once with
  SQLITE_BUSY_SNAPSHOT when another process committed meanwhile, whatever the
  busy timeout. IMMEDIATE takes the write lock up front and waits politely.
- WAL plus ``synchronous=NORMAL`` (set on every connection; it is not stored
  in the file): an application crash loses nothing committed.
- Events are the single write path. `write_batch` inserts a batch of events
  and, in the same transaction, projects them (`projection`, in SQL) onto
  the ``runs``, ``tasks`` and ``attempts`` tables, so the tables can never
  disagree with the event log. Rows are read back as `records` classes.
  ``INSERT OR IGNORE`` on the natural keys makes a retried batch idempotent.
- Errors are mapped by ``sqlite_errorname``, never by message text, into
  `StoreError` naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import RunConflict, RunNotFound, StoreError
from .events import Event
from .projection import EventRows, chunks, encode_events, projection_for
from .records import (
    AttemptRecord,
    AttemptTiming,
    EventRecord,
    NewRun,
    RouterStateRecord,
    RunRecord,
    TaskRecord,
)

SCHEMA_VERSION = 2
DEFAULT_BUSY_TIMEOUT = 5.0

_SCHEMA = """
CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY,
    workflow    TEXT NOT NULL,
    source      TEXT,
    base_dir    TEXT,
    spec_hash   TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    started_at  REAL,
    finished_at REAL,
    max_workers INTEGER,
    task_count  INTEGER NOT NULL,
    log_dir     TEXT,
    owner_pid   INTEGER,
    owner_start INTEGER,
    last_seq    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE TABLE tasks (
    run_id      TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    kind        TEXT,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    tool        TEXT,
    started_at  REAL,
    finished_at REAL,
    exit_code   INTEGER,
    PRIMARY KEY (run_id, task_id)
) WITHOUT ROWID;
CREATE TABLE attempts (
    run_id      TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    tool        TEXT,
    argv        TEXT,
    status      TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    duration    REAL,
    exit_code   INTEGER,
    signal      INTEGER,
    timed_out   INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    result      TEXT,
    pid         INTEGER,
    proc_start  INTEGER,
    worker      INTEGER,
    out_path    TEXT,
    out_offset  INTEGER,
    out_length  INTEGER,
    err_path    TEXT,
    err_offset  INTEGER,
    err_length  INTEGER,
    PRIMARY KEY (run_id, task_id, attempt)
) WITHOUT ROWID;
CREATE TABLE events (
    run_id  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    task_id TEXT,
    attempt INTEGER,
    t       REAL NOT NULL,
    at      REAL NOT NULL,
    data    TEXT,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE router_state (
    workflow   TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""

_ADVICE = {
    "SQLITE_BUSY": "another process holds the database locked; retry when it is done, "
    "or raise the busy timeout",
    "SQLITE_LOCKED": "the database is locked; retry when the other user is done",
    "SQLITE_FULL": "the disk (or the database's size limit) is full; free space, then "
    "`uet resume` the run",
    "SQLITE_READONLY": "the database or its directory is read-only; use a writable --db path",
    "SQLITE_NOTADB": "the file is not a uet-trio database; point --db at another path",
    "SQLITE_CORRUPT": "the database is damaged; move it aside and start a new one "
    "(keep the copy for recovery)",
    "SQLITE_IOERR": "the operating system reported an I/O error (disk full, file size "
    "limit or failing device); fix the disk, then `uet resume` the run",
    "SQLITE_CANTOPEN": "the file cannot be opened; check that its directory exists and is writable",
}


_TRANSIENT = ("SQLITE_BUSY", "SQLITE_LOCKED")
"""Errors after which the same transaction may succeed when tried again."""


def _advice(error: sqlite3.Error) -> str:
    name = getattr(error, "sqlite_errorname", "") or ""
    for prefix, text in _ADVICE.items():
        if name.startswith(prefix):
            return text
    return "see the SQLite error above"


@contextlib.contextmanager
def _translated(path: str, action: str) -> Iterator[None]:
    """Turn sqlite3 and OS errors into `StoreError` naming the file and a next step."""
    try:
        yield
    except sqlite3.Error as error:
        name = getattr(error, "sqlite_errorname", None) or type(error).__name__
        raise StoreError(
            f"{path}: cannot {action}: {error} ({name}); {_advice(error)}",
            transient=name.startswith(_TRANSIENT),
        ) from error
    except OSError as error:
        raise StoreError(f"{path}: cannot {action}: {error}") from error


class Store:
    """
    One SQLite database of runs.

    Resource handling: the store owns its connection; `close()` (or leaving a
    ``with`` block) closes it. Every write is one ``BEGIN IMMEDIATE``
    transaction. Not thread-safe: callers serialise access.
    """

    def __init__(self, connection: sqlite3.Connection, path: str) -> None:
        self._conn = connection
        self.path = path

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        synchronous: str = "NORMAL",
        readonly: bool = False,
        check: bool = False,
    ) -> Store:
        """
        Open (creating if needed) the database at `path`.

        The file is created readable only by its owner and its directory with
        mode 0700. `check` runs ``PRAGMA quick_check`` (O(size); for resumes
        and runs). A file that is not a uet-trio database is refused and left
        untouched.

        Raises:
            StoreError: the file cannot be opened, is not a uet-trio database,
                is damaged, or is locked past `busy_timeout`.
        """
        location = os.fspath(path)
        with _translated(location, "open the database"):
            if readonly:
                uri = "file:" + Path(location).resolve().as_posix() + "?mode=ro"
                conn = sqlite3.connect(
                    uri,
                    uri=True,
                    timeout=busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
            else:
                _create_private(Path(location))
                conn = sqlite3.connect(
                    location, timeout=busy_timeout, isolation_level=None, check_same_thread=False
                )
        store = cls(conn, location)
        try:
            store._prepare(synchronous=synchronous, readonly=readonly, check=check)
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def memory(cls) -> Store:
        """A private in-memory database (for embedding and tests that want no file)."""
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        store = cls(conn, ":memory:")
        store._prepare(synchronous="OFF", readonly=False, check=False)
        return store

    def _prepare(self, *, synchronous: str, readonly: bool, check: bool) -> None:
        conn = self._conn
        conn.row_factory = sqlite3.Row
        with _translated(self.path, "read the database"):
            # One statement, so one snapshot: read apart, a process creating
            # the schema at the same moment could commit in between, and its
            # new tables would look like a foreign file's.
            version, tables = conn.execute(
                "SELECT (SELECT user_version FROM pragma_user_version), "
                "(SELECT count(*) FROM sqlite_master)"
            ).fetchone()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: written by a newer uet-trio (schema {version}, this one "
                    f"knows {SCHEMA_VERSION}); upgrade uet-trio"
                )
            if version == 0 and tables:
                raise StoreError(
                    f"{self.path}: this SQLite file holds other tables and is not a uet-trio "
                    "database; point --db at another path"
                )
            if check:
                verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
                if verdict != "ok":
                    raise StoreError(
                        f"{self.path}: the database is damaged ({verdict}); move it aside "
                        "and start a new one"
                    )
        if readonly:
            return
        with _translated(self.path, "set up the database"):
            if self.path != ":memory:":
                _retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            conn.execute(f"PRAGMA synchronous={synchronous}")
            # A writer's page cache may grow to 16 MiB (the tasks and attempts
            # of a large run stay in memory while their rows are updated), and
            # the WAL to about 40 MiB before a checkpoint copies it back:
            # fewer, larger checkpoints write each hot page once instead of
            # once per thousand pages of events. Both bound memory and disk,
            # and neither changes what a crash can lose.
            conn.execute("PRAGMA cache_size=-16384")
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            if version < SCHEMA_VERSION:
                _retry_busy(self._migrate)

    def _migrate(self) -> None:
        """Create the schema in a new file, or bring an older one up to date."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            elif version == 1:
                # Schema 2 drops the index on event kinds: every insert paid
                # for it, and the queries it served scan one run's events.
                conn.execute("DROP INDEX IF EXISTS events_by_kind")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connection (everything written is already committed)."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction; rolled back on any error."""
        conn = self._conn
        with _translated(self.path, action):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------ writes

    def create_run(self, run: NewRun) -> None:
        """Insert the run row and one ``pending`` row per task, in one transaction."""
        with self._write("record the new run") as conn:
            conn.execute(
                "INSERT INTO runs (run_id, workflow, source, base_dir, spec_hash, status, "
                "created_at, max_workers, task_count, log_dir, owner_pid, owner_start) "
                "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
                (
                    run.run_id,
                    run.workflow,
                    storable_text(run.source),
                    storable_text(run.base_dir),
                    run.spec_hash,
                    time.time(),
                    run.max_workers,
                    len(run.task_ids),
                    storable_text(run.log_dir),
                    run.owner_pid,
                    run.owner_start,
                ),
            )
            # In key order, each row lands after the one before it in the
            # table's B-tree instead of at a scattered page. Sorting indices
            # by id builds no tuple per task. A task without a kind is bound
            # as '' (see `_task_insert`).
            ids = run.task_ids
            kinds = [kind or "" for kind in run.task_kinds] or [""] * len(ids)
            order = sorted(range(len(ids)), key=ids.__getitem__)
            for start, size in chunks(len(order)):
                params: list[Any] = [run.run_id]
                for i in order[start : start + size]:
                    params += (ids[i], i, kinds[i])
                conn.execute(_task_insert(size), params)

    def claim_run(
        self,
        run_id: str,
        *,
        owner_pid: int,
        owner_start: int | None,
        owner_alive: Callable[[int, int | None], bool],
    ) -> RunRecord:
        """
        Take ownership of an existing run (to resume it), atomically.

        Raises:
            RunNotFound: no such run.
            RunConflict: a live process (per `owner_alive`) owns it.
        """
        with self._write("take the run") as conn:
            row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFound(f"no run {run_id!r} in {self.path}")
            pid, start = row["owner_pid"], row["owner_start"]
            if (
                pid is not None
                and (pid, start) != (owner_pid, owner_start)
                and owner_alive(pid, start)
            ):
                raise RunConflict(f"run {run_id} is being run by process {pid}")
            conn.execute(
                "UPDATE runs SET owner_pid = ?, owner_start = ? WHERE run_id = ?",
                (owner_pid, owner_start, run_id),
            )
        return self.get_run(run_id)

    def write_batch(
        self,
        events: Sequence[Event],
        *,
        wall_start: float,
        router_state: tuple[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """
        Record `events` (all of one run, in sequence order) and project them
        onto the tables, in one transaction.

        `wall_start` is the Unix time at which the events' run clock read zero.
        `router_state`, if given, is (workflow name, snapshot) saved in the same
        transaction. Idempotent: writing the same batch twice changes nothing.
        """
        rows = [encode_events(events, wall_start)] if events else []
        self.write_rows(rows, router_state=router_state)

    def write_rows(
        self,
        rows: Sequence[EventRows],
        *,
        router_state: tuple[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """
        Record encoded events (`encode_events`, all of one run) and their
        projection, and `router_state` if given, in one transaction.

        Only SQLite runs between the ``BEGIN`` and the ``COMMIT``: a few
        statements, each holding the GIL only to start, so a writer thread
        leaves the event loop its interpreter.
        """
        if not rows and router_state is None:
            return
        with self._write("record events") as conn:
            for chunk in rows:
                for sql, params in chunk.statements:
                    conn.execute(sql, params)
            if rows:
                batch = {
                    "run": rows[0].run_id,
                    "first": min(chunk.first for chunk in rows),
                    "last": max(chunk.last for chunk in rows),
                }
                kinds = frozenset().union(*(chunk.kinds for chunk in rows))
                for statement in projection_for(kinds):
                    conn.execute(statement, batch)
            if router_state is not None:
                workflow, state = router_state
                conn.execute(
                    "INSERT INTO router_state (workflow, state, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (workflow) DO UPDATE SET state = excluded.state, "
                    "updated_at = excluded.updated_at",
                    (workflow, json.dumps(state, sort_keys=True), time.time()),
                )

    # ------------------------------------------------------------------ reads

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with _translated(self.path, "read the database"):
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

    def tasks(self, run_id: str) -> list[TaskRecord]:
        """The run's tasks in declaration order."""
        rows = self._query("SELECT * FROM tasks WHERE run_id = ? ORDER BY idx", (run_id,))
        return [TaskRecord.from_row(row) for row in rows]

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
            "SELECT run_id FROM runs AS r WHERE workflow = ? AND EXISTS ("
            "SELECT 1 FROM attempts AS a WHERE a.run_id = r.run_id AND a.status = 'succeeded') "
            "ORDER BY created_at DESC, run_id DESC LIMIT ?) "
            "AND status = 'succeeded' AND duration IS NOT NULL",
            (workflow, runs),
        )
        durations: dict[str, list[float]] = {}
        for task_id, duration in rows:
            durations.setdefault(task_id, []).append(duration)
        return durations

    def integrity_check(self) -> str:
        """Run ``PRAGMA integrity_check``; ``"ok"`` when the file is sound."""
        return str(self._query("PRAGMA integrity_check")[0][0])

    def task_counts_by_run(self, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """How many tasks of each of `run_ids` are in each state, in one query."""
        counts: dict[str, dict[str, int]] = {run_id: {} for run_id in run_ids}
        if not run_ids:
            return counts
        marks = ", ".join("?" for _ in run_ids)
        rows = self._query(
            f"SELECT run_id, state, count(*) FROM tasks WHERE run_id IN ({marks}) "
            "GROUP BY run_id, state",
            run_ids,
        )
        for run_id, state, n in rows:
            counts[run_id][state] = n
        return counts

    def ready_causes(self, run_id: str) -> dict[str, str | None]:
        """
        For each task that became ready, the task whose end made it ready.

        The scheduler records a finished task (``task_succeeded``, or
        ``task_failed`` with ``continue_on_failure``) and then, right after it,
        ``task_ready`` for every dependent it released; so the task releasing
        another is the last task to end before that task's first
        ``task_ready``: its last dependency to finish. None for tasks made
        ready by the run's (or resumed part's) start. One pass over those
        events in sequence order.
        """
        rows = self._tuples(
            "SELECT kind, task_id FROM events WHERE run_id = ? AND kind IN "
            "('task_ready', 'task_succeeded', 'task_failed', 'run_started', 'run_resumed') "
            "ORDER BY seq",
            (run_id,),
        )
        causes: dict[str, str | None] = {}
        last_ended: str | None = None
        for kind, task_id in rows:
            if kind != "task_ready":
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
        return [AttemptTiming._make(row) for row in rows]

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
        with _translated(self.path, "read the database"):
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
        sql = "SELECT * FROM runs WHERE status IN ('succeeded', 'failed', 'cancelled')"
        params: list[Any] = []
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

    def delete_run(self, run_id: str) -> int:
        """
        Delete a finished run's rows and its attempts' log files; return how many files went.

        One transaction: the log files are removed after the rows are deleted
        and before the commit, so a file that cannot be removed rolls the rows
        back and the run stays whole. Only the files the attempts recorded are
        removed, then the run's log directory if that leaves it empty.

        Raises:
            RunNotFound: no such run.
            RunConflict: the run has not finished.
        """
        with self._write("delete the run") as conn:
            row = conn.execute(
                "SELECT status, log_dir FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise RunNotFound(f"no run {run_id!r} in {self.path}")
            if row["status"] not in ("succeeded", "failed", "cancelled"):
                raise RunConflict(
                    f"run {run_id} is {row['status']}; only finished runs are deleted"
                )
            files = {
                path
                for (path,) in conn.execute(
                    "SELECT out_path FROM attempts WHERE run_id = ? AND out_path IS NOT NULL "
                    "UNION SELECT err_path FROM attempts WHERE run_id = ? AND err_path IS NOT NULL",
                    (run_id, run_id),
                )
            }
            for table in ("events", "attempts", "tasks", "runs"):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            removed = 0
            for path in sorted(files):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed += 1
            if row["log_dir"]:
                # Not empty (files this run did not record) or already gone: leave it.
                with contextlib.suppress(OSError):
                    os.rmdir(row["log_dir"])
        return removed


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


@functools.cache
def _task_insert(rows: int) -> str:
    """
    ``INSERT`` of `rows` pending tasks of one run. Parameters: the run id,
    then (task_id, idx, kind) per task, with ``''`` for no kind (stored as
    NULL; binding ``None`` costs several times more, as in `projection`).
    """
    values = ",".join(("(?,?,?)",) * rows)
    return (
        "INSERT INTO tasks (run_id, task_id, idx, kind, state) "
        f"SELECT ?, column1, column2, nullif(column3, ''), 'pending' FROM (VALUES {values})"
    )


def storable_text(value: str | None) -> str | None:
    """
    `value` as storable text: surrogate escapes (non-UTF-8 bytes in a path or an
    argument) become U+FFFD, since SQLite TEXT must be valid UTF-8.
    """
    if value is None:
        return None
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _create_private(path: Path) -> None:
    """Create the database file (0600) and its directory (0700) if they do not exist."""
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))


def _retry_busy(step: Callable[[], object], attempts: int = 50) -> None:
    """
    Run `step`, retrying on SQLITE_BUSY with a short bounded backoff.

    Two processes opening a new database together race on the switch to WAL,
    which fails at once with SQLITE_BUSY without honouring the busy timeout.
    """
    for attempt in range(attempts):
        try:
            step()
        except sqlite3.OperationalError as error:
            busy = (getattr(error, "sqlite_errorname", "") or "").startswith("SQLITE_BUSY")
            if not busy or attempt == attempts - 1:
                raise
            time.sleep(min(0.2, 0.005 * 2**attempt))
        else:
            return
