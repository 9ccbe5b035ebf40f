"""
A run whose runner was killed (kill -9) is shown as crashed, and following it ends.

The tests kill a real ``uet run`` (in its own session) while a long task runs,
then check with the real ``uet`` program that ``uet events --follow`` and
``uet logs --follow`` stop with exit 3 and say how to resume, that ``uet runs``
and ``uet show`` (human and ``--json``) call the run crashed, and that after
``uet resume`` finishes it none of them does. The task's process group, which
outlives the runner, is reclaimed by the resume; the tests check that nothing
they started survives, that the store passes ``PRAGMA integrity_check`` and
that the task recorded as succeeded before the kill stays so.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from uet_trio import RunRecord, Store, StoreError, run_crashed
from uet_trio.recording.records import NewRun
from uet_trio.running.executors.procfs import process_start_time

from .conftest import UET
from .procs import alive, wait_for

# `first` succeeds before the kill; attempt 1 of `long` prints a line, notes
# its pid and sleeps in the foreground: the runner dies under it. A resumed
# attempt ends at once.
FLOW = """
[workflow]
name = "doomed"

[[tasks]]
id = "first"
command = ["sh", "-c", "echo first"]

[[tasks]]
id = "long"
command = [
    "sh", "-c",
    "echo started; echo $$ > long.pid; [ $UET_ATTEMPT = 1 ] || exit 0; exec sleep 60",
]
depends_on = ["first"]
"""


def long_is_running(db: Path) -> bool:
    """Whether the store shows `long`'s first attempt running with its process recorded."""
    try:
        with Store.open(db, readonly=True) as store:
            runs = store.list_runs()
            attempts = store.attempts(runs[0].run_id, "long") if runs else []
    except StoreError:
        return False
    return bool(attempts) and attempts[-1].status == "running" and attempts[-1].pid is not None


