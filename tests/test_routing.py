"""Routing strategies, per-tool limits, router persistence and critical-path ordering."""

from __future__ import annotations

import gc
import itertools
import json
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import trio
import trio.testing
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from uet_trio_cli import main

from uet_trio import EventKind, RunStatus, Store, run_workflow
from uet_trio.deciding.attempts import AttemptRequest, AttemptResult
from uet_trio.deciding.priority import ready_order, remaining_path, task_weights
from uet_trio.deciding.routing import BEST_RATE, EXPLORING, FASTEST, LEAST_LOADED, Router
from uet_trio.running.executors.base import Report, StatelessRunner
from uet_trio.testing import FakeRunner, Outcome, Simulation, simulate
from uet_trio.workflow.graph import compile_graph
from uet_trio.workflow.spec import RoutingRule, TaskSpec, ToolSpec, WorkflowSpec

from .conftest import run_uet


def routed_spec(
    strategy: str,
    tools: Sequence[str] = ("a", "b", "c"),
    *,
    tasks: int = 6,
    chain: bool = False,
    limits: dict[str, int] | None = None,
    name: str = "routed",
) -> WorkflowSpec:
    """`tasks` tasks of kind ``k`` (a chain, or independent) routed over `tools`."""
    limits = limits or {}
    return WorkflowSpec(
        name=name,
        tools=[
            ToolSpec(name=t, command=["true"], kinds=["k"], max_concurrency=limits.get(t))
            for t in tools
        ],
        routing=[RoutingRule(kind="k", strategy=strategy, tools=tools)],
        tasks=[
            TaskSpec(id=f"t{n}", kind="k", depends_on=[f"t{n - 1}"] if chain and n else [])
            for n in range(tasks)
        ],
    )


class ByTool(StatelessRunner):
    """A scripted runner whose outcome depends on the tool an attempt was routed to."""

    def __init__(self, outcomes: dict[str, Outcome | Callable[[str, int], Outcome]]) -> None:
        self.runners = {
            tool: FakeRunner(default=o) if isinstance(o, Outcome) else FakeRunner(o)
            for tool, o in outcomes.items()
        }

    async def settle(self) -> None:
        await trio.testing.wait_all_tasks_blocked()

    async def run(self, request: AttemptRequest, report: Report) -> AttemptResult:
        assert request.tool is not None
        return await self.runners[request.tool].run(request, report)

    def starts(self, tool: str) -> list[tuple[str, float]]:
        """(task id, start time) of every attempt on `tool`, by time then id."""
        return sorted((task, start) for task, _, start in self.runners[tool].calls)


def routes(sim: Simulation) -> list[tuple[str | None, str]]:
    """(task id, tool) of every route_chosen event, in order."""
    return [(e.task_id, e.data["tool"]) for e in sim.events if e.kind is EventKind.ROUTE_CHOSEN]


def route_events(sim: Simulation) -> list[dict[str, object]]:
    return [dict(e.data) for e in sim.events if e.kind is EventKind.ROUTE_CHOSEN]


def first_dispatch(sim: Simulation) -> str | None:
    return next(e.task_id for e in sim.events if e.kind is EventKind.ATTEMPT_STARTED)


# ---------------------------------------------------------------- strategies


