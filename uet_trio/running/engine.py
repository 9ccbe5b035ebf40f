"""
The engine: the Trio wiring of one run, and nothing that decides.

The task tree of a run::

    open_run (caller's task: prepares the run, then yields the Run handle)
    └── Run._main                       background task in open_run's nursery
        └── open_persister              persister task, in its own shielded scope
            └── Run._execute nursery    the run's cancel scope
                ├── Run._loop           drives the scheduler
                └── worker x N          one executor slot each: run attempts

The loop awaits a result or the next retry timer, feeds the synchronous
`Scheduler` what happened, has `Delivery` hand the events it decided to the
persister and subscribers, and sends the requests it dispatches to idle
workers over a channel of the workers' size (so it never blocks there).
Workers answer on a channel sized so that a worker never waits on it. A
worker also answers the scheduler's up-to-date checks (`freshness`), and
around an attempt of a task that declares outputs it makes, checks or
removes them (`_with_outputs`). Before the first task is ready, the tasks
the stat cache shows up to date are settled in one pass, in a thread
(`Scheduler.settle`): a no-op re-run never reaches the workers.

Determinism: after waking, the loop takes every result already delivered
and, while some busy worker has not reported, awaits `runner.settle()` and
takes those too; the scheduler orders them canonically, so under a
`MockClock` the events do not depend on the order Trio wakes tasks in.

Shutdown: cancelling the run's scope (Ctrl-C, an embedding application, or
the loop itself under ``fail_fast``) stops the workers' attempts (SIGTERM,
grace, SIGKILL); then, shielded and under a deadline, the scheduler records
how the run ended, the backlog is delivered and the persister writes
everything queued.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any, Unpack

import attrs
import trio

from ..deciding.attempts import AttemptRequest, AttemptResult, CheckRequest, Started, Verdict
from ..recording.events import Event, EventKind
from ..recording.states import RunStatus, TaskState
from ..recording.store import Store
from ..workflow.graph import TaskGraph, compile_graph
from ..workflow.spec import WorkflowSpec
from .delivery import SUBSCRIBER_BUFFER, Delivery
from .executors.base import AttemptRunner, Report, RunAttempt
from .executors.local import LocalRunner
from .freshness import Freshness
from .persister import DEFAULT_CAPACITY, Persister, PersisterStatistics, open_persister
from .preparation import Prepared, RunOptions, prepare, reclaim_lost


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


async def run_workflow(
    spec: WorkflowSpec,
    *,
    store: Store,
    graph: TaskGraph | None = None,
    runner: AttemptRunner | None = None,
    **options: Unpack[RunOptions],
) -> RunResult:
    """
    Run `spec` to the end and return its result.

    Takes the same keyword options as `open_run`. Cancelling the caller's
    scope cancels the run (processes stopped, everything recorded).
    """
    async with open_run(spec, store=store, graph=graph, runner=runner, **options) as run:
        pass
    assert run.result is not None
    return run.result


@asynccontextmanager
async def open_run(
    spec: WorkflowSpec,
    *,
    store: Store,
    graph: TaskGraph | None = None,
    runner: AttemptRunner | None = None,
    **options: Unpack[RunOptions],
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
        seed: seed of the run's random source (retry jitter; default: derived
            from the run id).
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
        short_switch_interval: while the persister writes a large batch,
            shorten the interpreter's GIL switch interval (process-wide:
            only for a program that owns its process; it speeds up runs of
            many in-process tasks, not runs of commands).
        always_make: run every task, even one whose outputs are up to date
            (signatures are still recorded).
        check_outputs: check tasks that declare outputs before they run,
            and their outputs after (default); False runs every task and
            looks at no file, as a simulation does.

    Raises:
        TypeError: an option that `RunOptions` does not name.
        WorkflowError: the workflow has a cycle, or a setting is out of range.
        ValueError: `graph` was not compiled from `spec`.
        RunNotFound, RunConflict: `resume` names no run, or one owned by a
            live process, or one whose workflow changed (without `force`).
        StoreError: the store cannot record the run.
    """
    if graph is None:
        graph = compile_graph(spec)
    elif graph.ids != tuple(task.id for task in spec.tasks):
        raise ValueError("the graph was not compiled from this workflow")
    prepared = await prepare(spec, graph, store, options)
    run = Run(prepared, store, runner or LocalRunner())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run._main)
        yield run
    if run._error is not None:
        raise run._error


