"""
Systems without pidfds or without /proc, reproduced on Linux with real processes.

Without ``os.pidfd_open`` (macOS, other POSIX systems, Linux before 5.3)
attempts take the portable path: Trio starts and waits for the child, with the
same process-group handling. Here that path is forced, with
``os.pidfd_open`` removed as it is on those systems, so any use of it fails
loudly. Without /proc (procfs pointed at a directory that does not exist)
start times are unknown and everything that reads them degrades instead of
failing.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from uet_trio.recording.logs import WorkerLogs
from uet_trio.running.executors import portable, procfs, spawn
from uet_trio.running.executors.process import ProcessOutcome, run_attempt

from .procs import alive, stat_fields

SAFETY = 30  # seconds; a hang fails the test instead of blocking CI
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[WorkerLogs]:
    worker_logs = WorkerLogs(tmp_path / "logs", 0)
    yield worker_logs
    worker_logs.close()


@pytest.fixture
def portable_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The portable path, on a system whose ``os`` has no ``pidfd_open``."""
    monkeypatch.setattr(portable, "IN_USE", True)
    monkeypatch.delattr(os, "pidfd_open")


async def attempt(argv: list[str], logs: WorkerLogs, **options: object) -> ProcessOutcome:
    settings: dict[str, object] = {"cwd": None, "env": None, "timeout": None, "kill_grace": 1.0}
    settings.update(options)
    with trio.fail_after(SAFETY):
        return await run_attempt(argv, logs=logs, **settings)  # type: ignore[arg-type]


async def assert_gone(pid: int) -> None:
    """`pid` dies soon: SIGKILL is delivered asynchronously, so poll for a while."""
    with trio.move_on_after(10):
        while alive(pid):  # noqa: ASYNC110 (another process; no event to wait on)
            await trio.sleep(0.01)
    assert not alive(pid), f"process {pid} survived"


def output(logs: WorkerLogs, outcome: ProcessOutcome) -> bytes:
    data = Path(logs.out_path).read_bytes()
    return data[outcome.out_offset : outcome.out_offset + outcome.out_length]


