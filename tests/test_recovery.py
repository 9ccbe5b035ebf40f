"""
Recovery inside one run: retry schedules, retry_on, fallback tools, fail_fast,
keep-going and continue_on_failure.

Timing is tested with the scripted `FakeRunner` under an autojumping
`MockClock`, so attempt start times are exact virtual times. The fail_fast
and keep-going behaviour is also checked once through the real `uet` program
with real process groups.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from uet_trio import (
    EventKind,
    RetryPolicy,
    RoutingRule,
    RunStatus,
    Store,
    TaskSpec,
    TaskState,
    ToolSpec,
    WorkflowSpec,
)
from uet_trio.testing import FakeRunner, Outcome, Simulation, simulate, simulate_async

from .conftest import run_uet
from .procs import alive as _alive


def task(task_id: str, **fields: object) -> TaskSpec:
    """A command task; the command never runs under `FakeRunner`."""
    return TaskSpec(id=task_id, command=["true"], **fields)  # type: ignore[arg-type]


def starts(runner: FakeRunner, task_id: str) -> list[float]:
    """Virtual start time of every attempt of `task_id`, in attempt order."""
    return [start for tid, _, start in runner.calls if tid == task_id]


def kinds(sim: Simulation, kind: EventKind) -> list[tuple[str | None, int | None]]:
    """(task id, attempt) of every event of `kind`."""
    return [(e.task_id, e.attempt) for e in sim.events if e.kind is kind]


FAIL = Outcome(0.5, exit_code=1)
OK = Outcome(0.5)


class TestRetrySchedule:
    def test_backoff_without_jitter_starts_attempts_at_exact_times(self) -> None:
        """Delays 1, 2, 4 after half-second failures put attempts at 0, 1.5, 4, 8.5."""
        policy = RetryPolicy(retries=3, initial=1.0, factor=2.0, jitter=0.0)
        spec = WorkflowSpec(name="r", tasks=[task("flaky", retry=policy)])
        runner = FakeRunner({"flaky": [FAIL, FAIL, FAIL, OK]})
        sim = simulate(spec, runner, max_workers=1)
        assert starts(runner, "flaky") == pytest.approx([0.0, 1.5, 4.0, 8.5], abs=1e-9)
        assert sim.states["flaky"] is TaskState.SUCCEEDED
        assert sim.status is RunStatus.SUCCEEDED
        waits = [e.data["delay"] for e in sim.events if e.kind is EventKind.TASK_RETRY_WAIT]
        assert waits == pytest.approx([1.0, 2.0, 4.0], abs=1e-9)
        # The task's end names the attempt that ended it; nothing else to say.
        succeeded = [e for e in sim.events if e.kind is EventKind.TASK_SUCCEEDED]
        assert [(e.attempt, dict(e.data)) for e in succeeded] == [(4, {})]

    def test_jittered_schedule_is_exact_for_a_fixed_seed(self) -> None:
        """With jitter 0.1 each delay is base * (1 + 0.1 * (2u - 1)), u drawn from Random(seed)."""
        policy = RetryPolicy(retries=3, initial=1.0, factor=2.0, max=60.0, jitter=0.1)
        spec = WorkflowSpec(name="r", tasks=[task("flaky", retry=policy)])
        seed = 1234
        draws = random.Random(seed)
        expected = [0.0]
        for base in (1.0, 2.0, 4.0):
            delay = base * (1 + 0.1 * (2 * draws.random() - 1))
            expected.append(expected[-1] + 0.5 + delay)
        runner = FakeRunner({"flaky": [FAIL, FAIL, FAIL, OK]})
        simulate(spec, runner, max_workers=1, seed=seed)
        assert starts(runner, "flaky") == pytest.approx(expected, abs=1e-9)
        unjittered = [0.0, 1.5, 4.0, 8.5]
        assert starts(runner, "flaky") != pytest.approx(unjittered, abs=1e-6)

    def test_same_seed_same_events_other_seed_other_delays(self) -> None:
        """A run is reproducible from its seed; the seed really feeds the jitter."""
        policy = RetryPolicy(retries=2, initial=2.0, jitter=0.5)
        spec = WorkflowSpec(name="r", tasks=[task("a", retry=policy), task("b", retry=policy)])
        script = {"a": [FAIL, FAIL, OK], "b": [FAIL, OK]}
        first = simulate(spec, FakeRunner(script), max_workers=2, seed=7)
        again = simulate(spec, FakeRunner(script), max_workers=2, seed=7)
        other = simulate(spec, FakeRunner(script), max_workers=2, seed=8)
        assert first.events == again.events
        delays = [e.data["delay"] for e in first.events if e.kind is EventKind.TASK_RETRY_WAIT]
        other_delays = [
            e.data["delay"] for e in other.events if e.kind is EventKind.TASK_RETRY_WAIT
        ]
        assert len(delays) == len(other_delays) == 3
        assert delays != other_delays

    def test_delay_is_capped_at_max(self) -> None:
        """initial 10, factor 10, max 15: the second and third delays are 15, not 100 and 1000."""
        policy = RetryPolicy(retries=3, initial=10.0, factor=10.0, max=15.0, jitter=0.0)
        spec = WorkflowSpec(name="r", tasks=[task("flaky", retry=policy)])
        runner = FakeRunner({"flaky": [FAIL, FAIL, FAIL, OK]})
        simulate(spec, runner, max_workers=1)
        assert starts(runner, "flaky") == pytest.approx([0.0, 10.5, 26.0, 41.5], abs=1e-9)

    def test_retries_run_out_and_the_task_fails(self) -> None:
        """retries = 2 means three attempts in all, then `task_failed`."""
        policy = RetryPolicy(retries=2, initial=1.0, jitter=0.0)
        spec = WorkflowSpec(name="r", tasks=[task("bad", retry=policy)])
        runner = FakeRunner({"bad": FAIL})
        sim = simulate(spec, runner, max_workers=1)
        assert len(starts(runner, "bad")) == 3
        assert sim.states["bad"] is TaskState.FAILED
        failed = [e for e in sim.events if e.kind is EventKind.TASK_FAILED]
        assert [e.attempt for e in failed] == [3]

    def test_a_task_waiting_for_its_retry_holds_no_worker(self) -> None:
        """With one worker, another task runs during the retry delay instead of after it."""
        policy = RetryPolicy(retries=1, initial=10.0, jitter=0.0)
        spec = WorkflowSpec(
            name="r",
            tasks=[task("flaky", retry=policy, priority=1), task("other")],
        )
        runner = FakeRunner({"flaky": [Outcome(1.0, 1), Outcome(1.0)], "other": Outcome(3.0)})
        sim = simulate(spec, runner, max_workers=1)
        assert starts(runner, "other") == pytest.approx([1.0])
        assert starts(runner, "flaky") == pytest.approx([0.0, 11.0])
        assert sim.wall == pytest.approx(12.0)


class TestRetryOn:
    def test_only_listed_exit_codes_are_retried(self) -> None:
        """retry_on = [75]: exit 75 is retried, exit 1 ends the task at once."""
        policy = RetryPolicy(retries=5, initial=1.0, jitter=0.0, retry_on=[75])
        spec = WorkflowSpec(
            name="r", tasks=[task("transient", retry=policy), task("broken", retry=policy)]
        )
        runner = FakeRunner(
            {"transient": [Outcome(0.5, 75), Outcome(0.5, 75), OK], "broken": Outcome(0.5, 1)}
        )
        sim = simulate(spec, runner, max_workers=2)
        assert len(starts(runner, "transient")) == 3
        assert len(starts(runner, "broken")) == 1
        assert sim.states == {"transient": TaskState.SUCCEEDED, "broken": TaskState.FAILED}

    def test_timeout_is_retried_only_when_listed(self) -> None:
        """retry_on = ["timeout"]: a timed-out attempt is retried, an exit code is not."""
        policy = RetryPolicy(retries=2, initial=1.0, jitter=0.0, retry_on=["timeout"])
        spec = WorkflowSpec(
            name="r",
            tasks=[
                task("slow", retry=policy, timeout=2.0),
                task("crash", retry=policy, timeout=2.0),
            ],
        )
        runner = FakeRunner({"slow": [Outcome(5.0), OK], "crash": Outcome(0.5, 3)})
        sim = simulate(spec, runner, max_workers=2)
        assert starts(runner, "slow") == pytest.approx([0.0, 3.0])
        assert len(starts(runner, "crash")) == 1
        finished = [
            e.data["status"]
            for e in sim.events
            if e.kind is EventKind.ATTEMPT_FINISHED and e.task_id == "slow"
        ]
        assert finished == ["timed_out", "succeeded"]
        assert sim.states == {"slow": TaskState.SUCCEEDED, "crash": TaskState.FAILED}

    def test_task_policy_beats_tool_policy_beats_workflow_policy(self) -> None:
        """A task uses its own policy, else its tool's, else the workflow's."""
        spec = WorkflowSpec(
            name="r",
            retry=RetryPolicy(retries=1, jitter=0.0),
            tools=[
                ToolSpec(
                    name="t",
                    command=["true"],
                    kinds=["k"],
                    retry=RetryPolicy(retries=2, jitter=0.0),
                )
            ],
            tasks=[
                TaskSpec(id="own", kind="k", retry=RetryPolicy(retries=4, jitter=0.0)),
                TaskSpec(id="tool", kind="k"),
                task("workflow"),
            ],
        )
        runner = FakeRunner(default=FAIL)
        simulate(spec, runner, max_workers=3)
        assert [len(starts(runner, t)) for t in ("own", "tool", "workflow")] == [5, 3, 2]


def fallback_spec(tmp_path: Path) -> WorkflowSpec:
    """Kind ``build`` served by ``primary`` (one retry) then ``backup``."""
    return WorkflowSpec(
        name="fallback",
        base_dir=tmp_path,
        tools=[
            ToolSpec(
                name="primary",
                command=["true"],
                kinds=["build"],
                retry=RetryPolicy(retries=1, initial=1.0, jitter=0.0),
            ),
            ToolSpec(name="backup", command=["true"], kinds=["build"]),
        ],
        routing=[RoutingRule(kind="build", tools=["primary", "backup"])],
        tasks=[TaskSpec(id="compile", kind="build"), TaskSpec(id="link", kind="build")],
    )


class TestFallback:
    async def test_exhausted_tool_falls_back_to_the_next_in_routing_order(
        self, autojump_clock: trio.testing.MockClock, store: Store, tmp_path: Path
    ) -> None:
        """Two failures on primary (first try and one retry), then backup; attempts record tools."""
        runner = FakeRunner({"compile": [FAIL, FAIL, OK]})
        sim = await simulate_async(fallback_spec(tmp_path), runner, store=store, max_workers=1)
        assert sim.states == {"compile": TaskState.SUCCEEDED, "link": TaskState.SUCCEEDED}
        attempts = store.attempts(sim.run_id, "compile")
        assert [(a.attempt, a.tool, a.status) for a in attempts] == [
            (1, "primary", "failed"),
            (2, "primary", "failed"),
            (3, "backup", "succeeded"),
        ]
        fallbacks = [
            e
            for e in sim.events
            if e.kind is EventKind.ROUTE_CHOSEN and e.data.get("fallback_from") is not None
        ]
        assert len(fallbacks) == 1
        assert fallbacks[0].task_id == "compile"
        assert fallbacks[0].data["tool"] == "backup"
        assert fallbacks[0].data["fallback_from"] == "primary"
        assert "primary failed 2 time(s)" in fallbacks[0].data["reason"]
        link = store.attempts(sim.run_id, "link")
        assert [a.tool for a in link] == ["primary"]
        # A task's row names the tool of its last attempt.
        tasks = {task.task_id: task.tool for task in store.tasks(sim.run_id)}
        assert tasks == {"compile": "backup", "link": "primary"}

    def test_a_failure_retry_on_does_not_list_moves_on_at_once(self, tmp_path: Path) -> None:
        """Exit 1 is not in primary's retry_on: no retry there, the next attempt is on backup."""
        spec = fallback_spec(tmp_path)
        primary = spec.tools["primary"]
        only_75 = RetryPolicy(retries=3, initial=1.0, jitter=0.0, retry_on=[75])
        spec = WorkflowSpec(
            name=spec.name,
            base_dir=tmp_path,
            tools=[
                ToolSpec(name="primary", command=primary.command, kinds=["build"], retry=only_75),
                spec.tools["backup"],
            ],
            routing=spec.routing,
            tasks=spec.tasks,
        )
        runner = FakeRunner({"compile": [FAIL, OK]})
        sim = simulate(spec, runner, max_workers=1)
        assert starts(runner, "compile") == pytest.approx([0.0, 0.5])
        tools = [e.data["tool"] for e in sim.events if e.kind is EventKind.ATTEMPT_STARTED]
        assert tools[:2] == ["primary", "backup"]
        assert sim.states["compile"] is TaskState.SUCCEEDED

    def test_no_tool_left_fails_the_task(self, tmp_path: Path) -> None:
        """After every candidate tool is exhausted, the task fails (2 on primary, 1 on backup)."""
        runner = FakeRunner({"compile": FAIL})
        sim = simulate(fallback_spec(tmp_path), runner, max_workers=1)
        assert len(starts(runner, "compile")) == 3
        assert sim.states["compile"] is TaskState.FAILED
        assert sim.status is RunStatus.FAILED