class Run:
    """
    A run in progress: its id, status and event stream.

    Created by `open_run`; the methods here are safe to call from any task of
    the same Trio run.
    """

    def __init__(self, prepared: Prepared, store: Store, runner: AttemptRunner) -> None:
        scheduler = self.scheduler = prepared.scheduler
        self.spec = scheduler.spec
        self.graph = scheduler.graph
        self.run_id = scheduler.run_id
        self.router = scheduler.router
        self.store = store
        self.runner = runner
        self.settings = prepared.settings
        self.status = RunStatus.PENDING
        self._done = trio.Event()
        self._result: RunResult | None = None
        self._error: BaseException | None = None
        self._lost = prepared.lost
        self._freshness = prepared.freshness
        self._delivery = Delivery(self.run_id, self.graph.ids, prepared.last_seq)
        self._persister: Persister | None = None
        self._router_saved = -1

    # -------------------------------------------------------- handle API

    def events(
        self, buffer: int = SUBSCRIBER_BUFFER, *, kinds: Collection[EventKind] | None = None
    ) -> trio.MemoryReceiveChannel[Event]:
        """
        Subscribe to this run's events from now on (only those of `kinds`, if given).

        Returns a receive channel (iterate it with ``async for``) that ends
        when the run ends. Each subscriber has its own bounded buffer; a slow
        subscriber slows the run rather than losing events. Naming the
        kinds it reads spares the run a hop per event of the other kinds
        (a no-op re-run's ``task_up_to_date``, say).
        """
        return self._delivery.subscribe(buffer, kinds)

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

    def statistics(self) -> PersisterStatistics | None:
        """The persister's counters so far (events, transactions); None before it starts."""
        return self._persister.statistics() if self._persister is not None else None

    # -------------------------------------------------------- the task tree

    async def _main(self) -> None:
        wall_start = time.time()
        now = trio.lowlevel.current_clock().current_time
        self._clock_zero = now()
        try:
            async with open_persister(
                self.store,
                wall_start=wall_start,
                router_state=self._router_snapshot,
                file_states=self._freshness.take_file_states if self._freshness else None,
                # The first level's ready events all come at once; room for
                # them on top of the usual bound lets the workers start
                # without waiting for the disk to take them.
                capacity=DEFAULT_CAPACITY + len(self.graph.levels[0]),
                flush_deadline=self.settings.flush_deadline,
                short_switch_interval=self.settings.short_switch_interval,
            ) as persister:
                self._persister = persister
                self._delivery.attach(persister, lambda: now() - self._clock_zero)
                try:
                    await self._execute()
                finally:
                    with trio.move_on_after(self.settings.flush_deadline, shield=True):
                        await self._finish()
        except Exception as error:
            self._error = error
        finally:
            self._delivery.close()
            self._done.set()

    def _router_snapshot(self) -> tuple[str, Mapping[str, Any]] | None:
        """The router state for the persister's next transaction; None if unchanged since."""
        changes = self.router.changes
        if changes == self._router_saved:
            return None
        self._router_saved = changes
        return self.spec.name, self.router.snapshot()

    async def _execute(self) -> None:
        workers = self.settings.max_workers
        jobs_send, jobs_receive = trio.open_memory_channel[Job](workers)
        # A worker has at most one Started and one result outstanding.
        results_send, results_receive = trio.open_memory_channel[Message](2 * workers)
        self.status = RunStatus.RUNNING
        async with trio.open_nursery() as nursery:
            self._run_scope = nursery.cancel_scope
            async with results_send:
                for n in range(workers):
                    nursery.start_soon(self._worker, n, jobs_receive.clone(), results_send.clone())
            jobs_receive.close()
            nursery.start_soon(self._loop, jobs_send, results_receive)

    async def _worker(
        self,
        n: int,
        jobs: trio.MemoryReceiveChannel[Job],
        results: trio.MemorySendChannel[Message],
    ) -> None:
        def report(notice: Started) -> None:
            # A start can be reported after the loop has stopped (a spawn
            # thread is not abandoned on cancellation). Nobody is left to
            # record the notice then, and the attempt is being stopped anyway.
            with suppress(trio.BrokenResourceError):
                results.send_nowait(notice)

        freshness = self._freshness
        async with jobs, results, self.runner.slot(n, self.settings.log_dir) as run_attempt:
            async for request in jobs:
                # Never full (see _execute), so no extra pass of the loop.
                if isinstance(request, CheckRequest):
                    assert freshness is not None
                    results.send_nowait(await freshness.check(request))
                elif freshness is None or not request.outputs:
                    results.send_nowait(await run_attempt(request, report))
                else:
                    results.send_nowait(
                        await _with_outputs(freshness, run_attempt, request, report)
                    )

    async def _loop(
        self,
        jobs: trio.MemorySendChannel[Job],
        results: trio.MemoryReceiveChannel[Message],
    ) -> None:
        scheduler = self.scheduler
        delivery = self._delivery
        workers = self.settings.max_workers
        async with jobs, results:
            scheduler.start(delivery.decided, await reclaim_lost(self.runner, self._lost))
            # Let the persister take the start on its own before the flood of
            # ready events: the run is recorded as running at once, whatever
            # happens to the larger batches after it.
            await delivery.deliver()
            await trio.lowlevel.checkpoint()
            if self._freshness is not None:
                # A no-op re-run is decided here, in one pass over the stat
                # cache, rather than task by task through the loop. In a
                # thread: it stats every file, and the loop stays free; in
                # parts, each a point where the run can be cancelled.
                check = self._freshness.check_now
                while await trio.to_thread.run_sync(scheduler.settle, check, SETTLED_PER_PART):
                    pass
            scheduler.ready_roots()
            while scheduler.finish_settled(CHECKS_PER_PASS):
                await delivery.deliver()
            busy = 0
            while True:
                busy += await self._dispatch(jobs, workers - busy)
                if not scheduler.unfinished:
                    return
                if delivery.pending:
                    await delivery.deliver()
                done: list[AttemptResult] = []
                notices: list[Started] = []
                checked: list[Verdict] = []
                filed = (done, notices, checked)
                # A deadline scope only when a retry timer waits: this wait
                # runs once per round of results, on the in-process hot path.
                due = scheduler.next_due
                if due is not None:
                    with trio.move_on_at(due):
                        _file(await results.receive(), filed)
                else:
                    _file(await results.receive(), filed)
                _drain(results, filed)
                # Settle only while attempts are out: once every busy worker
                # has reported, no other result can come at this instant.
                if len(done) + len(checked) < busy:
                    await self.runner.settle()
                    _drain(results, filed)
                for notice in notices:
                    scheduler.on_started(notice)
                busy -= len(done) + len(checked)
                if checked:
                    scheduler.on_checked(checked)
                now = trio.current_time()
                scheduler.on_results(done, now)
                if scheduler.stopping:
                    # Cancelled only now, after the whole round: results that
                    # arrived with the failure are real outcomes.
                    self._run_scope.cancel()
                    return
                scheduler.due(now)

    async def _dispatch(self, jobs: trio.MemorySendChannel[Job], idle: int) -> int:
        """
        Send what the scheduler dispatches to the `idle` workers; return how many went.

        A check that the stat cache answers (`Freshness.check_now`) is
        answered here, and what that releases is dispatched in turn: a
        no-op re-run goes through its tasks in this loop, never waiting on a
        worker. It lets other tasks run every `CHECKS_PER_PASS` answers.
        """
        scheduler = self.scheduler
        freshness = self._freshness
        sent = 0
        answered_since = 0
        while True:
            answered: list[Verdict] = []
            for request in scheduler.dispatch(idle - sent):
                verdict = None
                if freshness is not None and isinstance(request, CheckRequest):
                    verdict = freshness.check_now(request)
                if verdict is None:
                    jobs.send_nowait(request)
                    sent += 1
                else:
                    answered.append(verdict)
            if not answered:
                return sent
            scheduler.on_checked(answered)
            answered_since += len(answered)
            if answered_since >= CHECKS_PER_PASS:
                answered_since = 0
                await self._delivery.deliver()
                await trio.lowlevel.checkpoint()

    async def _finish(self) -> None:
        """Record how the run ended: what is unfinished is cancelled, then `run_finished`."""
        scheduler = self.scheduler
        status = scheduler.outcome
        try:
            scheduler.finish()
            await self._delivery.deliver()
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
                states=dict(zip(self.graph.ids, self.scheduler.states, strict=True)),
                wall=trio.current_time() - self._clock_zero,
            )


