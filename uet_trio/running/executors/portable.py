"""
Starting attempts where there are no pidfds: macOS, other POSIX systems, older kernels.

`spawn` watches every child through a pidfd (Linux >= 5.3). Where that is
not to be had (no ``os.pidfd_open``, a kernel that lacks the call, a sandbox
that refuses it), children are started here instead, by
`trio.lowlevel.open_process` (Popen in a worker thread, in a new session)
and waited for by Trio (`process.run_attempt` says what that guarantees
less). Which path runs is decided once, at import (`IN_USE`), and
``UET_PORTABLE_SPAWN=1`` chooses this one anyway.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import trio

from . import spawn
from .procfs import process_start_time


def pidfds_work() -> bool:
    """
    Whether children can be watched through pidfds here.

    ``os.pidfd_open`` is missing outside Linux and fails on kernels before
    5.3 (ENOSYS) or under a seccomp filter that refuses it (EPERM): one
    call on our own pid tells. ``UET_PORTABLE_SPAWN=1`` in the environment
    chooses the portable path anyway.
    """
    if os.environ.get("UET_PORTABLE_SPAWN") == "1":
        return False
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return False
    try:
        os.close(pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


IN_USE = not pidfds_work()
"""Whether attempts start through `start` here (no pidfds); decided once, at import."""


class PortableStarted(NamedTuple):
    """A child started by `start`: Trio waits for it, and reaps it."""

    process: trio.Process
    start: int | None
    """Its start time in clock ticks since boot, where /proc tells (see `procfs`)."""
    out_offset: int
    """The sizes of the worker's log files before the spawn."""
    err_offset: int


async def start(
    argv: Sequence[str],
    cwd: str | None,
    env: Mapping[str, str] | None,
    out_fd: int,
    err_fd: int,
) -> PortableStarted | spawn.NotStarted:
    """
    Start `argv` as `spawn.start` does, on any POSIX system: `trio.lowlevel.open_process`.

    That is `subprocess.Popen` in a worker thread: a new session
    (``start_new_session``), stdin /dev/null, only the three standard
    descriptors inherited, default SIGPIPE and SIGXFSZ, the executable
    searched in the child's PATH. Cancellation: as `spawn.start`.
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    offsets = spawn.log_offsets(out_fd, err_fd)
    if isinstance(offsets, spawn.NotStarted):
        return offsets
    out_offset, err_offset = offsets
    try:
        process = await trio.lowlevel.open_process(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out_fd,
            stderr=err_fd,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    except OSError as error:
        code, message = spawn.spawn_error(error, argv, cwd)
        return spawn.NotStarted(code, message, out_offset, err_offset)
    return PortableStarted(process, process_start_time(process.pid), out_offset, err_offset)
