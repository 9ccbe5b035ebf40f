"""
One attempt of one command, with no process left behind.

How an attempt runs:

1. The worker's two log files (``w<N>.out``, ``w<N>.err``, opened once per
   worker with ``O_APPEND``) become the child's stdout and stderr, so output
   flows from the child to disk without passing through Python. The attempt's
   output is the byte range between the files' sizes before the spawn and
   after the process group is gone. Those final sizes decide whether the
   worker starts a new pair of files (segment) before its next attempt, and,
   for a failed attempt, whether its log could not take its output: then
   that is the attempt's ``error`` (`WorkerLogs.write_failure`).
2. The child starts in a new session (its own process group, pgid = pid),
   by `spawn.start`: `os.posix_spawn` on the event loop's thread when it runs
   in our directory, `subprocess.Popen` in a worker thread otherwise.
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

Where there are no pidfds (`portable.IN_USE`: macOS, other POSIX systems,
Linux before 5.3) the child is started and waited for by Trio instead, with
the same group handling and one weaker guarantee; see `_run_portably`.

A process that calls ``setsid`` itself leaves our group and is out of reach of
group signals. When this process is a child subreaper (the ``uet`` command
makes itself one; see `subreaper`), such escapees are re-parented to us as
their parents exit, and once the group is swept, `subreaper.sweep` SIGKILLs
and reaps those that carry the attempt's ``UET_IDEMPOTENCY_KEY`` or belong
to its session, while the unreaped leader still holds the session's id.
Without a subreaper (an embedding application that did not opt in, or the
portable path) they outlive the attempt.
"""

from __future__ import annotations

import math
import os
import select
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial

import attrs
import trio

from ...recording.logs import WorkerLogs
from . import portable, spawn, subreaper
from .procfs import signal_group


@attrs.frozen
class ProcessOutcome:
    """How one command attempt ended."""

    exit_code: int | None
    """The exit status, or None when a signal killed it."""
    signal: int | None
    """The signal that killed the process, if one did."""
    timed_out: bool
    error: str | None
    """
    Why the command could not run (spawn failure, log files that cannot be
    opened), or why its output could not be written (`WorkerLogs.write_failure`).
    """
    out_offset: int
    out_length: int
    err_offset: int
    err_length: int


async def _wait_exit(wait: Callable[[], Awaitable[object]], hurry: trio.Event | None) -> None:
    """Wait until `wait()` returns (the leader has exited), or `hurry` is set."""
    if hurry is None:
        await wait()
        return
    async with trio.open_nursery() as nursery:

        async def exit_then_stop() -> None:
            await wait()
            nursery.cancel_scope.cancel()

        async def hurry_then_stop() -> None:
            await hurry.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(exit_then_stop)
        nursery.start_soon(hurry_then_stop)


async def _stop_group(
    pgid: int, wait: Callable[[], Awaitable[object]], grace: float, hurry: trio.Event | None
) -> None:
    """SIGTERM the group, wait up to `grace` for the leader (`wait`), then SIGKILL the group."""
    signal_group(pgid, signal.SIGTERM)
    with trio.move_on_after(grace):
        await _wait_exit(wait, hurry)
    signal_group(pgid, signal.SIGKILL)
    await wait()


async def _exit_or_stop(
    pid: int,
    wait: Callable[[], Awaitable[object]],
    timeout: float | None,
    kill_grace: float,
    hurry: trio.Event | None,
) -> bool:
    """
    Wait for the leader `pid` to exit (`wait`); past `timeout`, stop its group.

    Returns whether the attempt timed out. Either way the leader has exited
    when this returns; stopping the group is shielded, as it must finish.
    """
    with trio.move_on_after(timeout if timeout is not None else math.inf):
        await wait()
        return False
    with trio.CancelScope(shield=True):
        await _stop_group(pid, wait, kill_grace, hurry)
    return True


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
    key: str | None = None,
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
        key: the attempt's ``UET_IDEMPOTENCY_KEY``; given, and while this
            process is a subreaper, the attempt's processes that left its
            group are stopped and reaped when it ends (`subreaper.sweep`).

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
    if portable.IN_USE:
        return await _run_portably(
            argv, cwd, env, timeout, kill_grace, logs, out_fd, err_fd, hurry, on_spawn
        )
    # A pending cancellation arrives at the first checkpoint inside the try
    # below, whose cleanup stops the new group.
    started = await spawn.start(argv, cwd, env, out_fd, err_fd)
    if isinstance(started, spawn.NotStarted):
        await trio.lowlevel.checkpoint()
        return _not_started(started)
    child, pidfd, start, out_offset, err_offset = started
    pid = child.pid
    subreaper.leaders.add(pid)
    # Whether the leader is known to have exited; when it is, the cleanup
    # below needs no extra poll of the pidfd (one syscall fewer per attempt).
    exited = False
    wait = partial(trio.lowlevel.wait_readable, pidfd)
    try:
        if on_spawn is not None:
            on_spawn(pid, start, out_offset, err_offset)
        timed_out = await _exit_or_stop(pid, wait, timeout, kill_grace, hurry)
        exited = True
    finally:
        with trio.CancelScope(shield=True):
            if not exited and not _exited(pidfd):
                await _stop_group(pid, wait, kill_grace, hurry)
            # The leader has exited but is not reaped, so its pgid is still
            # ours: sweep background grandchildren before reaping it.
            signal_group(pid, signal.SIGKILL)
            try:
                if key is not None and subreaper.is_subreaper():
                    await subreaper.sweep(pid, key)
            finally:
                subreaper.leaders.discard(pid)
                status = child.reap()  # the leader has exited: this does not block
                os.close(pidfd)
    return _ended(status, timed_out, logs, out_fd, out_offset, err_fd, err_offset)


