"""
The engine: one run of a workflow as one Trio task tree.

The task tree of a run::

    open_run (caller's task: prepares the run, then yields the Run handle)
    └── Run._main                       background task in open_run's nursery
        └── open_persister              persister task, in its own shielded scope
            └── Run._execute nursery    the run's cancel scope
                ├── scheduler           the only code that mutates run state
                └── worker x N          execute attempts, report results

Data flow. The scheduler pops ready tasks (a heap by rank, then declaration
order), routes them, and hands `AttemptRequest`s to idle workers over a
bounded channel; it never sends more requests than there are idle workers,
so it never blocks on dispatch. Workers send `Spawned` notices and
`AttemptResult`s back on a second channel sized so that a worker never waits
on it. Every state change becomes an `Event` with the next sequence number,
sent to the persister (backpressure, never dropping) and to each subscriber:
straight into the persister's channel while it has room and nobody
subscribes, otherwise through a backlog that the scheduler delivers, in
order, before it next waits. Between its waits the scheduler's bookkeeping
is plain synchronous code.

Determinism. After waking, the scheduler takes every result already
delivered and, while some busy worker has not reported, awaits
`runner.settle()` and takes those too; it processes them sorted by (end time,
task index), then the retry timers due by now sorted by (due time, index).
With a scripted runner under a `MockClock` the event sequence therefore does
not depend on the order in which Trio happens to wake tasks.

Cancellation and shutdown order. Cancelling the scope around a run (Ctrl-C in
the CLI, or an embedding application) cancels the `_execute` nursery: workers'
attempts stop their process groups (SIGTERM, grace, SIGKILL) before they
unwind. Then, in a shielded scope with a deadline, the run records
`task_cancelled` for every unfinished task and `run_finished`; leaving
`open_persister` closes its channel and the persister writes everything
queued, also under a deadline. `fail_fast` uses the same path from inside:
the scheduler cancels the `_execute` nursery when a task finally fails.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import operator
import os
import random
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import attrs
import trio

from ..deciding.priority import CRITICAL, ORDERS, ready_order
from ..deciding.routing import Router
from ..errors import RunConflict, WorkflowError
from ..recording.events import Event, EventKind
from ..recording.records import NewRun
from ..recording.states import RunStatus, TaskState
from ..recording.store import Store, storable_text
from ..workflow.graph import ReadySet, TaskGraph, compile_graph
from ..workflow.spec import RetryPolicy, TaskSpec, ToolSpec, WorkflowSpec
from .executors.base import AttemptRequest, AttemptResult, AttemptRunner, LocalRunner, Spawned
from .executors.process import WorkerLogs
from .executors.procfs import kill_group_if_owned, process_alive, process_start_time
from .persister import DEFAULT_CAPACITY, DEFAULT_FLUSH_DEADLINE, open_persister

SUBSCRIBER_BUFFER = 1024


def new_run_id() -> str:
    """
    A short run id that sorts by creation time: UTC timestamp plus a random suffix.

    The timestamp has milliseconds, so runs started one after another within
    a second still sort in order (20261127-083828.123-af0c).
    """
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return f"{stamp}.{int(now % 1 * 1000):03d}-{secrets.token_hex(2)}"


@attrs.frozen
class RunResult:
    """How a run ended."""

    run_id: str
    status: RunStatus
    states: Mapping[str, TaskState]
    """Final state of every task."""
    wall: float
    """Duration of this run (or resumed part) on the run's clock, in seconds."""

    def count(self, state: TaskState) -> int:
        """How many tasks ended in `state`."""
        return sum(1 for s in self.states.values() if s is state)


@attrs.frozen(kw_only=True)
class RunOptions:
    """Settings of one run that are not part of the workflow itself."""

    max_workers: int
    fail_fast: bool
    kill_grace: float
    log_dir: Path | None
    seed: int
    flush_deadline: float = DEFAULT_FLUSH_DEADLINE
    fresh_routing: bool = False
    order: str = CRITICAL
    """How ready tasks of equal priority are ordered: ``critical`` or ``declared``."""


# ---------------------------------------------------------------- public API


