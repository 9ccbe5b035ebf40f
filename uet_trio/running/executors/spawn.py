"""
Starting an attempt's child: in a new session, its output on the worker's
log files, watched by a pidfd from the first instant.

When the child's working directory is ours (None, or equal to
`os.getcwd()`), it is spawned with `os.posix_spawn` right on the event
loop's thread: glibc implements it with ``clone(CLONE_VM | CLONE_VFORK)``,
so it costs the same whatever our memory, and there is no thread hop. The
executable is searched in the *child's* PATH as Popen does; stdin is
/dev/null; SIGPIPE and SIGXFSZ get their default disposition back
(``restore_signals``); descriptors are not inherited because Python opens
them close-on-exec, and those that were inheritable at the first spawn
(inherited by this process) are closed in the child (``close_fds``; one made
inheritable later, on purpose, by a program embedding us does reach the
child, as scanning for them per spawn would cost half a spawn). The start
time is the CLOCK_BOOTTIME tick around the spawn (see `_start_time_between`).

posix_spawn cannot change directory, so a child that runs elsewhere is
started by `subprocess.Popen` in a worker thread, as
`trio.lowlevel.open_process` does; that thread call also reads the log
offsets, opens the pidfd and reads the start time. The thread path is also
taken while inline spawns keep the loop waiting too long (an oversubscribed
machine, see `_SpawnStalls`).

Both need pidfds (Linux >= 5.3); where there are none, `portable` starts
children instead.

A failure to start is not an error but a `NotStarted` with the shell's
codes: 127 for a missing command or directory, 126 for one that cannot be
executed, a log file that cannot be read or a child that cannot be watched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import trio

from .procfs import open_descriptors, process_start_time, signal_group


class Started(NamedTuple):
    """A child that runs: unreaped, watched by `pidfd`."""

    child: Child
    pidfd: int
    start: int | None
    """Its start time in clock ticks since boot (see `procfs`), if known."""
    out_offset: int
    """The sizes of the worker's log files before the spawn."""
    err_offset: int


class NotStarted(NamedTuple):
    """Why an attempt's child could not be started."""

    exit_code: int
    """127 or 126, as a shell would report it."""
    error: str
    out_offset: int
    err_offset: int


async def start(
    argv: Sequence[str],
    cwd: str | None,
    env: Mapping[str, str] | None,
    out_fd: int,
    err_fd: int,
) -> Started | NotStarted:
    """
    Start `argv` in a new session with stdout and stderr on `out_fd`, `err_fd`.

    Cancellation: a spawn that has begun completes (a worker thread is not
    abandoned); the caller's next checkpoint delivers the cancellation, and
    its cleanup stops the new group.
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    if _spawns_here(cwd) and _stalls.inline():
        return _spawn_here(argv, cwd, env, out_fd, err_fd)
    # Another directory, or spawning here has lately kept the loop waiting.
    return await trio.to_thread.run_sync(_spawn_in_thread, argv, cwd, env, out_fd, err_fd)


def spawn_error(error: OSError, argv: Sequence[str], cwd: str | None) -> tuple[int, str]:
    """The shell's exit code (127 or 126) and a message for a failed start."""
    if isinstance(error, FileNotFoundError):
        if cwd is not None and error.filename == cwd:
            return 127, f"working directory not found: {cwd}"
        return 127, f"command not found: {argv[0]}"
    if isinstance(error, PermissionError):
        return 126, f"permission denied: {argv[0]}"
    return 126, f"cannot execute {argv[0]}: {error.strerror or error}"


