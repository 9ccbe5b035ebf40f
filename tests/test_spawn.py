"""
The two ways an attempt's process starts: posix_spawn here, Popen elsewhere.

A child whose working directory is ours is started with `os.posix_spawn` on
the event loop's thread; any other directory goes through Popen in a worker
thread. Both must look the same from outside: the executable searched in the
child's PATH, the shell's codes for failures, only stdin/stdout/stderr
inherited, default SIGPIPE, nothing left behind.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import trio

from uet_trio.recording.logs import WorkerLogs
from uet_trio.running.executors import spawn
from uet_trio.running.executors.process import ProcessOutcome, run_attempt
from uet_trio.running.executors.procfs import process_start_time

from .procs import stat_fields

SAFETY = 30  # seconds; a hang fails the test instead of blocking CI


@pytest.fixture
def logs(tmp_path: Path) -> WorkerLogs:
    worker_logs = WorkerLogs(tmp_path / "logs", 0)
    yield worker_logs
    worker_logs.close()


class _Stalled(spawn._SpawnStalls):
    """A machine on which every inline spawn is slow: spawns go to threads, no probes."""

    def inline(self) -> bool:
        return False


@pytest.fixture(params=["here", "elsewhere", "here-stalled"])
def cwd(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """
    Our own directory (posix_spawn), another one (Popen in a thread), or our
    own while inline spawns stall the loop (Popen in a thread as well).
    """
    workdir = tmp_path / "work"
    workdir.mkdir()
    spawn_here = spawn._spawn_here
    in_thread = spawn._spawn_in_thread
    expected = spawn_here if request.param == "here" else in_thread
    # Whatever this machine's spawns have cost so far: always inline, or never.
    stalls = _Stalled() if request.param == "here-stalled" else spawn._SpawnStalls(10**15)
    monkeypatch.setattr(spawn, "_stalls", stalls)

    def only(used: object) -> object:
        def check(*args: object) -> object:
            assert used is expected, f"{request.param}: spawned by {used.__name__}"  # type: ignore[attr-defined]
            return used(*args)  # type: ignore[operator]

        return check

    monkeypatch.setattr(spawn, "_spawn_here", only(spawn_here))
    monkeypatch.setattr(spawn, "_spawn_in_thread", only(in_thread))
    if request.param != "elsewhere":
        monkeypatch.chdir(workdir)
    return str(workdir)


async def attempt(argv: list[str], logs: WorkerLogs, **options: object) -> ProcessOutcome:
    settings: dict[str, object] = {"cwd": None, "env": None, "timeout": None, "kill_grace": 1.0}
    settings.update(options)
    with trio.fail_after(SAFETY):
        return await run_attempt(argv, logs=logs, **settings)  # type: ignore[arg-type]


def output(logs: WorkerLogs, outcome: ProcessOutcome) -> bytes:
    data = Path(logs.out_path).read_bytes()
    return data[outcome.out_offset : outcome.out_offset + outcome.out_length]


def script(directory: Path, name: str, body: str, mode: int = 0o755) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(body)
    path.chmod(mode)
    return path


class TestBothPaths:
    async def test_runs_in_the_working_directory(self, logs: WorkerLogs, cwd: str) -> None:
        """The child's directory is the attempt's, whichever way it was spawned."""
        outcome = await attempt(["pwd"], logs, cwd=cwd)
        assert outcome.exit_code == 0
        assert output(logs, outcome) == f"{cwd}\n".encode()

    async def test_path_comes_from_the_child_environment(
        self, logs: WorkerLogs, cwd: str, tmp_path: Path
    ) -> None:
        """A bare name is searched in the PATH the child gets, not in ours."""
        script(tmp_path / "bin", "uet-only-here", "#!/bin/sh\necho from-child-path\n")
        env = {"PATH": f"{tmp_path / 'nothing'}:{tmp_path / 'bin'}"}
        outcome = await attempt(["uet-only-here"], logs, cwd=cwd, env=env)
        assert outcome.exit_code == 0, outcome.error
        assert output(logs, outcome) == b"from-child-path\n"
        # Not in our PATH, so the same name without that environment is missing.
        outcome = await attempt(["uet-only-here"], logs, cwd=cwd)
        assert (outcome.exit_code, outcome.error) == (127, "command not found: uet-only-here")

    async def test_a_remembered_executable_that_moved_is_searched_again(
        self, logs: WorkerLogs, cwd: str, tmp_path: Path
    ) -> None:
        """The search result is a cache: when the file is gone, the next PATH entry wins."""
        first = script(tmp_path / "a", "uet-moving", "#!/bin/sh\necho a\n")
        script(tmp_path / "b", "uet-moving", "#!/bin/sh\necho b\n")
        env = {"PATH": f"{tmp_path / 'a'}:{tmp_path / 'b'}"}
        assert output(logs, await attempt(["uet-moving"], logs, cwd=cwd, env=env)) == b"a\n"
        first.unlink()
        assert output(logs, await attempt(["uet-moving"], logs, cwd=cwd, env=env)) == b"b\n"

    async def test_a_non_executable_file_earlier_in_path_is_skipped(
        self, logs: WorkerLogs, cwd: str, tmp_path: Path
    ) -> None:
        """As with Popen, an executable later in PATH runs; alone, the first is 126."""
        script(tmp_path / "a", "uet-perm", "#!/bin/sh\necho a\n", mode=0o644)
        script(tmp_path / "b", "uet-perm", "#!/bin/sh\necho b\n")
        env = {"PATH": f"{tmp_path / 'a'}:{tmp_path / 'b'}"}
        assert output(logs, await attempt(["uet-perm"], logs, cwd=cwd, env=env)) == b"b\n"
        outcome = await attempt(["uet-perm"], logs, cwd=cwd, env={"PATH": str(tmp_path / "a")})
        assert (outcome.exit_code, outcome.error) == (126, "permission denied: uet-perm")

    async def test_shell_codes_for_spawn_failures(
        self, logs: WorkerLogs, cwd: str, tmp_path: Path
    ) -> None:
        """127 for a missing command, 126 for one that cannot be executed, same messages."""
        outcome = await attempt(["no-such-command-uet"], logs, cwd=cwd)
        assert (outcome.exit_code, outcome.error) == (127, "command not found: no-such-command-uet")
        missing = str(tmp_path / "missing" / "cmd")
        outcome = await attempt([missing], logs, cwd=cwd)
        assert (outcome.exit_code, outcome.error) == (127, f"command not found: {missing}")
        plain = script(tmp_path / "s", "plain", "echo hi\n", mode=0o644)
        outcome = await attempt([str(plain)], logs, cwd=cwd)
        assert (outcome.exit_code, outcome.error) == (126, f"permission denied: {plain}")
        plain.chmod(0o755)  # executable, but no shebang and not a binary
        outcome = await attempt([str(plain)], logs, cwd=cwd)
        assert outcome.exit_code == 126
        assert outcome.error == f"cannot execute {plain}: Exec format error"

    async def test_a_relative_command_is_found_from_the_working_directory(
        self, logs: WorkerLogs, cwd: str
    ) -> None:
        """``./tool`` names a file in the attempt's directory."""
        script(Path(cwd), "tool", "#!/bin/sh\necho local\n")
        outcome = await attempt(["./tool"], logs, cwd=cwd)
        assert output(logs, outcome) == b"local\n"

    async def test_only_the_three_standard_descriptors_are_inherited(
        self, logs: WorkerLogs, cwd: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An inheritable descriptor of ours (e.g. inherited by uet) does not reach the task."""
        leaked = os.open(os.devnull, os.O_RDONLY)
        os.set_inheritable(leaked, True)
        # The list of inheritable descriptors is taken at the first spawn of a process.
        monkeypatch.setattr(spawn, "_inherited_fds", None)
        try:
            outcome = await attempt(
                [sys.executable, "-c", "import os; print(sorted(map(int, os.listdir('/dev/fd'))))"],
                logs,
                cwd=cwd,
            )
        finally:
            os.close(leaked)
        assert outcome.exit_code == 0
        # 0-2, plus the descriptor the listing itself opens.
        assert output(logs, outcome) == b"[0, 1, 2, 3]\n"

    async def test_sigpipe_is_not_ignored_in_the_child(self, logs: WorkerLogs, cwd: str) -> None:
        """Python ignores SIGPIPE; a task must start with the default, as with Popen."""
        assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
        outcome = await attempt(["cat", "/proc/self/status"], logs, cwd=cwd)
        (line,) = [x for x in output(logs, outcome).splitlines() if x.startswith(b"SigIgn:")]
        ignored = int(line.split()[1], 16)
        assert not ignored & (1 << (signal.SIGPIPE - 1))
        assert not ignored & (1 << (signal.SIGXFSZ - 1))

    async def test_a_new_session_per_attempt(self, logs: WorkerLogs, cwd: str) -> None:
        """The child leads its own session and process group."""
        seen: list[tuple[int, list[bytes] | None]] = []
        await attempt(
            ["sleep", "0.05"],
            logs,
            cwd=cwd,
            on_spawn=lambda pid, *_: seen.append((pid, stat_fields(pid))),
        )
        ((pid, fields),) = seen
        assert fields is not None
        assert int(fields[2]) == pid  # process group
        assert int(fields[3]) == pid  # session

    async def test_reported_start_time_is_the_process_start_time(
        self, logs: WorkerLogs, cwd: str
    ) -> None:
        """The start time given to on_spawn is /proc's, on every attempt."""
        pairs: list[tuple[int | None, int | None]] = []

        def on_spawn(pid: int, start: int | None, out: int, err: int) -> None:
            # Not reaped before the attempt ends, so /proc still describes it.
            pairs.append((start, process_start_time(pid)))

        for _ in range(20):
            await attempt(["true"], logs, cwd=cwd, on_spawn=on_spawn)
        assert all(start == actual and start is not None for start, actual in pairs)

    async def test_no_zombie_or_descriptor_left_after_many_attempts(
        self, logs: WorkerLogs, cwd: str
    ) -> None:
        """Every child is reaped and every pidfd closed."""
        await attempt(["true"], logs, cwd=cwd)  # log files and /dev/null opened once
        before = sorted(os.listdir("/proc/self/fd"))
        zombies = _zombie_children()
        for i in range(50):
            outcome = await attempt(["sh", "-c", f"exit {i % 3}"], logs, cwd=cwd)
            assert outcome.exit_code == i % 3
        await attempt(["no-such-command-uet"], logs, cwd=cwd)
        assert sorted(os.listdir("/proc/self/fd")) == before
        assert _zombie_children() == zombies


class TestFallback:
    async def test_missing_working_directory(self, logs: WorkerLogs, tmp_path: Path) -> None:
        """A directory that does not exist goes the Popen way and is reported as such."""
        gone = str(tmp_path / "gone")
        outcome = await attempt(["true"], logs, cwd=gone)
        assert (outcome.exit_code, outcome.error) == (127, f"working directory not found: {gone}")

    async def test_our_own_directory_is_the_fast_path(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """None and os.getcwd() spawn here; anything else, or a deleted cwd, does not."""
        monkeypatch.chdir(tmp_path)
        assert spawn._spawns_here(None)
        assert spawn._spawns_here(os.getcwd())
        assert not spawn._spawns_here(str(tmp_path / "other"))


class TestStalls:
    def test_spawns_stay_inline_while_they_are_quick(self) -> None:
        stalls = spawn._SpawnStalls(limit_ns=1000, probe_every=4)
        for _ in range(50):
            assert stalls.inline()
            stalls.record(900)

    def test_slow_spawns_move_to_threads_with_a_probe_every_few(self) -> None:
        """Past the limit, one spawn in `probe_every` is inline; quick probes bring it back."""
        stalls = spawn._SpawnStalls(limit_ns=1000, probe_every=4)
        for _ in range(8):
            stalls.record(10_000)
        decisions = [stalls.inline() for _ in range(8)]
        assert decisions == [False, False, False, True] * 2
        while not stalls.inline():
            pass
        for _ in range(30):  # quick inline probes pull the average down
            stalls.record(100)
        assert stalls.inline()

    async def test_an_attempt_spawned_inline_is_measured(self, logs: WorkerLogs) -> None:
        stalls = spawn._SpawnStalls()
        original = spawn._stalls
        spawn._stalls = stalls
        try:
            await attempt(["true"], logs)
        finally:
            spawn._stalls = original
        assert stalls.average_ns > 0


def _zombie_children() -> list[int]:
    zombies = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(entry)
            if fields is not None and int(fields[1]) == os.getpid() and fields[0] == b"Z":
                zombies.append(int(entry))
    return zombies


class TestOddParents:
    async def test_no_pidfd_kills_the_child_and_fails_the_attempt(
        self, logs: WorkerLogs, cwd: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without a pidfd the child cannot be supervised: it is killed, not left running."""
        pids: list[int] = []

        def no_pidfd(pid: int, flags: int = 0) -> int:
            pids.append(pid)
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

        with monkeypatch.context() as patched:
            patched.setattr(os, "pidfd_open", no_pidfd)
            outcome = await attempt(["sleep", "60"], logs, cwd=cwd)
        assert outcome.exit_code == 126
        assert outcome.error == "cannot watch the process (killed): Too many open files"
        ((pid,),) = [pids]
        assert stat_fields(pid) is None  # killed and reaped

    @pytest.mark.parametrize("reaped", ["before-watch", "while-watched"])
    async def test_sigchld_ignored(
        self, logs: WorkerLogs, cwd: str, reaped: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """
        With SIGCHLD ignored the kernel reaps the child; the attempt still ends (status 0).

        A child that exits at once may be gone before its pidfd is opened;
        both orders are forced here rather than left to the race.
        """
        pidfd_open = os.pidfd_open

        def open_after_exit(pid: int, flags: int = 0) -> int:
            deadline = time.monotonic() + SAFETY
            while stat_fields(pid) is not None and time.monotonic() < deadline:
                time.sleep(0.001)
            return pidfd_open(pid, flags)

        argv = (
            ["sh", "-c", "exit 3"]
            if reaped == "before-watch"
            else ["sh", "-c", "sleep 0.2; exit 3"]
        )
        if reaped == "before-watch":
            monkeypatch.setattr(os, "pidfd_open", open_after_exit)
        previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        try:
            outcome = await attempt(argv, logs, cwd=cwd)
        finally:
            signal.signal(signal.SIGCHLD, previous)
        assert outcome.exit_code == 0  # the status is lost, as with Popen
        assert outcome.error is None


def test_missing_path_entries_cost_no_spawn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The search skips directories without the file: only the file that exists is spawned."""
    script(tmp_path / "bin", "uet-found-late", "#!/bin/sh\nexit 0\n")
    (tmp_path / "file").write_text("")
    env = {"PATH": f"{tmp_path / 'none'}:{tmp_path / 'file'}:{tmp_path / 'bin'}"}
    tried: list[str] = []
    real = os.posix_spawn

    def counting(path: str, *args: object, **kwargs: object) -> int:
        tried.append(path)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "posix_spawn", counting)
    pid = spawn._posix_spawn(["uet-found-late"], env, spawn._file_actions(1, 2))
    os.waitpid(pid, 0)
    assert tried == [str(tmp_path / "bin" / "uet-found-late")]
    with pytest.raises(FileNotFoundError):
        spawn._posix_spawn(["uet-found-nowhere"], env, spawn._file_actions(1, 2))
    assert len(tried) == 1
