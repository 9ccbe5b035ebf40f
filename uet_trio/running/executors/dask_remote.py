"""
The worker side of a Dask attempt: what `DaskRunner` submits to the cluster.

`run_command` runs in one of a Dask worker's task threads (`run_callable`,
the same for an embedded run's async callables). It connects back
to the runner over the attempt link (`dask_link`), claims the attempt
(a second execution of the same submission, which Dask starts by itself
after a worker dies, is refused there and starts nothing), then runs the
command as the local executor does: in a new session (its own process
group), stdin from /dev/null, the request's environment and directory. It
forwards stdout and stderr in chunks of at most `dask_link.CHUNK` bytes as
they come, with blocking sends, so a task that prints a lot is slowed to
the runner's pace and neither side holds more than a chunk and the socket
buffers. The timeout is kept here, on the worker's clock: SIGTERM to the
group, then SIGKILL after the grace period; the runner's STOP does the
same and HURRY kills at once. When the leader has exited, while it is
still unreaped (so its group id cannot be reused), the whole group gets
SIGKILL, which sweeps background grandchildren; then the leader is reaped
and its status sent. If the link breaks (the runner died), or the worker starts
closing (its scheduler went away), the group is killed at once.

`sweep` runs on workers through ``Client.run`` (outside the task threads):
it kills what a lost attempt left on that worker's host, identified as
`procfs.kill_group_if_owned` does.

Linux (pidfds, /proc) is assumed on the workers, like the local executor's
default path.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from . import dask_link
from .dask_link import Frame
from .procfs import kill_group_if_owned, process_start_time, signal_group
from .spawn import spawn_error

CONNECT_TIMEOUT = 30.0
"""Seconds a worker tries to reach the runner before the attempt fails."""

DRAIN_LIMIT = 1.0
"""
Seconds output is still read after the group was killed: only a process
that left the group (``setsid``) can still hold the pipes then.
"""


def run_command(link: tuple[str, int], token: str, command: bytes) -> str:
    """
    Run one attempt of a command on this worker, its runner at `link`.

    `command` is the pickled ``(argv, cwd, env, timeout, kill_grace)`` of
    the attempt: one argument, which Dask need not walk looking for futures.

    Returns ``"done"`` once the process group is gone and its end was
    reported, ``"refused"`` when the runner refused the claim (nothing was
    started), ``"unlinked"`` when the link broke (the group was killed).

    Raises:
        OSError: the runner cannot be reached: nothing was started.
    """
    argv, cwd, env, timeout, kill_grace = pickle.loads(command)
    claimed = _claim(link, token)
    if claimed is None:
        return "refused"
    sock, frames, worker = claimed
    with sock:
        return _Attempt(sock, frames, worker, timeout, kill_grace).run(argv, cwd, env)


def run_callable(
    link: tuple[str, int], token: str, call: Any, args: tuple[Any, ...], timeout: float | None
) -> dict[str, Any] | None:
    """
    Run one attempt of a task's async callable on this worker, under Trio.

    Claimed like a command (None: refused, nothing ran); the link stays open
    while it runs, so the runner sees this worker die. Returns
    ``{"value": ...}``, ``{"error": "Type: message"}`` or ``{"timed_out":
    True}`` (the callable cancelled at `timeout`). A callable that runs
    cannot be stopped from outside (nor can any Dask task).
    """
    claimed = _claim(link, token)
    if claimed is None:
        return None
    sock, _, _ = claimed
    with sock:
        outcome = trio.run(_await, call, args, timeout)
        with contextlib.suppress(OSError):
            sock.sendall(dask_link.message(Frame.EXIT, {}))
    return outcome


async def _await(call: Any, args: tuple[Any, ...], timeout: float | None) -> dict[str, Any]:
    """`call(*args)` awaited within `timeout`: its value, its error, or the timeout."""
    with trio.move_on_after(math.inf if timeout is None else timeout):
        try:
            return {"value": await call(*args)}
        except Exception as error:
            return {"error": f"{type(error).__name__}: {error}"}
    return {"timed_out": True}


def _claim(link: tuple[str, int], token: str) -> tuple[socket.socket, dask_link.Frames, Any] | None:
    """
    Connect to the runner and claim attempt `token`: the link, its frames and
    this worker; None (the link closed) when the runner refuses.

    Raises:
        OSError: the runner cannot be reached.
    """
    sock = socket.create_connection(link, timeout=CONNECT_TIMEOUT)
    try:
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        worker = _worker()
        address = str(worker.address) if worker is not None else f"pid:{os.getpid()}"
        sock.sendall(
            dask_link.message(
                Frame.HELLO, {"token": token, "worker": address, "host": socket.gethostname()}
            )
        )
        frames = dask_link.Frames()
        reply = _receive(sock, frames)
    except BaseException:
        sock.close()
        raise
    if reply is None or reply[0] is not Frame.GO:
        sock.close()
        return None
    return sock, frames, worker


def _worker() -> Any:
    """The Dask worker running this function, or None outside one."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


