"""
Transient storage errors: every write of the store is tried again, a permanent error is not.

Faults are injected into the real store's SQLite connection (a
`sqlite3.Connection` subclass that fails chosen statements with a named
SQLite error, or that reports an error after a COMMIT that did land), or
made real with a second connection holding the write lock for a while.
After each fault the run must complete with events exactly 1..last_seq, and
the file must pass ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from uet_trio import Store, StoreError
from uet_trio.recording import connection
from uet_trio.recording.connection import RETRY_DELAYS, transient
from uet_trio.recording.records import NewRun
from uet_trio.recording.states import RunStatus, TaskState
from uet_trio.running.engine import run_workflow
from uet_trio.running.executors.procfs import process_start_time
from uet_trio.workflow.spec import TaskSpec, WorkflowSpec


def integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` through a fresh connection."""
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def assert_gap_free(store: Store, run_id: str) -> None:
    """The run's events are exactly 1..last_seq, each once."""
    seqs = [event.seq for event in store.events(run_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert store.get_run(run_id).last_seq == len(seqs)


def sqlite_error(name: str) -> sqlite3.OperationalError:
    """An error as SQLite raises it, named `name`."""
    error = sqlite3.OperationalError(f"injected {name}")
    error.sqlite_errorname = name
    return error


class Flaky(sqlite3.Connection):
    """
    A real connection that fails the statements starting with `prefix` numbered in `at`.

    The matching statements are counted from 1. With `after`, the statement
    runs first and the error is raised after it (a COMMIT that landed but
    reported an error).
    """

    prefix = "COMMIT"
    name = "SQLITE_IOERR_FSYNC"
    after = False
    at: frozenset[int] | range = frozenset({1})
    seen = 0
    failed = 0

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if sql.lstrip().startswith(self.prefix):
            self.seen += 1
            if self.seen in self.at:
                self.failed += 1
                if self.after:
                    super().execute(sql, parameters)
                raise sqlite_error(self.name)
        return super().execute(sql, parameters)


def flaky_store(path: Path, **faults: Any) -> Store:
    """The real store at `path` (created first) over a `Flaky` connection with `faults`."""
    Store.open(path).close()
    conn = sqlite3.connect(
        path, factory=Flaky, timeout=5.0, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    for key, value in faults.items():
        setattr(conn, key, value)
    return Store(conn, str(path))


@pytest.fixture
def spec(tmp_path: Path) -> WorkflowSpec:
    """Twenty quick real processes on two workers."""
    tasks = [TaskSpec(id=f"t{i}", command=("true",)) for i in range(20)]
    return WorkflowSpec(name="flaky", tasks=tasks, max_workers=2, base_dir=tmp_path)


def new_run(run_id: str, spec: WorkflowSpec) -> NewRun:
    return NewRun(
        run_id=run_id,
        workflow=spec.name,
        source=None,
        base_dir=str(spec.base_dir),
        spec_hash=spec.fingerprint(),
        max_workers=1,
        log_dir="",
        owner_pid=os.getpid(),
        owner_start=process_start_time(os.getpid()),
        task_ids=[task.id for task in spec.tasks],
        task_kinds=[task.kind for task in spec.tasks],
    )


def test_which_errors_are_transient() -> None:
    """Locks and most I/O errors are tried again; full, damaged and lasting I/O errors are not."""
    for name in (
        "SQLITE_BUSY",
        "SQLITE_BUSY_SNAPSHOT",
        "SQLITE_LOCKED",
        "SQLITE_LOCKED_SHAREDCACHE",
        "SQLITE_IOERR",
        "SQLITE_IOERR_WRITE",
        "SQLITE_IOERR_FSYNC",
        "SQLITE_IOERR_SHORT_READ",
    ):
        assert transient(sqlite_error(name)), name
    for name in (
        "SQLITE_FULL",
        "SQLITE_READONLY",
        "SQLITE_CORRUPT",
        "SQLITE_NOTADB",
        "SQLITE_CANTOPEN",
        "SQLITE_CONSTRAINT_UNIQUE",
        "SQLITE_IOERR_ACCESS",
        "SQLITE_IOERR_CORRUPTFS",
        "SQLITE_IOERR_DATA",
    ):
        assert not transient(sqlite_error(name)), name
    assert not transient(sqlite3.OperationalError("no name"))


@pytest.mark.parametrize(
    ("prefix", "name", "after"),
    [
        ("COMMIT", "SQLITE_IOERR_FSYNC", False),
        ("COMMIT", "SQLITE_IOERR_WRITE", True),
        ("BEGIN", "SQLITE_BUSY", False),
        ("INSERT", "SQLITE_IOERR_SHORT_READ", False),
    ],
)
async def test_a_run_survives_transient_errors_at_every_kind_of_write(
    db_path: Path, spec: WorkflowSpec, prefix: str, name: str, after: bool
) -> None:
    """
    Now and then a statement fails (in run creation, event batches, router
    state): the run completes, each event is recorded once.
    """
    # Ten matching statements apart: more than one transaction holds, so
    # each failure is followed by a try that succeeds.
    faults = frozenset(range(2, 60, 10))
    store = flaky_store(db_path, prefix=prefix, name=name, after=after, at=faults)
    with store:
        result = await run_workflow(spec, store=store)
        assert result.status is RunStatus.SUCCEEDED
        assert set(result.states.values()) == {TaskState.SUCCEEDED}
        assert store.retries == store._conn.failed > 0  # type: ignore[attr-defined]
        assert_gap_free(store, result.run_id)
        assert store.task_counts(result.run_id) == {"succeeded": 20}
        assert len(store.attempts(result.run_id)) == 20
    assert integrity(db_path) == "ok"


def test_run_creation_whose_commit_landed_is_not_doubled(db_path: Path, spec: WorkflowSpec) -> None:
    """A COMMIT that landed but reported an I/O error: the retry sees the run, inserts nothing."""
    with flaky_store(db_path, after=True) as store:
        store.create_run(new_run("r1", spec))
        assert store.retries == 1
        assert store.get_run("r1").task_count == 20
        assert len(store.tasks("r1")) == 20
    assert integrity(db_path) == "ok"


def test_a_run_id_taken_by_another_run_is_still_refused(db_path: Path, spec: WorkflowSpec) -> None:
    """Recognising one's own landed COMMIT does not hide a real collision of run ids."""
    with Store.open(db_path) as store:
        store.create_run(new_run("r1", spec))
        with pytest.raises(StoreError, match="UNIQUE"):
            store.create_run(new_run("r1", spec))
        assert store.retries == 0


def test_claim_and_delete_are_retried(db_path: Path, spec: WorkflowSpec, tmp_path: Path) -> None:
    """
    Taking a run and deleting one (with its log file) survive transient
    errors too, even a COMMIT that landed and reported an error.
    """
    log = tmp_path / "w0.out"
    log.write_text("out\n")
    with Store.open(db_path) as store:
        store.create_run(new_run("r1", spec))
        store._conn.execute(
            "INSERT INTO attempts (run_id, task_id, attempt, status, started_at, out_path) "
            "VALUES ('r1', 't0', 1, 'succeeded', 0, ?)",
            (str(log),),
        )
    with flaky_store(db_path, after=True, at={1, 3}) as store:
        claimed = store.claim_run(
            "r1", owner_pid=1, owner_start=None, owner_alive=lambda pid, start: False
        )
        assert claimed.owner_pid == 1
        store._conn.execute("UPDATE runs SET status = 'succeeded' WHERE run_id = 'r1'")
        assert store.delete_run("r1") == 1
        assert store.retries == 2
        assert not log.exists()
        assert store.list_runs() == []
    assert integrity(db_path) == "ok"


@pytest.fixture
def lock_for(db_path: Path) -> Iterator[Any]:
    """Hold the write lock from a second connection for a while (in a thread)."""
    threads: list[threading.Thread] = []

    def hold(seconds: float) -> None:
        blocker = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        done = threading.Event()

        def release() -> None:
            done.wait(seconds)
            blocker.execute("COMMIT")
            blocker.close()

        thread = threading.Thread(target=release)
        thread.start()
        threads.append(thread)

    yield hold
    for thread in threads:
        thread.join()


async def test_run_creation_waits_out_a_lock_past_the_busy_timeout(
    db_path: Path, spec: WorkflowSpec, lock_for: Any
) -> None:
    """Another connection holds the lock longer than the busy timeout: creation retries, runs."""
    with Store.open(db_path, busy_timeout=0.05) as store:
        lock_for(0.3)
        result = await run_workflow(spec, store=store)
        assert result.status is RunStatus.SUCCEEDED
        assert store.retries >= 1
        assert_gap_free(store, result.run_id)
    assert integrity(db_path) == "ok"


async def test_a_permanent_error_is_not_retried(db_path: Path, spec: WorkflowSpec) -> None:
    """SQLITE_FULL at every COMMIT: StoreError (exit 4) at the first write, no retry, no run."""
    with flaky_store(db_path, name="SQLITE_FULL", at=range(1, 100)) as store:
        with pytest.raises(StoreError, match="SQLITE_FULL") as caught:
            await run_workflow(spec, store=store)
        assert caught.value.exit_code == 4
        assert not caught.value.transient
        assert store.retries == 0
        assert store._conn.failed == 1  # type: ignore[attr-defined]
        assert store.list_runs() == []
    assert integrity(db_path) == "ok"


async def test_a_transient_error_that_stays_gives_up_after_the_bounded_tries(
    db_path: Path, spec: WorkflowSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error on every COMMIT: tried len(RETRY_DELAYS) more times, then StoreError."""
    # As many tries, without the waits (only their number is checked).
    monkeypatch.setattr(connection, "RETRY_DELAYS", (0.0,) * len(RETRY_DELAYS))
    with flaky_store(db_path, name="SQLITE_IOERR_WRITE", at=range(1, 100)) as store:
        with pytest.raises(StoreError, match="SQLITE_IOERR_WRITE") as caught:
            await run_workflow(spec, store=store)
        assert caught.value.exit_code == 4
        assert store.retries == len(RETRY_DELAYS)
        assert store._conn.failed == len(RETRY_DELAYS) + 1  # type: ignore[attr-defined]
        assert store.list_runs() == []
    assert integrity(db_path) == "ok"
