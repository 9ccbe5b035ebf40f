"""The store's contract, run against a file database and an in-memory one."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from uet_trio import Event, EventKind, RunConflict, RunNotFound, Store, StoreError
from uet_trio.recording import report
from uet_trio.recording.projection import (
    CHUNK_SIZES,
    READY_UPDATE,
    RESUME_UPDATE,
    RUN_LAST_SEQ,
    RUN_UPDATE,
    TASK_PROJECTION,
    projection_for,
)
from uet_trio.recording.records import NewRun
from uet_trio.recording.store import SCHEMA_VERSION


def new_run(run_id: str = "r1", tasks: int = 2) -> NewRun:
    return NewRun(
        run_id=run_id,
        workflow="wf",
        task_ids=[f"t{i}" for i in range(tasks)],
    )


def events_of(
    rows: list[tuple[EventKind, str | None, int | None, dict[str, Any]]], run_id: str = "r1"
) -> list[Event]:
    """(kind, task id, attempt, data) rows as the events of one run, a quarter second apart."""
    return [
        Event(run_id=run_id, seq=i + 1, kind=k, time=i * 0.25, task_id=t, attempt=a, data=d)
        for i, (k, t, a, d) in enumerate(rows)
    ]


def task_events(run_id: str = "r1") -> list[Event]:
    return events_of(
        [
            (EventKind.RUN_STARTED, None, None, {}),
            (EventKind.TASK_READY, "t0", None, {}),
            (EventKind.ATTEMPT_STARTED, "t0", 1, {"tool": None, "argv": ["true"]}),
            (
                EventKind.ATTEMPT_FINISHED,
                "t0",
                1,
                {"status": "succeeded", "exit_code": 0, "duration": 0.5},
            ),
            (EventKind.TASK_SUCCEEDED, "t0", 1, {}),
            (EventKind.TASK_SKIPPED, "t1", None, {"upstream": "x"}),
            (EventKind.RUN_FINISHED, None, None, {"status": "failed"}),
        ],
        run_id,
    )


@pytest.fixture(params=["file", "memory"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "u.db") if request.param == "file" else Store.memory()
    with opened:
        yield opened


class TestBusySeconds:
    def test_the_sum_in_sql_is_the_sum_of_the_report(self, any_store: Store) -> None:
        """
        `Store.busy_seconds` adds what `report.busy_seconds` adds: a measured
        duration, a lost attempt's start to end, a running one's start to now.
        """
        any_store.create_run(new_run(tasks=3))
        any_store.write_batch(
            events_of(
                [
                    (EventKind.RUN_STARTED, None, None, {}),
                    (EventKind.ATTEMPT_STARTED, "t0", 1, {"tool": None, "argv": ["true"]}),
                    (EventKind.ATTEMPT_STARTED, "t1", 1, {"tool": None, "argv": ["true"]}),
                    (EventKind.ATTEMPT_STARTED, "t2", 1, {"tool": None, "argv": ["true"]}),
                    (
                        EventKind.ATTEMPT_FINISHED,
                        "t0",
                        1,
                        {"status": "succeeded", "exit_code": 0, "duration": 0.125},
                    ),
                    (EventKind.ATTEMPT_LOST, "t1", 1, {"status": "lost", "group_killed": True}),
                ]
            ),
            wall_start=1000.0,
        )
        timings = any_store.attempt_timings("r1")
        assert [t.duration is None for t in timings] == [False, True, True]
        for now in (None, 1003.0):
            expected = report.busy_seconds(timings, now=now)
            assert any_store.busy_seconds("r1", now=now) == pytest.approx(expected)
        # 0.125 measured; t1 lost 0.75 s after its start; t2 running since 1000.75.
        assert any_store.busy_seconds("r1", now=1003.0) == pytest.approx(0.125 + 0.75 + 2.25)
        assert any_store.busy_seconds("other") == 0.0


class TestContract:
    def test_batch_projects_onto_tables(self, any_store: Store) -> None:
        """Events land in order and the run, task and attempt rows follow them."""
        any_store.create_run(new_run())
        any_store.write_batch(task_events(), wall_start=1000.0)
        run = any_store.get_run("r1")
        assert (run.status, run.last_seq, run.started_at, run.finished_at) == (
            "failed",
            7,
            1000.0,
            1001.5,
        )
        tasks = [(t.state, t.exit_code) for t in any_store.tasks("r1")]
        assert tasks == [("succeeded", 0), ("skipped", None)]
        (attempt,) = any_store.attempts("r1")
        assert (attempt.status, attempt.exit_code, attempt.duration) == ("succeeded", 0, 0.5)
        assert attempt.argv == ["true"]
        assert [e.seq for e in any_store.events("r1")] == list(range(1, 8))
        assert [e.seq for e in any_store.events("r1", kinds=["task_skipped"])] == [6]
        assert [e.seq for e in any_store.events("r1", task_id="t0", after_seq=2)] == [3, 4, 5]

    def test_missing_values_are_null(self, any_store: Store) -> None:
        """A missing task, attempt, data or kind is stored as NULL, whatever is bound for it."""
        any_store.create_run(
            NewRun(run_id="r1", workflow="wf", task_ids=["t0", "t1"], task_kinds=[None, "lint"])
        )
        any_store.write_batch(task_events(), wall_start=0.0)
        rows = any_store._conn.execute(
            "SELECT seq, task_id IS NULL, attempt IS NULL, data IS NULL FROM events ORDER BY seq"
        ).fetchall()
        assert [tuple(row) for row in rows] == [
            (1, 1, 1, 1),
            (2, 0, 1, 1),
            (3, 0, 0, 0),
            (4, 0, 0, 0),
            (5, 0, 0, 1),
            (6, 0, 1, 0),
            (7, 1, 1, 0),
        ]
        kinds = any_store._conn.execute("SELECT task_id, kind FROM tasks ORDER BY idx").fetchall()
        assert [tuple(row) for row in kinds] == [("t0", None), ("t1", "lint")]

    def test_every_kind_is_stored_by_name(self, any_store: Store) -> None:
        """Kinds are bound as numbers; the rows hold their names."""
        any_store.create_run(new_run())
        events = [
            Event(
                run_id="r1",
                seq=i + 1,
                kind=kind,
                time=0.0,
                task_id=None if kind.value.startswith("run") else "t0",
                attempt=1 if kind.value.startswith("attempt") else None,
                data={"status": "failed"} if kind is EventKind.RUN_FINISHED else {},
            )
            for i, kind in enumerate(EventKind)
        ]
        any_store.write_batch(events, wall_start=0.0)
        rows = any_store._conn.execute("SELECT kind FROM events ORDER BY seq").fetchall()
        assert [row[0] for row in rows] == [kind.value for kind in EventKind]

    def test_a_batch_of_every_statement_size_lands_whole(self, any_store: Store) -> None:
        """5,461 events take one insert of each size; every row keeps its own fields."""
        any_store.create_run(new_run(tasks=1))
        count = sum(CHUNK_SIZES)
        events = [
            Event(
                run_id="r1",
                seq=seq,
                kind=EventKind.TASK_READY,
                time=seq / 8,
                task_id="t0",
                attempt=seq,
                data={"n": seq},
            )
            for seq in range(1, count + 1)
        ]
        any_store.write_batch(events, wall_start=1000.0)
        rows = any_store._conn.execute(
            "SELECT seq, t, at, attempt, data->>'n' FROM events WHERE run_id = 'r1' ORDER BY seq"
        ).fetchall()
        assert [tuple(row) for row in rows] == [
            (seq, seq / 8, 1000.0 + seq / 8, seq, seq) for seq in range(1, count + 1)
        ]
        assert any_store.get_run("r1").last_seq == count

    def test_a_batch_without_run_events_only_advances_the_run(self, any_store: Store) -> None:
        """The run's status and times come from run-level events; other batches move last_seq."""
        any_store.create_run(new_run())
        events = task_events()
        any_store.write_batch(events[:2], wall_start=1000.0)
        started = any_store.get_run("r1")
        assert (started.status, started.last_seq, started.started_at) == ("running", 2, 1000.0)
        any_store.write_batch(events[2:6], wall_start=1000.0)
        running = any_store.get_run("r1")
        assert (running.status, running.last_seq, running.started_at) == ("running", 6, 1000.0)
        assert running.finished_at is None
        any_store.write_batch(events[6:], wall_start=1000.0)
        finished = any_store.get_run("r1")
        assert (finished.status, finished.last_seq, finished.finished_at) == ("failed", 7, 1001.5)

    def test_a_batch_of_ready_events_only_readies_its_tasks(self, any_store: Store) -> None:
        """A ready-only batch leaves a task as TASK_UPDATE would: ready."""
        any_store.create_run(new_run())
        events = events_of(
            [
                (EventKind.RUN_STARTED, None, None, {}),
                (EventKind.TASK_READY, "t0", None, {}),
                (EventKind.ATTEMPT_STARTED, "t0", 1, {"argv": ["false"]}),
                (EventKind.ATTEMPT_FINISHED, "t0", 1, {"status": "failed", "exit_code": 1}),
                (EventKind.TASK_FAILED, "t0", None, {"exit_code": 1}),
                (EventKind.RUN_FINISHED, None, None, {"status": "failed"}),
                (EventKind.RUN_RESUMED, None, None, {}),
                (EventKind.TASK_READY, "t0", None, {}),
                (EventKind.TASK_READY, "t1", None, {}),
            ]
        )
        any_store.write_batch(events[:6], wall_start=1000.0)
        (t0, t1) = any_store.tasks("r1")
        assert (t0.state, t0.exit_code, t0.finished_at) == ("failed", 1, 1001.0)
        any_store.write_batch(events[6:7], wall_start=1000.0)
        (t0, t1) = any_store.tasks("r1")
        assert (t0.state, t0.exit_code, t0.finished_at) == ("pending", None, None)
        assert projection_for({e.kind for e in events[7:]}) == (READY_UPDATE, RUN_LAST_SEQ)
        any_store.write_batch(events[7:], wall_start=1000.0)
        (t0, t1) = any_store.tasks("r1")
        assert (t0.state, t0.exit_code, t0.finished_at) == ("ready", None, None)
        assert (t0.attempts, t0.started_at) == (1, 1000.5)
        assert t1.state == "ready"
        assert any_store.get_run("r1").last_seq == 9

    def test_the_projection_follows_the_kinds_in_the_batch(self) -> None:
        """A statement runs when the batch holds a kind it reads; run events bring RUN_UPDATE."""
        start, ready = EventKind.RUN_STARTED, EventKind.TASK_READY
        insert, spawn, finish, task_update, signed = (statement for statement, _ in TASK_PROJECTION)
        assert projection_for({start}) == (RUN_UPDATE,)
        assert projection_for({start, ready}) == (READY_UPDATE, RUN_UPDATE)
        routed = {ready, EventKind.ROUTE_CHOSEN}
        assert projection_for(routed) == (READY_UPDATE, RUN_LAST_SEQ)
        assert projection_for({ready, EventKind.TASK_SKIPPED}) == (task_update, RUN_LAST_SEQ)
        succeeded = {EventKind.TASK_SUCCEEDED}
        assert projection_for(succeeded) == (task_update, signed, RUN_LAST_SEQ)
        in_process = {EventKind.ATTEMPT_STARTED, EventKind.ATTEMPT_FINISHED}
        assert projection_for(in_process) == (insert, finish, task_update, RUN_LAST_SEQ)
        everything = (RESUME_UPDATE, insert, spawn, finish, task_update, signed, RUN_UPDATE)
        assert projection_for(set(EventKind)) == everything
        up_to_date = {EventKind.TASK_UP_TO_DATE}
        assert projection_for(up_to_date) == (task_update, RUN_LAST_SEQ)
        assert projection_for({EventKind.RUN_RESUMED, ready}) == (
            RESUME_UPDATE,
            READY_UPDATE,
            RUN_UPDATE,
        )

    def test_each_statement_reads_exactly_the_kinds_it_declares(self) -> None:
        """The kinds paired with a statement are the kinds its SQL names."""
        for statement, reads in TASK_PROJECTION:
            named = {kind for kind in EventKind if f"'{kind.value}'" in statement}
            assert named == reads

    def test_batches_are_idempotent(self, any_store: Store) -> None:
        """Writing a batch twice adds no duplicate and keeps the projection."""
        any_store.create_run(new_run())
        events = task_events()
        any_store.write_batch(events[:4], wall_start=0.0)
        any_store.write_batch(events, wall_start=0.0)
        any_store.write_batch(events, wall_start=0.0)
        assert len(any_store.events("r1")) == 7
        assert len(any_store.attempts("r1")) == 1
        assert any_store.get_run("r1").status == "failed"

    def test_a_finished_attempt_stays_finished(self, any_store: Store) -> None:
        """A late event cannot move a terminal attempt (UPDATE ... WHERE status='running')."""
        any_store.create_run(new_run())
        any_store.write_batch(task_events()[:4], wall_start=0.0)
        late = Event(
            run_id="r1", seq=8, kind=EventKind.ATTEMPT_LOST, time=9.0, task_id="t0", attempt=1
        )
        any_store.write_batch([late], wall_start=0.0)
        assert any_store.attempts("r1")[0].status == "succeeded"

    def test_run_lookup_by_prefix(self, any_store: Store) -> None:
        """A unique prefix finds a run; an ambiguous one lists the candidates."""
        for run_id in ("20260101-000000-aaaa", "20260101-000000-aabb", "20260102-000000-cccc"):
            any_store.create_run(new_run(run_id))
        assert any_store.resolve_run("20260102") == "20260102-000000-cccc"
        with pytest.raises(RunNotFound, match=r"ambiguous.*aaaa.*aabb"):
            any_store.resolve_run("20260101-000000-aa")
        with pytest.raises(RunNotFound, match="no run matches"):
            any_store.resolve_run("1999")
        assert any_store.resolve_run("20260101-000000-aabb") == "20260101-000000-aabb"

    def test_router_state_round_trip(self, any_store: Store) -> None:
        """Router state saved with a batch is loaded back by workflow name."""
        any_store.create_run(new_run())
        any_store.write_batch(
            task_events()[:1], wall_start=0.0, router_state=("wf", {"positions": {"k": 3}})
        )
        assert any_store.load_router_state("wf") == {"positions": {"k": 3}}
        assert any_store.load_router_state("other") is None