async def run_workflow(
    spec: WorkflowSpec,
    *,
    store: Store,
    **options: Any,
) -> RunResult:
    """
    Run `spec` to the end and return its result.

    Takes the same keyword options as `open_run`. Cancelling the caller's
    scope cancels the run (processes stopped, everything recorded).
    """
    async with open_run(spec, store=store, **options) as run:
        pass
    assert run.result is not None
    return run.result


@asynccontextmanager
async def open_run(
    spec: WorkflowSpec,
    *,
    store: Store,
    graph: TaskGraph | None = None,
    max_workers: int | None = None,
    runner: AttemptRunner | None = None,
    log_root: Path | str | None = None,
    run_id: str | None = None,
    fail_fast: bool | None = None,
    kill_grace: float | None = None,
    seed: int | None = None,
    resume: str | None = None,
    force: bool = False,
    fresh_routing: bool = False,
    order: str = CRITICAL,
    expected_durations: Mapping[str, Sequence[float]] | None = None,
) -> AsyncIterator[Run]:
    """
    Start a run of `spec` in the background and yield its `Run` handle.

    The run is prepared (graph compiled, rows created) before the block
    starts, and executes while the block runs; leaving the block waits for the
    run to end. Subscribe with `Run.events()` before the first checkpoint of
    the block to see every event. Cancelling the enclosing scope cancels the
    run with the same guarantees as Ctrl-C in the CLI.

    Args:
        store: where the run is recorded.
        graph: `compile_graph(spec)`, if the caller has already compiled it
            (to validate the workflow); compiled here otherwise.
        max_workers: worker tasks (default: the workflow's, else the CPU count).
        runner: what executes attempts (default: `LocalRunner`).
        log_root: directory under which ``<run id>/w<N>.out|err`` are written
            (default: ``logs`` beside the database; none for an in-memory store).
        run_id: id of a new run (default: `new_run_id()`).
        fail_fast, kill_grace: override the workflow's settings.
        seed: seed of the retry-jitter RNG (default: derived from the run id).
        resume: continue this existing run: tasks recorded as succeeded are
            kept, the rest run again under the same id.
        force: resume even though the workflow changed since the run started.
        fresh_routing: ignore router state saved by earlier runs.
        order: among ready tasks of equal priority, ``critical`` dispatches
            first the one heading the longest remaining path (weighted by
            durations recorded in earlier runs); ``declared`` keeps
            declaration order.
        expected_durations: task durations that weigh the ``critical`` order
            instead of those recorded in the store (a simulation uses them to
            order tasks the way a real run after the recorded one would).

    Raises:
        WorkflowError: the workflow has a cycle.
        ValueError: `graph` was not compiled from `spec`.
        RunNotFound, RunConflict: `resume` names no run, or one owned by a
            live process, or one whose workflow changed (without `force`).
        StoreError: the store cannot record the run.
    """
    if graph is None:
        graph = compile_graph(spec)
    elif graph.ids != tuple(task.id for task in spec.tasks):
        raise ValueError("the graph was not compiled from this workflow")
    run = Run(spec, graph, store, runner or LocalRunner())
    await run._prepare(
        max_workers=max_workers,
        log_root=Path(log_root) if log_root is not None else None,
        run_id=run_id,
        fail_fast=fail_fast,
        kill_grace=kill_grace,
        seed=seed,
        resume=resume,
        force=force,
        fresh_routing=fresh_routing,
        order=order,
        expected_durations=expected_durations,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run._main)
        yield run
    if run._error is not None:
        raise run._error


# ---------------------------------------------------------------- the run


