"""
One attempt of one command, with no process left behind.

How an attempt runs:

1. The worker's two log files (``w<N>.out``, ``w<N>.err``, opened once per
   worker with ``O_APPEND``) become the child's stdout and stderr, so output
   flows from the child to disk without passing through Python. The attempt's
   output is the byte range between the files' sizes before the spawn and
   after the process group is gone.
2. The child starts in a new session (its own process group, pgid = pid).
   When its working directory is ours (None, or equal to `os.getcwd()`), it
   is spawned with `os.posix_spawn` right on the event loop's thread: glibc
   implements it with ``clone(CLONE_VM | CLONE_VFORK)``, so it costs the
   same whatever our memory, and there is no thread hop. The executable is
   searched in the *child's* PATH as Popen does; stdin is /dev/null; SIGPIPE
   and SIGXFSZ get their default disposition back (``restore_signals``);
   descriptors are not inherited because Python opens them close-on-exec,
   and those that were inheritable at the first spawn (inherited by this
   process) are closed in the child (``close_fds``; one made inheritable
   later, on purpose, by a program embedding us does reach the child, as
   scanning for them per spawn would cost half a spawn). The start time is the
   CLOCK_BOOTTIME tick around the spawn (see `_start_time_between`).
   posix_spawn cannot change directory, so a child that runs elsewhere is
   started by `subprocess.Popen` in a worker thread, as
   `trio.lowlevel.open_process` does; that thread call also reads the log
   offsets, opens the pidfd and reads the start time. The thread path is
   also taken while inline spawns keep the loop waiting too long (an
   oversubscribed machine, see `_SpawnStalls`).
3. We wait on a pidfd of our own for the child to *exit* without reaping it.
   While the exited leader is an unreaped zombie its pid, and so its process
   group id, cannot be reused, which makes the final ``killpg(SIGKILL)`` that
   sweeps background grandchildren safe; only then is it reaped
   (``os.waitpid``, or ``Popen.wait`` for the fallback). (`trio.run_process`
   reaps the child before returning, after which a group kill could hit a
   recycled pgid.)
4. On timeout or cancellation the group gets SIGTERM, then SIGKILL after the
   grace period (cut short by the `hurry` event, e.g. a second Ctrl-C). This
   cleanup runs shielded: it is bounded by the grace period and must finish,
   or a grandchild would outlive its task.
5. Spawn failures are attempt failures with the shell's codes: 127 for a
   missing command, 126 for one that cannot be executed.

A process that calls ``setsid`` itself leaves our group and is out of reach of
group signals; only cgroups can contain that.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs
import trio


@attrs.frozen
class ProcessOutcome:
    """How one command attempt ended."""

    exit_code: int | None
    """The exit status, or None when a signal killed it."""
    signal: int | None
    """The signal that killed the process, if one did."""
    timed_out: bool
    error: str | None
    """Why the command could not run (spawn failure, log file failure), if it could not."""
    out_offset: int
    out_length: int
    err_offset: int
    err_length: int


class WorkerLogs:
    """
    The append-only stdout/stderr files of one worker in one run.

    Opened on first use (a worker that runs only in-process tasks creates no
    files), with mode 0600 and the directory created 0700. A symlink planted
    at a file's path or at the run directory itself is not followed: the
    directory is opened with ``O_NOFOLLOW`` and the files are created relative
    to it, also with ``O_NOFOLLOW``. Without a directory (a run recorded in
    an in-memory store and given no log root) output goes to ``/dev/null``.
    `close()` closes both.
    """

    def __init__(self, directory: Path | None, worker: int) -> None:
        self.directory = directory
        self.worker = worker
        self._fds: tuple[int, int] | None = None
        # Reported with every spawn: built once, not per attempt.
        self._out_path = os.devnull if directory is None else str(directory / f"w{worker}.out")
        self._err_path = os.devnull if directory is None else str(directory / f"w{worker}.err")

    @property
    def out_path(self) -> str:
        return self._out_path

    @property
    def err_path(self) -> str:
        return self._err_path

    def fds(self) -> tuple[int, int]:
        """
        The (stdout, stderr) descriptors, opening the files if needed.

        Raises:
            OSError: the directory or files cannot be created or opened.
        """
        if self._fds is None:
            if self.directory is None:
                out = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
                self._fds = (out, os.dup(out))
                return self._fds
            self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.directory.mkdir(mode=0o700, exist_ok=True)
            directory = os.open(
                self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            )
            try:
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                out = os.open(Path(self.out_path).name, flags, 0o600, dir_fd=directory)
                try:
                    err = os.open(Path(self.err_path).name, flags, 0o600, dir_fd=directory)
                except BaseException:
                    os.close(out)
                    raise
            finally:
                os.close(directory)
            self._fds = (out, err)
        return self._fds

    def close(self) -> None:
        """Close the files if they were opened."""
        if self._fds is not None:
            for fd in self._fds:
                os.close(fd)
            self._fds = None


def _stat_fields(pid: int | str) -> list[bytes] | None:
    """
    The fields of /proc/<pid>/stat after the command name (state first), or None.

    The command name may contain spaces and parentheses, so fields are counted
    from the last closing parenthesis. Raw descriptors, not open(): this runs
    once per spawn, and a buffered file adds syscalls (fstat, ioctl) each of
    which releases and re-takes the GIL.
    """
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    return raw[raw.rfind(b")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """
    The start time of process `pid` in clock ticks since boot (/proc stat field 22).

    Together with the pid it identifies a process across pid reuse. None when
    the process does not exist or /proc is unavailable.
    """
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None else None


def process_alive(pid: int, start: int | None) -> bool:
    """Whether `pid` is running and (when `start` is known) is the same process."""
    current = process_start_time(pid)
    return current is not None and (start is None or current == start)


def kill_group_if_owned(pgid: int, start: int | None, key: str | None = None) -> bool:
    """
    SIGKILL what is left of process group `pgid`, which a dead runner started.

    Used on resume. While the group's leader is alive it is ours only if its
    start time is `start`: a recycled pid is never signalled. Once the leader
    has exited, background members may still run; each is killed only if its
    environment holds ``UET_IDEMPOTENCY_KEY=<key>``, which every process of
    the attempt inherits, so the members of a group that merely reuses the
    number are left alone. Returns whether anything was signalled.
    """
    if start is None:
        return False
    leader_start = process_start_time(pgid)
    if leader_start is not None:
        if leader_start != start:
            return False
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    if key is None:
        return False
    marker = f"UET_IDEMPOTENCY_KEY={key}".encode()
    killed = False
    for pid in _group_members(pgid):
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                ours = marker in environ.read().split(b"\0")
            if ours:
                os.kill(pid, signal.SIGKILL)
                killed = True
        except OSError:
            continue
    return killed


def _group_members(pgid: int) -> list[int]:
    """The pids of processes whose process group is `pgid` (from /proc)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None and int(fields[2]) == pgid:
                members.append(int(entry))
    return members


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def _wait_exit(pidfd: int, hurry: trio.Event | None) -> None:
    """Wait until the process behind `pidfd` exits, or `hurry` is set."""
    if hurry is None:
        await trio.lowlevel.wait_readable(pidfd)
        return
    async with trio.open_nursery() as nursery:

        async def exit_then_stop() -> None:
            await trio.lowlevel.wait_readable(pidfd)
            nursery.cancel_scope.cancel()

        async def hurry_then_stop() -> None:
            await hurry.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(exit_then_stop)
        nursery.start_soon(hurry_then_stop)


