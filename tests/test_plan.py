"""
`uet_trio.plan_workflow` and `uet_trio.open_workflow`: a run's decisions as data, before it runs.

The plans are built from workflow documents in memory and compared field by
field: effective timeouts and retries resolved task over tool over workflow,
commands with secrets redacted, routing continued from a saved router state,
and critical-path weights from recorded durations. `open_workflow` is checked
against files that fail in each of its steps, the message naming the file.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from uet_trio import (
    CycleError,
    Plan,
    PlannedRoute,
    PlannedTask,
    Planner,
    WorkflowError,
    compile_graph,
    open_workflow,
    parse_workflow,
    plan_workflow,
)

from .conftest import run_uet

SETTINGS: dict[str, Any] = {
    "workflow": {"name": "settings", "timeout": 30, "retries": 1},
    "tools": {
        "slow": {"command": ["run-slow", "{x}"], "kinds": ["job"], "timeout": 5, "retries": 3},
        "plain": {"command": ["run-plain", "{x}"], "kinds": ["job"]},
    },
    "routing": {"job": {"tools": ["slow"]}},
    "tasks": [
        {"id": "own-command", "command": ["true"]},
        {"id": "own-timeout", "command": ["true"], "timeout": 2, "retries": 4},
        {"id": "on-tool", "kind": "job", "params": {"x": "1"}},
        {"id": "on-tool-own", "kind": "job", "params": {"x": "2"}, "timeout": 1, "retries": 0},
        {"id": "pinned", "kind": "job", "tool": "plain", "params": {"x": "3"}},
        {
            "id": "secret",
            "kind": "job",
            "params": {"x": {"value": "hunter2", "secret": True}},
            "depends_on": ["own-command"],
        },
    ],
}


def plan_of(document: dict[str, Any], **history: Any) -> Plan:
    spec = parse_workflow(document)
    return plan_workflow(spec, compile_graph(spec), **history)


def by_id(plan: Plan) -> dict[str, PlannedTask]:
    return {task.id: task for level in plan.levels for task in level}


class TestEffectiveSettings:
    def test_timeout_comes_from_the_task_then_the_tool_then_the_workflow(self) -> None:
        tasks = by_id(plan_of(SETTINGS))
        assert tasks["own-command"].timeout == 30
        assert tasks["own-timeout"].timeout == 2
        assert tasks["on-tool"].timeout == 5
        assert tasks["on-tool-own"].timeout == 1
        assert tasks["pinned"].timeout == 30

    def test_retries_come_from_the_task_then_the_tool_then_the_workflow(self) -> None:
        tasks = by_id(plan_of(SETTINGS))
        assert tasks["own-command"].retries == 1
        assert tasks["own-timeout"].retries == 4
        assert tasks["on-tool"].retries == 3
        assert tasks["on-tool-own"].retries == 0
        assert tasks["pinned"].retries == 1

    def test_no_timeout_and_no_retries_when_nothing_sets_them(self) -> None:
        plan = plan_of({"workflow": {"name": "bare"}, "tasks": [{"id": "a", "command": ["true"]}]})
        assert (plan.levels[0][0].timeout, plan.levels[0][0].retries) == (None, 0)

    def test_commands_show_secrets_redacted(self) -> None:
        tasks = by_id(plan_of(SETTINGS))
        assert tasks["secret"].argv == ("run-slow", "***")
        assert tasks["on-tool"].argv == ("run-slow", "1")
        assert tasks["own-command"].argv == ("true",)


class TestRoutingAndLevels:
    def test_levels_tools_and_reasons(self) -> None:
        plan = plan_of(SETTINGS)
        assert plan.workflow == "settings"
        assert plan.tasks == 6
        assert [[task.id for task in level] for level in plan.levels] == [
            ["own-command", "own-timeout", "on-tool", "on-tool-own", "pinned"],
            ["secret"],
        ]
        assert [task.level for task in plan.levels[1]] == [1]
        tasks = by_id(plan)
        assert tasks["own-command"] == PlannedTask(
            id="own-command",
            group=None,
            level=0,
            priority=0,
            kind=None,
            tool=None,
            strategy=None,
            candidates=(),
            reason=None,
            argv=("true",),
            timeout=30,
            retries=1,
            path=2.0,
        )
        assert (tasks["on-tool"].tool, tasks["on-tool"].strategy) == ("slow", "first")
        assert tasks["on-tool"].reason == "first candidate"
        assert (tasks["pinned"].tool, tasks["pinned"].strategy) == ("plain", "pinned")
        assert plan.routes == (PlannedRoute(kind="job", strategy="first", tools=(("slow", None),)),)

    def test_a_burst_is_spread_and_round_robin_continues_from_the_saved_state(self) -> None:
        document: dict[str, Any] = {
            "workflow": {"name": "burst"},
            "tools": {
                name: {"command": [name], "kinds": ["k", "r"], "max_concurrency": 2}
                for name in ("a", "b")
            },
            "routing": {"k": {"strategy": "least_loaded"}, "r": {"strategy": "round_robin"}},
            "tasks": [{"id": f"k{i}", "kind": "k"} for i in range(4)]
            + [{"id": f"r{i}", "kind": "r"} for i in range(3)],
        }
        tasks = by_id(plan_of(document))
        assert [tasks[f"k{i}"].tool for i in range(4)] == ["a", "b", "a", "b"]
        assert [tasks[f"r{i}"].tool for i in range(3)] == ["a", "b", "a"]
        saved = {"tools": {}, "positions": {"r": 1}}
        resumed = by_id(plan_of(document, router_state=saved))
        assert [resumed[f"r{i}"].tool for i in range(3)] == ["b", "a", "b"]
        assert plan_of(document).routes[0].tools == (("a", 2), ("b", 2))

    def test_fastest_follows_the_saved_metrics(self) -> None:
        document: dict[str, Any] = {
            "workflow": {"name": "fast"},
            "tools": {name: {"command": [name], "kinds": ["k"]} for name in ("a", "b")},
            "routing": {"k": {"strategy": "fastest"}},
            "tasks": [{"id": "t", "kind": "k"}],
        }
        assert by_id(plan_of(document))["t"].reason == "exploring: no finished attempt yet"
        saved = {
            "tools": {
                "a": {"successes": 5, "failures": 0, "avg_duration": 3.0},
                "b": {"successes": 5, "failures": 0, "avg_duration": 1.0},
            }
        }
        assert by_id(plan_of(document, router_state=saved))["t"].tool == "b"


class TestCriticalPath:
    CHAIN: dict[str, Any] = {
        "workflow": {"name": "chain"},
        "tasks": [
            {"id": "a", "command": ["true"]},
            {"id": "b", "command": ["true"], "depends_on": ["a"]},
            {"id": "side", "command": ["true"]},
        ],
    }

    def test_without_records_every_task_weighs_one(self) -> None:
        plan = plan_of(self.CHAIN)
        assert (plan.critical_path, plan.history) == (2.0, False)
        assert {task.id: task.path for task in plan.levels[0]} == {"a": 2.0, "side": 1.0}

    def test_recorded_durations_weigh_the_path(self) -> None:
        plan = plan_of(self.CHAIN, durations={"a": [1.0, 3.0, 2.0], "b": [0.5], "side": [9.0]})
        assert (plan.critical_path, plan.history) == (9.0, True)
        assert by_id(plan)["a"].path == 2.5


class TestOpenWorkflow:
    def test_returns_the_spec_and_its_graph(self, write_flow: Callable[[str], Path]) -> None:
        flow = write_flow('[[tasks]]\nid = "a"\ncommand = ["true"]\n')
        spec, graph = open_workflow(flow)
        assert spec.tasks[0].id == "a"
        assert graph.ids == ("a",)

    def test_unknown_strategy_names_file_and_field(self, write_flow: Callable[[str], Path]) -> None:
        flow = write_flow(UNKNOWN_STRATEGY)
        with pytest.raises(WorkflowError) as caught:
            open_workflow(str(flow))
        assert caught.value.path == str(flow)
        assert caught.value.field == "routing.k.strategy"
        assert "nope" in str(caught.value)

    def test_cycle_names_file_task_and_field(self, write_flow: Callable[[str], Path]) -> None:
        flow = write_flow(
            """
            [[tasks]]
            id = "a"
            command = ["true"]
            depends_on = ["b"]
            [[tasks]]
            id = "b"
            command = ["true"]
            depends_on = ["a"]
            """
        )
        with pytest.raises(CycleError) as caught:
            open_workflow(str(flow))
        assert caught.value.path == str(flow)
        assert caught.value.cycle in (("a", "b", "a"), ("b", "a", "b"))
        assert str(caught.value).startswith(f"{flow}: task ")
        assert "field 'depends_on'" in str(caught.value)

    def test_missing_file_names_it(self, tmp_path: Path) -> None:
        with pytest.raises(WorkflowError, match="no such file"):
            open_workflow(tmp_path / "missing.toml")

    def test_uet_validate_refuses_an_unknown_strategy(
        self, write_flow: Callable[[str], Path], tmp_path: Path
    ) -> None:
        """The real program: exit 2, file and field named, no traceback."""
        flow = write_flow(UNKNOWN_STRATEGY)
        done = run_uet("validate", flow, cwd=tmp_path)
        assert done.returncode == 2
        assert f"uet: error: {flow}: field 'routing.k.strategy': unknown strategy 'nope'" in (
            done.stderr
        )
        assert "Traceback" not in done.stderr

    def test_opening_a_workflow_does_not_import_trio(self, tmp_path: Path) -> None:
        flow = tmp_path / "flow.toml"
        flow.write_text(textwrap.dedent(UNKNOWN_STRATEGY).replace('"nope"', '"first"'))
        code = (
            "import sys, uet_trio; uet_trio.open_workflow(sys.argv[1]); "
            "assert 'trio' not in sys.modules, 'trio imported'"
        )
        subprocess.run([sys.executable, "-c", code, str(flow)], check=True)


UNKNOWN_STRATEGY = """
    [tools.t]
    command = ["echo", "{x}"]
    kinds = ["k"]

    [routing.k]
    strategy = "nope"

    [[tasks]]
    id = "a"
    kind = "k"
    params = { x = "1" }
"""


def test_a_planner_gives_the_levels_routes_and_weights_of_the_plan() -> None:
    document = {
        **SETTINGS,
        "routing": {"job": {"strategy": "round_robin"}},
    }
    spec = parse_workflow(document)
    graph = compile_graph(spec)
    planner = Planner(spec, graph, durations={"secret": [4.0]})
    levels = tuple(planner.levels())
    plan = plan_workflow(spec, graph, durations={"secret": [4.0]})
    assert levels == plan.levels
    assert [task.tool for level in levels for task in level if task.strategy == "round_robin"] == [
        "slow",
        "plain",
        "slow",
    ]
    assert (planner.routes, planner.critical_path, planner.history) == (
        plan.routes,
        plan.critical_path,
        True,
    )