CHECKS_PER_PASS = 256
"""
Checks the loop answers from the stat cache before it lets other tasks run;
settled tasks it finishes before it delivers their events.
"""

SETTLED_PER_PART = 4096
"""
Tasks considered per part of the pass before the start (`Scheduler.settle`):
about 0.1 s of a no-op's checks, a part, so Ctrl-C is never held up longer.
"""

Job = AttemptRequest | CheckRequest
"""What the loop sends a worker: an attempt to run, or a task to check."""

Message = AttemptResult | Started | Verdict
"""What a worker sends the loop."""

Filed = tuple[list[AttemptResult], list[Started], list[Verdict]]


def _file(message: Message, filed: Filed) -> None:
    """Append a worker's `message` to the list of its kind: results, notices, verdicts."""
    done, notices, checked = filed
    if isinstance(message, AttemptResult):
        done.append(message)
    elif isinstance(message, Started):
        notices.append(message)
    else:
        checked.append(message)


def _drain(results: trio.MemoryReceiveChannel[Message], filed: Filed) -> None:
    """File every message already delivered on `results` (`_file`), without waiting."""
    while True:
        try:
            message = results.receive_nowait()
        except trio.WouldBlock:
            return
        _file(message, filed)


async def _with_outputs(
    freshness: Freshness, run_attempt: RunAttempt, request: AttemptRequest, report: Report
) -> AttemptResult:
    """
    Run an attempt of a task that declares outputs: their directories are
    made first; then they are checked, or removed if the attempt failed or
    was cancelled (`Freshness.after_attempt`).
    """
    try:
        before = freshness.before_attempt(request)
    except OSError as error:
        now = trio.current_time()
        return AttemptResult(
            index=request.index,
            attempt=request.attempt,
            started=now,
            ended=now,
            exit_code=None,
            error=f"cannot create the directory of an output: {error}",
        )
    try:
        result = await run_attempt(request, report)
    except trio.Cancelled:
        freshness.remove_changed(request, before)
        raise
    return await freshness.after_attempt(request, result, before)
