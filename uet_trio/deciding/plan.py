"""
What a run of a workflow would do, as data: levels, tools, commands and settings.

`plan_workflow` takes a workflow as `opening.open_workflow` gives it and
decides what a run would do with it: the tasks level by level, the tool each routed task would get
and why, the command it would run (secret params as ``***``), its effective
timeout and retries, and its critical-path weight. The decisions come from
the same `Router`, `Settings` and critical-path weights a run uses, so what
a plan shows is what a run does.

Pure computation: no Trio, no clock, no I/O beyond reading the workflow file.
Earlier runs inform a plan only through what the caller read from the store
and passes in (the router's saved state, recent task durations).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from ..workflow.graph import TaskGraph
from ..workflow.spec import WorkflowSpec
from .priority import remaining_path, task_weights
from .routing import Router
from .settings import Settings


@attrs.frozen(kw_only=True)
class PlannedTask:
    """What a run would do with one task."""

    id: str
    group: str | None
    """The fanned-out task this one is an instance of (None: not fanned out)."""
    level: int
    """The task's level in the graph: 0 for tasks with no dependencies."""
    priority: int
    """The task's own priority (higher leaves the ready set first)."""
    kind: str | None
    tool: str | None
    """The tool it would run on (None for a task with its own command or callable)."""
    strategy: str | None
    """The routing strategy that chose the tool (``pinned`` for a task that names its tool)."""
    candidates: tuple[str, ...]
    """The tools the strategy chose among, in order (empty when the task is not routed)."""
    reason: str | None
    """Why the strategy chose this tool."""
    argv: tuple[str, ...] | None
    """The command, secret params shown as ``***`` (None for a callable task)."""
    timeout: float | None
    """
    Seconds an attempt may take: the task's, else its tool's, else the workflow's (None: no limit).
    """
    retries: int
    """Attempts after the first that a failure may get, by the effective retry policy."""
    path: float
    """Critical-path weight: the expected duration of the heaviest chain from here to the end."""


@attrs.frozen(kw_only=True)
class PlannedRoute:
    """How one kind of task is routed."""

    kind: str
    strategy: str
    tools: tuple[tuple[str, int | None], ...]
    """Each candidate tool, in order, with its ``max_concurrency`` (None: no limit)."""


@attrs.frozen(kw_only=True)
class Plan:
    """What a run of a workflow would do, before it runs."""

    workflow: str
    levels: tuple[tuple[PlannedTask, ...], ...]
    """The tasks by level, each level in the order its tasks are routed."""
    routes: tuple[PlannedRoute, ...]
    """Every routed kind, in the order its first task appears in the workflow."""
    critical_path: float
    """The heaviest chain's weight: seconds by recorded durations, else a count of tasks."""
    history: bool
    """Whether recorded durations weighed the critical path (else every task weighs 1)."""

    @property
    def tasks(self) -> int:
        """How many tasks the plan has."""
        return sum(len(level) for level in self.levels)


def plan_workflow(
    spec: WorkflowSpec,
    graph: TaskGraph,
    *,
    router_state: Mapping[str, Any] | None = None,
    durations: Mapping[str, Sequence[float]] | None = None,
) -> Plan:
    """
    Plan a run of `spec`: routing, commands, settings and critical-path weights.

    Tools are chosen level by level, each chosen tool counted as queued, as a
    run routes a burst of ready tasks: ``least_loaded`` and ``round_robin``
    show how the burst would be spread.

    Args:
        spec: the workflow.
        graph: its compiled graph (`open_workflow` returns both).
        router_state: a router snapshot saved by an earlier run of the
            workflow (`Store.load_router_state`); ``fastest`` and
            ``round_robin`` continue from it, as a run does.
        durations: recent successful attempt durations per task id
            (`Store.recent_durations`), which weigh the critical path.
    """
    planner = Planner(spec, graph, router_state=router_state, durations=durations)
    return Plan(
        workflow=spec.name,
        levels=tuple(planner.levels()),
        routes=planner.routes,
        critical_path=planner.critical_path,
        history=planner.history,
    )


class Planner:
    """
    `plan_workflow` one level at a time, for a caller that shows each level and lets it go.

    The plan of a million tasks is a million `PlannedTask` records; ``uet
    plan`` prints them level by level through a planner instead, so one
    level's records are alive at a time. What the whole plan says besides
    its levels is known before the first level. The arguments are
    `plan_workflow`'s.
    """

    def __init__(
        self,
        spec: WorkflowSpec,
        graph: TaskGraph,
        *,
        router_state: Mapping[str, Any] | None = None,
        durations: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self._spec = spec
        self._graph = graph
        self._router = Router(spec)
        if router_state is not None:
            self._router.restore(router_state)
        recorded = durations or {}
        self._path = remaining_path(graph, task_weights(graph, recorded))
        self.routes = _routes(spec, self._router)
        """Every routed kind, in the order its first task appears in the workflow."""
        self.critical_path = max(self._path, default=0.0)
        """The heaviest chain's weight: seconds by recorded durations, else a count of tasks."""
        self.history = bool(recorded)
        """Whether recorded durations weighed the critical path (else every task weighs 1)."""

    def levels(self) -> Iterator[tuple[PlannedTask, ...]]:
        """The planned tasks level by level, each level in the order its tasks are routed."""
        spec, router, path = self._spec, self._router, self._path
        settings = Settings(spec)
        for depth, level in enumerate(self._graph.levels):
            planned: list[PlannedTask] = []
            for i in level:
                task = spec.tasks[i]
                decision = None
                if task.kind is not None:
                    # Nothing is excluded, so every route has a candidate to give.
                    decision = router.choose(task)
                    assert decision is not None
                    router.queued(decision.tool)
                effective = settings.of(task, decision.tool if decision is not None else None)
                planned.append(
                    PlannedTask(
                        id=task.id,
                        group=task.group,
                        level=depth,
                        priority=task.priority,
                        kind=task.kind,
                        tool=effective.tool,
                        strategy=decision.strategy if decision is not None else None,
                        candidates=decision.candidates if decision is not None else (),
                        reason=decision.reason if decision is not None else None,
                        argv=effective.shown_argv,
                        timeout=effective.timeout,
                        retries=settings.retry(task, effective.tool).retries,
                        path=path[i],
                    )
                )
            yield tuple(planned)


def _routes(spec: WorkflowSpec, router: Router) -> tuple[PlannedRoute, ...]:
    """The strategy and candidate tools of every routed kind (tasks that pin a tool aside)."""
    routes: dict[str, PlannedRoute] = {}
    for task in spec.tasks:
        if task.kind is None or task.tool is not None or task.kind in routes:
            continue
        strategy, candidates = router.route_of(task)
        routes[task.kind] = PlannedRoute(
            kind=task.kind,
            strategy=strategy,
            tools=tuple((name, spec.tools[name].max_concurrency) for name in candidates),
        )
    return tuple(routes.values())
