"""
What /proc says about a process, and signals to process groups.

A pid alone does not identify a process: pids are reused. A pid plus the
process's start time (in clock ticks since boot, /proc/<pid>/stat field 22)
does, which is what `resume` relies on to decide whether a process group a
dead runner left behind is still ours to kill.

/proc is Linux's. Where it is missing (macOS, other POSIX systems, a Linux
without it mounted) start times are None, a pid's liveness is whether it
exists at all, and a dead runner's process groups are left alone on resume
(nothing identifies them as ours).
"""

from __future__ import annotations

import contextlib
import os
import signal

_PROC = "/proc"
"""Where procfs is mounted."""


def _stat_fields(pid: int | str) -> list[bytes] | None:
    """
    The fields of /proc/<pid>/stat after the command name (state first), or None.

    The command name may contain spaces and parentheses, so fields are counted
    from the last closing parenthesis. Raw descriptors, not open(): this runs
    once per spawn, and a buffered file adds syscalls (fstat, ioctl) each of
    which releases and re-takes the GIL.
    """
    try:
        fd = os.open(f"{_PROC}/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
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


def parent_and_session(pid: int) -> tuple[int, int] | None:
    """
    The parent pid and session id of `pid` (/proc stat fields 4 and 6), or None.

    A zombie keeps both until it is reaped; `subreaper` tells an attempt's
    orphans by them.
    """
    fields = _stat_fields(pid)
    return (int(fields[1]), int(fields[3])) if fields is not None else None


def process_alive(pid: int, start: int | None) -> bool:
    """
    Whether `pid` is running and (when `start` is known) is the same process.

    Without /proc the start time cannot be checked: a process that exists
    under that pid counts as alive, even one that merely reuses the number
    (so a run it owned is not taken from it by mistake).
    """
    current = process_start_time(pid)
    if current is not None:
        return start is None or current == start
    if os.path.isdir(f"{_PROC}/self"):
        return False
    try:
        os.kill(pid, 0)  # signal 0: only whether the pid exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        pass
    return True


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
            with open(f"{_PROC}/{pid}/environ", "rb") as environ:
                ours = marker in environ.read().split(b"\0")
            if ours:
                os.kill(pid, signal.SIGKILL)
                killed = True
        except OSError:
            continue
    return killed


def _group_members(pgid: int) -> list[int]:
    """The pids of processes whose process group is `pgid` (from /proc; none without it)."""
    try:
        entries = os.listdir(_PROC)
    except OSError:
        return []
    members = []
    for entry in entries:
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None and int(fields[2]) == pgid:
                members.append(int(entry))
    return members


def open_descriptors() -> list[int] | None:
    """Our open file descriptors (from /proc/self/fd), or None without /proc."""
    try:
        names = os.listdir(f"{_PROC}/self/fd")
    except OSError:
        return None
    return [int(name) for name in names]


def signal_group(pgid: int, signum: int) -> None:
    """Send `signum` to process group `pgid`, if it still exists and is ours to signal."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