class TestStrategies:
    def test_first_takes_the_first_candidate_and_falls_back_in_order(self) -> None:
        """``first`` picks the first tool; a fallback takes the next one not excluded."""
        spec = routed_spec("first")
        router = Router(spec)
        task = spec.tasks[0]
        assert router.choose(task).tool == "a"  # type: ignore[union-attr]
        assert router.choose(task, exclude={"a"}).tool == "b"  # type: ignore[union-attr]
        assert router.choose(task, exclude={"a", "b", "c"}) is None

    def test_round_robin_rotates_and_a_fallback_keeps_the_rotation(self) -> None:
        """Turns go a, b, c, a; excluding a tool skips it without resetting the turn."""
        spec = routed_spec("round_robin")
        router = Router(spec)
        task = spec.tasks[0]
        picks = [router.choose(task).tool for _ in range(4)]  # type: ignore[union-attr]
        assert picks == ["a", "b", "c", "a"]
        assert router.choose(task, exclude={"b"}).tool == "c"  # type: ignore[union-attr]
        assert router.choose(task).tool == "a"  # type: ignore[union-attr]

    def test_round_robin_in_a_run(self) -> None:
        """Six tasks routed round-robin over three tools: each event names turn and candidates."""
        sim = simulate(routed_spec("round_robin"), FakeRunner(default=Outcome(1.0)), max_workers=2)
        assert [tool for _, tool in routes(sim)] == ["a", "b", "c", "a", "b", "c"]
        first = route_events(sim)[0]
        assert first["strategy"] == "round_robin"
        assert first["candidates"] == ["a", "b", "c"]
        assert first["reason"] == "turn 1 of 3"

    def test_least_loaded_spreads_a_burst_and_follows_running_work(self) -> None:
        """Tasks ready together spread over the tools; later ones go where work finished."""
        spec = routed_spec("least_loaded", ("a", "b"), tasks=4)
        runner = ByTool({"a": Outcome(1.0), "b": Outcome(5.0)})
        sim = simulate(spec, runner, max_workers=4)
        assert [tool for _, tool in routes(sim)] == ["a", "b", "a", "b"]

        later = WorkflowSpec(
            name="later",
            tools=spec.tools,
            routing=spec.routing,
            tasks=[
                TaskSpec(id="x", kind="k"),
                TaskSpec(id="y", kind="k"),
                TaskSpec(id="z", kind="k", depends_on=["x"]),
            ],
        )
        sim = simulate(later, ByTool({"a": Outcome(1.0), "b": Outcome(5.0)}), max_workers=4)
        # z becomes ready at t=1, when a is idle and b still runs y.
        assert routes(sim) == [("x", "a"), ("y", "b"), ("z", "a")]
        assert route_events(sim)[2]["reason"] == LEAST_LOADED

    def test_fastest_explores_then_prefers_the_fastest_reliable_tool(self) -> None:
        """Untried tools first; a failing tool is dropped; then the lowest average wins."""
        spec = routed_spec("fastest", ("slow", "flaky", "quick"), tasks=6, chain=True)
        runner = ByTool(
            {"slow": Outcome(5.0), "flaky": Outcome(0.5, exit_code=3), "quick": Outcome(1.0)}
        )
        sim = simulate(spec, runner, max_workers=1)
        assert sim.status is RunStatus.SUCCEEDED
        assert routes(sim) == [
            ("t0", "slow"),
            ("t1", "flaky"),
            ("t1", "quick"),  # fallback after flaky failed
            ("t2", "quick"),
            ("t3", "quick"),
            ("t4", "quick"),
            ("t5", "quick"),
        ]
        reasons = [str(r["reason"]) for r in route_events(sim)]
        assert reasons[0] == EXPLORING
        assert reasons[2] == f"fallback after flaky failed 1 time(s); {EXPLORING}"
        assert reasons[3] == FASTEST

    def test_fastest_without_a_reliable_tool_takes_the_best_success_rate(self) -> None:
        """When every tool is below the threshold, the highest success rate is chosen."""
        spec = routed_spec("fastest", ("a", "b"))
        router = Router(spec, min_success_rate=0.9)
        for ok in (True, False, False):
            router.queued("a")
            router.started("a")
            router.finished("a", duration=0.1, ok=ok)
        for ok in (True, True, False):
            router.queued("b")
            router.started("b")
            router.finished("b", duration=9.0, ok=ok)
        decision = router.choose(spec.tasks[0])
        assert decision is not None
        assert decision.tool == "b"
        assert decision.reason == BEST_RATE

    def test_pinned_task_gets_its_tool(self) -> None:
        """A task naming its tool is not routed by the kind's strategy."""
        base = routed_spec("round_robin")
        spec = WorkflowSpec(
            name="pinned",
            tools=base.tools,
            routing=base.routing,
            tasks=[TaskSpec(id="p", kind="k", tool="c"), TaskSpec(id="q", kind="k")],
        )
        sim = simulate(spec, FakeRunner(), max_workers=1)
        assert routes(sim) == [("p", "c"), ("q", "a")]
        assert route_events(sim)[0]["strategy"] == "pinned"

    @pytest.mark.parametrize("strategy", ["first", "round_robin", "least_loaded", "fastest"])
    def test_same_state_same_outcomes_same_decisions(self, strategy: str) -> None:
        """Two runs from the same state with the same outcomes give identical events."""
        spec = routed_spec(strategy, tasks=12)

        def every_third_fails(task_id: str, attempt: int) -> Outcome:
            return Outcome(1.0, exit_code=1) if int(task_id[1:]) % 3 == 0 else Outcome(2.0)

        def outcomes() -> ByTool:
            return ByTool({"a": every_third_fails, "b": Outcome(0.5), "c": Outcome(3.0)})

        first = simulate(spec, outcomes(), max_workers=3)
        second = simulate(spec, outcomes(), max_workers=3)
        assert first.events == second.events
        assert len(routes(first)) >= 12


