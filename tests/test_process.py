"""The process runner with real processes: exit codes, groups, timeouts, logs."""

from __future__ import annotations

import os
import resource
import signal
import sys
from pathlib import Path

import pytest
import trio

from uet_trio.recording.logs import WorkerLogs
from uet_trio.running.executors.process import run_attempt
from uet_trio.running.executors.procfs import process_alive, process_start_time

from .procs import alive

SAFETY = 30  # seconds; a hang fails the test instead of blocking CI


async def assert_gone(pid: int) -> None:
    """`pid` dies soon: SIGKILL is delivered asynchronously, so poll for a while."""
    with trio.move_on_after(10):
        while alive(pid):  # noqa: ASYNC110 (another process; no event to wait on)
            await trio.sleep(0.01)
    assert not alive(pid), f"process {pid} survived"


@pytest.fixture
def logs(tmp_path: Path) -> WorkerLogs:
    worker_logs = WorkerLogs(tmp_path / "logs", 0)
    yield worker_logs
    worker_logs.close()


async def attempt(argv: list[str], logs: WorkerLogs, **options: object):
    settings: dict[str, object] = {"cwd": None, "env": None, "timeout": None, "kill_grace": 1.0}
    settings.update(options)
    with trio.fail_after(SAFETY):
        return await run_attempt(argv, logs=logs, **settings)  # type: ignore[arg-type]


class TestOutcomes:
    async def test_exit_codes(self, logs: WorkerLogs) -> None:
        """Exit statuses come back as they are."""
        assert (await attempt(["true"], logs)).exit_code == 0
        assert (await attempt(["sh", "-c", "exit 7"], logs)).exit_code == 7

    async def test_death_by_signal_is_recorded_as_the_signal(self, logs: WorkerLogs) -> None:
        """A process killed by a signal has no exit code, and the signal is recorded."""
        outcome = await attempt(["sh", "-c", "kill -9 $$"], logs)
        assert outcome.exit_code is None
        assert outcome.signal == signal.SIGKILL

    async def test_command_not_found_is_127(self, logs: WorkerLogs) -> None:
        """A missing command is a failed attempt with the shell's code and a message."""
        outcome = await attempt(["no-such-command-uet"], logs)
        assert outcome.exit_code == 127
        assert outcome.error == "command not found: no-such-command-uet"

    async def test_not_executable_is_126(self, logs: WorkerLogs, tmp_path: Path) -> None:
        """A file without execute permission, or with no shebang, is 126."""
        script = tmp_path / "script"
        script.write_text("echo hi\n")
        outcome = await attempt([str(script)], logs)
        assert outcome.exit_code == 126
        assert outcome.error is not None
        script.chmod(0o755)
        outcome = await attempt([str(script)], logs)
        assert outcome.exit_code == 126
        assert "Exec format error" in (outcome.error or "")

    async def test_missing_working_directory(self, logs: WorkerLogs, tmp_path: Path) -> None:
        """A cwd that does not exist is reported as such, not as a missing command."""
        outcome = await attempt(["true"], logs, cwd=str(tmp_path / "gone"))
        assert outcome.exit_code == 127
        assert "working directory not found" in (outcome.error or "")


