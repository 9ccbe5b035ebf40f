"""
The SQLite store: opening a database, and every write to it.

Its reads are `queries.Queries`, its tables and migrations `schema`, its
connection setup and error mapping `connection`. A plain synchronous class
with one `sqlite3` connection. It knows nothing of Trio: the persister calls
it from a worker thread behind a `CapacityLimiter(1)` (so the connection is
opened with ``check_same_thread=False`` and never used by two threads at
once); the CLI's read commands call it directly.

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
- A write that fails transiently (a lock held past the busy timeout, a
  passing I/O error) is tried again as a whole transaction a few times with
  backoff, sleeping in the calling thread (`connection.retrying`); what still
  fails, and every other error, becomes `StoreError` naming the file and
  what to do (`connection`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from ..errors import RunConflict, RunNotFound, StoreError
from .connection import (
    DEFAULT_BUSY_TIMEOUT,
    create_private,
    retry_busy,
    retrying,
    translated,
)
from .events import Event
from .logs import remove_run_logs
from .projection import EventRows, chunks, encode_events, projection_for
from .queries import FINISHED_RUN, Queries
from .records import NewRun, RunRecord
from .schema import SCHEMA_VERSION, check_version, migrate
from .signatures import (
    FileState,
    Recorded,
    read_file_states,
    read_signatures,
    write_file_states,
)
from .soundness import consume_stamp, write_stamp
from .states import RunStatus, TaskState

__all__ = ["DEFAULT_BUSY_TIMEOUT", "SCHEMA_VERSION", "Store", "storable_text"]

T = TypeVar("T")


class Store(Queries):
    """
    One SQLite database of runs.

    Resource handling: the store owns its connection; `close()` (or leaving a
    ``with`` block) closes it. Every write is one ``BEGIN IMMEDIATE``
    transaction. Not thread-safe: callers serialise access. The read
    queries are inherited from `Queries`.
    """

    def __init__(self, connection: sqlite3.Connection, path: str) -> None:
        self._conn = connection
        self.path = path
        self.retries = 0
        """Write transactions tried again after a transient error, since opening."""
        self._stamp_on_exit = False
        """Opened with the whole check: leaving the ``with`` block normally stamps the file."""

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

        `readonly` opens an existing file for reading only, creating nothing;
        a store on read-only media is opened immutable (SQLite cannot create
        its shared-memory file there).

        The file is created readable only by its owner and its directory with
        mode 0700. `check` runs ``PRAGMA quick_check`` (O(size); for resumes
        and runs), unless the file is exactly as a store opened with the check
        left it on a normal exit from its ``with`` block (`soundness`). A file
        that is not a uet-trio database is refused and left untouched.

        Raises:
            StoreError: the file cannot be opened, is not a uet-trio database,
                is damaged, or is locked past `busy_timeout`.
        """
        location = os.fspath(path)
        if readonly:
            try:
                return cls._open(location, busy_timeout, synchronous, readonly, check, "mode=ro")
            except StoreError as error:
                cause = getattr(error.__cause__, "sqlite_errorname", None)
                if cause != "SQLITE_CANTOPEN":
                    raise
            # A WAL database whose directory cannot take the shared-memory
            # file (read-only media) opens only as immutable: nothing can be
            # writing it there, since no writer could create that file either.
            return cls._open(location, busy_timeout, synchronous, readonly, check, "immutable=1")
        return cls._open(location, busy_timeout, synchronous, readonly, check, "")

    @classmethod
    def _open(
        cls,
        location: str,
        busy_timeout: float,
        synchronous: str,
        readonly: bool,
        check: bool,
        query: str,
    ) -> Store:
        """`open` with the read-only URI's `query` (``mode=ro`` or ``immutable=1``)."""
        with translated(location, "open the database"):
            if readonly:
                uri = f"file:{quote(Path(location).resolve().as_posix())}?{query}"
                conn = sqlite3.connect(
                    uri,
                    uri=True,
                    timeout=busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
            else:
                create_private(Path(location))
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
        stamped = check and not readonly and self.path != ":memory:"
        unchanged = stamped and consume_stamp(self.path)
        with translated(self.path, "read the database"):
            version = check_version(conn, self.path, check=check and not unchanged)
        self._stamp_on_exit = stamped
        if readonly:
            return
        # A new file is set up (WAL mode, tables) without syncs: a crash of
        # the program loses nothing either way, and under NORMAL nothing is
        # synced before the first checkpoint, which syncs all of it.
        new = version == 0
        with translated(self.path, "set up the database"):
            conn.execute(f"PRAGMA synchronous={'OFF' if new else synchronous}")
            if self.path != ":memory:":
                retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            # A writer's page cache may grow to 16 MiB (the tasks and attempts
            # of a large run stay in memory while their rows are updated), and
            # the WAL to about 40 MiB before a checkpoint copies it back:
            # fewer, larger checkpoints write each hot page once instead of
            # once per thousand pages of events. Both bound memory and disk,
            # and neither changes what a crash can lose.
            conn.execute("PRAGMA cache_size=-16384")
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            if version < SCHEMA_VERSION:
                retry_busy(lambda: migrate(conn))
            if new:
                conn.execute(f"PRAGMA synchronous={synchronous}")

    def close(self) -> None:
        """Close the connection (everything written is already committed)."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: object
    ) -> None:
        """
        Close; a store opened with the whole check is stamped as sound (`soundness`)
        unless a store error is leaving the block, which may mean damage.

        Any other exit (the run's failure, an interrupt, the command's exit)
        leaves the file as SQLite wrote it, so its next check can be skipped.
        """
        self.close()
        if self._stamp_on_exit and not _holds_store_error(error):
            write_stamp(self.path)

    def _transaction(self, action: str, body: Callable[[sqlite3.Connection], T]) -> T:
        """
        Run `body` in one ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction and return its result.

        Any error rolls the transaction back. A transient SQLite error (a
        lock, a passing I/O error: `connection.transient`) runs the whole
        transaction again, a few times with backoff (`connection.retrying`);
        every write is idempotent, so that can neither lose nor double a
        row. What still fails becomes a `StoreError`.
        """
        conn = self._conn

        def once() -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    # After an I/O error SQLite may have rolled back already,
                    # or may refuse; the error that matters is the first.
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            return result

        with translated(self.path, action):
            return retrying(once, on_retry=self._count_retry)

    def _count_retry(self) -> None:
        self.retries += 1

    # ------------------------------------------------------------------ writes

    def create_run(self, run: NewRun) -> None:
        """
        Insert the run row and one ``pending`` row per task, in one transaction.

        Tried again after a transient error like every write: a try whose
        COMMIT landed although it reported an error is recognised by its
        creation time and owner, so the run is neither doubled nor refused.
        """
        created_at = time.time()

        def insert(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT created_at, owner_pid FROM runs WHERE run_id = ?", (run.run_id,)
            ).fetchone()
            if row is not None and tuple(row) == (created_at, run.owner_pid):
                return
            conn.execute(
                "INSERT INTO runs (run_id, workflow, source, base_dir, spec_hash, status, "
                "created_at, max_workers, task_count, log_dir, owner_pid, owner_start) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.run_id,
                    run.workflow,
                    storable_text(run.source),
                    storable_text(run.base_dir),
                    run.spec_hash,
                    RunStatus.PENDING.value,
                    created_at,
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

        self._transaction("record the new run", insert)

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

        def claim(conn: sqlite3.Connection) -> None:
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

        self._transaction("take the run", claim)
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
        file_states: Sequence[tuple[str, FileState]] = (),
    ) -> None:
        """
        Record encoded events (`encode_events`, all of one run) and their
        projection, `router_state` if given and `file_states` (stat cache
        rows), in one transaction.

        Only SQLite runs between the ``BEGIN`` and the ``COMMIT``: a few
        statements, each holding the GIL only to start, so a writer thread
        leaves the event loop its interpreter.
        """
        if not rows and router_state is None and not file_states:
            return

        def record(conn: sqlite3.Connection) -> None:
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
            if file_states:
                write_file_states(conn, file_states)

        self._transaction("record events", record)

    def signatures(self, base_dir: str) -> dict[str, Recorded]:
        """The signature each task of the workflows in `base_dir` recorded at its last success."""
        return read_signatures(self._conn, base_dir)

    def file_states(self) -> dict[str, FileState]:
        """The stat cache of up-to-date checks, by absolute path."""
        return read_file_states(self._conn)

    def delete_run(self, run_id: str) -> int:
        """
        Delete a finished run's rows and its attempts' log files; return how many files went.

        One transaction: the log files are removed after the rows are deleted
        and before the commit, so a file that cannot be removed rolls the rows
        back and the run stays whole. Only the files the attempts recorded are
        removed, then the run's log directory if that leaves it empty
        (`logs.remove_run_logs`).

        Raises:
            RunNotFound: no such run.
            RunConflict: the run has not finished.
        """
        removed = 0
        tried = False

        def delete(conn: sqlite3.Connection) -> None:
            nonlocal removed, tried
            row = conn.execute(
                "SELECT status, log_dir FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                if tried:
                    # The COMMIT of an earlier try landed although it reported an error.
                    return
                raise RunNotFound(f"no run {run_id!r} in {self.path}")
            if row["status"] not in FINISHED_RUN:
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
            # A try that removed files and then failed to commit is tried
            # again; its files are gone by then and not counted twice.
            tried = True
            removed += remove_run_logs(files, row["log_dir"])

        self._transaction("delete the run", delete)
        return removed


@functools.cache
def _holds_store_error(error: BaseException | None) -> bool:
    """Whether `error` is a `StoreError`, or holds one in its groups or causes."""
    pending = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, StoreError):
            return True
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.append(current.__cause__)
    return False


def _task_insert(rows: int) -> str:
    """
    ``INSERT`` of `rows` pending tasks of one run. Parameters: the run id,
    then (task_id, idx, kind) per task, with ``''`` for no kind (stored as
    NULL; binding ``None`` costs several times more, as in `projection`).
    """
    values = ",".join(("(?,?,?)",) * rows)
    return (
        "INSERT INTO tasks (run_id, task_id, idx, kind, state) "
        f"SELECT ?, column1, column2, nullif(column3, ''), '{TaskState.PENDING}' "
        f"FROM (VALUES {values})"
    )


def storable_text(value: str | None) -> str | None:
    """
    `value` as storable text: surrogate escapes (non-UTF-8 bytes in a path or an
    argument) become U+FFFD, since SQLite TEXT must be valid UTF-8.
    """
    if value is None:
        return None
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