class TestChoice:
    def test_pidfds_are_used_where_they_work(self) -> None:
        assert portable.pidfds_work()
        assert not portable.IN_USE

    def test_no_pidfd_open_means_the_portable_path(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delattr(os, "pidfd_open")
        assert not portable.pidfds_work()

    @pytest.mark.parametrize("code", [errno.ENOSYS, errno.EPERM])
    def test_a_kernel_or_sandbox_that_refuses_pidfds(
        self, code: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Python has ``pidfd_open`` but the call fails: an old kernel, or seccomp."""

        def refused(pid: int, flags: int = 0) -> int:
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "pidfd_open", refused)
        assert not portable.pidfds_work()

    def test_the_environment_can_ask_for_the_portable_path(self) -> None:
        """``UET_PORTABLE_SPAWN=1`` is read once, when the module is imported."""
        probe = "from uet_trio.running.executors import portable; print(portable.IN_USE)"
        for value, expected in (("1", "True"), ("0", "False")):
            done = subprocess.run(
                [sys.executable, "-c", probe],
                env={**os.environ, "UET_PORTABLE_SPAWN": value},
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            assert done.stdout.strip() == expected


@pytest.mark.usefixtures("portable_path")
class TestPortablePath:
    async def test_exit_codes_and_signals(self, logs: WorkerLogs) -> None:
        assert (await attempt(["true"], logs)).exit_code == 0
        assert (await attempt(["sh", "-c", "exit 7"], logs)).exit_code == 7
        killed = await attempt(["sh", "-c", "kill -9 $$"], logs)
        assert (killed.exit_code, killed.signal) == (None, signal.SIGKILL)

    async def test_shell_codes_for_spawn_failures(self, logs: WorkerLogs, tmp_path: Path) -> None:
        outcome = await attempt(["no-such-command-uet"], logs)
        assert (outcome.exit_code, outcome.error) == (127, "command not found: no-such-command-uet")
        plain = tmp_path / "plain"
        plain.write_text("echo hi\n")
        outcome = await attempt([str(plain)], logs)
        assert (outcome.exit_code, outcome.error) == (126, f"permission denied: {plain}")
        gone = str(tmp_path / "gone")
        outcome = await attempt(["true"], logs, cwd=gone)
        assert (outcome.exit_code, outcome.error) == (127, f"working directory not found: {gone}")

    async def test_output_byte_ranges_and_working_directory(
        self, logs: WorkerLogs, tmp_path: Path
    ) -> None:
        first = await attempt(["sh", "-c", "echo one; echo uno >&2"], logs)
        second = await attempt(["pwd"], logs, cwd=str(tmp_path))
        assert output(logs, first) == b"one\n"
        assert first.err_length == len(b"uno\n")
        assert second.out_offset == first.out_offset + first.out_length
        assert output(logs, second) == f"{tmp_path}\n".encode()

    async def test_a_new_session_and_the_start_time_reported(self, logs: WorkerLogs) -> None:
        """The child leads its own session and group; on_spawn gets its /proc start time."""
        seen: list[tuple[int, int | None, list[bytes] | None]] = []

        def on_spawn(pid: int, start: int | None, out: int, err: int) -> None:
            seen.append((pid, start, stat_fields(pid)))

        await attempt(["sleep", "0.05"], logs, on_spawn=on_spawn)
        ((pid, start, fields),) = seen
        assert fields is not None
        assert int(fields[2]) == int(fields[3]) == pid  # process group, session
        assert start == int(fields[19])

    async def test_only_the_three_standard_descriptors_are_inherited(
        self, logs: WorkerLogs
    ) -> None:
        leaked = os.open(os.devnull, os.O_RDONLY)
        os.set_inheritable(leaked, True)
        try:
            outcome = await attempt(
                [sys.executable, "-c", "import os; print(sorted(map(int, os.listdir('/dev/fd'))))"],
                logs,
            )
        finally:
            os.close(leaked)
        assert output(logs, outcome) == b"[0, 1, 2, 3]\n"  # 3: the listing's own

    async def test_timeout_kills_grandchildren(self, logs: WorkerLogs, tmp_path: Path) -> None:
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
        pidfile = tmp_path / "grandchild"
        outcome = await attempt(["sh", "-c", f"sleep 60 & echo $! > {pidfile}"], logs)
        assert outcome.exit_code == 0
        await assert_gone(int(pidfile.read_text()))

    async def test_sigterm_ignored_escalates_to_sigkill(self, logs: WorkerLogs) -> None:
        outcome = await attempt(
            ["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"],
            logs,
            timeout=0.3,
            kill_grace=0.3,
        )
        assert outcome.timed_out
        assert outcome.signal == signal.SIGKILL

    async def test_hurry_skips_the_grace_period(self, logs: WorkerLogs) -> None:
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

    async def test_cancellation_stops_the_group_then_propagates(
        self, logs: WorkerLogs, tmp_path: Path
    ) -> None:
        pidfile = tmp_path / "pids"
        with trio.move_on_after(0.5) as scope:
            await attempt(
                ["sh", "-c", f"sleep 60 & echo $$ $! > {pidfile}; wait"], logs, kill_grace=0.5
            )
        assert scope.cancelled_caught
        for pid in map(int, pidfile.read_text().split()):
            await assert_gone(pid)

    async def test_no_zombie_or_descriptor_left_after_many_attempts(self, logs: WorkerLogs) -> None:
        await attempt(["true"], logs)  # log files opened once
        before = sorted(os.listdir("/proc/self/fd"))
        for i in range(30):
            outcome = await attempt(["sh", "-c", f"exit {i % 3}"], logs)
            assert outcome.exit_code == i % 3
        await attempt(["no-such-command-uet"], logs)
        assert sorted(os.listdir("/proc/self/fd")) == before
        zombies = [
            entry
            for entry in os.listdir("/proc")
            if entry.isdigit()
            and (fields := stat_fields(entry)) is not None
            and int(fields[1]) == os.getpid()
            and fields[0] == b"Z"
        ]
        assert zombies == []

    async def test_sigchld_ignored(self, logs: WorkerLogs) -> None:
        """The kernel reaps the child; the attempt still ends, with the status lost (0)."""
        previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        try:
            outcome = await attempt(["sh", "-c", "sleep 0.2; exit 3"], logs)
        finally:
            signal.signal(signal.SIGCHLD, previous)
        assert (outcome.exit_code, outcome.error) == (0, None)


def test_a_whole_run_without_pidfd_open(tmp_path: Path) -> None:
    """
    `uet run` in a Python whose ``os`` has no ``pidfd_open``, as on macOS.

    Removed before anything is imported, so Trio waits for children its own
    portable way too.
    """
    script = (
        "import os, sys\n"
        "del os.pidfd_open\n"
        "import uet_trio_cli\n"
        "from uet_trio.running.executors import portable\n"
        "assert portable.IN_USE\n"
        f"sys.argv = ['uet', 'run', {str(EXAMPLES / 'fanout.toml')!r}, '--workers', '4', "
        "'--db', '.uet/uet.db']\n"
        "uet_trio_cli.entry()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "54 succeeded" in done.stdout
    assert any(path.stat().st_size > 0 for path in (tmp_path / ".uet" / "logs").rglob("w*.out"))


@pytest.fixture
def no_proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A system without /proc, as far as uet-trio's procfs module can tell."""
    monkeypatch.setattr(procfs, "_PROC", str(tmp_path / "no-proc"))


@pytest.mark.usefixtures("no_proc")
class TestWithoutProc:
    def test_start_times_are_unknown(self) -> None:
        assert procfs.process_start_time(os.getpid()) is None

    def test_liveness_is_existence(self) -> None:
        """A pid that exists counts as alive, whatever start time was recorded."""
        child = subprocess.Popen(["true"])
        child.wait()
        assert procfs.process_alive(os.getpid(), None)
        assert procfs.process_alive(os.getpid(), 12345)
        assert not procfs.process_alive(child.pid, None)

    def test_a_dead_runners_group_is_left_alone(self) -> None:
        """Nothing identifies the group as ours, so resume signals nothing."""
        child = subprocess.Popen(["sleep", "60"], start_new_session=True)
        try:
            key = "run/task/1"
            assert not procfs.kill_group_if_owned(child.pid, None, key)
            assert not procfs.kill_group_if_owned(child.pid, 12345, key)
            assert child.poll() is None
        finally:
            child.kill()
            child.wait()

    async def test_spawning_with_pidfds_reports_no_start_time(
        self, logs: WorkerLogs, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """posix_spawn still closes inherited descriptors; the start time is None."""
        # Both are learnt at the first spawn of a process: learn them without /proc.
        monkeypatch.setattr(spawn, "_inherited_fds", None)
        monkeypatch.setattr(spawn, "_clock_matches_proc", None)
        leaked = os.open(os.devnull, os.O_RDONLY)
        os.set_inheritable(leaked, True)
        starts: list[int | None] = []
        try:
            outcome = await attempt(
                [sys.executable, "-c", "import os; print(sorted(map(int, os.listdir('/dev/fd'))))"],
                logs,
                on_spawn=lambda pid, start, *_: starts.append(start),
            )
        finally:
            os.close(leaked)
        assert outcome.exit_code == 0
        assert output(logs, outcome) == b"[0, 1, 2, 3]\n"
        assert starts == [None]