class TestGroups:
    async def test_timeout_kills_grandchildren(self, logs: WorkerLogs, tmp_path: Path) -> None:
        """On timeout the whole group is stopped: no grandchild survives its task."""
        pidfile = tmp_path / "grandchild"
        outcome = await attempt(
            ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"],
            logs,
            timeout=0.5,
            kill_grace=0.5,
        )
        assert outcome.timed_out
        await assert_gone(int(pidfile.read_text()))

    async def test_background_grandchild_is_swept_after_normal_exit(
        self, logs: WorkerLogs, tmp_path: Path
    ) -> None:
        """A task that exits leaving a background job does not leave the job running."""
        pidfile = tmp_path / "grandchild"
        outcome = await attempt(["sh", "-c", f"sleep 60 & echo $! > {pidfile}"], logs)
        assert outcome.exit_code == 0
        await assert_gone(int(pidfile.read_text()))

    async def test_sigterm_ignored_escalates_to_sigkill(self, logs: WorkerLogs) -> None:
        """A process that ignores SIGTERM gets SIGKILL after the grace period."""
        outcome = await attempt(
            ["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"],
            logs,
            timeout=0.3,
            kill_grace=0.3,
        )
        assert outcome.timed_out
        assert outcome.signal == signal.SIGKILL

    async def test_cancellation_stops_the_group_then_propagates(
        self, logs: WorkerLogs, tmp_path: Path
    ) -> None:
        """Cancelling the caller stops the process group before Cancelled leaves."""
        pidfile = tmp_path / "pids"
        with trio.move_on_after(0.5) as scope:
            await attempt(
                ["sh", "-c", f"sleep 60 & echo $$ $! > {pidfile}; wait"], logs, kill_grace=0.5
            )
        assert scope.cancelled_caught
        for pid in map(int, pidfile.read_text().split()):
            await assert_gone(pid)

    async def test_hurry_skips_the_grace_period(self, logs: WorkerLogs) -> None:
        """Setting the hurry event sends SIGKILL without waiting out a long grace."""
        hurry = trio.Event()
        hurry.set()
        with trio.fail_after(10):
            outcome = await run_attempt(
                ["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"],
                cwd=None,
                env=None,
                timeout=0.2,
                kill_grace=3600,
                logs=logs,
                hurry=hurry,
            )
        assert outcome.signal == signal.SIGKILL

    async def test_spawn_report_identifies_the_process(self, logs: WorkerLogs) -> None:
        """on_spawn receives the pid and its /proc start time while it runs."""
        seen: list[tuple[int, int | None, bool]] = []

        def on_spawn(pid: int, start: int | None, out: int, err: int) -> None:
            seen.append((pid, start, process_alive(pid, start)))

        await attempt(["sleep", "0.1"], logs, on_spawn=on_spawn)
        ((pid, start, was_alive),) = seen
        assert start is not None and was_alive
        assert process_start_time(pid) != start  # gone (or a different process now)


class TestLogs:
    async def test_each_attempt_gets_its_byte_range(self, logs: WorkerLogs) -> None:
        """Attempts share the worker's files; each records exactly its own bytes."""
        first = await attempt(["sh", "-c", "echo one; echo uno >&2"], logs)
        second = await attempt(["sh", "-c", "printf two"], logs)
        out = Path(logs.out_path).read_bytes()
        err = Path(logs.err_path).read_bytes()
        assert out[first.out_offset : first.out_offset + first.out_length] == b"one\n"
        assert err[first.err_offset : first.err_offset + first.err_length] == b"uno\n"
        assert second.out_offset == first.out_offset + first.out_length
        assert out[second.out_offset : second.out_offset + second.out_length] == b"two"
        assert second.err_length == 0

    async def test_large_output_goes_to_disk_not_memory(self, logs: WorkerLogs) -> None:
        """50 MB of stdout neither deadlocks nor passes through the runner's memory."""
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        size = 50_000_000
        outcome = await attempt(
            [sys.executable, "-c", f"import sys; sys.stdout.buffer.write(b'x' * {size})"], logs
        )
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert outcome.exit_code == 0
        assert outcome.out_length == size
        assert os.path.getsize(logs.out_path) == size
        assert after - before < 20_000  # KiB: the runner held none of the 50 MB

    async def test_log_files_are_private(self, logs: WorkerLogs) -> None:
        """Log files are 0600 in a 0700 directory."""
        await attempt(["true"], logs)
        assert os.stat(logs.out_path).st_mode & 0o777 == 0o600
        assert os.stat(logs.err_path).st_mode & 0o777 == 0o600
        assert os.stat(Path(logs.out_path).parent).st_mode & 0o777 == 0o700

    async def test_unwritable_log_directory_fails_the_attempt(self, tmp_path: Path) -> None:
        """If the log files cannot be opened the attempt fails with the reason."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        broken = WorkerLogs(blocker / "logs", 0)
        outcome = await attempt(["true"], broken)
        assert outcome.exit_code == 126
        assert "cannot open log files" in (outcome.error or "")