async def _stop_group(pgid: int, pidfd: int, grace: float, hurry: trio.Event | None) -> None:
    """SIGTERM the group, wait up to `grace` for the leader, then SIGKILL the group."""
    _signal_group(pgid, signal.SIGTERM)
    with trio.move_on_after(grace):
        await _wait_exit(pidfd, hurry)
    _signal_group(pgid, signal.SIGKILL)
    await trio.lowlevel.wait_readable(pidfd)


def _spawn_error(error: OSError, argv: Sequence[str], cwd: str | None) -> tuple[int, str]:
    if isinstance(error, FileNotFoundError):
        if cwd is not None and error.filename == cwd:
            return 127, f"working directory not found: {cwd}"
        return 127, f"command not found: {argv[0]}"
    if isinstance(error, PermissionError):
        return 126, f"permission denied: {argv[0]}"
    return 126, f"cannot execute {argv[0]}: {error.strerror or error}"


class _Child:
    """A spawned leader: its pid, and how to reap it once it has exited."""

    __slots__ = ("_popen", "pid")

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self._popen = popen

    def reap(self) -> int:
        """Reap the exited leader: its exit status, or minus the signal that killed it."""
        if self._popen is not None:
            return self._popen.wait()
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            # SIGCHLD ignored by the program embedding us: the kernel reaped
            # it and the status is lost. Popen.wait reports 0 then; so do we.
            return 0
        return os.waitstatus_to_exitcode(status)

    def watch(self) -> int:
        """
        A pidfd of the child; if none can be had, the child's group is killed.

        Raises:
            OSError: no pidfd (e.g. EMFILE); the child is killed and reaped first.
        """
        try:
            return os.pidfd_open(self.pid)
        except OSError:
            _signal_group(self.pid, signal.SIGKILL)
            self.reap()
            raise