def integrity(db: Path) -> str:
    """``PRAGMA integrity_check`` through a fresh connection."""
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.fixture
def crashed(tmp_path: Path) -> Iterator[tuple[Path, str, int, int]]:
    """
    A run killed with SIGKILL while `long` runs: (db, run id, runner pid, task pid).

    The task's process outlives the runner (it has its own session). Tests
    that do not resume the run leave it to this fixture, which kills its
    group at the end and checks that it is gone; then the store must pass
    ``PRAGMA integrity_check``.
    """
    (tmp_path / "flow.toml").write_text(FLOW)
    db = tmp_path / ".uet" / "uet.db"
    runner = subprocess.Popen(
        [*UET, "run", "flow.toml"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    task_pid = 0
    try:
        wait_for(lambda: long_is_running(db), "long's first attempt to be running")
        # Recorded as running once spawned: the shell may not have written its pid yet.
        pid_file = tmp_path / "long.pid"
        wait_for(lambda: pid_file.exists() and pid_file.read_text().endswith("\n"), "long's pid")
        task_pid = int(pid_file.read_text())
        runner.send_signal(signal.SIGKILL)
        assert runner.wait(timeout=30) == -signal.SIGKILL
        with Store.open(db, readonly=True) as store:
            (run,) = store.list_runs()
        yield db, run.run_id, runner.pid, task_pid
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if task_pid and alive(task_pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(task_pid, signal.SIGKILL)
            wait_for(lambda: not alive(task_pid), "the task's process to be killed", timeout=10)
    assert integrity(db) == "ok"


def uet(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real `uet` program; one that does not end within `timeout` seconds fails the test."""
    try:
        return subprocess.run(
            [*UET, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`uet {' '.join(args)}` did not end within {timeout} s")


class TestFollowingACrashedRun:
    def test_events_follow_stops_with_exit_3(
        self, crashed: tuple[Path, str, int, int], tmp_path: Path
    ) -> None:
        """`events --last --follow` prints what was recorded, then says the run crashed."""
        _, run_id, runner_pid, _ = crashed
        result = uet("events", "--last", "--follow", cwd=tmp_path, timeout=30)
        assert result.returncode == 3, result.stderr
        assert (
            f"run {run_id} crashed (its runner, pid {runner_pid}, is gone); "
            f"resume it with `uet resume {run_id}`"
        ) in result.stderr
        assert "attempt_spawned long#1" in result.stdout
        jsonl = uet("events", "--last", "--follow", "--jsonl", cwd=tmp_path, timeout=30)
        assert jsonl.returncode == 3, jsonl.stderr
        assert json.loads(jsonl.stdout.splitlines()[-1])["kind"] == "attempt_spawned"

    def test_logs_follow_stops_with_exit_3(
        self, crashed: tuple[Path, str, int, int], tmp_path: Path
    ) -> None:
        """`logs --last long --follow` prints the output so far, then says the run crashed."""
        _, run_id, _, _ = crashed
        result = uet("logs", "--last", "long", "--follow", cwd=tmp_path, timeout=30)
        assert result.returncode == 3, result.stderr
        assert result.stdout == "started\n"
        assert f"run {run_id} crashed" in result.stderr
        assert f"`uet resume {run_id}`" in result.stderr


class TestCrashedRunViews:
    def test_runs_and_show_say_crashed_until_resumed(
        self, crashed: tuple[Path, str, int, int], tmp_path: Path
    ) -> None:
        """`runs` and `show` (human and --json) say crashed; after `uet resume` they do not."""
        db, run_id, runner_pid, task_pid = crashed
        listed = uet("runs", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        (row,) = listed.stdout.splitlines()[1:]
        assert row.split()[:2] == [run_id, "crashed"]
        (entry,) = json.loads(uet("runs", "--json", cwd=tmp_path).stdout)
        assert (entry["status"], entry["crashed"]) == ("running", True)

        shown = uet("show", "--last", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        head, crash_line = shown.stdout.splitlines()[:2]
        assert head.split()[-1] == "crashed"
        assert crash_line.strip() == (
            f"run {run_id} crashed (its runner, pid {runner_pid}, is gone); "
            f"resume it with `uet resume {run_id}`"
        )
        run = json.loads(uet("show", "--last", "--json", cwd=tmp_path).stdout)["run"]
        assert (run["status"], run["crashed"]) == ("running", True)
        assert run["crash"] == crash_line.strip()

        resumed = uet("resume", "--last", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        wait_for(lambda: not alive(task_pid), "the resume to reclaim the task's process")

        (row,) = uet("runs", cwd=tmp_path).stdout.splitlines()[1:]
        assert row.split()[:2] == [run_id, "succeeded"]
        (entry,) = json.loads(uet("runs", "--json", cwd=tmp_path).stdout)
        assert (entry["status"], entry["crashed"]) == ("succeeded", False)
        shown = uet("show", "--last", cwd=tmp_path)
        assert "crashed" not in shown.stdout
        run = json.loads(uet("show", "--last", "--json", cwd=tmp_path).stdout)["run"]
        assert (run["status"], run["crashed"], run["crash"]) == ("succeeded", False, None)
        follow = uet("events", "--last", "--follow", cwd=tmp_path, timeout=30)
        assert follow.returncode == 0, follow.stderr

        assert integrity(db) == "ok"
        with Store.open(db, readonly=True) as store:
            first = store.attempts(run_id, "first")
        assert [(a.attempt, a.status) for a in first] == [(1, "succeeded")]


class TestRunCrashed:
    def test_only_an_unfinished_run_with_a_dead_owner_is_crashed(self, store: Store) -> None:
        """Dead owner: crashed; live owner, no owner, or a finished run: not."""
        child = subprocess.Popen(["sleep", "60"])
        try:
            start = process_start_time(child.pid)
            store.create_run(NewRun(run_id="r", workflow="w", task_ids=["t"]))
            store.claim_run(
                "r", owner_pid=child.pid, owner_start=start, owner_alive=lambda *_: False
            )
            assert store.get_run("r").status == "pending"
            assert not run_crashed(store.get_run("r"))
        finally:
            child.kill()
            child.wait()
        dead = store.get_run("r")
        assert run_crashed(dead)
        assert not run_crashed(_owned(dead, os.getpid(), process_start_time(os.getpid())))
        assert not run_crashed(_owned(dead, 0, None))
        assert run_crashed(_owned(dead, os.getpid(), (start or 0) + 1))

    def test_a_finished_run_is_never_crashed(self, store: Store) -> None:
        """A run recorded as finished is not crashed, whoever owned it."""
        store.create_run(NewRun(run_id="r", workflow="w", task_ids=[], owner_pid=2**22 + 1))
        finished = attrs.evolve(store.get_run("r"), status="succeeded")
        assert not run_crashed(finished)
        assert run_crashed(store.get_run("r"))


def _owned(record: RunRecord, pid: int, start: int | None) -> RunRecord:
    """`record` as if `pid`, started at `start`, owned it."""
    return attrs.evolve(record, owner_pid=pid, owner_start=start)