async def _run_portably(
    argv: Sequence[str],
    cwd: str | None,
    env: Mapping[str, str] | None,
    timeout: float | None,
    kill_grace: float,
    logs: WorkerLogs,
    out_fd: int,
    err_fd: int,
    hurry: trio.Event | None,
    on_spawn: Callable[[int, int | None, int, int], None] | None,
) -> ProcessOutcome:
    """
    `run_attempt` without pidfds: the child is started by `portable.start`
    and waited for with `trio.Process.wait`.

    The process group is handled as with pidfds: SIGTERM to the group on
    timeout or cancellation, SIGKILL after the grace, and a final SIGKILL to
    the group once the leader has exited, for background grandchildren.

    What is weaker: `trio.Process.wait` reaps the leader as it reports its
    exit, so these group signals can come after the leader's pid is free,
    whereas with pidfds the unreaped leader holds the group id to the end.
    The group id stays reserved as long as any member of the group lives,
    so the signals still reach only our processes whenever there is anyone
    left to reach. Only once the whole group has exited could the number
    be another group's, and only if, in the instant between the last member
    exiting and the signal (no checkpoint in between), the system's pid
    counter had come round to exactly that number and the new process had
    made itself a group leader. That instant is not closed here; on a
    system with pidfds it is.
    """
    started = await portable.start(argv, cwd, env, out_fd, err_fd)
    if isinstance(started, spawn.NotStarted):
        await trio.lowlevel.checkpoint()
        return _not_started(started)
    process, start, out_offset, err_offset = started
    pid = process.pid
    exited = False
    try:
        if on_spawn is not None:
            on_spawn(pid, start, out_offset, err_offset)
        timed_out = await _exit_or_stop(pid, process.wait, timeout, kill_grace, hurry)
        exited = True
    finally:
        with trio.CancelScope(shield=True):
            if not exited:
                await _stop_group(pid, process.wait, kill_grace, hurry)
            signal_group(pid, signal.SIGKILL)
    # Reaped by the wait above: no checkpoint is needed (nor wanted) to read it.
    status = process.returncode
    assert status is not None
    return _ended(status, timed_out, logs, out_fd, out_offset, err_fd, err_offset)


def _not_started(started: spawn.NotStarted) -> ProcessOutcome:
    """The outcome of an attempt whose child could not be started."""
    return ProcessOutcome(
        started.exit_code,
        None,
        False,
        started.error,
        started.out_offset,
        0,
        started.err_offset,
        0,
    )


def _ended(
    status: int,
    timed_out: bool,
    logs: WorkerLogs,
    out_fd: int,
    out_offset: int,
    err_fd: int,
    err_offset: int,
) -> ProcessOutcome:
    """
    The outcome of an attempt whose leader ended with `status` (minus a signal number).

    A failed attempt (not a timeout) whose log files could not take its
    output, as far as `WorkerLogs.write_failure` can tell, gets that as its
    ``error``; a success stays a success. The files' sizes, read here to
    measure the output, also tell the logs whether to start a new segment.
    """
    out_size = os.fstat(out_fd).st_size
    err_size = os.fstat(err_fd).st_size
    error = None
    if status != 0 and not timed_out:
        error = logs.write_failure(out_size, err_size)
    logs.ended(out_size, err_size)
    return ProcessOutcome(
        exit_code=status if status >= 0 else None,
        signal=-status if status < 0 else None,
        timed_out=timed_out,
        error=error,
        out_offset=out_offset,
        out_length=out_size - out_offset,
        err_offset=err_offset,
        err_length=err_size - err_offset,
    )


def _exited(pidfd: int) -> bool:
    """Whether the process behind `pidfd` has exited (without reaping it)."""
    readable, _, _ = select.select([pidfd], [], [], 0)
    return bool(readable)
