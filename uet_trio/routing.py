"""
The router: which tool runs a task of a given kind.

The route table (kind -> strategy and candidate tools) is compiled once from
the spec. Decisions and metrics live in memory; the only state is one
fixed-size `ToolMetrics` per tool of the workflow plus one round-robin position
per kind, so memory does not grow with the number of decisions. The engine
saves `snapshot()` through the persister's transactions (never one write per
decision) and a later run may `restore()` it. No Trio and no I/O here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import attrs

from .spec import TaskSpec, WorkflowSpec

EWMA_WEIGHT = 0.2
"""Weight of the newest duration in a tool's moving average."""


@attrs.frozen
class RouteDecision:
    """A routing choice and why it was made (recorded as a `route_chosen` event)."""

    tool: str
    strategy: str
    candidates: tuple[str, ...]
    reason: str


@attrs.define
class ToolMetrics:
    """Bounded running statistics of one tool."""

    successes: int = 0
    failures: int = 0
    running: int = 0
    avg_duration: float | None = None
    """Exponentially weighted moving average of attempt durations, in seconds."""

    @property
    def success_rate(self) -> float | None:
        """Share of finished attempts that succeeded, or None before the first one."""
        total = self.successes + self.failures
        return self.successes / total if total else None


@attrs.frozen
class _Route:
    strategy: str
    candidates: tuple[str, ...]


class Router:
    """
    Picks a tool for each routed task by its kind's strategy.

    Strategies: ``first`` (the first candidate not excluded), ``round_robin``
    (rotate per kind), ``least_loaded`` (fewest running attempts, ties by
    order), ``fastest`` (untried tools first, then the lowest moving-average
    duration among tools whose success rate is at least `min_success_rate`).
    Given the same state and the same sequence of calls, decisions are the same.
    """

    def __init__(self, spec: WorkflowSpec, *, min_success_rate: float = 0.5) -> None:
        self._min_success_rate = min_success_rate
        self._metrics = {name: ToolMetrics() for name in spec.tools}
        self._positions: dict[str, int] = {}
        self._routes: dict[str, _Route] = {}
        self._pinned: dict[str, _Route] = {}
        for task in spec.tasks:
            if task.kind is None:
                continue
            candidates = tuple(tool.name for tool in spec.candidate_tools(task))
            if task.tool is not None:
                self._pinned[task.id] = _Route("pinned", candidates)
            elif task.kind not in self._routes:
                rule = spec.routing.get(task.kind)
                self._routes[task.kind] = _Route(rule.strategy if rule else "first", candidates)

    def route_of(self, task: TaskSpec) -> tuple[str, tuple[str, ...]]:
        """The strategy and candidate tools for `task` (for plans)."""
        route = self._route(task)
        return route.strategy, route.candidates

    def _route(self, task: TaskSpec) -> _Route:
        pinned = self._pinned.get(task.id)
        if pinned is not None:
            return pinned
        assert task.kind is not None
        return self._routes[task.kind]

    def choose(self, task: TaskSpec, *, exclude: Collection[str] = ()) -> RouteDecision | None:
        """
        Choose a tool for `task`, skipping the tools in `exclude`.

        Returns None when every candidate is excluded (the task has no tool left).
        """
        route = self._route(task)
        candidates = [name for name in route.candidates if name not in exclude]
        if not candidates:
            return None
        strategy = route.strategy
        if strategy == "round_robin":
            assert task.kind is not None
            position = self._positions.get(task.kind, 0)
            tool = candidates[position % len(candidates)]
            self._positions[task.kind] = position + 1
            reason = f"turn {position % len(candidates) + 1} of {len(candidates)}"
        elif strategy == "least_loaded":
            tool = min(candidates, key=lambda name: self._metrics[name].running)
            reason = f"{self._metrics[tool].running} running"
        elif strategy == "fastest":
            tool, reason = self._fastest(candidates)
        else:
            tool = candidates[0]
            reason = "first candidate" if not exclude else "next after " + ", ".join(exclude)
        return RouteDecision(tool, strategy, tuple(candidates), reason)

    def _fastest(self, candidates: list[str]) -> tuple[str, str]:
        for name in candidates:
            if self._metrics[name].avg_duration is None:
                return name, "no data yet"
        good = [
            name
            for name in candidates
            if (self._metrics[name].success_rate or 0.0) >= self._min_success_rate
        ]
        if not good:
            best = max(candidates, key=lambda name: self._metrics[name].success_rate or 0.0)
            return best, "no tool above the success threshold; highest success rate"
        best = min(good, key=lambda name: self._metrics[name].avg_duration or 0.0)
        return best, f"lowest average duration {self._metrics[best].avg_duration:.3f}s"

    def started(self, tool: str) -> None:
        """Count an attempt of `tool` as running."""
        self._metrics[tool].running += 1

    def finished(self, tool: str, *, duration: float, ok: bool) -> None:
        """Fold a finished attempt of `tool` into its metrics."""
        metrics = self._metrics[tool]
        metrics.running -= 1
        if ok:
            metrics.successes += 1
        else:
            metrics.failures += 1
        if metrics.avg_duration is None:
            metrics.avg_duration = duration
        else:
            metrics.avg_duration += EWMA_WEIGHT * (duration - metrics.avg_duration)

    def metrics(self) -> Mapping[str, ToolMetrics]:
        """Current metrics per tool (live objects; do not mutate)."""
        return self._metrics

    def snapshot(self) -> dict[str, Any]:
        """Plain-data state to persist: metrics (without running counts) and positions."""
        return {
            "tools": {
                name: {
                    "successes": m.successes,
                    "failures": m.failures,
                    "avg_duration": m.avg_duration,
                }
                for name, m in self._metrics.items()
            },
            "positions": dict(self._positions),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load a `snapshot()`; tools and kinds this workflow no longer has are ignored."""
        for name, saved in state.get("tools", {}).items():
            metrics = self._metrics.get(name)
            if metrics is None:
                continue
            metrics.successes = int(saved.get("successes", 0))
            metrics.failures = int(saved.get("failures", 0))
            avg = saved.get("avg_duration")
            metrics.avg_duration = float(avg) if avg is not None else None
        for kind, position in state.get("positions", {}).items():
            if kind in self._routes:
                self._positions[kind] = int(position)
