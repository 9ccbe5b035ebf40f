"""
The Dask executor: attempts run on the workers of a Dask distributed cluster.

`open_dask_runner` connects to a scheduler (``tcp://HOST:PORT``) or starts
a `LocalCluster` (``local``, ``local:N``, ``local:NxT``; `dask_cluster`) and yields a
`DaskRunner`, the `AttemptRunner` that submits each attempt to the cluster
as one Dask task (`dask_remote.run_command` for a command,
`dask_remote.run_callable` for an embedded run's callable). The store, the
scheduler of the run and the log files stay with this process.

Each attempt keeps a TCP connection to this runner while it runs, the
attempt link (`dask_link`); the runner listens for them on the address its
workers reach it by. Through the link:

- the remote side *claims* the attempt before starting anything, with a
  random token known only to this runner; a second execution of the same
  Dask task (Dask re-runs a task whose worker died, without telling the
  client) is refused and starts nothing;
- stdout and stderr come back in chunks while the attempt runs and are
  appended to the slot's log files (`WorkerLogs`), as the local executor's
  children write them, so ``uet logs -f`` follows a remote attempt; blocking
  sends on the worker and reads here give backpressure end to end;
- a cancelled attempt (Ctrl-C, ``fail_fast``) is stopped by a STOP frame:
  SIGTERM to its group on the worker, SIGKILL after the grace period (a
  Dask ``cancel()`` would not stop a running function); ``kill_now`` sends
  HURRY;
- the link's end without an exit report means the worker died: the attempt
  is reported *lost*, naming the worker, its leftover processes on that
  host are killed through ``Client.run`` (`dask_remote.sweep`), and the
  Dask task is cancelled. The task's own retry policy then decides.

A slot is free again only once its remote function has returned (its
future finished, seen through `dask_bridge`), or once its worker is gone.
If the scheduler goes away, every slot raises `ClusterLost` (exit status
5); the run is recorded cancelled, and ``uet resume --dask ...`` on another
cluster finishes it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from ...deciding.attempts import AttemptRequest, AttemptResult, Started
from ...recording.logs import WorkerLogs
from ...recording.records import AttemptRecord
from . import dask_bridge, dask_link, dask_remote
from .base import Report, RunAttempt
from .dask_cluster import ClusterLost, close, connect, reachable_host, total_threads
from .dask_link import Frame

LOST_AFTER = 2.0
"""Seconds the client may stay disconnected from the scheduler before the cluster counts as lost."""

HELLO_TIMEOUT = 10.0
"""Seconds a connection to the link listener has to name its attempt."""

STOP_SLACK = 10.0
"""Seconds, beyond the grace period, a stopped attempt has to report its end."""

QUEUED = 4
"""
Attempts per worker thread a run keeps submitted (`DaskRunner.workers`).

With one per thread, a thread idles from the end of each attempt until the
next one arrives: the function's end travels to the scheduler and to this
client (each hop batched every few milliseconds), and the next submission
back. With more, the next attempts already wait in Dask's queue. Measured
(1000 tasks of ``true`` on 2 x 2 threads, docs/performance.md): 1 per
thread 4.53 s for 500 tasks against 3.84 s with 2; for 1000 tasks, 2 per
thread 3.40 s, 3 2.98 s, 4 2.82 s, 6 2.77 s. A queued attempt's duration
starts at its claim, and its timeout when its process starts, so the wait
counts against neither.
"""

CONFIRM = 0.5
"""Seconds a slot watches the client's connection before it reports a worker lost."""

WORKER_CHECK = 0.5
"""How often a slot whose link broke asks the scheduler whether its worker still exists."""