_CLOSING = frozenset({"closing", "closed", "failed"})
"""The statuses (`distributed.core.Status` names) of a worker going away."""

WORKER_CHECK = 0.5
"""How often, at least, an attempt checks that its worker is not closing."""


def _closing(worker: Any) -> bool:
    """Whether `worker` is closing (its process will end, and with it this thread)."""
    return worker is not None and getattr(worker.status, "name", "") in _CLOSING


def _receive(sock: socket.socket, frames: dask_link.Frames) -> tuple[Frame, bytes] | None:
    """The next frame from the runner, blocking; None when the link ends."""
    while True:
        found = frames.next()
        if found is not None:
            return found
        data = sock.recv(4096)
        if not data:
            return None
        frames.feed(data)


class _Attempt:
    """One claimed attempt: its process, its deadlines and its link."""

    def __init__(
        self,
        sock: socket.socket,
        frames: dask_link.Frames,
        worker: Any,
        timeout: float | None,
        kill_grace: float,
    ) -> None:
        self.sock = sock
        self.frames = frames
        self.worker = worker
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.timed_out = False
        self.linked = True
        self.kill_at: float | None = None
        """When the group gets SIGKILL (set once it has had SIGTERM)."""
        self.killed = False
        self.closing = False
        """The worker began closing mid-attempt, and the group was killed for it."""

    def send(self, data: bytes) -> None:
        """Send to the runner; a broken link is noted, not raised."""
        if not self.linked:
            return
        try:
            self.sock.sendall(data)
        except OSError:
            self.linked = False

    def run(self, argv: Sequence[str], cwd: str | None, env: Mapping[str, str] | None) -> str:
        try:
            process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as error:
            code, text = spawn_error(error, argv, cwd)
            self.send(dask_link.message(Frame.EXIT, _status(code, False, text)))
            return "done"
        assert process.stdout is not None
        assert process.stderr is not None
        pid = process.pid
        pidfd = os.pidfd_open(pid)
        try:
            self.send(
                dask_link.message(
                    Frame.SPAWNED, {"pid": pid, "proc_start": process_start_time(pid)}
                )
            )
            self._watch(pid, pidfd, process.stdout.fileno(), process.stderr.fileno())
        finally:
            # The leader has exited (or is killed now) but is not reaped: the
            # group id is still ours, so the sweep cannot reach a stranger.
            signal_group(pid, signal.SIGKILL)
            status = process.wait()
            os.close(pidfd)
            process.stdout.close()
            process.stderr.close()
        ended = _status(status, self.timed_out, None)
        ended["closing"] = self.closing
        self.send(dask_link.message(Frame.EXIT, ended))
        return "done" if self.linked else "unlinked"

    def _stop(self, pid: int, now: float) -> None:
        """SIGTERM the group; SIGKILL follows after the grace period."""
        if self.kill_at is None and not self.killed:
            signal_group(pid, signal.SIGTERM)
            self.kill_at = now + self.kill_grace

    def _kill(self, pid: int) -> None:
        """SIGKILL the group now; no grace period is pending any more."""
        signal_group(pid, signal.SIGKILL)
        self.killed = True
        self.kill_at = None

    def _watch(self, pid: int, pidfd: int, out: int, err: int) -> None:
        """Forward output and control frames until the leader exits and the pipes are drained."""
        selector = selectors.DefaultSelector()
        streams = {out: Frame.OUT, err: Frame.ERR}
        for fd in streams:
            selector.register(fd, selectors.EVENT_READ)
        selector.register(self.sock, selectors.EVENT_READ)
        selector.register(pidfd, selectors.EVENT_READ)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        drain_until: float | None = None
        try:
            while streams or drain_until is None:
                now = time.monotonic()
                if drain_until is not None and now >= drain_until:
                    return
                if deadline is not None and now >= deadline:
                    deadline = None
                    self.timed_out = True
                    self._stop(pid, now)
                if self.kill_at is not None and now >= self.kill_at:
                    self._kill(pid)
                if not self.killed and _closing(self.worker):
                    # The worker's process is about to end, and this thread with it.
                    self.closing = True
                    self._kill(pid)
                due = [t for t in (deadline, self.kill_at, drain_until) if t is not None]
                wait = min([max(0.0, t - now) for t in due], default=WORKER_CHECK)
                wait = min(wait, WORKER_CHECK)
                for key, _ in selector.select(wait):
                    fd = key.fd
                    if fd in streams:
                        data = os.read(fd, dask_link.CHUNK)
                        if data:
                            self.send(dask_link.frame(streams[fd], data))
                        else:
                            selector.unregister(fd)
                            del streams[fd]
                    elif fd == pidfd:
                        selector.unregister(pidfd)
                        # Background members of the group would hold the pipes open.
                        self._kill(pid)
                        deadline = None
                        drain_until = time.monotonic() + DRAIN_LIMIT
                    else:
                        self._control(pid, selector)
        finally:
            selector.close()

    def _control(self, pid: int, selector: selectors.BaseSelector) -> None:
        """Act on what the runner sent: STOP, HURRY, or the link's end (kill now)."""
        try:
            data = self.sock.recv(4096)
        except OSError:
            data = b""
        if not data:
            self.linked = False
            selector.unregister(self.sock)
            self._kill(pid)
            return
        self.frames.feed(data)
        while (found := self.frames.next()) is not None:
            kind, _ = found
            if kind is Frame.STOP:
                self._stop(pid, time.monotonic())
            elif kind is Frame.HURRY:
                self._kill(pid)