async def run_attempt(
    argv: Sequence[str],
    *,
    cwd: str | None,
    env: Mapping[str, str] | None,
    timeout: float | None,
    kill_grace: float,
    logs: WorkerLogs,
    hurry: trio.Event | None = None,
    on_spawn: Callable[[int, int | None, int, int], None] | None = None,
) -> ProcessOutcome:
    """
    Run `argv` once and return how it ended.

    Args:
        argv: the command; never passed through a shell.
        cwd, env: working directory and complete environment of the child.
        timeout: seconds before the group is stopped (None: no limit).
        kill_grace: seconds between SIGTERM and SIGKILL when stopping it.
        logs: the worker's log files; the outcome gives this attempt's byte ranges.
        hurry: when set, any grace period in progress ends at once (SIGKILL).
        on_spawn: called with (pid, start time, stdout offset, stderr offset)
            as soon as the child exists.

    Cancellation:
        The process group is stopped (SIGTERM, grace, SIGKILL) and reaped,
        shielded, before `trio.Cancelled` propagates; no child survives.

    Errors:
        Spawn and log-file failures are returned as an outcome with an
        ``error`` (exit code 127 or 126), never raised.
    """
    try:
        out_fd, err_fd = logs.fds()
    except OSError as error:
        await trio.lowlevel.checkpoint()
        return ProcessOutcome(126, None, False, f"cannot open log files: {error}", 0, 0, 0, 0)
    await trio.lowlevel.checkpoint_if_cancelled()
    if _spawns_here(cwd) and _stalls.inline():
        spawned = _spawn_here(argv, cwd, env, out_fd, err_fd)
    else:
        # Another directory, or spawning here has lately kept the loop
        # waiting. Not abandoned on cancellation: the spawn completes, and
        # the pending cancellation then arrives at the first checkpoint
        # inside the try below, whose cleanup stops the new group.
        spawned = await trio.to_thread.run_sync(_spawn_in_thread, argv, cwd, env, out_fd, err_fd)
    if isinstance(spawned, ProcessOutcome):
        await trio.lowlevel.checkpoint()
        return spawned
    child, pidfd, start, out_offset, err_offset = spawned
    pid = child.pid
    timed_out = False
    # Whether the leader is known to have exited; when it is, the cleanup
    # below needs no extra poll of the pidfd (one syscall fewer per attempt).
    exited = False
    try:
        if on_spawn is not None:
            on_spawn(pid, start, out_offset, err_offset)
        if timeout is None:
            await trio.lowlevel.wait_readable(pidfd)
            exited = True
        else:
            with trio.move_on_after(timeout) as deadline:
                await trio.lowlevel.wait_readable(pidfd)
                exited = True
            if deadline.cancelled_caught:
                timed_out = True
                with trio.CancelScope(shield=True):
                    await _stop_group(pid, pidfd, kill_grace, hurry)
                exited = True
    finally:
        with trio.CancelScope(shield=True):
            if not exited and not _exited(pidfd):
                await _stop_group(pid, pidfd, kill_grace, hurry)
            # The leader has exited but is not reaped, so its pgid is still
            # ours: sweep background grandchildren before reaping it.
            _signal_group(pid, signal.SIGKILL)
            status = child.reap()  # the leader has exited: this does not block
            os.close(pidfd)
    return ProcessOutcome(
        exit_code=status if status >= 0 else None,
        signal=-status if status < 0 else None,
        timed_out=timed_out,
        error=None,
        out_offset=out_offset,
        out_length=os.fstat(out_fd).st_size - out_offset,
        err_offset=err_offset,
        err_length=os.fstat(err_fd).st_size - err_offset,
    )


_Spawned = tuple[_Child, int, int | None, int, int]


class _SpawnStalls:
    """
    Whether to spawn on the event loop's thread, judged by how long it lately waited.

    posix_spawn returns only once the child has exec'd (vfork semantics),
    and CPython holds the GIL meanwhile: the loop and every other thread
    wait. On a quiet machine that is ~0.1-0.5 ms; when the machine is
    oversubscribed the new child waits for a CPU and each spawn stalls the
    loop for milliseconds, one after the other. Popen in worker threads
    costs more CPU but its waits overlap. So while the moving average of
    inline spawns' durations exceeds `limit_ns`, attempts are spawned in
    threads, and every `probe_every`-th one is still spawned inline, which
    keeps the average current and brings spawning back to the loop when
    the machine is quiet again.
    """

    def __init__(self, limit_ns: int = 750_000, probe_every: int = 16) -> None:
        self.limit_ns = limit_ns
        self.probe_every = probe_every
        self.average_ns = 0.0
        self._deferred = 0

    def inline(self) -> bool:
        """Whether the next spawn (in our directory) should be made on the loop's thread."""
        if self.average_ns <= self.limit_ns:
            return True
        self._deferred += 1
        if self._deferred >= self.probe_every:
            self._deferred = 0
            return True
        return False

    def record(self, duration_ns: int) -> None:
        """Account one inline spawn that kept the calling thread `duration_ns`."""
        self.average_ns += (duration_ns - self.average_ns) / 8


