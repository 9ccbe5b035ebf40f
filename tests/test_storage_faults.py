"""
Storage faults: a full or read-only database, I/O errors, locks, damaged files.

Each fault is made real and deterministic: ``PRAGMA max_page_count`` for
SQLITE_FULL, ``RLIMIT_FSIZE`` (with SIGXFSZ ignored, in a child process) for
an I/O error, ``mode=ro`` URIs for a read-only database (root ignores chmod),
and a second process holding the write lock. After every fault the file must
pass ``PRAGMA integrity_check``, keep every event it committed (a gap-free
sequence from 1), and a resumed run must finish with no duplicate and no gap.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from uet_trio import Store, StoreError
from uet_trio.recording.events import Event, EventKind
from uet_trio.recording.records import NewRun
from uet_trio.recording.states import RunStatus, TaskState
from uet_trio.running.engine import open_run, run_workflow
from uet_trio.running.executors.procfs import process_start_time
from uet_trio.workflow.spec import TaskSpec, WorkflowSpec

from .conftest import UET, run_uet

MANY = 60
"""Quick tasks behind the long one: enough events to outgrow the database."""


def integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` through a fresh connection."""
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def assert_gap_free(store: Store, run_id: str) -> list[int]:
    """The run's events are exactly 1..last_seq, each once; returns the sequence."""
    seqs = [event.seq for event in store.events(run_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert store.get_run(run_id).last_seq == len(seqs)
    return seqs


def quick_flow(tmp_path: Path, marker: Path) -> WorkflowSpec:
    """A long task (until `marker` exists) started first, then MANY quick ones on 2 workers."""
    long_command = f'[ -e "{marker}" ] || exec sleep 60'
    tasks = [TaskSpec(id="long", command=("sh", "-c", long_command), priority=10)]
    tasks += [TaskSpec(id=f"q{i}", command=("true",)) for i in range(MANY)]
    return WorkflowSpec(
        name="faults", tasks=tasks, max_workers=2, kill_grace=0.2, base_dir=tmp_path
    )


class TestFullDatabase:
    async def test_full_database_stops_the_run_and_resume_finishes_it(
        self, tmp_path: Path, db_path: Path
    ) -> None:
        """SQLITE_FULL mid-run: the run stops, kills its process, keeps commits; resume ends it."""
        marker = tmp_path / "space-is-back"
        spec = quick_flow(tmp_path, marker)
        long_pid: list[int] = []
        with Store.open(db_path) as store:
            with pytest.raises(StoreError) as caught:
                async with open_run(spec, store=store, run_id="full-run") as run:
                    async for event in run.events():
                        if event.kind is EventKind.ATTEMPT_SPAWNED and event.task_id == "long":
                            long_pid.append(event.data["pid"])
                            # From now on the file may not grow by a single page.
                            pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
                            store._conn.execute(f"PRAGMA max_page_count = {pages}")
            message = str(caught.value)
            assert str(db_path) in message
            assert "SQLITE_FULL" in message
            assert "uet resume" in message
            assert caught.value.exit_code == 4
            # The long task's process group was stopped and reaped, not orphaned.
            assert long_pid
            assert process_start_time(long_pid[0]) is None
        assert integrity(db_path) == "ok"

        with Store.open(db_path) as store:
            committed = assert_gap_free(store, "full-run")
            record = store.get_run("full-run")
            assert record.status == "running"
            # It stopped dispatching: far from every task got to run.
            attempts = store.attempts("full-run")
            assert len(attempts) < MANY + 1
            marker.touch()
            result = await run_workflow(spec, store=store, resume="full-run")
            assert result.status is RunStatus.SUCCEEDED
            assert set(result.states.values()) == {TaskState.SUCCEEDED}
            seqs = assert_gap_free(store, "full-run")
            assert len(seqs) > len(committed)
            assert store.get_run("full-run").status == "succeeded"
        assert integrity(db_path) == "ok"

    def test_a_batch_failing_part_way_is_rolled_back_and_retried_idempotently(
        self, db_path: Path
    ) -> None:
        """A batch failing half-way leaves nothing; written again (twice), each event is once."""
        with Store.open(db_path) as store:
            spec = WorkflowSpec(
                name="b", tasks=[TaskSpec(id="t0", command=("true",))], base_dir=db_path.parent
            )
            store.create_run(_new_run_record("b1", spec))
            first = [_event("b1", seq) for seq in range(1, 11)]
            store.write_batch(first, wall_start=0.0)
            big = [_event("b1", seq, padding=400) for seq in range(11, 2011)]
            pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
            store._conn.execute(f"PRAGMA max_page_count = {pages + 20}")
            with pytest.raises(StoreError, match="SQLITE_FULL"):
                store.write_batch(big, wall_start=0.0)
            # The partly inserted batch was rolled back as a whole.
            assert [e.seq for e in store.events("b1")] == list(range(1, 11))
            store._conn.execute("PRAGMA max_page_count = 1073741823")
            store.write_batch(big, wall_start=0.0)
            # A retry of a batch that did commit (and of an overlapping one) changes nothing.
            store.write_batch(big, wall_start=0.0)
            store.write_batch(first + big[:5], wall_start=0.0)
            assert_gap_free(store, "b1")
            assert len(store.events("b1")) == 2010
        assert integrity(db_path) == "ok"


def _event(run_id: str, seq: int, padding: int = 0) -> Event:
    return Event(
        run_id=run_id,
        seq=seq,
        kind=EventKind.TASK_READY,
        time=seq / 1000,
        task_id="t0",
        data={"note": "x" * padding} if padding else {},
    )


def _new_run_record(run_id: str, spec: WorkflowSpec) -> NewRun:
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


def _write_flow_file(tmp_path: Path, tasks: int, name: str = "flow.toml") -> Path:
    text = '[workflow]\nname = "io"\nmax_workers = 2\n'
    text += "".join(f'[[tasks]]\nid = "t{i}"\ncommand = ["true"]\n' for i in range(tasks))
    path = tmp_path / name
    path.write_text(text)
    return path


def _limited_uet(limit: int) -> Callable[[], None]:
    """A preexec function: a file-size limit, with SIGXFSZ ignored so writes fail with EFBIG."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


class TestIOError:
    def test_file_size_limit_exits_4_keeps_commits_and_resumes(
        self, tmp_path: Path, db_path: Path
    ) -> None:
        """An I/O error from RLIMIT_FSIZE: exit 4 naming the file; once lifted, resume finishes."""
        # Big enough that the first batch (every task's ready event) commits
        # under the limit, small enough that a later batch hits it.
        flow = _write_flow_file(tmp_path, 600)
        limited = subprocess.run(
            [*UET, "run", str(flow), "--db", str(db_path), "-q"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            preexec_fn=_limited_uet(500_000),
        )
        assert limited.returncode == 4, limited.stderr
        assert str(db_path) in limited.stderr
        assert "SQLITE_IOERR" in limited.stderr
        assert "uet resume" in limited.stderr
        assert "Traceback" not in limited.stderr
        assert integrity(db_path) == "ok"
        with Store.open(db_path) as store:
            run_id = store.last_run()
            assert store.get_run(run_id).status == "running"
            committed = assert_gap_free(store, run_id)
            assert store.task_counts(run_id).get("succeeded", 0) < 600
        resumed = run_uet("resume", "--last", "--db", db_path, "-q", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        with Store.open(db_path) as store:
            assert len(assert_gap_free(store, run_id)) > len(committed)
            assert store.task_counts(run_id) == {"succeeded": 600}
        assert integrity(db_path) == "ok"


class TestReadOnly:
    async def test_read_only_database_refuses_the_run_before_any_task(
        self, tmp_path: Path, db_path: Path
    ) -> None:
        """A ``mode=ro`` store: StoreError (exit 4) naming the file; nothing runs or changes."""
        with Store.open(db_path):
            pass
        before = db_path.read_bytes()
        marker = tmp_path / "ran"
        spec = WorkflowSpec(
            name="ro",
            tasks=[TaskSpec(id="t", command=("touch", str(marker)))],
            base_dir=tmp_path,
        )
        with Store.open(db_path, readonly=True) as store, pytest.raises(StoreError) as caught:
            await run_workflow(spec, store=store)
        assert caught.value.exit_code == 4
        assert str(db_path) in str(caught.value)
        assert "SQLITE_READONLY" in str(caught.value)
        assert "writable" in str(caught.value)
        assert not marker.exists()
        assert db_path.read_bytes() == before
        assert integrity(db_path) == "ok"

    def test_read_only_store_still_serves_reads(self, db_path: Path) -> None:
        """Views work on a database opened read-only."""
        with Store.open(db_path) as store:
            spec = WorkflowSpec(
                name="v", tasks=[TaskSpec(id="t0", command=("true",))], base_dir=db_path.parent
            )
            store.create_run(_new_run_record("v1", spec))
        with Store.open(db_path, readonly=True) as store:
            assert store.get_run("v1").workflow == "v"
            assert store.integrity_check() == "ok"


_HOLD_LOCK = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    hold = float(sys.argv[2])
    if hold < 0:
        sys.stdin.read()
    else:
        time.sleep(hold)
    conn.execute("COMMIT")
    """
)


def _hold_lock(db_path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process takes the write lock (until `seconds` pass, or stdin closes if negative)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(db_path), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


class TestLocked:
    async def test_a_lock_shorter_than_the_busy_timeout_is_waited_out(
        self, tmp_path: Path, db_path: Path
    ) -> None:
        """Another process holds the write lock briefly: the run waits and succeeds."""
        with Store.open(db_path):
            pass
        holder = _hold_lock(db_path, 0.5)
        try:
            spec = WorkflowSpec(
                name="wait", tasks=[TaskSpec(id="t", command=("true",))], base_dir=tmp_path
            )
            with Store.open(db_path, busy_timeout=30) as store:
                result = await run_workflow(spec, store=store)
                assert result.status is RunStatus.SUCCEEDED
                assert_gap_free(store, result.run_id)
        finally:
            holder.communicate(timeout=30)
        assert holder.returncode == 0

    async def test_a_lock_longer_than_the_busy_timeout_is_a_clear_error(
        self, tmp_path: Path, db_path: Path
    ) -> None:
        """A lock past the busy timeout: StoreError naming file and SQLITE_BUSY; nothing runs."""
        with Store.open(db_path):
            pass
        marker = tmp_path / "ran"
        holder = _hold_lock(db_path, -1)
        try:
            spec = WorkflowSpec(
                name="locked",
                tasks=[TaskSpec(id="t", command=("touch", str(marker)))],
                base_dir=tmp_path,
            )
            with (
                Store.open(db_path, busy_timeout=0.2) as store,
                pytest.raises(StoreError) as caught,
            ):
                await run_workflow(spec, store=store)
        finally:
            holder.communicate("", timeout=30)
        assert caught.value.exit_code == 4
        assert str(db_path) in str(caught.value)
        assert "SQLITE_BUSY" in str(caught.value)
        assert not marker.exists()
        assert integrity(db_path) == "ok"

    def test_stores_opened_at_once_on_a_new_file_all_open(self, tmp_path: Path) -> None:
        """
        One opener's new schema is never mistaken for a foreign file's tables.

        Each of three threads opens the same new file at the same moment, 30
        times over; the sqlite3 module lets them run together. Read apart, the
        schema version and the table count could straddle another opener's
        commit (it failed about one open in eight).
        """
        failures: list[str] = []

        def open_and_close(path: Path, start: threading.Barrier) -> None:
            start.wait()
            try:
                Store.open(path).close()
            except StoreError as error:
                failures.append(str(error))

        for n in range(30):
            path = tmp_path / f"new{n}.db"
            start = threading.Barrier(3)
            threads = [
                threading.Thread(target=open_and_close, args=(path, start)) for _ in range(3)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert failures == []

    def test_two_uet_processes_share_one_new_database(self, tmp_path: Path, db_path: Path) -> None:
        """Two `uet run` started together on a database not yet created both record everything."""
        flows = [_write_flow_file(tmp_path, 40, name=f"flow{n}.toml") for n in range(2)]
        procs = [
            subprocess.Popen(
                [*UET, "run", str(flow), "--db", str(db_path), "-q", "--json"],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for flow in flows
        ]
        outputs = [proc.communicate(timeout=120) for proc in procs]
        for proc, (_, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err
        with Store.open(db_path) as store:
            runs = store.list_runs()
            assert len(runs) == 2
            for record in runs:
                assert record.status == "succeeded"
                seqs = assert_gap_free(store, record.run_id)
                kinds = [e.kind for e in store.events(record.run_id)]
                assert kinds[0] == "run_started"
                assert kinds[-1] == "run_finished"
                assert kinds.count("task_succeeded") == 40
                assert len(seqs) == record.last_seq
        assert integrity(db_path) == "ok"


def _damaged_copies(tmp_path: Path) -> dict[str, Path]:
    """Files that must be refused: junk, a foreign SQLite file, a truncated and a damaged uet db."""
    good = tmp_path / "good.db"
    with Store.open(good) as store:
        spec = WorkflowSpec(
            name="g",
            tasks=[TaskSpec(id=f"t{i}", command=("true",)) for i in range(3000)],
            base_dir=tmp_path,
        )
        store.create_run(_new_run_record("g1", spec))
    files = {"junk": tmp_path / "junk.db", "text": tmp_path / "text.db"}
    files["junk"].write_bytes(bytes(range(256)) * 64)
    files["text"].write_text("not a database\n" * 100)
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    files["foreign"] = foreign
    size = good.stat().st_size
    files["truncated"] = tmp_path / "truncated.db"
    shutil.copy(good, files["truncated"])
    os.truncate(files["truncated"], size // 2)
    # Overwrite the last pages (task rows, not touched by a new run's inserts).
    files["damaged"] = tmp_path / "damaged.db"
    shutil.copy(good, files["damaged"])
    with open(files["damaged"], "r+b") as handle:
        handle.seek(size - 3 * 4096)
        handle.write(b"\xde\xad\xbe\xef" * 1024)
    return files


class TestNotADatabase:
    @pytest.mark.parametrize("kind", ["junk", "text", "foreign", "truncated", "damaged"])
    def test_refused_before_any_task_and_left_untouched(
        self, tmp_path: Path, write_flow: Callable[..., Path], kind: str
    ) -> None:
        """`uet run` refuses a file that is no sound uet-trio database: exit 4, file unchanged."""
        target = _damaged_copies(tmp_path)[kind]
        before = target.read_bytes()
        marker = tmp_path / "ran"
        flow = write_flow(
            f"""
            [[tasks]]
            id = "t"
            command = ["touch", "{marker}"]
            """
        )
        result = run_uet("run", flow, "--db", target, cwd=tmp_path)
        assert result.returncode == 4, (result.stdout, result.stderr)
        assert str(target) in result.stderr
        assert "Traceback" not in result.stderr
        assert not marker.exists()
        assert target.read_bytes() == before
