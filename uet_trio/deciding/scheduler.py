"""
The scheduler: every decision of one run, as plain synchronous code.

It never awaits, sleeps or reads a clock: the engine feeds it what happened
(attempt start notices and results, with the current time) and asks it what
to do next (`dispatch`), and every event it decides goes, as it is decided,
to the sink the engine gave `start` (the engine's delivery to the persister
and subscribers, which never blocks; a list in tests). So retries,
fallbacks, skips and fail-fast can be tested with plain calls, and the same
inputs always give the same events.

A task's life: `ready_roots` or a finished dependency makes it ready (routed
to a tool on the way if it has a kind) and pushes it into the `ReadySet`;
`dispatch` pops it in priority order, parks it while its tool is at its
``max_concurrency`` (the router decides), and returns an `AttemptRequest`;
`on_results` ends the attempt: success releases dependents; a failure waits
for a retry timer (`due` makes it ready again), falls back to another tool,
or fails the task and skips what depends on it, or stops the run
(``fail_fast``).
"""

from __future__ import annotations

import heapq
import itertools
import json
import operator
import random
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..recording.events import TASK_STATE_AFTER, EventKind
from ..recording.records import TaskRecord
from ..recording.states import AttemptStatus, RunStatus, TaskState
from ..recording.store import storable_text
from ..workflow.frozen import EMPTY
from ..workflow.graph import ReadySet, TaskGraph
from ..workflow.spec import WorkflowSpec
from .attempts import AttemptRequest, AttemptResult, CheckRequest, Started, Verdict
from .checks import check_request, signed_tasks, up_to_date_before_start
from .routing import RouteDecision, Router
from .settings import Settings

Emit = Callable[[EventKind, int | None, int | None, Mapping[str, Any]], None]
"""Where decided events go: called with kind, task index (None: run-level), attempt, data."""

_NO_DATA: Mapping[str, Any] = {}


_STATE_AFTER = dict(TASK_STATE_AFTER)
"""`TASK_STATE_AFTER` as a plain dict: looked up for every event decided."""

_FINISHED = frozenset(state for state in TaskState if state.finished)
"""The finished task states, as a set to test every decided event against."""


def _not_started(
    kind: EventKind, task: int | None, attempt: int | None, data: Mapping[str, Any]
) -> None:
    raise RuntimeError(f"{kind} decided before the scheduler was started")


class InvalidTransition(RuntimeError):
    """An event would move a task that has finished: the scheduler broke its own rules."""


_BY_END = operator.attrgetter("ended", "index")
"""The order in which results of one round are taken: by end time, ties by declaration."""

_BY_INDEX = operator.attrgetter("index")

_KEPT = frozenset({TaskState.SUCCEEDED, TaskState.UP_TO_DATE})
"""The states in which a resumed run keeps a task: it need not run again."""


