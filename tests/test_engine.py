"""The engine end to end: scheduling order, skipping, events, timeouts, environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from uet_trio import (
    EventKind,
    RunStatus,
    Store,
    TaskSpec,
    TaskState,
    ToolSpec,
    WorkflowSpec,
    open_run,
    run_workflow,
)
from uet_trio.testing import FakeRunner, Outcome, simulate, simulate_async
from uet_trio.workflow.graph import compile_graph


def chain_spec(tmp_path: Path) -> WorkflowSpec:
    """a -> {b (fails), c}; b -> d -> e; c -> f; independent g."""
    return WorkflowSpec(
        name="chain",
        base_dir=tmp_path,
        tasks=[
            TaskSpec(id="a", command=["true"]),
            TaskSpec(id="b", command=["sh", "-c", "exit 4"], depends_on=["a"]),
            TaskSpec(id="c", command=["true"], depends_on=["a"]),
            TaskSpec(id="d", command=["true"], depends_on=["b"]),
            TaskSpec(id="e", command=["true"], depends_on=["d", "c"]),
            TaskSpec(id="f", command=["true"], depends_on=["c"]),
            TaskSpec(id="g", command=["true"]),
        ],
    )


class TestRealRun:
    async def test_failure_skips_exactly_the_downstream_set(
        self, store: Store, tmp_path: Path
    ) -> None:
        """A failed task skips everything downstream of it; other branches run on."""
        result = await run_workflow(chain_spec(tmp_path), store=store, max_workers=3)
        assert result.status is RunStatus.FAILED
        assert result.states == {
            "a": TaskState.SUCCEEDED,
            "b": TaskState.FAILED,
            "c": TaskState.SUCCEEDED,
            "d": TaskState.SKIPPED,
            "e": TaskState.SKIPPED,
            "f": TaskState.SUCCEEDED,
            "g": TaskState.SUCCEEDED,
        }
        rows = {t.task_id: t for t in store.tasks(result.run_id)}
        assert {k: v.state for k, v in rows.items()} == {
            k: v.value for k, v in result.states.items()
        }
        assert rows["b"].exit_code == 4
        assert store.get_run(result.run_id).status == "failed"

    async def test_events_are_complete_and_in_sequence(self, store: Store, tmp_path: Path) -> None:
        """Every state change is stored, numbered 1..N without gaps, in a sensible order."""
        result = await run_workflow(chain_spec(tmp_path), store=store, max_workers=2)
        events = store.events(result.run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[0].kind == "run_started"
        assert events[-1].kind == "run_finished"
        assert events[-1].data["status"] == "failed"
        assert store.get_run(result.run_id).last_seq == len(events)
        for task in ("a", "b", "c", "f", "g"):
            kinds = [e.kind for e in events if e.task_id == task]
            assert kinds[:2] == ["task_ready", "attempt_started"]
            assert "attempt_spawned" in kinds
            assert kinds[-2:] == [
                "attempt_finished",
                "task_failed" if task == "b" else "task_succeeded",
            ]
        times = [e.t for e in events]
        assert times == sorted(times)

    async def test_attempt_rows_record_the_process(self, store: Store, tmp_path: Path) -> None:
        """Each attempt row has argv, pid, timings and its log slice."""
        spec = WorkflowSpec(
            name="one",
            base_dir=tmp_path,
            tasks=[TaskSpec(id="hello", command=["sh", "-c", "echo hi; echo oops >&2; exit 3"])],
        )
        result = await run_workflow(spec, store=store, max_workers=1)
        (row,) = store.attempts(result.run_id)
        assert row.argv == ["sh", "-c", "echo hi; echo oops >&2; exit 3"]
        assert row.status == "failed" and row.exit_code == 3
        assert row.pid and row.proc_start
        assert row.finished_at is not None and row.finished_at >= row.started_at
        assert row.out_path is not None and row.err_path is not None
        out = Path(row.out_path).read_bytes()
        assert out[row.out_offset : row.out_offset + row.out_length] == b"hi\n"
        err = Path(row.err_path).read_bytes()
        assert err[row.err_offset : row.err_offset + row.err_length] == b"oops\n"

    async def test_environment_and_working_directory(self, store: Store, tmp_path: Path) -> None:
        """Commands see UET_* variables and env settings, and run in the workflow's directory."""
        (tmp_path / "sub").mkdir()
        dump = (
            "import json, os; print(json.dumps([os.getcwd(), {k: v for k, v in "
            "os.environ.items() if k.startswith(('UET_', 'MY_'))}]))"
        )
        spec = WorkflowSpec(
            name="env",
            base_dir=tmp_path,
            tools={
                "py": ToolSpec(
                    name="py",
                    command=["python3", "-c", "{code}"],
                    kinds=["py"],
                    env={"MY_TOOL": "t"},
                )
            },
            tasks=[
                TaskSpec(id="here", kind="py", params={"code": dump}, env={"MY_TASK": "x"}),
                TaskSpec(id="there", kind="py", params={"code": dump}, cwd="sub"),
            ],
        )
        result = await run_workflow(spec, store=store, max_workers=2)
        assert result.status is RunStatus.SUCCEEDED
        seen = {}
        for row in store.attempts(result.run_id):
            assert row.out_path is not None and row.out_offset is not None
            data = Path(row.out_path).read_bytes()[row.out_offset : row.out_offset + row.out_length]
            seen[row.task_id] = json.loads(data)
        cwd, env = seen["here"]
        assert cwd == str(tmp_path)
        assert env == {
            "UET_RUN_ID": result.run_id,
            "UET_TASK_ID": "here",
            "UET_ATTEMPT": "1",
            "UET_IDEMPOTENCY_KEY": f"{result.run_id}/here/1",
            "MY_TOOL": "t",
            "MY_TASK": "x",
        }
        assert seen["there"][0] == str(tmp_path / "sub")

    async def test_route_decision_is_an_event(self, store: Store, tmp_path: Path) -> None:
        """A task of a kind served by several tools gets the first, recorded as an event."""
        spec = WorkflowSpec(
            name="route",
            base_dir=tmp_path,
            tools=[
                ToolSpec(name="one", command=["echo", "one", "{x}"], kinds=["k"]),
                ToolSpec(name="two", command=["echo", "two", "{x}"], kinds=["k"]),
            ],
            tasks=[TaskSpec(id="t", kind="k", params={"x": "; rm -rf /"})],
        )
        result = await run_workflow(spec, store=store, max_workers=1)
        (route,) = store.events(result.run_id, kinds=["route_chosen"])
        assert route.data["tool"] == "one"
        assert route.data["candidates"] == ["one", "two"]
        (row,) = store.attempts(result.run_id)
        assert row.tool == "one"
        assert row.argv == ["echo", "one", "; rm -rf /"]

    async def test_subscribers_get_the_same_events(self, store: Store, tmp_path: Path) -> None:
        """run.events() delivers the stored events, in order, as objects."""
        from uet_trio import open_run

        seen = []
        async with open_run(chain_spec(tmp_path), store=store, max_workers=2) as run:
            async for event in run.events():
                seen.append(event)
        stored = store.events(run.run_id)
        assert [(e.seq, e.kind.value, e.task_id) for e in seen] == [
            (e.seq, e.kind, e.task_id) for e in stored
        ]


