"""
The scheduler on its own: plain calls in, requests and decided events out.

No event loop and no clock: each test feeds results with the time they
arrive at and reads the events it decided, so retry, fallback, skip and fail-fast
orders are checked exactly.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from uet_trio.deciding.attempts import (
    AttemptRequest,
    AttemptResult,
    CheckRequest,
    Started,
    Verdict,
)
from uet_trio.deciding.priority import DECLARED, ready_order
from uet_trio.deciding.routing import Router
from uet_trio.deciding.scheduler import InvalidTransition, Scheduler
from uet_trio.recording.events import EventKind
from uet_trio.recording.records import TaskRecord
from uet_trio.recording.states import RunStatus, TaskState
from uet_trio.workflow.graph import compile_graph
from uet_trio.workflow.spec import RetryPolicy, RoutingRule, TaskSpec, ToolSpec, WorkflowSpec

Decided = tuple[EventKind, int | None, int | None, Mapping[str, Any]]


class Recording(Scheduler):
    """A scheduler whose decided events collect in `outbox` (`begin` starts it so)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outbox: list[Decided] = []

    def begin(self, lost: Sequence[tuple[str, int, bool]] = ()) -> None:
        self.start(lambda *event: self.outbox.append(event), lost)


def scheduler(
    spec: WorkflowSpec, *, workers: int = 4, fail_fast: bool = False, seed: int = 0
) -> Recording:
    graph = compile_graph(spec)
    rng = random.Random(seed)
    return Recording(
        spec,
        graph,
        run_id="r",
        order=ready_order(graph, [t.priority for t in spec.tasks], {}, DECLARED),
        router=Router(spec, rng=rng),
        rng=rng,
        environ={"PATH": "/bin"},
        workers=workers,
        fail_fast=fail_fast,
        kill_grace=1.0,
    )


def take(s: Recording) -> list[tuple[str, str | None, int | None]]:
    """The outbox as (kind, task id, attempt), emptied."""
    ids = s.graph.ids
    events = [(kind.value, ids[i] if i is not None else None, a) for kind, i, a, _ in s.outbox]
    s.outbox.clear()
    return events


def result(request: AttemptRequest, at: float, exit_code: int = 0, **extra: Any) -> AttemptResult:
    return AttemptResult(
        index=request.index,
        attempt=request.attempt,
        started=at - 1,
        ended=at,
        exit_code=exit_code,
        **extra,
    )


def started(s: Recording) -> list[AttemptRequest]:
    """Start the run and dispatch what is ready at once; the outbox is emptied."""
    s.begin()
    s.ready_roots()
    requests = s.dispatch(len(s.graph))
    take(s)
    return requests


def chain(*ids: str, **task: Any) -> list[TaskSpec]:
    return [
        TaskSpec(id=t, command=["true"], depends_on=[ids[n - 1]] if n else [], **task)
        for n, t in enumerate(ids)
    ]