class TestFile:
    def test_settings_and_schema_version(self, tmp_path: Path) -> None:
        """WAL, the schema version and private permissions are set on a new file."""
        path = tmp_path / "deep" / "u.db"
        with Store.open(path):
            pass
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700

    def test_a_schema_1_file_is_brought_up_to_date(self, tmp_path: Path) -> None:
        """Opening a file of schema 1 drops its event-kind index and keeps its runs."""
        path = tmp_path / "u.db"
        with Store.open(path) as store:
            store.create_run(new_run())
            store.write_batch(task_events(), wall_start=0.0)
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE INDEX events_by_kind ON events (run_id, kind)")
            conn.execute("DROP TABLE signatures")
            conn.execute("DROP TABLE file_states")
            conn.execute("PRAGMA user_version=1")
        with Store.open(path) as store:
            assert len(store.events("r1")) == 7
            assert store.signatures(str(tmp_path)) == {}
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
            indexes = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
            assert "events_by_kind" not in {name for (name,) in indexes}

    def test_a_schema_2_file_gains_the_up_to_date_tables(self, tmp_path: Path) -> None:
        """A file of schema 2 gains the signatures and stat cache tables and keeps its runs."""
        path = tmp_path / "u.db"
        with Store.open(path) as store:
            store.create_run(new_run())
            store.write_batch(task_events(), wall_start=0.0)
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE signatures")
            conn.execute("DROP TABLE file_states")
            conn.execute("PRAGMA user_version=2")
        with Store.open(path) as store:
            assert len(store.events("r1")) == 7
            assert store.file_states() == {}

    def test_a_schema_3_file_gains_the_index_of_resumptions(self, tmp_path: Path) -> None:
        """A file of schema 3 gains the partial index that `idle_seconds` reads through."""
        path = tmp_path / "u.db"
        with Store.open(path) as store:
            store.create_run(new_run())
            store.write_batch(task_events(), wall_start=0.0)
        with sqlite3.connect(path) as conn:
            conn.execute("DROP INDEX events_resumed")
            conn.execute("PRAGMA user_version=3")
        with Store.open(path) as store:
            assert len(store.events("r1")) == 7
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            indexes = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
            assert "events_resumed" in {name for (name,) in indexes}
        with Store.open(path) as store:
            assert store.idle_seconds(["r1"]) == {}

    def test_not_a_database_is_refused_untouched(self, tmp_path: Path) -> None:
        """A file that is not SQLite is refused with a StoreError and left as it was."""
        path = tmp_path / "notes.txt"
        path.write_bytes(b"just some text, not a database\n" * 100)
        before = path.read_bytes()
        with pytest.raises(StoreError, match=r"not a uet-trio database|file is not a database"):
            Store.open(path)
        assert path.read_bytes() == before

    def test_foreign_sqlite_file_is_refused(self, tmp_path: Path) -> None:
        """Another program's SQLite database is not taken over."""
        path = tmp_path / "other.db"
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE mine (x)")
        with pytest.raises(StoreError, match="not a uet-trio database"):
            Store.open(path)

    def test_two_connections_share_the_file(self, tmp_path: Path) -> None:
        """A second store on the same file sees what the first committed."""
        path = tmp_path / "u.db"
        with Store.open(path) as first, Store.open(path) as second:
            first.create_run(new_run())
            first.write_batch(task_events(), wall_start=0.0)
            assert second.get_run("r1").status == "failed"
            second.create_run(new_run("r2"))
            assert first.resolve_run("r2") == "r2"