class TestPrecompiledGraph:
    async def test_a_graph_compiled_by_the_caller_is_used(
        self, store: Store, tmp_path: Path
    ) -> None:
        """The CLI validates by compiling; the run takes that graph instead of compiling again."""
        spec = chain_spec(tmp_path)
        graph = compile_graph(spec)
        async with open_run(spec, store=store, graph=graph, max_workers=3) as run:
            assert run.graph is graph
        result = await run.wait()
        assert result.states["d"] is TaskState.SKIPPED  # b failed: its downstream is skipped
        assert result.states["g"] is TaskState.SUCCEEDED

    async def test_an_unknown_option_is_refused_before_anything_is_recorded(
        self, store: Store, tmp_path: Path
    ) -> None:
        with pytest.raises(TypeError, match=r"unknown run option\(s\): max_worker"):
            await run_workflow(chain_spec(tmp_path), store=store, max_worker=3)  # type: ignore[call-arg]
        assert store.list_runs() == []

    async def test_a_graph_of_another_workflow_is_refused(
        self, store: Store, tmp_path: Path
    ) -> None:
        other = WorkflowSpec(name="other", tasks=[TaskSpec(id="x", command=["true"])])
        with pytest.raises(ValueError, match="not compiled from this workflow"):
            await run_workflow(chain_spec(tmp_path), store=store, graph=compile_graph(other))
        assert store.list_runs() == []