class Child:
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

        With SIGCHLD ignored by the program embedding us, a child that exits
        at once is reaped by the kernel before its pidfd can be opened
        (ESRCH). An already readable eventfd then stands in for the pidfd, so
        the attempt ends as with any exited child: its group is swept, and
        `reap` reports the lost status as 0.

        Raises:
            OSError: no pidfd (e.g. EMFILE); the child is killed and reaped first.
        """
        try:
            return os.pidfd_open(self.pid)
        except ProcessLookupError:
            return os.eventfd(1)
        except OSError:
            signal_group(self.pid, signal.SIGKILL)
            self.reap()
            raise


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


def log_offsets(out_fd: int, err_fd: int) -> tuple[int, int] | NotStarted:
    """The sizes of the worker's log files: where the next attempt's output begins."""
    try:
        return os.fstat(out_fd).st_size, os.fstat(err_fd).st_size
    except OSError as error:
        return NotStarted(126, f"cannot open log files: {error}", 0, 0)


def _spawn_here(
    argv: Sequence[str],
    cwd: str | None,
    env: Mapping[str, str] | None,
    out_fd: int,
    err_fd: int,
) -> Started | NotStarted:
    """
    Start `argv` in a new session with `os.posix_spawn`, on the calling thread.

    For a child that runs in our own working directory. glibc's posix_spawn
    uses ``clone(CLONE_VM | CLONE_VFORK)``: its cost does not grow with our
    memory and it takes no thread hop.
    """
    offsets = log_offsets(out_fd, err_fd)
    if isinstance(offsets, NotStarted):
        return offsets
    out_offset, err_offset = offsets
    environment = os.environ if env is None else env
    actions = _file_actions(out_fd, err_fd)
    before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    try:
        pid = _posix_spawn(argv, environment, actions)
    except OSError as error:
        code, message = spawn_error(error, argv, None)
        return NotStarted(code, message, out_offset, err_offset)
    after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    start = _start_time_between(pid, before, after)
    return _watched(Child(pid), start, out_offset, err_offset)


def _spawn_in_thread(
    argv: Sequence[str],
    cwd: str | None,
    env: Mapping[str, str] | None,
    out_fd: int,
    err_fd: int,
) -> Started | NotStarted:
    """
    Start `argv` in a new session in directory `cwd`; runs in a worker thread.

    `subprocess.Popen`, as `trio.lowlevel.open_process` does, for a child
    whose working directory is not ours (posix_spawn cannot set one). The
    same thread call reads the log offsets, opens the pidfd and reads the
    start time.
    """
    offsets = log_offsets(out_fd, err_fd)
    if isinstance(offsets, NotStarted):
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
        code, message = spawn_error(error, argv, cwd)
        return NotStarted(code, message, out_offset, err_offset)
    return _watched(Child(proc.pid, proc), process_start_time(proc.pid), out_offset, err_offset)


def _watched(
    child: Child, start: int | None, out_offset: int, err_offset: int
) -> Started | NotStarted:
    """`child`, started at `start`, with its pidfd; or why it cannot be watched (it is killed)."""
    try:
        pidfd = child.watch()
    except OSError as error:
        message = f"cannot watch the process (killed): {error.strerror or error}"
        return NotStarted(126, message, out_offset, err_offset)
    return Started(child, pidfd, start, out_offset, err_offset)


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
    """
    Our descriptors above 2 that a child would inherit.

    Listed from /proc/self/fd; without /proc every descriptor number below
    the limit on open files is tried, as Popen's ``close_fds`` does then.
    """
    fds = open_descriptors()
    inheritable = []
    for fd in range(3, _descriptor_limit()) if fds is None else fds:
        if fd > 2:
            with contextlib.suppress(OSError):  # not open (the listing's own, or a gap)
                if os.get_inheritable(fd):
                    inheritable.append(fd)
    return tuple(inheritable)


def _descriptor_limit() -> int:
    """One more than the highest descriptor number this process may have open."""
    with contextlib.suppress(ValueError, OSError):
        limit = os.sysconf("SC_OPEN_MAX")
        if limit > 0:
            return limit
    return 256


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
        # A missing file is skipped without a spawn: a failed exec still
        # costs a whole clone and reap of the child that tried it.
        try:
            os.stat(path)
        except (FileNotFoundError, NotADirectoryError) as error:
            first_error = first_error or error
            continue
        except OSError:
            pass  # the spawn reports it, as Popen would
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