def _status(status: int, timed_out: bool, error: str | None) -> dict[str, Any]:
    """The EXIT message for a leader that ended with `status` (minus a signal number)."""
    return {
        "exit_code": status if status >= 0 else None,
        "signal": -status if status < 0 else None,
        "timed_out": timed_out,
        "error": error,
    }


def sweep(pid: int | None, proc_start: int | None, key: str) -> bool:
    """
    Kill what attempt `key` left on this host (run through ``Client.run``).

    The group of `pid` is killed if its leader is the attempt's (same start
    time) or, once the leader is gone, each member whose environment holds
    the attempt's ``UET_IDEMPOTENCY_KEY``. Returns whether anything was killed.
    """
    if pid is None:
        return False
    with contextlib.suppress(OSError):
        return kill_group_if_owned(pid, proc_start, key)
    return False


def kill_key(key: str) -> bool:
    """
    SIGKILL every process of this host whose environment holds attempt `key`.

    What a dead worker's attempt left running has been re-parented away
    from any group we know of; the ``UET_IDEMPOTENCY_KEY`` every process of
    the attempt inherits still names it. Returns whether any was killed.
    """
    marker = f"UET_IDEMPOTENCY_KEY={key}".encode()
    killed = False
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if marker not in environ.read().split(b"\0"):
                    continue
            os.kill(int(entry), signal.SIGKILL)
            killed = True
        except OSError:
            continue
    return killed