class TestBackpressure:
    @pytest.mark.parametrize("subscribe", [False, True])
    async def test_a_full_persister_and_a_slow_subscriber_lose_and_reorder_nothing(
        self, store: Store, monkeypatch: pytest.MonkeyPatch, subscribe: bool
    ) -> None:
        """
        With a persister channel of 8 events (and a subscriber buffer of 1),
        events wait in the scheduler's backlog; the log and the subscriber
        still see 1..N in order, and every task's row is final.
        """
        import uet_trio.running.engine as engine
        from uet_trio import open_run
        from uet_trio.running.persister import open_persister

        def tight(store: Store, **options: Any) -> Any:
            return open_persister(store, **{**options, "capacity": 8, "max_batch": 4})

        monkeypatch.setattr(engine, "open_persister", tight)
        tasks = 300
        spec = WorkflowSpec(
            name="tight",
            tasks=[
                TaskSpec(id=f"t{i}", call=_noop, depends_on=[f"t{i - 1}"] if i % 3 else [])
                for i in range(tasks)
            ],
            max_workers=4,
        )
        seen: list[int] = []
        async with open_run(spec, store=store) as run:
            if subscribe:
                async for event in run.events(buffer=1):
                    seen.append(event.seq)
                    await trio.lowlevel.checkpoint()
        assert run.result is not None and run.result.status is RunStatus.SUCCEEDED
        stored = [e.seq for e in store.events(run.run_id)]
        assert stored == list(range(1, len(stored) + 1))
        assert len(stored) == 2 + 4 * tasks
        assert store.get_run(run.run_id).last_seq == len(stored)
        assert {t.state for t in store.tasks(run.run_id)} == {"succeeded"}
        if subscribe:
            assert seen == stored


async def _noop() -> None:
    await trio.lowlevel.checkpoint()


class TestScheduling:
    def test_ready_tasks_leave_by_priority_then_declaration(self) -> None:
        """With one worker, ready tasks run in (priority, declaration) order."""
        spec = WorkflowSpec(
            name="order",
            tasks=[
                TaskSpec(id="low", command=["true"], priority=-1),
                TaskSpec(id="first", command=["true"]),
                TaskSpec(id="second", command=["true"]),
                TaskSpec(id="urgent", command=["true"], priority=5),
            ],
        )
        runner = FakeRunner(default=Outcome(1.0))
        simulate(spec, runner, max_workers=1)
        assert [task for task, _, _ in runner.calls] == ["urgent", "first", "second", "low"]
        assert [start for _, _, start in runner.calls] == [0.0, 1.0, 2.0, 3.0]

    def test_workers_bound_concurrency(self) -> None:
        """Never more attempts at once than workers; the wall time shows it."""
        spec = WorkflowSpec(
            name="w", tasks=[TaskSpec(id=f"t{i}", command=["x"]) for i in range(10)]
        )
        simulation = simulate(spec, FakeRunner(default=Outcome(2.0)), max_workers=3)
        assert simulation.wall == pytest.approx(8.0)  # ceil(10 / 3) rounds of 2 s
        assert simulation.status is RunStatus.SUCCEEDED

    def test_timeout_ends_the_attempt_at_exactly_its_deadline(self) -> None:
        """A task over its timeout is timed out at the deadline (virtual clock)."""
        spec = WorkflowSpec(
            name="t",
            timeout=5,
            tasks=[
                TaskSpec(id="slow", command=["x"]),
                TaskSpec(id="fast", command=["x"], timeout=1),
            ],
        )
        simulation = simulate(spec, FakeRunner(default=Outcome(3.0)), max_workers=2)
        finished = {e.task_id: e for e in simulation.events if e.kind is EventKind.ATTEMPT_FINISHED}
        assert finished["fast"].data["timed_out"] and finished["fast"].time == 1.0
        assert finished["fast"].data["status"] == "timed_out"
        assert "timed_out" not in finished["slow"].data and finished["slow"].time == 3.0
        assert simulation.states["fast"] is TaskState.FAILED

    def test_settle_only_while_a_busy_worker_has_not_reported(self) -> None:
        """Once every busy worker has reported, the scheduler does not wait to settle."""

        class CountingRunner(FakeRunner):
            settles = 0

            async def settle(self) -> None:
                self.settles += 1
                await super().settle()

        chain = WorkflowSpec(
            name="chain",
            tasks=[
                TaskSpec(id=f"t{i}", command=["x"], depends_on=[f"t{i - 1}"] if i else [])
                for i in range(4)
            ],
        )
        one_at_a_time = CountingRunner(default=Outcome(1.0))
        simulate(chain, one_at_a_time, max_workers=2)
        assert one_at_a_time.settles == 0  # one attempt at a time, always reported
        staggered = WorkflowSpec(
            name="staggered",
            tasks=[TaskSpec(id="short", command=["x"]), TaskSpec(id="long", command=["x"])],
        )
        overlapping = CountingRunner({"short": Outcome(1.0), "long": Outcome(2.0)})
        simulation = simulate(staggered, overlapping, max_workers=2)
        assert overlapping.settles == 1  # "long" was still out when "short" reported
        assert simulation.states == {"short": TaskState.SUCCEEDED, "long": TaskState.SUCCEEDED}

    async def test_simulation_inside_trio(self, autojump_clock: trio.testing.MockClock) -> None:
        """The async simulator runs in an existing Trio run under its clock."""
        spec = WorkflowSpec(name="w", tasks=[TaskSpec(id="a", command=["x"])])
        simulation = await simulate_async(spec, FakeRunner(default=Outcome(7.5)))
        assert simulation.wall == 7.5
