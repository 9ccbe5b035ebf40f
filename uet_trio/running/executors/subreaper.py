"""
Descendants that leave an attempt's process group: adopted, then stopped
when their attempt ends.

A task's process that calls ``setsid`` (a daemon, ``setsid cmd &``) leaves
the attempt's process group, so the group signals of `process` miss it.
Linux lets a process declare itself a *child subreaper*
(``prctl(PR_SET_CHILD_SUBREAPER)``): a descendant orphaned by its parent's
exit is then re-parented to it instead of to init, whatever session it is
in. `become_subreaper` makes this process one. It is process-wide, so the
library never calls it by itself; the ``uet`` command does, and an
application embedding uet_trio may.

When an attempt ends (success, failure, timeout or cancellation) and this
process is a subreaper, `sweep` SIGKILLs and reaps the attempt's processes
that outlived its group. Only our own children can be candidates (an
escapee is an orphan re-parented to us), and the kernel hands orphans to
the thread-group leader, so the candidates are the pids listed in
``/proc/<pid>/task/<pid>/children`` minus the leaders of attempts that run
(`leaders`): one file read per attempt end when nothing escaped. A
candidate is the attempt's when, read through a pidfd opened first (so the
pidfd names the process that was checked), it is still our child and either

- its session is one the attempt owns: the leader's (a background member of
  the group, alive or a zombie; the unreaped leader holds the number), or
  the session of an escapee already caught in this sweep; or
- its environment holds ``UET_IDEMPOTENCY_KEY=<key>``, which every process
  of the attempt inherits and which is unique per attempt.

A caught process gets SIGKILL through its pidfd, is waited for on the pidfd
(its orphans are re-parented to us as it exits), has its own process group
killed while it is an unreaped zombie (it holds the group id, as the leader
does for `process`), and is reaped by pid; then the children are read
again, until none of them is the attempt's.

Reaping: once we are a subreaper, the orphans of every attempt are our
children, and no one else reaps them. A periodic ``waitpid(-1)`` would
steal the exit status of the leaders that `spawn.Child.reap` (by pid) and
Trio's processes (pidfd, then ``waitpid(pid)``) are about to collect, so
nothing here waits for "any child": only the pids identified above, each
our unreaped child from its check to its reaping, so the number cannot be
another process's meanwhile. What is never identified is never reaped: a
descendant that called ``setsid`` and exited on its own before its attempt
ended leaves a zombie (no environment, a session of its own) that stays
our child until this process exits.

Out of reach: a process that removes the key from its environment *and*
leaves the session; one that escapes through a setuid helper (not ours to
read or signal); any descendant of an embedding application that did not
opt in (without a subreaper, orphans go to init, and their attempt is no
longer their ancestor); a process re-parented to a subreaper between us
and it (a task that runs its own supervisor); a runner killed by SIGKILL,
whose adopted orphans go to the next subreaper or init; and systems
without ``PR_SET_CHILD_SUBREAPER`` or pidfds (non-Linux, Linux before 5.3),
where `become_subreaper` declines.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Collection

import trio

from . import portable
from .procfs import parent_and_session, signal_group

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37

leaders: set[int] = set()
"""The pids of the attempts' leaders that run or await reaping (never swept as escapees)."""


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, or None where there is none (outside Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_int
    prctl: Callable[..., int] = function
    return prctl


_PRCTL = _prctl()


def become_subreaper() -> bool:
    """
    Make this process a child subreaper; whether it now is one.

    Process-wide and inherited by no child: orphaned descendants of this
    process are re-parented to it, and the local executor stops and reaps
    those of each attempt when the attempt ends (`sweep`). Declined (False)
    outside Linux, and where children are not watched through pidfds
    (`portable`), since the sweep needs them and adopted orphans would
    otherwise be left as zombies.
    """
    if _PRCTL is None or portable.IN_USE:
        return False
    return _PRCTL(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def is_subreaper() -> bool:
    """Whether this process is a child subreaper (however it became one)."""
    if _PRCTL is None:
        return False
    value = ctypes.c_int(0)
    if _PRCTL(_PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0) != 0:
        return False
    return value.value != 0


def _children() -> list[int]:
    """The pids of our thread-group leader's children (where orphans are re-parented)."""
    me = os.getpid()
    try:
        fd = os.open(f"/proc/{me}/task/{me}/children", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return []
    finally:
        os.close(fd)
    return [int(pid) for pid in b"".join(chunks).split()]


def _holds_key(pid: int, marker: bytes) -> bool:
    """Whether the environment of `pid` holds `marker` (``NAME=value``) as one entry."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return marker in environ.read().split(b"\0")
    except OSError:
        return False


def _catch(leader: int, sessions: set[int], marker: bytes) -> list[tuple[int, int]]:
    """
    SIGKILL the children that are the attempt's; their (pid, pidfd).

    `sessions` gains the session of each caught session leader.
    """
    me = os.getpid()
    caught = []
    for pid in _children():
        if pid == leader or pid in leaders:
            continue
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue
        # Checked after the pidfd is open: if the check holds, the pidfd is
        # that process; and while it is our unreaped child, so is the pid.
        found = parent_and_session(pid)
        if found is None or found[0] != me or not (found[1] in sessions or _holds_key(pid, marker)):
            os.close(pidfd)
            continue
        with contextlib.suppress(OSError):  # already exited: reaped below all the same
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        if found[1] == pid:
            sessions.add(pid)
        caught.append((pid, pidfd))
    return caught


async def sweep(leader: int, key: str) -> None:
    """
    SIGKILL and reap the processes of the attempt led by `leader` that outlived its group.

    Call it after the group's final SIGKILL and before reaping the leader
    (its unreaped pid names the attempt's session), and only while this
    process is a subreaper. Each caught process is awaited on its pidfd, so
    the loop does not block; run it shielded, like the rest of the cleanup.
    """
    marker = f"UET_IDEMPOTENCY_KEY={key}".encode()
    sessions = {leader}
    while caught := _catch(leader, sessions, marker):
        await _reap(caught)


async def _reap(caught: Collection[tuple[int, int]]) -> None:
    """Wait for each caught process to exit, kill its group while it holds the id, reap it."""
    for pid, pidfd in caught:
        try:
            await trio.lowlevel.wait_readable(pidfd)
            signal_group(pid, signal.SIGKILL)
            _reap_exited(pid)
        finally:
            os.close(pidfd)


def _reap_exited(pid: int) -> None:
    """Reap our child `pid`, which has exited (its pidfd is readable): this does not block."""
    # ECHILD: SIGCHLD is ignored in this process, and the kernel reaped it.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