class TestDispatch:
    def test_start_ready_dispatch_and_success(self) -> None:
        s = scheduler(WorkflowSpec(name="w", tasks=chain("a", "b")))
        s.begin()
        assert take(s) == [("run_started", None, None)]
        s.ready_roots()
        assert take(s) == [("task_ready", "a", None)]
        (request,) = s.dispatch(4)
        assert (request.task_id, request.attempt, request.argv) == ("a", 1, ("true",))
        assert take(s) == [("attempt_started", "a", 1)]
        assert s.dispatch(4) == []
        s.on_results([result(request, 1.0)], now=1.0)
        assert take(s) == [
            ("attempt_finished", "a", 1),
            ("task_succeeded", "a", 1),
            ("task_ready", "b", None),
        ]
        (request,) = s.dispatch(4)
        s.on_results([result(request, 2.0)], now=2.0)
        assert s.unfinished == 0
        take(s)
        assert s.finish() is RunStatus.SUCCEEDED
        assert take(s) == [("run_finished", None, None)]

    def test_never_more_than_the_idle_workers(self) -> None:
        spec = WorkflowSpec(
            name="w", tasks=[TaskSpec(id=f"t{n}", command=["true"]) for n in range(5)]
        )
        s = scheduler(spec)
        s.begin()
        s.ready_roots()
        assert [r.task_id for r in s.dispatch(2)] == ["t0", "t1"]
        assert [r.task_id for r in s.dispatch(0)] == []
        assert [r.task_id for r in s.dispatch(9)] == ["t2", "t3", "t4"]

    def test_results_of_one_round_are_taken_by_end_time_then_declaration(self) -> None:
        spec = WorkflowSpec(name="w", tasks=[TaskSpec(id=t, command=["true"]) for t in "abc"])
        s = scheduler(spec)
        a, b, c = started(s)
        s.on_results([result(c, 2.0), result(b, 1.0), result(a, 2.0)], now=2.0)
        finished = [e for e in take(s) if e[0] == "task_succeeded"]
        assert [task for _, task, _ in finished] == ["b", "a", "c"]

    def test_request_carries_effective_settings(self) -> None:
        spec = WorkflowSpec(
            name="w",
            timeout=30,
            tools=[ToolSpec(name="tl", command=["echo", "{x}"], kinds=["k"], env={"T": "1"})],
            tasks=[TaskSpec(id="a", kind="k", params={"x": "s"}, env={"A": "2"}, timeout=5)],
        )
        s = scheduler(spec)
        (request,) = started(s)
        assert request.argv == ("echo", "s")
        assert request.timeout == 5
        assert request.env is not None
        assert request.env["PATH"] == "/bin"
        assert (request.env["T"], request.env["A"]) == ("1", "2")
        assert request.env["UET_IDEMPOTENCY_KEY"] == "r/a/1"

    def test_start_notice_is_recorded_with_its_location(self) -> None:
        s = scheduler(WorkflowSpec(name="w", tasks=chain("a")))
        (request,) = started(s)
        s.on_started(Started(index=request.index, attempt=1, location={"host": "h", "pid": 7}))
        ((kind, task, attempt, data),) = s.outbox
        assert (kind, task, attempt) == (EventKind.ATTEMPT_SPAWNED, 0, 1)
        assert data == {"host": "h", "pid": 7}

    def test_an_event_that_would_reopen_a_finished_task_is_an_error(self) -> None:
        """States follow the decided events; a second result for a task is caught at once."""
        s = scheduler(WorkflowSpec(name="w", tasks=chain("a")))
        (request,) = started(s)
        s.on_results([result(request, 1.0)], now=1.0)
        assert s.states == [TaskState.SUCCEEDED]
        with pytest.raises(InvalidTransition, match="task 'a', which has already succeeded"):
            s.on_results([result(request, 2.0, exit_code=1)], now=2.0)