class TestFailFast:
    def spec(self, **options: object) -> WorkflowSpec:
        return WorkflowSpec(
            name="ff",
            tasks=[
                task("bad", priority=3),
                task("slow", priority=2),
                task("queued", priority=1),
                task("after", depends_on=["bad"]),
            ],
            **options,  # type: ignore[arg-type]
        )

    def test_first_final_failure_cancels_running_and_queued_tasks(self) -> None:
        """bad fails at t=1: slow (running) and queued/after (never started) are cancelled."""
        runner = FakeRunner({"bad": Outcome(1.0, 2), "slow": Outcome(10.0)})
        sim = simulate(self.spec(fail_fast=True), runner, max_workers=2)
        assert sim.status is RunStatus.FAILED
        assert sim.states == {
            "bad": TaskState.FAILED,
            "slow": TaskState.CANCELLED,
            "queued": TaskState.CANCELLED,
            "after": TaskState.CANCELLED,
        }
        assert sorted(tid for tid, _, _ in runner.calls) == ["bad", "slow"]
        assert sim.wall == pytest.approx(1.0)
        finished = [e for e in sim.events if e.kind is EventKind.ATTEMPT_FINISHED]
        assert [(e.task_id, e.data["status"]) for e in finished] == [
            ("bad", "failed"),
            ("slow", "cancelled"),
        ]

    def test_fail_fast_option_overrides_the_workflow(self) -> None:
        """fail_fast=True passed to the run works on a keep-going workflow."""
        runner = FakeRunner({"bad": Outcome(1.0, 2), "slow": Outcome(10.0)})
        sim = simulate(self.spec(), runner, max_workers=2, fail_fast=True)
        assert sim.states["slow"] is TaskState.CANCELLED

    def test_fail_fast_waits_for_retries_to_run_out(self) -> None:
        """A failure that will be retried is not final and cancels nothing."""
        policy = RetryPolicy(retries=1, initial=1.0, jitter=0.0)
        spec = WorkflowSpec(
            name="ff",
            fail_fast=True,
            tasks=[task("flaky", retry=policy, priority=1), task("slow")],
        )
        runner = FakeRunner({"flaky": [Outcome(1.0, 1), OK], "slow": Outcome(5.0)})
        sim = simulate(spec, runner, max_workers=2)
        assert sim.status is RunStatus.SUCCEEDED
        assert starts(runner, "flaky") == pytest.approx([0.0, 2.0])

    def test_results_of_the_same_instant_are_all_recorded(self) -> None:
        """A task that succeeds at the instant another finally fails keeps its success."""
        spec = WorkflowSpec(
            name="ff",
            fail_fast=True,
            tasks=[task("bad", priority=2), task("good", priority=1), task("slow")],
        )
        runner = FakeRunner({"bad": Outcome(1.0, 2), "good": Outcome(1.0), "slow": Outcome(9.0)})
        sim = simulate(spec, runner, max_workers=3)
        assert sim.states == {
            "bad": TaskState.FAILED,
            "good": TaskState.SUCCEEDED,
            "slow": TaskState.CANCELLED,
        }
        assert [e.seq for e in sim.events] == list(range(1, len(sim.events) + 1))