# ---------------------------------------------------------------- per-tool limits


class TestToolLimits:
    def test_a_task_waiting_for_its_tool_blocks_no_worker(self) -> None:
        """A tool limited to 1 runs its tasks in turn while the other tool fills the workers."""
        spec = WorkflowSpec(
            name="limits",
            tools=[
                ToolSpec(name="one", command=["true"], kinds=["l"], max_concurrency=1),
                ToolSpec(name="free", command=["true"], kinds=["f"]),
            ],
            tasks=[
                *(TaskSpec(id=f"l{n}", kind="l") for n in range(3)),
                *(TaskSpec(id=f"f{n}", kind="f") for n in range(3)),
            ],
        )
        runner = ByTool({"one": Outcome(1.0), "free": Outcome(1.0)})
        sim = simulate(spec, runner, max_workers=3)
        assert sim.status is RunStatus.SUCCEEDED
        assert runner.starts("one") == [("l0", 0.0), ("l1", 1.0), ("l2", 2.0)]
        assert runner.starts("free") == [("f0", 0.0), ("f1", 0.0), ("f2", 1.0)]

    async def test_limit_never_exceeded_with_200_real_processes(
        self, store: Store, tmp_path: Path
    ) -> None:
        """200 real tasks on 4 workers: tool ``pair`` never has more than 2 attempts at once."""
        spec = WorkflowSpec(
            name="limit-200",
            base_dir=tmp_path,
            tools=[
                ToolSpec(name="pair", command=["sleep", "{s}"], kinds=["p"], max_concurrency=2),
                ToolSpec(name="wide", command=["sleep", "{s}"], kinds=["w"]),
            ],
            tasks=[
                TaskSpec(id=f"{kind}{n:03d}", kind=kind, params={"s": "0.01"})
                for n in range(100)
                for kind in ("p", "w")
            ],
        )
        result = await run_workflow(spec, store=store, max_workers=4)
        assert result.status is RunStatus.SUCCEEDED
        attempts = store.attempts(result.run_id)
        assert len(attempts) == 200
        assert max_overlap([a for a in attempts if a.tool == "pair"]) == 2
        assert max_overlap(attempts) == 4


def max_overlap(attempts: Sequence[object]) -> int:
    """Most attempts running at once, from their recorded start and finish times."""
    points: list[tuple[float, int]] = []
    for attempt in attempts:
        points.append((attempt.started_at, 1))  # type: ignore[attr-defined]
        points.append((attempt.finished_at, -1))  # type: ignore[attr-defined]
    # At equal times the finish counts first: the scheduler records an attempt's end
    # before it dispatches the attempt that takes its slot.
    points.sort()
    running = best = 0
    for _, step in points:
        running += step
        best = max(best, running)
    return best


# ---------------------------------------------------------------- persistence


ROUTER_FILES = [
    tracemalloc.Filter(True, "*/deciding/routing.py"),
    tracemalloc.Filter(True, "*/deciding/strategies.py"),
]
"""The router's own code: the router and the strategies it builds (and that keep its state)."""