class Scheduler:
    """
    The state of one run's tasks and every decision about them.

    Args:
        spec, graph: the workflow and its compiled DAG.
        run_id: the run's id (requests carry it to the commands' environment).
        order: every task index in dispatch order among ready tasks of equal
            standing (`uet_trio.deciding.priority.ready_order`).
        router: routes tasks of a kind and admits attempts per tool.
        rng: the run's seeded random source (retry jitter).
        environ: the environment commands start from, before tool and task variables.
        workers: how many attempts may run at once (recorded in the start event).
        fail_fast: stop the whole run when a task finally fails.
        kill_grace: seconds between SIGTERM and SIGKILL when an attempt is stopped.
        always_make: run every task, even one that is up to date.
        check_outputs: check tasks with outputs before they run; without it
            (a simulation) every task runs and no output is looked at.
    """

    def __init__(
        self,
        spec: WorkflowSpec,
        graph: TaskGraph,
        *,
        run_id: str,
        order: Sequence[int],
        router: Router,
        rng: random.Random,
        environ: Mapping[str, str],
        workers: int,
        fail_fast: bool,
        kill_grace: float,
        always_make: bool = False,
        check_outputs: bool = True,
    ) -> None:
        self.spec = spec
        self.graph = graph
        self.run_id = run_id
        self.router = router
        self._send: Emit = _not_started
        n = len(graph)
        self.states = [TaskState.PENDING] * n
        """Each task's state, by declaration index."""
        self.unfinished = n
        """Tasks not yet in a terminal state; the run loop ends at 0."""
        self.stopping = False
        """A task failed under ``fail_fast``: nothing more is dispatched."""
        self._any_failed = False
        self._attempts = [0] * n
        self._tries_on_tool = [0] * n
        self._tool_of: dict[int, str] = {}
        self._exhausted: dict[int, set[str]] = {}
        self._timers: list[tuple[float, int]] = []
        self._parked: dict[str, list[tuple[int, int]]] = {}
        self._ready = ReadySet(graph, order)
        self._settings = Settings(spec)
        self._rng = rng
        self._environ = environ
        self._tool_envs: dict[str | None, dict[str, str]] = {}
        self._workers = workers
        self._fail_fast = fail_fast
        self._kill_grace = kill_grace
        self._resumed = False
        self._always_make = always_make
        self._signed = signed_tasks(spec, graph) if check_outputs else None
        self._verdicts: dict[int, Verdict] = {}
        self._asking: Iterator[tuple[int, str] | None] | None = None
        """The pass of `settle` under way (`up_to_date_before_start`)."""
        self._settled: deque[tuple[int, str]] = deque()
        """Tasks found up to date before the start, with their signatures (`settle`)."""
        self._settled_left: set[int] = set()
        """The tasks of `_settled`: not made ready when a dependency releases them."""

    # -------------------------------------------------------- start

    def resume(self, tasks: Iterable[TaskRecord]) -> None:
        """
        Continue a recorded run: keep its succeeded tasks, number attempts on.

        Call before `start`. Records of tasks the workflow no longer has are ignored.
        """
        index = self.graph.index
        for task in tasks:
            i = index.get(task.task_id)
            if i is None:
                continue
            self._attempts[i] = task.attempts
            if task.state in _KEPT:
                self.states[i] = task.state
                self.unfinished -= 1
        self._resumed = True

    def start(self, emit: Emit, lost: Sequence[tuple[str, int, bool]] = ()) -> None:
        """
        Record the run's start (or resumption, with the attempts a dead runner left).

        From now on every decided event is passed to `emit`, in order, as it
        is decided; it must not block. `lost` holds (task id, attempt,
        whether its processes were stopped) for each attempt recorded as
        running when the run was taken over.
        """
        self._send = emit
        if not self._resumed:
            self._emit(
                EventKind.RUN_STARTED,
                data={
                    "workflow": self.spec.name,
                    "tasks": len(self.graph),
                    "workers": self._workers,
                },
            )
            return
        self._emit(
            EventKind.RUN_RESUMED,
            data={"kept": len(self.graph) - self.unfinished, "workers": self._workers},
        )
        for task_id, attempt, stopped in lost:
            self._emit(
                EventKind.ATTEMPT_LOST,
                self.graph.index.get(task_id),
                attempt,
                {"status": AttemptStatus.LOST, "group_killed": stopped},
            )
        for i, state in enumerate(self.states):
            if state in _KEPT:
                self._ready.release(i)

    def settle(self, check: Callable[[CheckRequest], Verdict | None], limit: int) -> bool:
        """
        Find, before any task is ready, the tasks `check` says are up to
        date: up to `limit` more tasks are considered per call; returns
        whether some are left (then call again, with the same `check`).

        `check` answers a `CheckRequest` as a worker would, or None when it
        cannot without reading a file (the engine passes
        `Freshness.check_now`, and calls this off its loop, since it stats
        the files, in parts, so that a cancellation is not held up by a
        large build). Call between `start` and `ready_roots`; then
        `finish_settled` finishes those tasks. Nothing is settled on a
        resumed run, with ``always_make``, or when no task has a signature.
        """
        if self._signed is None or self._resumed or self._always_make:
            return False
        if self._asking is None:
            self._asking = up_to_date_before_start(
                self.spec, self.graph, self._settings, self._signed, check
            )
        steps = 0
        for found in itertools.islice(self._asking, limit):
            steps += 1
            if found is not None:
                self._settled.append(found)
                self._settled_left.add(found[0])
        return steps == limit

    def ready_roots(self) -> None:
        """Make ready every pending task whose dependencies have all succeeded (and not settled)."""
        settled = self._settled_left
        for i in self._ready.roots():
            if self.states[i] is TaskState.PENDING and i not in settled:
                self._make_ready(i)

    def finish_settled(self, limit: int) -> bool:
        """
        Finish up to `limit` of the tasks found up to date (`settle`), after
        `ready_roots`; return whether any is left.

        A settled task is decided ``task_up_to_date`` alone (it is never
        ready), in dependency order, and what it releases is made ready
        right after it, as `on_checked` does: the order of emission that
        `RELEASING_KINDS` declares holds either way. In parts, so that the
        engine delivers each part's events before deciding the next.
        """
        settled = self._settled
        left = self._settled_left
        for _ in range(min(limit, len(settled))):
            i, signature = settled.popleft()
            left.discard(i)
            self.unfinished -= 1
            self._emit(EventKind.TASK_UP_TO_DATE, i, data={"signature": signature})
            for j in self._ready.release(i):
                if self.states[j] is TaskState.PENDING and j not in left:
                    self._make_ready(j)
        return bool(settled)

    # -------------------------------------------------------- dispatch

    def dispatch(self, idle: int) -> list[AttemptRequest | CheckRequest]:
        """
        Up to `idle` attempts to start now, or checks to make, in priority order.

        A task that has a signature is first checked (`CheckRequest`); it
        runs once `on_checked` finds it is not up to date. A task whose tool
        is at its concurrency limit waits, parked, until one of that tool's
        attempts ends.
        """
        requests: list[AttemptRequest | CheckRequest] = []
        if self.stopping:
            return requests
        ready = self._ready
        signed = self._signed
        while len(requests) < idle:
            i = ready.pop()
            if i is None:
                break
            if signed and signed[i] and i not in self._verdicts:
                requests.append(self._check(i))
                continue
            tool = self._tool_of.get(i)
            if tool is not None:
                if not self.router.admits(tool):
                    heapq.heappush(self._parked.setdefault(tool, []), (ready.position[i], i))
                    continue
                self.router.started(tool)
            requests.append(self._request(i, tool))
        return requests

    def _request(self, i: int, tool: str | None) -> AttemptRequest:
        task = self.spec.tasks[i]
        settings = self._settings.of(task, tool)
        self._attempts[i] += 1
        attempt = self._attempts[i]
        shown = settings.shown_argv
        data: dict[str, Any] = {"tool": tool, "argv": list(shown) if shown is not None else None}
        if settings.argv_bytes is not None:
            data["argv_bytes"] = settings.argv_bytes
        self._emit(EventKind.ATTEMPT_STARTED, i, attempt, data)
        return AttemptRequest(
            run_id=self.run_id,
            task_id=task.id,
            index=i,
            attempt=attempt,
            tool=tool,
            argv=settings.argv,
            call=task.call,
            args=task.args,
            cwd=settings.cwd,
            base_env=None if task.call is not None else self._base_env(tool, settings.tool_env),
            task_env=settings.task_env,
            timeout=settings.timeout,
            kill_grace=self._kill_grace,
            outputs=task.outputs if self._signed else (),
            ok_exit_codes=task.ok_exit_codes,
            resources=self.spec.tools[tool].resources if tool is not None else EMPTY,
        )

    def _check(self, i: int) -> CheckRequest:
        tool = self._tool_of.get(i)
        return check_request(self.spec, self.graph, self._settings, i, tool, self._always_make)

    def on_checked(self, verdicts: list[Verdict]) -> None:
        """
        Take the checks of a round, in declaration order: a task that is up
        to date finishes so and releases its dependents; any other is ready
        to run again.
        """
        verdicts.sort(key=_BY_INDEX)
        for verdict in verdicts:
            i = verdict.index
            if not verdict.fresh:
                self._verdicts[i] = verdict
                self._ready.push(i)
                continue
            tool = self._tool_of.get(i)
            if tool is not None:
                self.router.dequeued(tool)
            self.unfinished -= 1
            self._emit(EventKind.TASK_UP_TO_DATE, i, data={"signature": verdict.signature})
            self._release(i)

    def _base_env(self, tool: str | None, tool_env: Mapping[str, str]) -> dict[str, str]:
        """The environment of a tool's commands before a task's own variables (built once)."""
        env = self._tool_envs.get(tool)
        if env is None:
            env = self._tool_envs[tool] = {**self._environ, **tool_env}
        return env

    # -------------------------------------------------------- results

    def on_started(self, notice: Started) -> None:
        """Record where an attempt runs (its location, as the executor reports it)."""
        self._emit(EventKind.ATTEMPT_SPAWNED, notice.index, notice.attempt, notice.location)

    def on_results(self, results: list[AttemptResult], now: float) -> None:
        """
        End the attempts of `results`, in canonical order (end time, then declaration).

        `now` is the run clock's time, from which retry timers count. Taking
        a round's results sorted, not in arrival order, makes the event
        sequence independent of the order in which the attempts reported.
        """
        results.sort(key=_BY_END)
        for result in results:
            self._on_result(result, now)

    def _on_result(self, result: AttemptResult, now: float) -> None:
        i = result.index
        ok = result.ok(self.spec.tasks[i].ok_exit_codes)
        tool = self._tool_of.get(i)
        if tool is not None:
            self.router.finished(tool, duration=result.duration, ok=ok)
            parked = self._parked.get(tool)
            if parked:
                self._ready.push(heapq.heappop(parked)[1])
        self._emit(EventKind.ATTEMPT_FINISHED, i, result.attempt, _finished_data(result, ok))
        if ok:
            self.unfinished -= 1
            verdict = self._verdicts.get(i)
            data: dict[str, Any] = {}
            if result.exit_code:
                data["exit_code"] = result.exit_code
            if verdict is not None:
                data["signature"] = verdict.signature
                data["detail"] = {**verdict.detail, "outputs": result.outputs or {}}
            self._emit(EventKind.TASK_SUCCEEDED, i, result.attempt, data or _NO_DATA)
            self._release(i)
        else:
            self._fail_attempt(i, result, now)

    def _release(self, i: int) -> None:
        for j in self._ready.release(i):
            if self.states[j] is TaskState.PENDING:
                self._make_ready(j)

    def _make_ready(self, i: int) -> None:
        task = self.spec.tasks[i]
        self._emit(EventKind.TASK_READY, i)
        if task.kind is not None and i not in self._tool_of:
            decision = self.router.choose(task)
            assert decision is not None  # validation guarantees a candidate
            self._route(i, decision)
        tool = self._tool_of.get(i)
        if tool is not None:
            self.router.queued(tool)
        self._ready.push(i)

    def _route(self, i: int, decision: RouteDecision, **extra: Any) -> None:
        self._tool_of[i] = decision.tool
        self._emit(
            EventKind.ROUTE_CHOSEN,
            i,
            data={
                "tool": decision.tool,
                "strategy": decision.strategy,
                "candidates": list(decision.candidates),
                "reason": extra.pop("reason", decision.reason),
                **extra,
            },
        )

    def _fail_attempt(self, i: int, result: AttemptResult, now: float) -> None:
        task = self.spec.tasks[i]
        tool = self._tool_of.get(i)
        policy = self._settings.retry(task, tool)
        self._tries_on_tool[i] += 1
        retry_number = self._tries_on_tool[i]
        if retry_number <= policy.retries and policy.allows(
            exit_code=result.exit_code, timed_out=result.timed_out
        ):
            delay = policy.delay(retry_number, self._rng.random())
            heapq.heappush(self._timers, (now + delay, i))
            self._emit(
                EventKind.TASK_RETRY_WAIT,
                i,
                result.attempt,
                {"delay": delay, "retry": retry_number},
            )
            return
        if tool is not None:
            exhausted = self._exhausted.setdefault(i, set())
            exhausted.add(tool)
            decision = self.router.choose(task, exclude=exhausted)
            if decision is not None:
                self._tries_on_tool[i] = 0
                self._route(
                    i,
                    decision,
                    reason=f"fallback after {tool} failed {retry_number} time(s); "
                    + decision.reason,
                    fallback_from=tool,
                )
                self._make_ready(i)
                return
        self._fail_task(i, result)

    def _fail_task(self, i: int, result: AttemptResult) -> None:
        task = self.spec.tasks[i]
        self.unfinished -= 1
        self._any_failed = True
        self._emit(
            EventKind.TASK_FAILED,
            i,
            result.attempt,
            {
                "exit_code": result.exit_code,
                "signal": result.signal,
                "timed_out": result.timed_out,
                "error": storable_text(result.error),
            },
        )
        if self._fail_fast:
            self.stopping = True
            return
        if task.continue_on_failure:
            self._release(i)
            return
        self._skip_downstream(i)

    def _skip_downstream(self, i: int) -> None:
        """
        Skip every task that needs failed task `i` to succeed, transitively, in index order.

        A task that comes only ``after`` a failed or skipped one is not
        skipped: it becomes ready once all its dependencies have finished.
        """
        graph = self.graph
        skipped: set[int] = set()
        ready: list[int] = []
        walk = [i]
        while walk:
            finished = walk.pop()
            released = self._ready.release(finished)
            for j in graph.dependents[finished]:
                if j in skipped or self.states[j] is not TaskState.PENDING:
                    continue
                if not graph.waits_only_for(j, finished):
                    skipped.add(j)
                    walk.append(j)
                elif j in released:
                    ready.append(j)
        upstream = graph.ids[i]
        for j in sorted(skipped):
            self.unfinished -= 1
            self._emit(EventKind.TASK_SKIPPED, j, data={"upstream": upstream})
        for j in sorted(ready):
            if j not in skipped:
                self._make_ready(j)

    # -------------------------------------------------------- timers

    @property
    def next_due(self) -> float | None:
        """When the earliest retry timer is due (run clock), or None if none waits."""
        return self._timers[0][0] if self._timers else None

    def due(self, now: float) -> None:
        """Make ready every task whose retry timer is due at `now`."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, i = heapq.heappop(timers)
            self._make_ready(i)

    # -------------------------------------------------------- end

    @property
    def outcome(self) -> RunStatus:
        """
        How the run ends if it ends now.

        A run whose tasks all finished succeeded or failed; one stopped by
        ``fail_fast`` failed; any other (the engine was cancelled) was cancelled.
        """
        if self.stopping:
            return RunStatus.FAILED
        if self.unfinished == 0:
            return RunStatus.FAILED if self._any_failed else RunStatus.SUCCEEDED
        return RunStatus.CANCELLED

    def finish(self) -> RunStatus:
        """
        Record how the run ended (`outcome`): every unfinished task is
        cancelled (its running attempt with it), then ``run_finished``.
        """
        status = self.outcome
        for i, state in enumerate(self.states):
            if state not in _FINISHED:
                if state is TaskState.RUNNING:
                    self._emit(
                        EventKind.ATTEMPT_FINISHED,
                        i,
                        self._attempts[i],
                        {"status": AttemptStatus.CANCELLED},
                    )
                self._emit(EventKind.TASK_CANCELLED, i)
        counts = {state.value: n for state, n in Counter(self.states).items()}
        self._emit(EventKind.RUN_FINISHED, data={"status": status.value, **counts})
        return status

    def _emit(
        self,
        kind: EventKind,
        task: int | None = None,
        attempt: int | None = None,
        data: Mapping[str, Any] = _NO_DATA,
    ) -> None:
        """
        Decide an event: to the sink, and the task's state as the event says.

        Task states follow from the events alone (`TASK_STATE_AFTER`, the
        table the store's projection is generated from too), so the
        scheduler's states and the recorded ones cannot drift apart.

        Raises:
            InvalidTransition: the event would move a task out of a finished
                state (a bug in the scheduler, caught where it happens).
        """
        if task is not None:
            state = _STATE_AFTER.get(kind)
            if state is not None:
                if self.states[task] in _FINISHED:
                    raise InvalidTransition(
                        f"{kind} for task {self.graph.ids[task]!r}, "
                        f"which has already {self.states[task]}"
                    )
                self.states[task] = state
        self._send(kind, task, attempt, data)


def _finished_data(result: AttemptResult, ok: bool) -> dict[str, Any]:
    """
    The data of an ``attempt_finished`` event.

    A signal, a timeout, an error and a callable's value are recorded only
    when there is one (the projection reads them as NULL and 0).
    """
    data: dict[str, Any] = {
        "status": AttemptStatus.SUCCEEDED
        if ok
        else AttemptStatus.TIMED_OUT
        if result.timed_out
        else AttemptStatus.LOST
        if result.lost
        else AttemptStatus.FAILED,
        "exit_code": result.exit_code,
        "duration": result.duration,
        "out_length": result.out_length,
        "err_length": result.err_length,
    }
    if result.signal is not None:
        data["signal"] = result.signal
    if result.timed_out:
        data["timed_out"] = True
    if result.error is not None:
        data["error"] = storable_text(result.error)
    if result.result is not None:
        data["result"] = _recordable(result.result)
    return data


def _recordable(value: Any) -> Any:
    """A callable task's return value if it can be stored as JSON, else None (never an error)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return value