class TestKeepGoing:
    def spec(self, *, continue_on_failure: bool = False) -> WorkflowSpec:
        """a fails; b <- a; c <- b; d <- (a, x); x and y <- x are independent."""
        return WorkflowSpec(
            name="kg",
            tasks=[
                task("a", continue_on_failure=continue_on_failure),
                task("b", depends_on=["a"]),
                task("c", depends_on=["b"]),
                task("d", depends_on=["a", "x"]),
                task("x"),
                task("y", depends_on=["x"]),
            ],
        )

    def test_failure_skips_exactly_the_downstream_set(self) -> None:
        """b, c and d are skipped naming a; x and y run; the run fails."""
        runner = FakeRunner({"a": Outcome(1.0, 1)}, default=Outcome(2.0))
        sim = simulate(self.spec(), runner, max_workers=2)
        assert sim.status is RunStatus.FAILED
        skipped = {
            e.task_id: e.data["upstream"] for e in sim.events if e.kind is EventKind.TASK_SKIPPED
        }
        assert skipped == {"b": "a", "c": "a", "d": "a"}
        assert {t for t, s in sim.states.items() if s is TaskState.SUCCEEDED} == {"x", "y"}
        assert {tid for tid, _, _ in runner.calls} == {"a", "x", "y"}

    def test_continue_on_failure_runs_the_dependents(self) -> None:
        """a fails but its dependents run; the run still reports the failure."""
        runner = FakeRunner({"a": Outcome(1.0, 1)}, default=Outcome(2.0))
        sim = simulate(self.spec(continue_on_failure=True), runner, max_workers=2)
        assert sim.status is RunStatus.FAILED
        assert sim.states["a"] is TaskState.FAILED
        assert {t for t, s in sim.states.items() if s is TaskState.SUCCEEDED} == {
            "b",
            "c",
            "d",
            "x",
            "y",
        }
        assert kinds(sim, EventKind.TASK_SKIPPED) == []