class TestRouterState:
    def test_fastest_learns_across_runs_unless_fresh(self, store: Store) -> None:
        """A second run starts from the saved metrics; ``fresh_routing`` starts over."""
        spec = routed_spec("fastest", ("slow", "quick"), tasks=3, chain=True)

        def runner() -> ByTool:
            return ByTool({"slow": Outcome(4.0), "quick": Outcome(1.0)})

        first = simulate(spec, runner(), max_workers=1, store=store, run_id="r1")
        assert [tool for _, tool in routes(first)] == ["slow", "quick", "quick"]
        second = simulate(spec, runner(), max_workers=1, store=store, run_id="r2")
        assert [tool for _, tool in routes(second)] == ["quick", "quick", "quick"]
        fresh = simulate(
            spec, runner(), max_workers=1, store=store, run_id="r3", fresh_routing=True
        )
        assert [tool for _, tool in routes(fresh)] == ["slow", "quick", "quick"]
        saved = store.load_router_state("routed")
        assert saved is not None
        # A fresh run learns from scratch, and what it learns replaces the saved state.
        assert saved["tools"]["quick"]["successes"] == 2

    def test_round_robin_position_carries_over(self, store: Store) -> None:
        """Four turns over three tools, then the next run starts at the second tool."""
        spec = routed_spec("round_robin", tasks=4)
        simulate(spec, FakeRunner(), max_workers=1, store=store, run_id="r1")
        second = simulate(spec, FakeRunner(), max_workers=1, store=store, run_id="r2")
        assert [tool for _, tool in routes(second)] == ["b", "c", "a", "b"]

    def test_snapshot_is_skipped_while_nothing_persisted_changed(self) -> None:
        """Only outcomes and round-robin turns move the change counter, not queue moves."""
        router = Router(routed_spec("round_robin", ("a", "b")))
        task = routed_spec("round_robin", ("a", "b")).tasks[0]
        before = router.changes
        router.queued("a")
        router.started("a")
        assert router.changes == before
        router.finished("a", duration=1.0, ok=True)
        after_outcome = router.changes
        assert after_outcome != before
        router.choose(task)
        assert router.changes != after_outcome

    def test_restore_ignores_tools_and_kinds_no_longer_there(self) -> None:
        """Saved state of removed tools or kinds is dropped, positions are clamped."""
        router = Router(routed_spec("round_robin", ("a", "b")))
        router.restore(
            {
                "tools": {"gone": {"successes": 5}, "a": {"successes": 2, "avg_duration": 1.5}},
                "positions": {"k": 7, "old-kind": 1},
            }
        )
        snapshot = router.snapshot()
        assert set(snapshot["tools"]) == {"a", "b"}
        assert snapshot["tools"]["a"] == {"successes": 2, "failures": 0, "avg_duration": 1.5}
        assert snapshot["positions"] == {"k": 1}
        assert json.loads(json.dumps(snapshot)) == snapshot

    def test_metrics_memory_is_flat_across_a_million_decisions(self) -> None:
        """1,000,000 decisions and outcomes over 10 tools leave the router's memory unchanged."""
        tools = tuple(f"tool{n}" for n in range(10))
        strategies = ("first", "round_robin", "least_loaded", "fastest")
        routers = [Router(routed_spec(s, tools, tasks=1)) for s in strategies]
        task = routed_spec("first", tools, tasks=1).tasks[0]

        def decide(count: int) -> None:
            # Cycling over prepared values keeps the loop itself from allocating,
            # so what tracemalloc sees is the router's own memory.
            steps = zip(
                itertools.cycle(routers),
                itertools.cycle((0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)),
                itertools.cycle((True, True, True, True, False)),
                strict=False,
            )
            for router, duration, ok in itertools.islice(steps, count):
                tool = router.choose(task).tool  # type: ignore[union-attr]
                router.queued(tool)
                router.started(tool)
                router.finished(tool, duration=duration, ok=ok)

        decide(10_000)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot().filter_traces(ROUTER_FILES)
            decide(1_000_000)
            gc.collect()
            after = tracemalloc.take_snapshot().filter_traces(ROUTER_FILES)
        finally:
            tracemalloc.stop()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        assert grown < 4096, f"router memory grew by {grown} bytes"
        assert sum(r.metrics()["tool0"].finished for r in routers) > 0


# ---------------------------------------------------------------- critical path


def critical_spec() -> WorkflowSpec:
    """Four 1 s side tasks declared before a chain c0 -> c1 -> c2 of 1 s steps."""
    return WorkflowSpec(
        name="critical",
        tasks=[
            *(TaskSpec(id=f"s{n}", command=["true"]) for n in range(4)),
            TaskSpec(id="c0", command=["true"]),
            TaskSpec(id="c1", command=["true"], depends_on=["c0"]),
            TaskSpec(id="c2", command=["true"], depends_on=["c1"]),
        ],
    )