_stalls = _SpawnStalls()


def _spawns_here(cwd: str | None) -> bool:
    """Whether a child with working directory `cwd` can be spawned without a chdir."""
    if cwd is None:
        return True
    try:
        return cwd == os.getcwd()
    except OSError:  # our own directory is gone: let the fallback report it
        return False


def _offsets(out_fd: int, err_fd: int) -> tuple[int, int] | ProcessOutcome:
    try:
        return os.fstat(out_fd).st_size, os.fstat(err_fd).st_size
    except OSError as error:
        return ProcessOutcome(126, None, False, f"cannot open log files: {error}", 0, 0, 0, 0)


def _spawn_here(
    argv: Sequence[str],
    cwd: str | None,
    env: Mapping[str, str] | None,
    out_fd: int,
    err_fd: int,
) -> _Spawned | ProcessOutcome:
    """
    Start `argv` in a new session with `os.posix_spawn`, on the calling thread.

    For a child that runs in our own working directory. glibc's posix_spawn
    uses ``clone(CLONE_VM | CLONE_VFORK)``: its cost does not grow with our
    memory and it takes no thread hop. Returns what `_spawn_in_thread` does.
    """
    offsets = _offsets(out_fd, err_fd)
    if isinstance(offsets, ProcessOutcome):
        return offsets
    out_offset, err_offset = offsets
    environment = os.environ if env is None else env
    actions = _file_actions(out_fd, err_fd)
    before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    try:
        pid = _posix_spawn(argv, environment, actions)
    except OSError as error:
        code, message = _spawn_error(error, argv, None)
        return ProcessOutcome(code, None, False, message, out_offset, 0, err_offset, 0)
    after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    child = _Child(pid)
    try:
        pidfd = child.watch()
    except OSError as error:
        return ProcessOutcome(126, None, False, _watch_error(error), out_offset, 0, err_offset, 0)
    return child, pidfd, _start_time_between(pid, before, after), out_offset, err_offset


def _spawn_in_thread(
    argv: Sequence[str],
    cwd: str | None,
    env: Mapping[str, str] | None,
    out_fd: int,
    err_fd: int,
) -> _Spawned | ProcessOutcome:
    """
    Start `argv` in a new session in directory `cwd`; runs in a worker thread.

    `subprocess.Popen`, as `trio.lowlevel.open_process` does, for a child
    whose working directory is not ours (posix_spawn cannot set one). The
    same thread call reads the log offsets, opens the pidfd and reads the
    start time. Returns the child, its pidfd, its start time and the log
    offsets before the spawn, or the outcome of an attempt that could not
    start.
    """
    offsets = _offsets(out_fd, err_fd)
    if isinstance(offsets, ProcessOutcome):
        return offsets
    out_offset, err_offset = offsets
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out_fd,
            stderr=err_fd,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    except OSError as error:
        code, message = _spawn_error(error, argv, cwd)
        return ProcessOutcome(code, None, False, message, out_offset, 0, err_offset, 0)
    child = _Child(proc.pid, proc)
    try:
        pidfd = child.watch()
    except OSError as error:
        return ProcessOutcome(126, None, False, _watch_error(error), out_offset, 0, err_offset, 0)
    return child, pidfd, process_start_time(proc.pid), out_offset, err_offset


def _watch_error(error: OSError) -> str:
    return f"cannot watch the process (killed): {error.strerror or error}"


def _clock_tick_ns() -> int | None:
    """Nanoseconds per clock tick, if the kernel's conversion is a plain division."""
    with contextlib.suppress(ValueError, OSError):
        hertz = os.sysconf("SC_CLK_TCK")
        if hertz > 0 and 1_000_000_000 % hertz == 0:
            return 1_000_000_000 // hertz
    return None


_TICK_NS = _clock_tick_ns()
# Whether the start time derived from CLOCK_BOOTTIME matched /proc (checked once).
_clock_matches_proc: bool | None = None