class TestFailures:
    def test_retry_waits_on_a_timer_then_runs_again(self) -> None:
        policy = RetryPolicy(retries=1, initial=10, jitter=0)
        s = scheduler(WorkflowSpec(name="w", tasks=chain("a", retry=policy)))
        (request,) = started(s)
        s.on_results([result(request, 1.0, exit_code=3)], now=1.0)
        assert take(s) == [("attempt_finished", "a", 1), ("task_retry_wait", "a", 1)]
        assert s.states[0] is TaskState.RETRY_WAIT
        assert s.next_due == 11.0
        s.due(10.9)
        assert s.dispatch(4) == []
        s.due(11.0)
        assert take(s) == [("task_ready", "a", None)]
        (again,) = s.dispatch(4)
        assert again.attempt == 2
        s.on_results([result(again, 12.0, exit_code=3)], now=12.0)
        assert take(s)[-1] == ("task_failed", "a", 2)
        assert s.next_due is None

    def test_retry_on_limits_which_failures_retry(self) -> None:
        policy = RetryPolicy(retries=3, retry_on=("timeout",))
        s = scheduler(WorkflowSpec(name="w", tasks=chain("a", retry=policy)))
        (request,) = started(s)
        s.on_results([result(request, 1.0, exit_code=1)], now=1.0)
        assert take(s)[-1] == ("task_failed", "a", 1)

    def test_failure_skips_every_descendant_but_not_independent_tasks(self) -> None:
        tasks = [*chain("a", "b", "c"), TaskSpec(id="x", command=["true"])]
        s = scheduler(WorkflowSpec(name="w", tasks=tasks))
        a, x = started(s)
        s.on_results([result(a, 1.0, exit_code=1)], now=1.0)
        assert take(s) == [
            ("attempt_finished", "a", 1),
            ("task_failed", "a", 1),
            ("task_skipped", "b", None),
            ("task_skipped", "c", None),
        ]
        s.on_results([result(x, 2.0)], now=2.0)
        assert s.unfinished == 0
        assert s.finish() is RunStatus.FAILED

    def test_continue_on_failure_releases_dependents(self) -> None:
        tasks = [
            TaskSpec(id="a", command=["false"], continue_on_failure=True),
            TaskSpec(id="b", command=["true"], depends_on=["a"]),
        ]
        s = scheduler(WorkflowSpec(name="w", tasks=tasks))
        (a,) = started(s)
        s.on_results([result(a, 1.0, exit_code=1)], now=1.0)
        assert take(s)[-1] == ("task_ready", "b", None)

    def test_fail_fast_stops_dispatching_and_cancels_the_rest(self) -> None:
        spec = WorkflowSpec(name="w", tasks=[TaskSpec(id=t, command=["true"]) for t in "abc"])
        s = scheduler(spec, workers=2, fail_fast=True)
        s.begin()
        s.ready_roots()
        a, _ = s.dispatch(2)
        take(s)
        s.on_results([result(a, 1.0, exit_code=1)], now=1.0)
        assert s.stopping
        assert s.dispatch(2) == []
        take(s)
        assert s.finish() is RunStatus.FAILED
        assert take(s) == [
            ("attempt_finished", "b", 1),
            ("task_cancelled", "b", None),
            ("task_cancelled", "c", None),
            ("run_finished", None, None),
        ]

    def test_fallback_to_the_next_tool_after_retries(self) -> None:
        spec = WorkflowSpec(
            name="w",
            tools=[
                ToolSpec(name="one", command=["one"], kinds=["k"], retry=RetryPolicy(retries=1)),
                ToolSpec(name="two", command=["two"], kinds=["k"]),
            ],
            routing=[RoutingRule(kind="k", strategy="first", tools=("one", "two"))],
            tasks=[TaskSpec(id="a", kind="k")],
        )
        s = scheduler(spec)
        s.begin()
        s.ready_roots()
        assert [(k, d.get("tool")) for k, _, _, d in s.outbox][-1] == ("route_chosen", "one")
        take(s)
        (first,) = s.dispatch(1)
        s.on_results([result(first, 1.0, exit_code=1)], now=1.0)
        assert s.next_due is not None
        s.due(s.next_due)
        (second,) = s.dispatch(1)
        assert (second.tool, second.attempt) == ("one", 2)
        take(s)
        s.on_results([result(second, 9.0, exit_code=1)], now=9.0)
        decided = s.outbox[:]
        assert [k.value for k, _, _, _ in decided] == [
            "attempt_finished",
            "route_chosen",
            "task_ready",
        ]
        route = decided[1][3]
        assert (route["tool"], route["fallback_from"]) == ("two", "one")
        assert route["reason"].startswith("fallback after one failed 2 time(s); ")
        (third,) = s.dispatch(1)
        assert (third.tool, third.argv, third.attempt) == ("two", ("two",), 3)

    def test_a_tool_at_its_limit_parks_tasks_until_an_attempt_ends(self) -> None:
        spec = WorkflowSpec(
            name="w",
            tools=[ToolSpec(name="tl", command=["x"], kinds=["k"], max_concurrency=1)],
            tasks=[TaskSpec(id=t, kind="k") for t in "ab"],
        )
        s = scheduler(spec)
        s.begin()
        s.ready_roots()
        (a,) = s.dispatch(4)
        assert s.dispatch(4) == []
        s.on_results([result(a, 1.0)], now=1.0)
        (b,) = s.dispatch(4)
        assert b.task_id == "b"


def record(task_id: str, state: str, attempts: int) -> TaskRecord:
    return TaskRecord(
        run_id="r",
        task_id=task_id,
        idx=0,
        kind=None,
        state=state,
        attempts=attempts,
        tool=None,
        started_at=None,
        finished_at=None,
        exit_code=None,
    )


class TestResume:
    def test_succeeded_tasks_are_kept_and_attempts_number_on(self) -> None:
        s = scheduler(WorkflowSpec(name="w", tasks=chain("a", "b")))
        s.resume(
            [record("a", "succeeded", 1), record("b", "running", 2), record("gone", "failed", 1)]
        )
        s.begin(lost=[("b", 2, True)])
        assert take(s) == [("run_resumed", None, None), ("attempt_lost", "b", 2)]
        s.ready_roots()
        (request,) = s.dispatch(4)
        assert (request.task_id, request.attempt) == ("b", 3)
        assert s.unfinished == 1