class TestCriticalPath:
    def test_weights_use_medians_and_default_to_the_workflow_median(self) -> None:
        """A task's weight is the median of its durations; unknown tasks get the median."""
        graph = compile_graph(critical_spec())
        weights = task_weights(graph, {"s0": [1.0, 9.0, 2.0], "c0": [4.0], "gone": [100.0]})
        assert weights[graph.index["s0"]] == 2.0
        assert weights[graph.index["c0"]] == 4.0
        assert weights[graph.index["c2"]] == 3.0
        assert task_weights(graph, {}) == [1.0] * len(graph)

    def test_remaining_path_and_ranks(self) -> None:
        """The chain head carries the whole chain; priority still comes first."""
        spec = critical_spec()
        graph = compile_graph(spec)
        path = remaining_path(graph, [1.0] * len(graph))
        assert path == [1.0, 1.0, 1.0, 1.0, 3.0, 2.0, 1.0]
        priorities = [0, 5, 0, 0, 0, 0, 0]
        critical = ready_order(graph, priorities, {}, "critical")
        # Priority first (s1), then the longer path (c0, c1), then declaration order.
        assert [graph.ids[i] for i in critical] == ["s1", "c0", "c1", "s0", "s2", "s3", "c2"]
        declared = ready_order(graph, priorities, {}, "declared")
        assert declared == [1, 0, 2, 3, 4, 5, 6]
        with pytest.raises(ValueError, match="unknown order 'random'"):
            ready_order(graph, priorities, {}, "random")

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def test_remaining_path_is_the_heaviest_path_to_an_end(self, data: st.DataObject) -> None:
        """On random DAGs, each rank equals the heaviest path found by brute force."""
        n = data.draw(st.integers(min_value=1, max_value=9))
        deps = [
            data.draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []
            for i in range(n)
        ]
        weights = data.draw(
            st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=n, max_size=n)
        )
        order = data.draw(st.permutations(range(n)))
        spec = WorkflowSpec(
            name="random",
            tasks=[
                TaskSpec(id=f"n{i}", command=["true"], depends_on=[f"n{d}" for d in deps[i]])
                for i in order
            ],
        )
        graph = compile_graph(spec)
        by_task = [weights[int(task_id[1:])] for task_id in graph.ids]
        dependents: dict[int, list[int]] = {i: [] for i in range(n)}
        for i in range(n):
            for d in deps[i]:
                dependents[d].append(i)

        def heaviest(i: int) -> float:
            return weights[i] + max((heaviest(j) for j in dependents[i]), default=0.0)

        path = remaining_path(graph, by_task)
        for index, task_id in enumerate(graph.ids):
            assert path[index] == pytest.approx(heaviest(int(task_id[1:])))

    def test_critical_order_shortens_the_run(self) -> None:
        """Two workers: chain first ends at 4 s, declaration order at 5 s."""
        spec = critical_spec()
        critical = simulate(spec, FakeRunner(default=Outcome(1.0)), max_workers=2)
        declared = simulate(spec, FakeRunner(default=Outcome(1.0)), max_workers=2, order="declared")
        assert first_dispatch(critical) == "c0"
        assert first_dispatch(declared) == "s0"
        assert (critical.wall, declared.wall) == (4.0, 5.0)

    def test_recorded_durations_reweigh_the_next_run(self, store: Store) -> None:
        """A lone 5 s task outranks a 2-step chain once its duration is on record."""
        spec = WorkflowSpec(
            name="weighted",
            tasks=[
                TaskSpec(id="a0", command=["true"]),
                TaskSpec(id="a1", command=["true"], depends_on=["a0"]),
                TaskSpec(id="long", command=["true"]),
            ],
        )

        def runner() -> FakeRunner:
            return FakeRunner({"long": Outcome(5.0)}, default=Outcome(1.0))

        first = simulate(spec, runner(), max_workers=1, store=store, run_id="r1")
        assert first_dispatch(first) == "a0"
        assert store.recent_durations("weighted") == {"a0": [1.0], "a1": [1.0], "long": [5.0]}
        second = simulate(spec, runner(), max_workers=1, store=store, run_id="r2")
        assert first_dispatch(second) == "long"

    def test_recent_durations_reads_only_the_last_runs(self, store: Store) -> None:
        """Durations come from the `runs` most recent runs with a success, newest first."""
        spec = WorkflowSpec(name="history", tasks=[TaskSpec(id="x", command=["true"])])
        for n, duration in enumerate((1.0, 2.0, 3.0)):
            simulate(
                spec,
                FakeRunner(default=Outcome(duration)),
                max_workers=1,
                store=store,
                run_id=f"r{n}",
            )
        assert sorted(store.recent_durations("history", runs=2)["x"]) == [2.0, 3.0]
        assert sorted(store.recent_durations("history")["x"]) == [1.0, 2.0, 3.0]
        assert store.recent_durations("other") == {}

    def test_unknown_order_is_a_workflow_error(self) -> None:
        """The library refuses an order it does not know, naming the field."""
        from uet_trio.errors import WorkflowError

        with pytest.raises(WorkflowError, match="unknown order"):
            simulate(critical_spec(), FakeRunner(), max_workers=1, order="random")