class _Link:
    """One attempt in flight: its token, its link once claimed, and what the slot waits for."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.stream: trio.SocketStream | None = None
        self.frames = dask_link.Frames()
        self.worker = ""
        self.ended: dask_bridge.Ended | None = None
        self.released = trio.Event()
        self._changed = trio.Event()

    def poke(self) -> None:
        """Something the slot waits for happened (claimed, future done, cluster lost)."""
        self._changed.set()

    async def changed(self) -> None:
        """Wait for the next `poke` (or return at once if one came since the last wait)."""
        await self._changed.wait()
        self._changed = trio.Event()


class DaskRunner:
    """
    Runs attempts on a Dask cluster: commands, and an embedded run's async callables.

    Made by `open_dask_runner`. `threads` is the cluster's total number of
    worker threads when it was opened, and `workers` (`QUEUED` times as
    many) the default `max_workers` of a run on it.
    """

    def __init__(self, client: Any, link: tuple[str, int], threads: int) -> None:
        self._client = client
        self._link = link
        self.threads = threads
        self.workers = QUEUED * threads
        self._pending: dict[str, _Link] = {}
        self._hurry = trio.Event()
        self._lost: str | None = None
        self._token = trio.lowlevel.current_trio_token()

    # ------------------------------------------------------------- protocol

    def kill_now(self) -> None:
        """Skip the rest of every SIGTERM grace period, now and later."""
        self._hurry.set()

    async def settle(self) -> None:
        await trio.lowlevel.checkpoint()

    async def reclaim(self, attempt: AttemptRecord) -> bool:
        """Kill what is left of `attempt` on any worker's host (`dask_remote.sweep`)."""
        key = f"{attempt.run_id}/{attempt.task_id}/{attempt.attempt}"
        return await self._sweep(attempt.pid, attempt.proc_start, key)

    @asynccontextmanager
    async def slot(self, worker: int, log_dir: Path | None) -> AsyncIterator[RunAttempt]:
        logs = WorkerLogs(log_dir, worker)
        try:

            async def run(request: AttemptRequest, report: Report) -> AttemptResult:
                if request.call is not None:
                    return await self._run_callable(request)
                return await self._run_command(request, logs, report)

            yield run
        finally:
            logs.close()

    # ------------------------------------------------------------- one attempt

    async def _run_command(
        self, request: AttemptRequest, logs: WorkerLogs, report: Report
    ) -> AttemptResult:
        assert request.argv is not None
        started = trio.current_time()
        self._check_cluster()
        try:
            out_fd, err_fd = logs.fds()
        except OSError as error:
            await trio.lowlevel.checkpoint()
            return _result(request, started, exit_code=126, error=f"cannot open log files: {error}")
        out_offset = os.fstat(out_fd).st_size
        err_offset = os.fstat(err_fd).st_size
        link = _Link(secrets.token_hex(16))
        self._pending[link.token] = link
        try:
            future = self._submit(request, link.token)
            dask_bridge.watch(future, self._token, _on_end(link))
            body: dict[str, Any] | None = None
            finished = False
            try:
                await self._claimed(link)
                if link.stream is not None:
                    # The attempt runs from its claim on: the time it waited
                    # in Dask's queue is not part of its duration.
                    started = trio.current_time()
                    location: dict[str, Any] = {
                        "worker": logs.worker,
                        "out_path": logs.out_path,
                        "out_offset": out_offset,
                        "err_path": logs.err_path,
                        "err_offset": err_offset,
                    }

                    def spawned(where: dict[str, Any]) -> None:
                        notice = Started(
                            index=request.index,
                            attempt=request.attempt,
                            location={**location, **where, "address": link.worker},
                        )
                        report(notice)

                    body = await self._follow(link, out_fd, err_fd, spawned)
                    await self._returned(link)
                finished = True
            finally:
                if not finished:
                    with trio.CancelScope(shield=True):
                        await self._stop(link, future, out_fd, err_fd, request.kill_grace)
        finally:
            del self._pending[link.token]
            link.released.set()
        out_size = os.fstat(out_fd).st_size
        err_size = os.fstat(err_fd).st_size
        lengths = (out_size - out_offset, err_size - err_offset)
        if body is not None:
            result = await self._reported(request, link, body, started, lengths)
            if result.exit_code != 0 and not result.timed_out and result.error is None:
                result.error = logs.write_failure(out_size, err_size)
        elif link.stream is not None:
            result = await self._lost_attempt(request, link, future, started, lengths)
        else:
            ended = link.ended
            why = ended.error if ended is not None and ended.error else "the remote function ended"
            result = _result(request, started, exit_code=None, error=f"not started on Dask: {why}")
        logs.ended(out_size, err_size)
        return result

    async def _reported(
        self,
        request: AttemptRequest,
        link: _Link,
        body: dict[str, Any],
        started: float,
        lengths: tuple[int, int],
    ) -> AttemptResult:
        """The result of an attempt whose end the worker reported (its EXIT message)."""
        if body.get("closing"):
            await self._confirm_cluster()
            return _result(
                request,
                started,
                exit_code=None,
                lost=True,
                error=f"worker {link.worker} closed mid-attempt; its processes were killed",
                lengths=lengths,
            )
        return _result(
            request,
            started,
            exit_code=body.get("exit_code"),
            signal_number=body.get("signal"),
            timed_out=bool(body.get("timed_out")),
            error=body.get("error"),
            lengths=lengths,
        )

    async def _run_callable(self, request: AttemptRequest) -> AttemptResult:
        """
        Ship an async callable to a worker (`dask_remote.run_callable`) and await its end.

        Claimed over a link like a command, so Dask's silent re-execution is
        refused and a dead worker gives a lost attempt. A callable that runs
        cannot be stopped: cancelled, the slot waits for its end up to the
        grace period plus `STOP_SLACK`, then lets it finish on its own.
        """
        started = trio.current_time()
        self._check_cluster()
        link = _Link(secrets.token_hex(16))
        self._pending[link.token] = link
        body: dict[str, Any] | None = None
        try:
            try:
                future = self._client.submit(
                    dask_remote.run_callable,
                    self._link,
                    link.token,
                    request.call,
                    request.args,
                    request.timeout,
                    key=f"uet-{request.idempotency_key}-{link.token[:8]}",
                    pure=False,
                    retries=0,
                    resources=dict(request.resources) or None,
                )
            except Exception as error:
                await trio.lowlevel.checkpoint()
                why = f"{type(error).__name__}: {error}"
                return _result(
                    request, started, exit_code=None, error=f"cannot ship to Dask: {why}"
                )
            dask_bridge.watch(future, self._token, _on_end(link), value=True)
            finished = False
            try:
                await self._claimed(link)
                if link.stream is not None:
                    started = trio.current_time()
                    body = await self._follow(link, -1, -1, lambda where: None)
                    await self._returned(link)
                finished = True
            finally:
                if not finished:
                    with (
                        trio.CancelScope(shield=True),
                        trio.move_on_after(request.kill_grace + STOP_SLACK),
                    ):
                        if link.stream is None and self._lost is None:
                            await trio.to_thread.run_sync(
                                self._cancel, future, abandon_on_cancel=True
                            )
                        while link.ended is None and self._lost is None:
                            await link.changed()
        finally:
            del self._pending[link.token]
            link.released.set()
        ended = link.ended
        if body is not None and ended is not None and isinstance(ended.value, dict):
            outcome = ended.value
            if outcome.get("timed_out"):
                return _result(request, started, exit_code=None, timed_out=True)
            if "error" in outcome:
                return _result(request, started, exit_code=1, error=str(outcome["error"]))
            result = _result(request, started, exit_code=0)
            result.result = outcome.get("value")
            return result
        if link.stream is not None and body is None:
            return await self._lost_attempt(request, link, future, started, (0, 0))
        why = ended.error if ended is not None and ended.error else "the remote function ended"
        return _result(request, started, exit_code=None, error=f"not run on Dask: {why}")

    def _submit(self, request: AttemptRequest, token: str) -> Any:
        """Submit the attempt's remote function; its Dask key names the attempt."""
        try:
            # One bytes argument: Dask walks every argument (the environment's
            # every entry) looking for futures, which doubled a submission's cost.
            command = pickle.dumps(
                (request.argv, request.cwd, request.env, request.timeout, request.kill_grace)
            )
            return self._client.submit(
                dask_remote.run_command,
                self._link,
                token,
                command,
                key=f"uet-{request.idempotency_key}-{token[:8]}",
                pure=False,
                retries=0,
                resources=dict(request.resources) or None,
            )
        except Exception as error:
            raise ClusterLost(f"cannot submit to the Dask cluster: {error}") from error

    def _check_cluster(self) -> None:
        if self._lost is not None:
            raise ClusterLost(self._lost)

    async def _confirm_cluster(self) -> None:
        """
        Before reporting a worker lost: make sure it is not the whole cluster that is.

        Workers close themselves when their scheduler goes away, so a lost
        worker may be the first sign of a lost scheduler. Wait `CONFIRM`
        seconds, and for as long as the client is disconnected, until
        `watch_scheduler` has decided (it raises `ClusterLost` then, which
        cancels this slot); raises `ClusterLost` if it already has.
        """
        deadline = trio.current_time() + CONFIRM
        while trio.current_time() < deadline or str(self._client.status) != "running":
            self._check_cluster()
            await trio.sleep(CONFIRM / 10)

    async def _claimed(self, link: _Link) -> None:
        """Wait until the remote side has claimed the attempt, or its function ended first."""
        while link.stream is None and link.ended is None:
            self._check_cluster()
            await link.changed()
        self._check_cluster()

    async def _returned(self, link: _Link) -> None:
        """Wait until the remote function has returned (its future finished)."""
        while link.ended is None:
            self._check_cluster()
            await link.changed()

    async def _follow(
        self,
        link: _Link,
        out_fd: int,
        err_fd: int,
        spawned: Callable[[dict[str, Any]], None],
    ) -> dict[str, Any] | None:
        """
        Write the attempt's output as it comes; its EXIT message, or None if the link broke first.

        The SPAWNED message (the remote pid and start time) goes to `spawned`.
        """
        stream = link.stream
        assert stream is not None
        frames = link.frames
        while True:
            while (found := frames.next()) is not None:
                kind, payload = found
                if kind is Frame.OUT:
                    _write_all(out_fd, payload)
                elif kind is Frame.ERR:
                    _write_all(err_fd, payload)
                elif kind is Frame.SPAWNED:
                    process = dask_link.decode(payload)
                    spawned({"pid": int(process["pid"]), "proc_start": process.get("proc_start")})
                elif kind is Frame.EXIT:
                    return dask_link.decode(payload)
            try:
                data = await stream.receive_some(dask_link.CHUNK + dask_link.HEADER.size)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                return None
            frames.feed(data)

    async def _stop(self, link: _Link, future: Any, out_fd: int, err_fd: int, grace: float) -> None:
        """
        Stop a cancelled attempt (shielded): its group on the worker, then its function.

        Claimed: STOP over the link (HURRY too once `kill_now` was called),
        output kept until the EXIT message, then wait for the function to
        return; all within the grace period plus `STOP_SLACK`. Not yet
        claimed: cancel the Dask task, and refuse it if it starts anyway.
        """
        with trio.move_on_after(grace + STOP_SLACK):
            if link.stream is None:
                # A claim that arrives from now on is refused (the token is
                # removed from the pending attempts on the way out).
                if self._lost is None:
                    await trio.to_thread.run_sync(self._cancel, future, abandon_on_cancel=True)
                return
            async with trio.open_nursery() as nursery:

                async def hurry() -> None:
                    await self._hurry.wait()
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await stream.send_all(dask_link.frame(Frame.HURRY))

                stream = link.stream
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(dask_link.frame(Frame.STOP))
                nursery.start_soon(hurry)
                with contextlib.suppress(ValueError, TypeError):
                    # A start reported now would be recorded by nobody.
                    await self._follow(link, out_fd, err_fd, lambda where: None)
                while link.ended is None and self._lost is None:
                    await link.changed()
                nursery.cancel_scope.cancel()

    def _cancel(self, future: Any) -> None:
        """Cancel a Dask task (blocking: a round trip to the scheduler; run in a thread)."""
        with contextlib.suppress(Exception):
            future.cancel()

    async def _lost_attempt(
        self,
        request: AttemptRequest,
        link: _Link,
        future: Any,
        started: float,
        lengths: tuple[int, int],
    ) -> AttemptResult:
        """
        The result of an attempt whose link broke before its end was reported.

        If the function still returned (the link broke, the worker lives),
        it killed the group itself: a failure. Otherwise the worker died:
        wait until the scheduler has noticed (the function's future ends,
        a re-execution being refused, or the worker leaves the cluster),
        cancel the Dask task, kill what is left on the worker's host, and
        report the attempt lost.
        """
        gone = False
        while link.ended is None and not gone:
            self._check_cluster()
            gone = not await trio.to_thread.run_sync(self._has_worker, link.worker)
            if not gone:
                with trio.move_on_after(WORKER_CHECK):
                    await link.changed()
        if not gone and not await trio.to_thread.run_sync(self._has_worker, link.worker):
            gone = True
        if not gone:
            return _result(
                request,
                started,
                exit_code=None,
                error=f"the link to worker {link.worker} broke; its processes were killed",
                lengths=lengths,
            )
        await self._confirm_cluster()
        await trio.to_thread.run_sync(self._cancel, future)
        await self._sweep(None, None, request.idempotency_key)
        return _result(
            request,
            started,
            exit_code=None,
            lost=True,
            error=f"worker {link.worker} was lost mid-attempt",
            lengths=lengths,
        )

    def _has_worker(self, address: str) -> bool:
        """Whether the scheduler still lists worker `address` (blocking: run in a thread)."""
        try:
            workers = self._client.scheduler_info(n_workers=-1)["workers"]
        except Exception:
            return False
        return address in workers

    async def _sweep(self, pid: int | None, proc_start: int | None, key: str) -> bool:
        """Run `dask_remote.sweep` on every worker; whether any killed something."""

        def everywhere() -> bool:
            try:
                answers = self._client.run(
                    _sweep_everywhere, pid, proc_start, key, on_error="return"
                )
            except Exception:
                return False
            return any(answer is True for answer in answers.values())

        return await trio.to_thread.run_sync(everywhere)

    # ------------------------------------------------------------- the listener

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one connection to the link listener: grant or refuse its claim."""
        try:
            frames = dask_link.Frames()
            hello = None
            with trio.move_on_after(HELLO_TIMEOUT):
                while hello is None:
                    data = await stream.receive_some(4096)
                    if not data:
                        return
                    frames.feed(data)
                    hello = frames.next()
            if hello is None or hello[0] is not Frame.HELLO:
                return
            body = dask_link.decode(hello[1])
            link = self._pending.get(str(body.get("token")))
            if link is None or link.stream is not None or link.ended is not None:
                await stream.send_all(dask_link.frame(Frame.REFUSE))
                return
            link.stream = stream
            link.frames = frames
            link.worker = str(body.get("worker"))
            await stream.send_all(dask_link.frame(Frame.GO))
            link.poke()
            await link.released.wait()
        except (trio.BrokenResourceError, trio.ClosedResourceError, ValueError, TypeError):
            return
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def watch_scheduler(self) -> None:
        """
        Raise `ClusterLost` once the client has been disconnected for `LOST_AFTER` seconds.

        Raised in `open_dask_runner`'s nursery, it cancels the block: the
        run stops its attempts (over their links, which do not need the
        scheduler) and records itself cancelled.
        """
        away = 0.0
        step = LOST_AFTER / 4
        while True:
            await trio.sleep(step)
            status = str(self._client.status)
            away = 0.0 if status == "running" else away + step
            if away >= LOST_AFTER:
                self._lost = (
                    f"lost the Dask scheduler at {self._client.scheduler.address} "
                    f"(client {status}); resume the run with --dask on a working cluster"
                )
                for link in list(self._pending.values()):
                    link.poke()
                raise ClusterLost(self._lost)


def _sweep_everywhere(pid: int | None, proc_start: int | None, key: str) -> bool:
    """`dask_remote.sweep`, then a search for the key's processes (on a worker, by Client.run)."""
    killed = dask_remote.sweep(pid, proc_start, key)
    return dask_remote.kill_key(key) or killed