class Run:
    """
    A run in progress: its id, status and event stream.

    Created by `open_run`; the methods here are safe to call from any task of
    the same Trio run.
    """

    def __init__(
        self, spec: WorkflowSpec, graph: TaskGraph, store: Store, runner: AttemptRunner
    ) -> None:
        self.spec = spec
        self.graph = graph
        self.store = store
        self.runner = runner
        self.run_id = ""
        self.status = RunStatus.PENDING
        self._subscribers: list[trio.MemorySendChannel[Event]] = []
        self._done = trio.Event()
        self._result: RunResult | None = None
        self._error: BaseException | None = None
        # Scheduler state: touched only by the scheduler task (and _finish after it).
        n = len(graph)
        self._states = [TaskState.PENDING] * n
        self._attempts = [0] * n
        self._tries_on_tool = [0] * n
        self._tool_of: dict[int, str] = {}
        self._exhausted: dict[int, set[str]] = {}
        self._timers: list[tuple[float, int]] = []
        self._unfinished = n
        self._any_failed = False
        self._fail_fast_triggered = False
        self._completed = False
        self._seq = 0
        self._backlog: deque[Event] = deque()
        """Events numbered but not yet handed to the persister and subscribers."""
        self._lost: list[tuple[str, int, int | None, int | None]] = []
        self._resumed = False
        self._router_saved = -1

    # -------------------------------------------------------- preparation

    async def _prepare(
        self,
        *,
        max_workers: int | None,
        log_root: Path | None,
        run_id: str | None,
        fail_fast: bool | None,
        kill_grace: float | None,
        seed: int | None,
        resume: str | None,
        force: bool,
        fresh_routing: bool,
        order: str,
        expected_durations: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        spec = self.spec
        workers = max_workers or spec.max_workers or os.cpu_count() or 1
        if workers < 1:
            raise WorkflowError(f"max_workers must be positive, got {workers}", field="max_workers")
        if order not in ORDERS:
            raise WorkflowError(
                f"unknown order {order!r} (choose from {', '.join(ORDERS)})", field="order"
            )
        self.run_id = resume or run_id or new_run_id()
        if log_root is None:
            log_root = _default_log_root(self.store)
        self.options = RunOptions(
            max_workers=workers,
            fail_fast=spec.fail_fast if fail_fast is None else fail_fast,
            kill_grace=spec.kill_grace if kill_grace is None else kill_grace,
            log_dir=log_root / _safe_name(self.run_id) if log_root is not None else None,
            seed=seed if seed is not None else _seed_from(self.run_id),
            fresh_routing=fresh_routing,
            order=order,
        )
        self._rng = random.Random(self.options.seed)
        self.router = Router(spec)
        self._env_base = dict(os.environ)
        # Per run: the environment of each tool's commands before a task's
        # own variables, and each working directory as text.
        self._tool_envs: dict[str | None, dict[str, str]] = {}
        self._cwds: dict[str | None, str] = {}
        if not fresh_routing:
            saved = await self._in_thread(self.store.load_router_state, spec.name)
            if saved is not None:
                self.router.restore(saved)
        # The dispatch order is computed once per run; dispatching only compares places in it.
        durations: Mapping[str, Sequence[float]] = {}
        if expected_durations is not None:
            durations = expected_durations
        elif order == CRITICAL:
            durations = await self._in_thread(self.store.recent_durations, spec.name)
        self._ready = ReadySet(
            self.graph,
            ready_order(self.graph, [task.priority for task in spec.tasks], durations, order),
        )
        # The run's own rows are written last: a cancellation (Ctrl-C) before
        # this point leaves no trace, and one during it is seen only after the
        # write (a worker thread is not abandoned), so the run then starts
        # cancelled and is recorded `cancelled` rather than left `pending`.
        if resume is None:
            await self._in_thread(self.store.create_run, self._new_run_record())
        else:
            await self._in_thread(self._load_for_resume, resume, force)

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args)

    def _new_run_record(self) -> NewRun:
        spec = self.spec
        return NewRun(
            run_id=self.run_id,
            workflow=spec.name,
            source=spec.source,
            base_dir=str(spec.base_dir),
            spec_hash=spec.fingerprint(),
            max_workers=self.options.max_workers,
            log_dir=str(self.options.log_dir) if self.options.log_dir else "",
            owner_pid=os.getpid(),
            owner_start=process_start_time(os.getpid()),
            task_ids=self.graph.ids,
            task_kinds=[task.kind for task in spec.tasks],
        )

    def _load_for_resume(self, run_id: str, force: bool) -> None:
        """Take the run, keep its succeeded tasks, note attempts a dead runner left running."""
        store = self.store
        record = store.get_run(run_id)
        if record.spec_hash != self.spec.fingerprint() and not force:
            raise RunConflict(
                f"run {run_id} was started from a different version of workflow "
                f"{record.workflow!r}; resume with --force to run it with this one"
            )
        store.claim_run(
            run_id,
            owner_pid=os.getpid(),
            owner_start=process_start_time(os.getpid()),
            owner_alive=process_alive,
        )
        self._seq = record.last_seq
        by_id = self.graph.index
        for task in store.tasks(run_id):
            i = by_id.get(task.task_id)
            if i is None:
                continue
            self._attempts[i] = task.attempts
            if task.state == TaskState.SUCCEEDED:
                self._states[i] = TaskState.SUCCEEDED
                self._unfinished -= 1
        for attempt in store.attempts(run_id):
            if attempt.status == "running":
                self._lost.append(
                    (attempt.task_id, attempt.attempt, attempt.pid, attempt.proc_start)
                )
        self._resumed = True

    # -------------------------------------------------------- handle API

    def events(self, buffer: int = SUBSCRIBER_BUFFER) -> trio.MemoryReceiveChannel[Event]:
        """
        Subscribe to this run's events from now on.

        Returns a receive channel (iterate it with ``async for``) that ends
        when the run ends. Each subscriber has its own bounded buffer; a slow
        subscriber slows the run rather than losing events.
        """
        send, receive = trio.open_memory_channel[Event](buffer)
        if self._done.is_set():
            send.close()
        else:
            self._subscribers.append(send)
        return receive

    async def wait(self) -> RunResult:
        """
        Wait for the run to end and return its result.

        Raises:
            StoreError: the run could not be recorded.
        """
        await self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    @property
    def result(self) -> RunResult | None:
        """The result once the run has ended, else None."""
        return self._result

    # -------------------------------------------------------- main

    async def _main(self) -> None:
        wall_start = time.time()
        self._now = trio.lowlevel.current_clock().current_time
        self._clock_zero = self._now()
        try:
            async with open_persister(
                self.store,
                wall_start=wall_start,
                router_state=self._router_snapshot,
                # The first level's ready events all come at once; room for
                # them on top of the usual bound lets the workers start
                # without waiting for the disk to take them.
                capacity=DEFAULT_CAPACITY + len(self.graph.levels[0]),
                flush_deadline=self.options.flush_deadline,
            ) as persister:
                self._persister = persister
                try:
                    await self._execute()
                finally:
                    with trio.move_on_after(self.options.flush_deadline, shield=True):
                        await self._finish()
        except Exception as error:
            self._error = error
        finally:
            for subscriber in self._subscribers:
                subscriber.close()
            self._done.set()

    def _router_snapshot(self) -> tuple[str, Mapping[str, Any]] | None:
        """The router state for the persister's next transaction; None if unchanged since."""
        changes = self.router.changes
        if changes == self._router_saved:
            return None
        self._router_saved = changes
        return self.spec.name, self.router.snapshot()

    async def _execute(self) -> None:
        workers = self.options.max_workers
        jobs_send, jobs_receive = trio.open_memory_channel[AttemptRequest](workers)
        # A worker has at most one Spawned and one result outstanding.
        results_send, results_receive = trio.open_memory_channel[AttemptResult | Spawned](
            2 * workers
        )
        self.status = RunStatus.RUNNING
        async with trio.open_nursery() as nursery:
            self._run_scope = nursery.cancel_scope
            async with results_send:
                for n in range(workers):
                    nursery.start_soon(self._worker, n, jobs_receive.clone(), results_send.clone())
            jobs_receive.close()
            nursery.start_soon(self._schedule, jobs_send, results_receive)

    async def _worker(
        self,
        n: int,
        jobs: trio.MemoryReceiveChannel[AttemptRequest],
        results: trio.MemorySendChannel[AttemptResult | Spawned],
    ) -> None:
        logs = WorkerLogs(self.options.log_dir, n)

        def report(notice: Spawned) -> None:
            # A spawn can complete after the scheduler has stopped (the spawn
            # thread is not abandoned on cancellation). Nobody is left to
            # record the notice then, and the attempt is being stopped anyway.
            with suppress(trio.BrokenResourceError):
                results.send_nowait(notice)

        try:
            async with jobs, results:
                while True:
                    try:
                        request = await jobs.receive()
                    except trio.EndOfChannel:
                        break
                    result = await self.runner.run(request, logs, report)
                    # Never full (see _execute), so no extra pass of the run loop.
                    results.send_nowait(result)
        finally:
            logs.close()

    # -------------------------------------------------------- events

    def _emit(
        self,
        kind: EventKind,
        task: int | None = None,
        attempt: int | None = None,
        **data: Any,
    ) -> None:
        """
        Number an event and queue it, without waiting.

        It goes straight into the persister's channel, as a plain tuple of
        its fields (no `Event` is built), when that has room and nobody else
        listens; otherwise into the backlog, which `_deliver` hands on
        (waiting for room: backpressure) before the scheduler next waits.
        Either way events reach the persister and every subscriber in
        sequence order, and the scheduler's bookkeeping runs without a task
        switch per event.
        """
        self._seq += 1
        event = (
            self.run_id,
            self._seq,
            kind,
            self._now() - self._clock_zero,
            self.graph.ids[task] if task is not None else None,
            attempt,
            data,
        )
        if not self._backlog and not self._subscribers:
            try:
                self._persister.send_nowait(event)
            except trio.WouldBlock:
                pass
            else:
                return
        # tuple.__new__ skips the named tuple's Python-level constructor.
        self._backlog.append(tuple.__new__(Event, event))

    async def _deliver(self) -> None:
        """Hand the backlog on in order: to the persister (waiting for room), then subscribers."""
        backlog = self._backlog
        while backlog:
            event = backlog[0]
            # Cancellation-atomic: a cancelled send leaves the event in the
            # backlog, and `_finish` delivers it before the run's last events.
            await self._persister.send(event)
            backlog.popleft()
            if self._subscribers:
                await self._publish(event)

    async def _publish(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            try:
                try:
                    subscriber.send_nowait(event)
                except trio.WouldBlock:
                    await subscriber.send(event)
            except trio.BrokenResourceError:
                self._subscribers.remove(subscriber)

    # -------------------------------------------------------- scheduler

    async def _schedule(
        self,
        jobs: trio.MemorySendChannel[AttemptRequest],
        results: trio.MemoryReceiveChannel[AttemptResult | Spawned],
    ) -> None:
        self._idle = self.options.max_workers
        self._tool_running: dict[str, int] = {}
        self._parked: dict[str, list[tuple[int, int]]] = {}
        async with jobs, results:
            await self._start()
            self._dispatch(jobs)
            while self._unfinished:
                if self._backlog:
                    await self._deliver()
                done: list[AttemptResult] = []
                notices: list[Spawned] = []
                # A deadline scope only when a retry timer is due: this wait
                # runs once per round of results, on the in-process hot path.
                if self._timers:
                    with trio.move_on_at(self._timers[0][0]):
                        _file(await results.receive(), done, notices)
                else:
                    _file(await results.receive(), done, notices)
                _drain(results, done, notices)
                # Settle only while attempts are out: once every busy worker
                # has reported, no other result can come at this instant.
                if len(done) < self.options.max_workers - self._idle:
                    await self.runner.settle()
                    _drain(results, done, notices)
                for notice in notices:
                    self._on_spawned(notice)
                done.sort(key=_BY_END)
                for result in done:
                    self._on_result(result)
                if self._fail_fast_triggered:
                    break
                now = trio.current_time()
                while self._timers and self._timers[0][0] <= now:
                    _, i = heapq.heappop(self._timers)
                    self._make_ready(i)
                self._dispatch(jobs)
        if self._fail_fast_triggered:
            # Cancelled only now, after the whole batch: results that arrived
            # with the failure are real outcomes, and nothing more is dispatched.
            self._run_scope.cancel()
        else:
            self._completed = True

    async def _start(self) -> None:
        if self._resumed:
            self._emit(
                EventKind.RUN_RESUMED,
                kept=len(self.graph) - self._unfinished,
                workers=self.options.max_workers,
            )
            for task_id, attempt, pid, proc_start in self._lost:
                key = f"{self.run_id}/{task_id}/{attempt}"
                killed = pid is not None and kill_group_if_owned(pid, proc_start, key)
                self._emit(
                    EventKind.ATTEMPT_LOST,
                    self.graph.index.get(task_id),
                    attempt,
                    status="lost",
                    group_killed=killed,
                )
            for i, state in enumerate(self._states):
                if state is TaskState.SUCCEEDED:
                    self._ready.release(i)
        else:
            self._emit(
                EventKind.RUN_STARTED,
                workflow=self.spec.name,
                tasks=len(self.graph),
                workers=self.options.max_workers,
            )
        # Let the persister take the start on its own before the flood of
        # ready events: the run is recorded as running at once, whatever
        # happens to the larger batches after it.
        await self._deliver()
        await trio.lowlevel.checkpoint()
        for i in self._ready.roots():
            if self._states[i] is TaskState.PENDING:
                self._make_ready(i)
                if self._backlog:
                    await self._deliver()

    def _make_ready(self, i: int) -> None:
        task = self.spec.tasks[i]
        self._states[i] = TaskState.READY
        self._emit(EventKind.TASK_READY, i)
        if task.kind is not None and i not in self._tool_of:
            decision = self.router.choose(task)
            assert decision is not None  # validation guarantees a candidate
            self._tool_of[i] = decision.tool
            self._emit(
                EventKind.ROUTE_CHOSEN,
                i,
                tool=decision.tool,
                strategy=decision.strategy,
                candidates=list(decision.candidates),
                reason=decision.reason,
            )
        tool_name = self._tool_of.get(i)
        if tool_name is not None:
            self.router.queued(tool_name)
        self._ready.push(i)

    def _dispatch(self, jobs: trio.MemorySendChannel[AttemptRequest]) -> None:
        while self._idle:
            i = self._ready.pop()
            if i is None:
                break
            tool_name = self._tool_of.get(i)
            if tool_name is not None:
                tool = self.spec.tools[tool_name]
                running = self._tool_running.get(tool_name, 0)
                if tool.max_concurrency is not None and running >= tool.max_concurrency:
                    heapq.heappush(
                        self._parked.setdefault(tool_name, []),
                        (self._ready.position[i], i),
                    )
                    continue
                self._tool_running[tool_name] = running + 1
                self.router.started(tool_name)
            request, shown_argv = self._request(i, tool_name)
            self._states[i] = TaskState.RUNNING
            self._idle -= 1
            self._emit(
                EventKind.ATTEMPT_STARTED,
                i,
                request.attempt,
                tool=tool_name,
                argv=list(shown_argv) if shown_argv is not None else None,
            )
            jobs.send_nowait(request)

    def _request(
        self, i: int, tool_name: str | None
    ) -> tuple[AttemptRequest, tuple[str, ...] | None]:
        task = self.spec.tasks[i]
        tool = self.spec.tools[tool_name] if tool_name is not None else None
        self._attempts[i] += 1
        attempt = self._attempts[i]
        argv = task.argv(tool)
        shown = task.argv(tool, redact=True) if task.secret_params else argv
        base_env = None
        if task.call is None:
            base_env = self._tool_envs.get(tool_name)
            if base_env is None:
                base_env = self._tool_envs[tool_name] = {
                    **self._env_base,
                    **(tool.env if tool is not None else {}),
                }
        timeout = task.timeout
        if timeout is None:
            timeout = tool.timeout if tool is not None else None
            if timeout is None:
                timeout = self.spec.timeout
        request = AttemptRequest(
            run_id=self.run_id,
            task_id=task.id,
            index=i,
            attempt=attempt,
            tool=tool_name,
            argv=argv,
            call=task.call,
            args=task.args,
            cwd=self._cwd(task, tool),
            base_env=base_env,
            task_env=task.env,
            timeout=timeout,
            kill_grace=self.options.kill_grace,
        )
        return request, shown

    def _cwd(self, task: TaskSpec, tool: ToolSpec | None) -> str:
        chosen = task.cwd or (tool.cwd if tool is not None else None)
        cwd = self._cwds.get(chosen)
        if cwd is None:
            base = self.spec.base_dir
            cwd = self._cwds[chosen] = str(base if chosen is None else base / chosen)
        return cwd

    def _on_spawned(self, notice: Spawned) -> None:
        self._emit(
            EventKind.ATTEMPT_SPAWNED,
            notice.index,
            notice.attempt,
            pid=notice.pid,
            proc_start=notice.proc_start,
            worker=notice.worker,
            out_path=notice.out_path,
            out_offset=notice.out_offset,
            err_path=notice.err_path,
            err_offset=notice.err_offset,
        )

    def _on_result(self, result: AttemptResult) -> None:
        i = result.index
        ok = result.ok
        duration = result.duration
        self._idle += 1
        tool_name = self._tool_of.get(i)
        if tool_name is not None:
            self._tool_running[tool_name] -= 1
            self.router.finished(tool_name, duration=duration, ok=ok)
            parked = self._parked.get(tool_name)
            if parked:
                self._ready.push(heapq.heappop(parked)[1])
        # A signal, a timeout, an error and a callable's value are recorded
        # only when there is one (the projection reads them as NULL and 0).
        extra: dict[str, Any] = {}
        if result.signal is not None:
            extra["signal"] = result.signal
        if result.timed_out:
            extra["timed_out"] = True
        if result.error is not None:
            extra["error"] = storable_text(result.error)
        if result.result is not None:
            extra["result"] = _recordable(result.result)
        self._emit(
            EventKind.ATTEMPT_FINISHED,
            i,
            result.attempt,
            status="succeeded" if ok else "timed_out" if result.timed_out else "failed",
            exit_code=result.exit_code,
            duration=duration,
            out_length=result.out_length,
            err_length=result.err_length,
            **extra,
        )
        if ok:
            self._succeed(i)
        else:
            self._fail_attempt(i, result)

    def _succeed(self, i: int) -> None:
        self._states[i] = TaskState.SUCCEEDED
        self._unfinished -= 1
        self._emit(EventKind.TASK_SUCCEEDED, i, self._attempts[i])
        self._release(i)

    def _release(self, i: int) -> None:
        for j in self._ready.release(i):
            if self._states[j] is TaskState.PENDING:
                self._make_ready(j)

    def _fail_attempt(self, i: int, result: AttemptResult) -> None:
        task = self.spec.tasks[i]
        tool_name = self._tool_of.get(i)
        policy = self._retry_policy(task, tool_name)
        self._tries_on_tool[i] += 1
        retry_number = self._tries_on_tool[i]
        if retry_number <= policy.retries and policy.allows(
            exit_code=result.exit_code, timed_out=result.timed_out
        ):
            delay = policy.delay(retry_number, self._rng.random())
            self._states[i] = TaskState.RETRY_WAIT
            due = trio.current_time() + delay
            heapq.heappush(self._timers, (due, i))
            self._emit(
                EventKind.TASK_RETRY_WAIT, i, result.attempt, delay=delay, retry=retry_number
            )
            return
        if tool_name is not None:
            exhausted = self._exhausted.setdefault(i, set())
            exhausted.add(tool_name)
            decision = self.router.choose(task, exclude=exhausted)
            if decision is not None:
                self._tool_of[i] = decision.tool
                self._tries_on_tool[i] = 0
                self._emit(
                    EventKind.ROUTE_CHOSEN,
                    i,
                    tool=decision.tool,
                    strategy=decision.strategy,
                    candidates=list(decision.candidates),
                    reason=f"fallback after {tool_name} failed {retry_number} time(s); "
                    + decision.reason,
                    fallback_from=tool_name,
                )
                self._make_ready(i)
                return
        self._fail_task(i, result)

    def _fail_task(self, i: int, result: AttemptResult) -> None:
        task = self.spec.tasks[i]
        self._states[i] = TaskState.FAILED
        self._unfinished -= 1
        self._any_failed = True
        self._emit(
            EventKind.TASK_FAILED,
            i,
            result.attempt,
            exit_code=result.exit_code,
            signal=result.signal,
            timed_out=result.timed_out,
            error=storable_text(result.error),
        )
        if self.options.fail_fast:
            self._fail_fast_triggered = True
            return
        if task.continue_on_failure:
            self._release(i)
            return
        for j in self.graph.descendants(i):
            if self._states[j] is TaskState.PENDING:
                self._states[j] = TaskState.SKIPPED
                self._unfinished -= 1
                self._emit(EventKind.TASK_SKIPPED, j, upstream=task.id)

    def _retry_policy(self, task: TaskSpec, tool_name: str | None) -> RetryPolicy:
        tool_retry = self.spec.tools[tool_name].retry if tool_name is not None else None
        return task.retry or tool_retry or self.spec.retry or _NO_RETRY

    # -------------------------------------------------------- shutdown

    async def _finish(self) -> None:
        """Record how the run ended: cancel what is unfinished, then `run_finished`."""
        if self._completed:
            status = RunStatus.FAILED if self._any_failed else RunStatus.SUCCEEDED
        elif self._fail_fast_triggered:
            status = RunStatus.FAILED
        else:
            status = RunStatus.CANCELLED
        try:
            for i, state in enumerate(self._states):
                if state.finished:
                    continue
                if state is TaskState.RUNNING:
                    self._emit(EventKind.ATTEMPT_FINISHED, i, self._attempts[i], status="cancelled")
                self._states[i] = TaskState.CANCELLED
                self._emit(EventKind.TASK_CANCELLED, i)
                if self._backlog:
                    await self._deliver()
            self._emit(
                EventKind.RUN_FINISHED,
                status=status.value,
                **{state.value: n for state, n in _counts(self._states).items()},
            )
            await self._deliver()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # The persister died (its error is re-raised by open_persister).
            pass
        finally:
            # Even when the flush deadline cut the recording short, the caller
            # learns how the run ended (the store keeps it resumable).
            self.status = status
            self._result = RunResult(
                run_id=self.run_id,
                status=status,
                states=dict(zip(self.graph.ids, self._states, strict=True)),
                wall=trio.current_time() - self._clock_zero,
            )


_NO_RETRY = RetryPolicy()


_BY_END = operator.attrgetter("ended", "index")
"""The order in which a round's results are taken: by end time, ties by declaration."""


def _file(
    message: AttemptResult | Spawned, done: list[AttemptResult], notices: list[Spawned]
) -> None:
    """Append a worker's `message` to `notices` if it is a `Spawned`, else to `done`."""
    if isinstance(message, Spawned):
        notices.append(message)
    else:
        done.append(message)


def _drain(
    results: trio.MemoryReceiveChannel[AttemptResult | Spawned],
    done: list[AttemptResult],
    notices: list[Spawned],
) -> None:
    """File every message already delivered on `results` (`_file`), without waiting."""
    while True:
        try:
            message = results.receive_nowait()
        except trio.WouldBlock:
            return
        _file(message, done, notices)


def _recordable(value: Any) -> Any:
    """A callable task's return value if it can be stored as JSON, else None (never an error)."""
    if value is None:
        return None
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return value


def _counts(states: Sequence[TaskState]) -> dict[TaskState, int]:
    counts: dict[TaskState, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return counts


def _default_log_root(store: Store) -> Path | None:
    """``logs`` beside the database file; None for an in-memory store."""
    if store.path == ":memory:":
        return None
    return Path(os.path.abspath(store.path)).parent / "logs"


def _seed_from(run_id: str) -> int:
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big")


_HASHED_NAME = re.compile(r"-[0-9a-f]{16}\Z")


def _safe_name(name: str) -> str:
    """
    A file-name-safe form of `name`, different for different names.

    A plain name (ASCII letters, digits, ``-_.``, no leading dot, at most 100
    characters) is its own file name. Any other name becomes its cleaned
    prefix plus 16 hex digits of its SHA-256; a plain name that already ends
    like such a result is hashed too, so no two names share a file name.
    """
    cleaned = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_." else "_" for ch in name)
    cleaned = cleaned.lstrip(".")
    if cleaned == name and 0 < len(name) <= 100 and not _HASHED_NAME.search(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{cleaned[:80] or '_'}-{digest}"