# ---------------------------------------------------------------- CLI


ROUTED_FLOW = """\
[workflow]
name = "cli-routing"
max_workers = 2

[tools.a]
command = ["true"]
kinds = ["k"]
max_concurrency = 1

[tools.b]
command = ["sh", "-c", "exit 0"]
kinds = ["k"]

[routing.k]
strategy = "round_robin"
tools = ["a", "b"]

[[tasks]]
id = "one"
kind = "k"

[[tasks]]
id = "two"
kind = "k"

[[tasks]]
id = "three"
kind = "k"
depends_on = ["one"]
"""


class TestCli:
    def test_run_then_tools_and_plan_show_the_learnt_state(
        self, cli: CliRunner, write_flow: Callable[..., Path], tmp_path: Path
    ) -> None:
        """`uet run` saves metrics; `uet tools` lists them; `uet plan --db` starts from them."""
        flow = write_flow(ROUTED_FLOW)
        db = str(tmp_path / "u.db")
        result = cli.invoke(main, ["run", str(flow), "--db", db, "--order", "declared"])
        assert result.exit_code == 0, result.output
        result = cli.invoke(main, ["tools", "--db", db, "--json"])
        assert result.exit_code == 0, result.output
        rows = {row["tool"]: row for row in json.loads(result.output)}
        assert rows["a"]["successes"] + rows["b"]["successes"] == 3
        assert rows["a"]["workflow"] == "cli-routing"
        text = cli.invoke(main, ["tools", "--db", db]).output
        assert "workflow cli-routing" in text
        assert "100%" in text
        plan = json.loads(cli.invoke(main, ["plan", "--json", "--db", db, str(flow)]).output)
        assert plan["routing"]["k"] == {
            "strategy": "round_robin",
            "tools": [{"name": "a", "max_concurrency": 1}, {"name": "b", "max_concurrency": None}],
        }
        assert plan["history"] is True
        # Three turns were taken in the run, so the plan's first turn is b.
        assert [e["tool"] for e in plan["levels"][0]] == ["b", "a"]
        text = cli.invoke(main, ["plan", "--db", db, str(flow)]).output
        assert "k: round_robin over a (max 1), b" in text
        assert "tasks in 2 levels; critical path " in text
        assert "by recorded durations" in text
        fresh = cli.invoke(main, ["plan", "--db", str(tmp_path / "none.db"), str(flow)]).output
        assert "critical path 2 tasks (no recorded durations)" in fresh
        assert "[k -> a (round_robin: turn 1 of 2)]" in fresh
        assert "[k -> b (round_robin: turn 2 of 2)]" in text

    def test_fresh_routing_and_order_through_the_real_program(
        self, write_flow: Callable[..., Path], tmp_path: Path
    ) -> None:
        """The real `uet`: --fresh-routing restarts the rotation; a bad --order exits 2."""
        flow = write_flow(ROUTED_FLOW)
        db = tmp_path / "u.db"
        for extra in ((), ("--fresh-routing",)):
            done = run_uet("run", flow, "--db", db, "--json", *extra, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
        with Store.open(db) as store:
            runs = [r.run_id for r in reversed(store.list_runs())]
            firsts = [
                store.events(run_id, kinds=["route_chosen"])[0].data["tool"] for run_id in runs
            ]
        assert firsts == ["a", "a"]
        done = run_uet("run", flow, "--db", db, "--order", "random", cwd=tmp_path)
        assert done.returncode == 2
        assert "'random' is not one of 'critical', 'declared'" in done.stderr
        done = run_uet("tools", "--db", db, "-w", "nothing", cwd=tmp_path)
        assert done.returncode == 0
        assert "no tool metrics for workflow 'nothing'" in done.stdout