def _on_end(link: _Link) -> Callable[[dask_bridge.Ended], None]:
    """The callback that records a future's end on `link` (Trio thread)."""

    def ended(outcome: dask_bridge.Ended) -> None:
        link.ended = outcome
        link.poke()

    return ended


def _write_all(fd: int, data: bytes) -> None:
    """Append all of `data` to `fd` (a regular file: short writes only near a limit)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _result(
    request: AttemptRequest,
    started: float,
    *,
    exit_code: int | None,
    signal_number: int | None = None,
    timed_out: bool = False,
    error: str | None = None,
    lost: bool = False,
    lengths: tuple[int, int] = (0, 0),
) -> AttemptResult:
    """An `AttemptResult` of `request` ending now; `lengths`: its stdout and stderr bytes."""
    return AttemptResult(
        index=request.index,
        attempt=request.attempt,
        started=started,
        ended=trio.current_time(),
        exit_code=exit_code,
        signal=signal_number,
        timed_out=timed_out,
        error=error,
        lost=lost,
        out_length=lengths[0],
        err_length=lengths[1],
    )


# ----------------------------------------------------------------- opening


@asynccontextmanager
async def open_dask_runner(
    address: str, *, link_host: str | None = None, connect_timeout: float = 10.0
) -> AsyncIterator[DaskRunner]:
    """
    Connect to a Dask cluster for the block, and yield a `DaskRunner` on it.

    Args:
        address: ``tcp://HOST:PORT`` of a running scheduler; or ``local``
            (a `LocalCluster` of one single-threaded worker process per CPU),
            ``local:N`` (N such workers) or ``local:NxT`` (N workers of T
            threads each), started for the block on 127.0.0.1 and closed after.
        link_host: the address this process listens on for its attempts'
            links; the workers must reach it. Default: 127.0.0.1 for a local
            cluster or a scheduler on the loopback, else the address of the
            interface that routes to the scheduler.
        connect_timeout: seconds to keep trying to reach a scheduler.

    Raises:
        ClusterLost: the scheduler cannot be reached, or the address is not
            one of the forms above.
    """
    cluster, client = await trio.to_thread.run_sync(connect, address, connect_timeout)
    try:
        threads = await trio.to_thread.run_sync(total_threads, client)
        host = link_host or reachable_host(client.scheduler.address)
        listeners = await trio.open_tcp_listeners(0, host=host)
        port = listeners[0].socket.getsockname()[1]
        try:
            async with trio.open_nursery() as nursery:
                runner = DaskRunner(client, (host, port), threads)
                nursery.start_soon(trio.serve_listeners, runner.handle, listeners)
                nursery.start_soon(runner.watch_scheduler)
                try:
                    yield runner
                finally:
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            lost, _ = group.split(ClusterLost)
            if lost is None:
                raise
            # The loss is the story; the rest (the run cancelled by it) follows from it.
            raise _leaves(lost)[0] from group
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(close, cluster, client)


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    """The exceptions of `group`, nested groups flattened."""
    found: list[BaseException] = []
    for error in group.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found