def _start_time_between(pid: int, before: int, after: int) -> int | None:
    """
    The start time of `pid`, spawned between CLOCK_BOOTTIME `before` and `after` (ns).

    The kernel stamps a new process with the boot-time clock when it creates
    it, and /proc shows that stamp in whole clock ticks (floor division).
    When the spawn did not cross a tick boundary, the start time is therefore
    the tick both readings fall in, and /proc need not be read: reading
    /proc/<pid>/stat of a process that is still loading its libraries costs
    ~90 us of waiting and ~40 us of CPU, against ~8 us once it has settled.
    The first such derivation in a process is checked against /proc; if they
    ever disagree (an unexpected kernel), /proc is read every time.
    """
    global _clock_matches_proc
    if _TICK_NS is None or _clock_matches_proc is False:
        return process_start_time(pid)
    tick = before // _TICK_NS
    if tick != after // _TICK_NS:
        return process_start_time(pid)
    if _clock_matches_proc is None:
        _clock_matches_proc = process_start_time(pid) == tick
        if not _clock_matches_proc:
            return process_start_time(pid)
    return tick


# Signals Python ignores for itself and `subprocess` restores for children
# (``restore_signals=True``); ignored dispositions survive exec otherwise.
_RESTORED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name)
)

_devnull_fd: int | None = None
_inherited_fds: tuple[int, ...] | None = None


def _file_actions(out_fd: int, err_fd: int) -> list[tuple[int, ...]]:
    """
    The child's descriptors: /dev/null, the log files, and nothing else.

    Descriptors Python creates are close-on-exec (PEP 446), so the child gets
    none of ours. Descriptors that were inheritable when the first attempt
    was spawned (inherited by this process, or made inheritable on purpose
    by the program embedding us) are closed in the child, as Popen's
    ``close_fds`` would; they are listed once, as a scan per spawn would cost
    more than the spawn saves.
    """
    global _devnull_fd, _inherited_fds
    if _devnull_fd is None:
        _devnull_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    if _inherited_fds is None:
        _inherited_fds = _scan_inheritable()
    actions: list[tuple[int, ...]] = [
        (os.POSIX_SPAWN_DUP2, _devnull_fd, 0),
        (os.POSIX_SPAWN_DUP2, out_fd, 1),
        (os.POSIX_SPAWN_DUP2, err_fd, 2),
    ]
    # After the dup2s: closing a descriptor number that is not open is not an error.
    actions.extend((os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_fds)
    return actions


def _scan_inheritable() -> tuple[int, ...]:
    """Our descriptors above 2 that a child would inherit."""
    inheritable = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):  # the listing's own descriptor
                if os.get_inheritable(fd):
                    inheritable.append(fd)
    return tuple(inheritable)


# Hits of the executable search by (name, PATH), as absolute paths.
_found: dict[tuple[str, str | None], str] = {}


def _posix_spawn(
    argv: Sequence[str], env: Mapping[str, str], actions: list[tuple[int, ...]]
) -> int:
    """
    `os.posix_spawn` of `argv` in a new session, searched as Popen searches.

    A name without a slash is looked up in the *child's* PATH (Popen's rule;
    ``posix_spawnp`` would search ours): each directory in turn, skipping
    ENOENT and ENOTDIR, raising the first other error if nothing ran. A hit
    is remembered by name and PATH; if the remembered file fails, the
    search runs again. Raises OSError as Popen does.
    """
    name = argv[0]
    args = argv if isinstance(argv, (list, tuple)) else list(argv)

    def spawn(path: str) -> int:
        started = time.monotonic_ns()
        pid = os.posix_spawn(
            path, args, env, file_actions=actions, setsid=True, setsigdef=_RESTORED_SIGNALS
        )
        _stalls.record(time.monotonic_ns() - started)  # successful spawns only
        return pid

    if "/" in name:
        return spawn(name)
    key = (name, env.get("PATH"))
    path = _found.get(key)
    if path is not None:
        try:
            return spawn(path)
        except OSError:
            del _found[key]
    first_error: OSError | None = None
    for directory in os.get_exec_path(env):
        path = os.path.join(directory, name)
        try:
            pid = spawn(path)
        except (FileNotFoundError, NotADirectoryError) as error:
            first_error = first_error or error
            continue
        except OSError as error:
            if first_error is None or isinstance(
                first_error, (FileNotFoundError, NotADirectoryError)
            ):
                first_error = error
            continue
        if os.path.isabs(path):
            _found[key] = path
        return pid
    raise first_error or FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)


def _exited(pidfd: int) -> bool:
    """Whether the process behind `pidfd` has exited (without reaping it)."""
    readable, _, _ = select.select([pidfd], [], [], 0)
    return bool(readable)