class TestDeleteRun:
    def logged_run(self, store: Store, log_dir: Path) -> list[Path]:
        """A finished run whose attempt recorded two log files in `log_dir`."""
        log_dir.mkdir()
        files = [log_dir / "w0.out", log_dir / "w0.err"]
        for file in files:
            file.write_text("output\n")
        store.create_run(
            NewRun(run_id="r1", workflow="wf", task_ids=["t0", "t1"], log_dir=str(log_dir))
        )
        events = task_events()
        spawned = {
            "pid": 1,
            "proc_start": None,
            "worker": 0,
            "out_path": str(files[0]),
            "out_offset": 0,
            "err_path": str(files[1]),
            "err_offset": 0,
        }
        events.insert(3, events[3]._replace(kind=EventKind.ATTEMPT_SPAWNED, data=spawned))
        store.write_batch(
            [event._replace(seq=seq) for seq, event in enumerate(events, 1)], wall_start=0.0
        )
        return files

    def test_rows_and_files_go_together(self, tmp_path: Path) -> None:
        """The run's rows, its recorded files and its emptied log directory are removed."""
        with Store.open(tmp_path / "u.db") as store:
            files = self.logged_run(store, tmp_path / "logs")
            assert store.runs_to_collect(keep=0) == [store.get_run("r1")]
            assert store.delete_run("r1") == 2
            assert not any(file.exists() for file in files)
            assert not (tmp_path / "logs").exists()
            with pytest.raises(RunNotFound):
                store.get_run("r1")
            assert store.events("r1") == []

    def test_a_file_that_cannot_go_keeps_the_run_whole(self, tmp_path: Path) -> None:
        """When a recorded file cannot be removed, the rows are rolled back."""
        with Store.open(tmp_path / "u.db") as store:
            files = self.logged_run(store, tmp_path / "logs")
            files[0].unlink()
            files[0].mkdir()
            (files[0] / "inside").write_text("x")
            with pytest.raises(StoreError, match="delete the run"):
                store.delete_run("r1")
            assert store.get_run("r1").status == "failed"
            assert len(store.events("r1")) == 8

    def test_an_unfinished_run_is_refused(self, any_store: Store) -> None:
        """A run still pending or running is never deleted."""
        any_store.create_run(new_run())
        with pytest.raises(RunConflict, match="only finished runs"):
            any_store.delete_run("r1")
        assert any_store.runs_to_collect(keep=0) == []