class TestAfterAndExitCodes:
    def test_after_runs_once_its_dependency_failed_while_depends_on_is_skipped(self) -> None:
        spec = WorkflowSpec(
            name="w",
            tasks=[
                TaskSpec(id="tests", command=["false"]),
                TaskSpec(id="deploy", command=["true"], depends_on=["tests"]),
                TaskSpec(id="after-deploy", command=["true"], depends_on=["deploy"]),
                TaskSpec(id="summary", command=["true"], after=["tests", "deploy"]),
            ],
        )
        s = scheduler(spec)
        (tests,) = started(s)
        s.on_results([result(tests, 1.0, exit_code=1)], now=1.0)
        assert take(s) == [
            ("attempt_finished", "tests", 1),
            ("task_failed", "tests", 1),
            ("task_skipped", "deploy", None),
            ("task_skipped", "after-deploy", None),
            ("task_ready", "summary", None),
        ]
        (summary,) = s.dispatch(4)
        s.on_results([result(summary, 2.0)], now=2.0)
        assert s.unfinished == 0
        assert s.finish() is RunStatus.FAILED

    def test_after_waits_for_every_dependency_to_finish(self) -> None:
        spec = WorkflowSpec(
            name="w",
            tasks=[
                TaskSpec(id="a", command=["false"]),
                TaskSpec(id="b", command=["true"]),
                TaskSpec(id="summary", command=["true"], after=["a", "b"]),
            ],
        )
        s = scheduler(spec)
        a, b = started(s)
        s.on_results([result(a, 1.0, exit_code=1)], now=1.0)
        assert s.dispatch(4) == []
        s.on_results([result(b, 2.0)], now=2.0)
        assert [r.task_id for r in s.dispatch(4)] == ["summary"]

    def test_ok_exit_codes_decide_success(self) -> None:
        spec = WorkflowSpec(
            name="w",
            tasks=[
                TaskSpec(id="pytest", command=["pytest"], ok_exit_codes=[0, 5]),
                TaskSpec(id="strict", command=["pytest"]),
            ],
        )
        s = scheduler(spec)
        loose, strict = started(s)
        assert loose.ok_exit_codes == (0, 5)
        s.on_results([result(loose, 1.0, exit_code=5), result(strict, 1.0, exit_code=5)], now=1.0)
        assert s.states == [TaskState.SUCCEEDED, TaskState.FAILED]