def _wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """The pids still alive after waiting up to `timeout` for them to go (reaping is async)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid in pids if _alive(pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _run_and_check_the_sibling_is_gone(flow: Path, tmp_path: Path, *options: str) -> None:
    """`uet run` the fail-fast flow: it fails, and the sibling and its grandchild are gone."""
    done = run_uet("run", flow, *options, "--db", tmp_path / "db", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    sibling_and_grandchild = [int(pid) for pid in (tmp_path / "pids").read_text().split()]
    assert _wait_gone(sibling_and_grandchild) == []


class TestRealProcesses:
    FLOW = """
        [workflow]
        name = "real"
        max_workers = 3
        kill_grace = 5
        {option}

        [[tasks]]
        id = "bad"
        command = ["sh", "-c", "while [ ! -s pids ]; do sleep 0.05; done; exit 5"]

        [[tasks]]
        id = "sibling"
        command = ["sh", "-c", "sleep 60 & echo $$ $! > pids; wait"]

        [[tasks]]
        id = "after"
        command = ["true"]
        depends_on = ["bad"]

        [[tasks]]
        id = "independent"
        command = ["true"]
        """

    def test_fail_fast_kills_the_running_process_groups(
        self, tmp_path: Path, write_flow: Callable[[str], Path]
    ) -> None:
        """`uet run --fail-fast`: the sibling and its grandchild are killed; the run fails."""
        flow = write_flow(self.FLOW.format(option=""))
        _run_and_check_the_sibling_is_gone(flow, tmp_path, "--fail-fast")
        with Store.open(tmp_path / "db") as store:
            (run,) = store.list_runs()
            assert run.status == "failed"
            states = {t.task_id: t.state for t in store.tasks(run.run_id)}
            assert states["bad"] == "failed"
            assert states["sibling"] == "cancelled"
            assert states["after"] == "cancelled"
            (sibling,) = store.attempts(run.run_id, "sibling")
            assert sibling.status == "cancelled"

    def test_keep_going_from_the_workflow_file_skips_only_downstream(
        self, tmp_path: Path, write_flow: Callable[[str], Path]
    ) -> None:
        """Without fail_fast the sibling finishes normally and only `after` is skipped."""
        flow = write_flow(
            self.FLOW.format(option="").replace(
                "sleep 60 & echo $$ $! > pids; wait", "echo 1 > pids"
            )
        )
        done = run_uet("run", flow, "--db", tmp_path / "db", cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "skipped" in done.stdout
        with Store.open(tmp_path / "db") as store:
            (run,) = store.list_runs()
            states = {t.task_id: t.state for t in store.tasks(run.run_id)}
        assert states == {
            "bad": "failed",
            "sibling": "succeeded",
            "after": "skipped",
            "independent": "succeeded",
        }

    def test_fail_fast_in_the_workflow_file(
        self, tmp_path: Path, write_flow: Callable[[str], Path]
    ) -> None:
        """`fail_fast = true` under [workflow] does what --fail-fast does."""
        flow = write_flow(self.FLOW.format(option="fail_fast = true"))
        _run_and_check_the_sibling_is_gone(flow, tmp_path)
        with Store.open(tmp_path / "db") as store:
            (run,) = store.list_runs()
            assert run.status == "failed"
            assert {t.task_id: t.state for t in store.tasks(run.run_id)}["sibling"] == "cancelled"
