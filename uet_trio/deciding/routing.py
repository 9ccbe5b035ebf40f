"""
The router: which tool runs a task of a given kind, and whether that tool takes another attempt now.

The route table (kind -> strategy over candidate tools, plus one entry per
task that pins a tool) is compiled once from the spec; the strategies
themselves are the registry in `strategies`. Decisions and metrics live in
memory: one fixed-size `ToolMetrics` per tool of the workflow and one
strategy object per kind, both created up front, so memory does not grow
with the number of decisions, tasks or outcomes. The engine saves
`snapshot()` inside the persister's transactions (never one write per
decision) and a later run of the same workflow may `restore()` it, which is
how ``fastest`` learns across runs. No Trio, no clock and no I/O here.

The scheduler tells the router about each task's life on a tool: `queued`
when a routed task enters the ready set, `admits` before dispatching it,
`started` when its attempt is dispatched, `finished` when the attempt ends.
The router alone counts what runs on each tool, so it alone answers
`admits`: False while a tool with a ``max_concurrency`` has that many
attempts running (the scheduler then parks the task until an attempt of the
tool finishes). ``least_loaded`` counts both queued and running work, so a
burst of tasks that become ready together is spread over the tools instead
of all landing on the one that was idle a moment ago.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from typing import Any

from ..errors import WorkflowError
from ..workflow.spec import TaskSpec, WorkflowSpec
from .strategies import BEST_RATE as BEST_RATE
from .strategies import (
    DEFAULT_MIN_SUCCESS_RATE,
    STRATEGIES,
    Pinned,
    Strategy,
    StrategyContext,
    ToolMetrics,
)
from .strategies import EXPLORING as EXPLORING
from .strategies import FASTEST as FASTEST
from .strategies import LEAST_LOADED as LEAST_LOADED
from .strategies import RouteDecision as RouteDecision

DEFAULT_STRATEGY = "first"
"""The strategy of a kind that has no routing rule."""

DEFAULT_SEED = 0
"""Seed of the RNG a router gets when none is passed, so plans are reproducible."""


def check_routing(spec: WorkflowSpec) -> None:
    """
    Check that every routing rule of `spec` names a registered strategy.

    Raises:
        WorkflowError: a rule names no strategy in `strategies.STRATEGIES`
            (the field is ``routing.KIND.strategy``).
    """
    for rule in spec.routing.values():
        if rule.strategy not in STRATEGIES:
            raise WorkflowError(
                f"unknown strategy {rule.strategy!r} (choose from {', '.join(STRATEGIES)})",
                field=f"routing.{rule.kind}.strategy",
            )


class Router:
    """
    Picks a tool for each routed task by its kind's strategy, and admits attempts to tools.

    The strategies are listed in `strategies.STRATEGIES` and in
    docs/routing.md. A task that pins a tool gets it (strategy ``pinned``).
    Given the same state, the same RNG state and the same sequence of calls,
    the decisions are the same.

    Args:
        spec: the workflow; its routing rules are checked with `check_routing`.
        rng: the run's seeded RNG, for strategies that draw random numbers
            (default: one seeded with `DEFAULT_SEED`).
        min_success_rate: the success rate ``fastest`` requires.

    Raises:
        WorkflowError: a routing rule names an unknown strategy.
    """

    def __init__(
        self,
        spec: WorkflowSpec,
        *,
        rng: random.Random | None = None,
        min_success_rate: float = DEFAULT_MIN_SUCCESS_RATE,
    ) -> None:
        check_routing(spec)
        context = StrategyContext(
            rng=rng if rng is not None else random.Random(DEFAULT_SEED),
            min_success_rate=min_success_rate,
        )
        self._metrics = {name: ToolMetrics() for name in spec.tools}
        self._limits = {
            name: tool.max_concurrency
            for name, tool in spec.tools.items()
            if tool.max_concurrency is not None
        }
        self._changes = 0
        self._routes: dict[str | None, Strategy] = {}
        self._pinned: dict[str, Strategy] = {}
        for task in spec.tasks:
            if task.kind is None:
                continue
            if task.tool is not None:
                self._pinned[task.id] = Pinned((task.tool,), self._metrics, context)
            elif task.kind not in self._routes:
                rule = spec.routing.get(task.kind)
                candidates = tuple(tool.name for tool in spec.candidate_tools(task))
                strategy = STRATEGIES[rule.strategy if rule else DEFAULT_STRATEGY]
                self._routes[task.kind] = strategy(candidates, self._metrics, context)

    def route_of(self, task: TaskSpec) -> tuple[str, tuple[str, ...]]:
        """The strategy and candidate tools for `task` (for plans)."""
        route = self._pinned.get(task.id) or self._routes[task.kind]
        return route.name, route.candidates

    def choose(self, task: TaskSpec, *, exclude: Collection[str] = ()) -> RouteDecision | None:
        """
        Choose a tool for `task`, skipping the tools in `exclude`.

        Call `queued` once the task is handed to the chosen tool. Returns
        None when every candidate is excluded (the task has no tool left).
        """
        route = self._pinned.get(task.id) or self._routes[task.kind]
        if exclude:
            return route.choose_excluding(exclude)
        return route.choose()

    def queued(self, tool: str) -> None:
        """Count a task routed to `tool` as waiting to start."""
        self._metrics[tool].queued += 1

    def dequeued(self, tool: str) -> None:
        """A queued task of `tool` will not start: it was found up to date."""
        self._metrics[tool].queued -= 1

    def admits(self, tool: str) -> bool:
        """
        Whether `tool` may start another attempt now.

        False while the tool has a ``max_concurrency`` and that many attempts
        are running; the scheduler then keeps the task aside until `finished`
        is called for the tool.
        """
        limit = self._limits.get(tool)
        return limit is None or self._metrics[tool].running < limit

    def started(self, tool: str) -> None:
        """Move one queued task of `tool` to running."""
        metrics = self._metrics[tool]
        metrics.queued -= 1
        metrics.running += 1

    def finished(self, tool: str, *, duration: float, ok: bool) -> None:
        """Fold a finished attempt of `tool` into its metrics; it no longer counts as running."""
        metrics = self._metrics[tool]
        metrics.running -= 1
        self._changes += 1
        metrics.record(duration=duration, ok=ok)

    def metrics(self) -> Mapping[str, ToolMetrics]:
        """Current metrics per tool (live objects; do not mutate)."""
        return self._metrics

    @property
    def changes(self) -> int:
        """
        A counter that moves whenever the state `snapshot` saves changes.

        A saver compares it with the value at its last save and skips the
        snapshot when nothing changed (most batches of events carry no outcome).
        """
        return self._changes + sum(route.changes for route in self._routes.values())

    def snapshot(self) -> dict[str, Any]:
        """Plain-data state to persist: metrics (without live counts) and positions."""
        return {
            "tools": {name: m.saved() for name, m in self._metrics.items()},
            "positions": {kind: route.position for kind, route in self._routes.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load a `snapshot()`; tools and kinds this workflow no longer has are ignored."""
        self._changes += 1
        for name, saved in state.get("tools", {}).items():
            metrics = self._metrics.get(name)
            if metrics is not None:
                metrics.restore(saved)
        for kind, position in state.get("positions", {}).items():
            route = self._routes.get(kind)
            if route is not None:
                route.position = int(position) % len(route.candidates)