class TestChecks:
    def spec(self) -> WorkflowSpec:
        return WorkflowSpec(
            name="w",
            tasks=[
                TaskSpec(id="gen", command=["gen"]),
                TaskSpec(id="build", command=["cc"], inputs=["a.c"], outputs=["a.o"]),
                TaskSpec(id="link", command=["ld"], inputs=["a.o"], outputs=["app"]),
                TaskSpec(id="phony", command=["echo"]),
            ],
        )

    def verdict(self, request: CheckRequest, fresh: bool) -> Verdict:
        return Verdict(
            index=request.index,
            fresh=fresh,
            reason="" if fresh else "never run",
            signature=f"sig-{request.task_id}",
            detail={"command": "c"},
        )

    def test_signed_tasks_are_checked_first_and_up_to_date_ones_never_run(self) -> None:
        s = scheduler(self.spec())
        s.begin()
        s.ready_roots()
        take(s)
        gen, build, phony = s.dispatch(4)
        assert isinstance(gen, AttemptRequest)  # nothing with outputs depends on it
        assert isinstance(build, CheckRequest) and build.judged
        assert isinstance(phony, AttemptRequest)
        take(s)
        s.on_checked([self.verdict(build, fresh=True)])
        assert take(s) == [("task_up_to_date", "build", None), ("task_ready", "link", None)]
        (link,) = s.dispatch(4)
        assert isinstance(link, CheckRequest)
        assert link.upstream == (("build", ("a.o",)),)
        s.on_checked([self.verdict(link, fresh=False)])
        (run,) = s.dispatch(4)
        assert isinstance(run, AttemptRequest) and run.outputs == ("app",)
        s.on_results([result(run, 1.0, outputs={"app": "d1"})], now=1.0)
        succeeded = [e for e in s.outbox if e[0] is EventKind.TASK_SUCCEEDED]
        assert succeeded[0][3] == {
            "signature": "sig-link",
            "detail": {"command": "c", "outputs": {"app": "d1"}},
        }

    def test_always_make_checks_but_never_judges(self) -> None:
        graph = compile_graph(self.spec())
        rng = random.Random(0)
        s = Recording(
            self.spec(),
            graph,
            run_id="r",
            order=list(range(len(graph))),
            router=Router(self.spec(), rng=rng),
            rng=rng,
            environ={},
            workers=4,
            fail_fast=False,
            kill_grace=1.0,
            always_make=True,
        )
        s.begin()
        s.ready_roots()
        checks = [r for r in s.dispatch(4) if isinstance(r, CheckRequest)]
        assert [(c.task_id, c.judged) for c in checks] == [("build", False)]

    def test_settled_tasks_finish_before_the_rest_with_one_event_each(self) -> None:
        """
        `settle` asks only about tasks whose dependencies it found up to date;
        `ready_roots` finishes them with ``task_up_to_date`` alone, each
        followed by the ``task_ready`` of what it releases.
        """
        spec = WorkflowSpec(
            name="w",
            tasks=[
                TaskSpec(id="a", command=["cc"], inputs=["a.c"], outputs=["a.o"]),
                TaskSpec(id="b", command=["cc"], inputs=["b.c"], outputs=["b.o"]),
                TaskSpec(id="use-a", command=["ld"], inputs=["a.o"], outputs=["a"]),
                TaskSpec(id="use-b", command=["ld"], inputs=["b.o"], outputs=["b"]),
                TaskSpec(id="after-a", command=["ls"], depends_on=["a"]),
                TaskSpec(id="phony", command=["echo"]),
            ],
        )
        asked: list[str] = []

        def check(request: CheckRequest) -> Verdict | None:
            asked.append(request.task_id)
            if request.task_id == "b":
                return None  # a file that must be read: left to the run
            return self.verdict(request, fresh=request.task_id != "use-a")

        s = scheduler(spec)
        s.begin()
        take(s)
        assert s.settle(check, 2) is True
        assert asked == ["a", "b"]
        assert s.settle(check, 5) is False
        assert asked == ["a", "b", "use-a"]
        assert s.outbox == []
        s.ready_roots()
        assert s.finish_settled(8) is False
        assert take(s) == [
            ("task_ready", "b", None),
            ("task_ready", "phony", None),
            ("task_up_to_date", "a", None),
            ("task_ready", "use-a", None),
            ("task_ready", "after-a", None),
        ]
        assert s.states[0] is TaskState.UP_TO_DATE
        assert s.unfinished == 5
        assert [r.task_id for r in s.dispatch(8)] == ["b", "use-a", "after-a", "phony"]

    def test_nothing_is_settled_on_resume(self) -> None:
        def check(request: CheckRequest) -> Verdict:
            return self.verdict(request, fresh=True)

        s = scheduler(self.spec())
        s.resume([])
        s.begin()
        assert s.settle(check, 8) is False
        s.ready_roots()
        assert s.finish_settled(8) is False
        assert EventKind.TASK_UP_TO_DATE not in [e[0] for e in s.outbox]

    def test_up_to_date_is_kept_on_resume(self) -> None:
        s = scheduler(self.spec())
        s.resume([record("build", "up_to_date", 0)])
        s.begin()
        s.ready_roots()
        assert {r.task_id for r in s.dispatch(4)} == {"gen", "phony", "link"}
        assert s.states[1] is TaskState.UP_TO_DATE


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_inputs_give_the_same_events(seed: int) -> None:
    """Two schedulers fed the same calls decide the same events, jitter included."""
    policy = RetryPolicy(retries=2, initial=1, jitter=0.5)

    def drive() -> list[tuple[Any, ...]]:
        s = scheduler(WorkflowSpec(name="w", tasks=chain("a", "b", retry=policy)), seed=seed)
        now = 0.0
        for request in started(s):
            s.on_results([result(request, now + 1, exit_code=1)], now=now + 1)
        while s.next_due is not None:
            now = s.next_due
            s.due(now)
            for request in s.dispatch(4):
                s.on_results([result(request, now + 1, exit_code=1)], now=now + 1)
        return [(k, i, a, dict(d)) for k, i, a, d in s.outbox]

    assert drive() == drive()
