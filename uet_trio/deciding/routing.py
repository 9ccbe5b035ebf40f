"""
The router: which tool runs a task of a given kind.

The route table (kind -> strategy and candidate tools, plus one entry per task
that pins a tool) is compiled once from the spec. Decisions and metrics live
in memory: one fixed-size `ToolMetrics` per tool of the workflow and one
round-robin position per kind, both created up front, so memory does not grow
with the number of decisions, tasks or outcomes. The engine saves `snapshot()`
inside the persister's transactions (never one write per decision) and a later
run of the same workflow may `restore()` it, which is how ``fastest`` learns
across runs. No Trio and no I/O here.

The engine tells the router about each task's life on a tool: `queued` when a
routed task enters the ready set, `started` when its attempt is dispatched,
`finished` when the attempt ends. ``least_loaded`` counts both queued and
running work, so a burst of tasks that become ready together is spread over
the tools instead of all landing on the one that was idle a moment ago.

Every decision a route can make without excluded tools is built once, when
the route is compiled (one `RouteDecision` per candidate and reason), so
`choose` only compares counters and returns a ready-made object: no
allocation per decision, hundreds of thousands of decisions per second.
The reasons therefore name the rule that decided; the numbers behind it are
the tool metrics (`uet tools`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import attrs

from ..workflow.spec import TaskSpec, WorkflowSpec

EWMA_WEIGHT = 0.2
"""Weight of the newest duration in a tool's moving average."""

DEFAULT_MIN_SUCCESS_RATE = 0.5
"""``fastest`` only considers tools whose success rate is at least this."""

PINNED = "pinned"
"""The strategy reported for a task that names its tool."""


@attrs.frozen
class RouteDecision:
    """A routing choice and why it was made (recorded as a `route_chosen` event)."""

    tool: str
    strategy: str
    candidates: tuple[str, ...]
    """The tools that were eligible (after excluding exhausted ones), in order."""
    reason: str


@attrs.define
class ToolMetrics:
    """Running statistics of one tool: a fixed set of numbers, whatever the history."""

    successes: int = 0
    failures: int = 0
    running: int = 0
    """Attempts of this tool executing now (not persisted)."""
    queued: int = 0
    """Tasks routed to this tool, waiting for a worker or a slot (not persisted)."""
    avg_duration: float | None = None
    """Exponentially weighted moving average of successful attempt durations, in seconds."""

    @property
    def finished(self) -> int:
        """Attempts that ended, successfully or not."""
        return self.successes + self.failures

    @property
    def load(self) -> int:
        """Work routed to this tool and not finished: queued plus running."""
        return self.queued + self.running

    @property
    def success_rate(self) -> float | None:
        """Share of finished attempts that succeeded, or None before the first one."""
        total = self.successes + self.failures
        return self.successes / total if total else None


FIRST_CANDIDATE = "first candidate"
PINNED_BY_TASK = "pinned by the task"
LEAST_LOADED = "fewest queued and running tasks"
EXPLORING = "exploring: no finished attempt yet"
FASTEST = "lowest moving-average duration among tools at or above the success threshold"
BEST_RATE = "no tool reaches the success threshold; highest success rate"
_REASONS = {
    "least_loaded": (LEAST_LOADED,),
    "fastest": (EXPLORING, FASTEST, BEST_RATE),
}


@attrs.frozen
class _Route:
    strategy: str
    candidates: tuple[str, ...]
    turns: tuple[RouteDecision, ...]
    """Round robin: the decision of each turn. first and pinned: the one decision."""
    by_reason: Mapping[str, Mapping[str, RouteDecision]]
    """least_loaded and fastest: reason -> tool -> decision."""
    pairs: tuple[tuple[str, ToolMetrics], ...]
    """Each candidate with its (live) metrics, so a decision looks nothing up."""


def _compile_route(
    strategy: str, candidates: tuple[str, ...], metrics: Mapping[str, ToolMetrics]
) -> _Route:
    """Build every decision of the route that involves no excluded tool."""
    if strategy == "round_robin":
        count = len(candidates)
        turns = tuple(
            RouteDecision(name, strategy, candidates, f"turn {turn + 1} of {count}")
            for turn, name in enumerate(candidates)
        )
    else:
        reason = PINNED_BY_TASK if strategy == PINNED else FIRST_CANDIDATE
        turns = (RouteDecision(candidates[0], strategy, candidates, reason),)
    by_reason = {
        reason: {name: RouteDecision(name, strategy, candidates, reason) for name in candidates}
        for reason in _REASONS.get(strategy, ())
    }
    pairs = tuple((name, metrics[name]) for name in candidates)
    return _Route(strategy, candidates, turns, by_reason, pairs)


class Router:
    """
    Picks a tool for each routed task by its kind's strategy.

    Strategies:

    - ``first``: the first candidate not excluded.
    - ``round_robin``: rotate through the kind's candidates; a fallback skips
      excluded tools without disturbing the rotation of the others.
    - ``least_loaded``: fewest queued plus running tasks; ties by order.
    - ``fastest``: tools with no finished attempt are explored first (the
      least loaded of them); then the lowest moving-average duration among
      tools whose success rate is at least `min_success_rate`; if none
      qualifies, the highest success rate.

    A task that pins a tool gets it (strategy ``pinned``). Given the same state
    and the same sequence of calls, the decisions are the same.
    """

    def __init__(
        self, spec: WorkflowSpec, *, min_success_rate: float = DEFAULT_MIN_SUCCESS_RATE
    ) -> None:
        self._min_success_rate = min_success_rate
        self._metrics = {name: ToolMetrics() for name in spec.tools}
        self._positions: dict[str, int] = {}
        self._changes = 0
        self._routes: dict[str, _Route] = {}
        self._pinned: dict[str, _Route] = {}
        for task in spec.tasks:
            if task.kind is None:
                continue
            if task.tool is not None:
                self._pinned[task.id] = _compile_route(PINNED, (task.tool,), self._metrics)
            elif task.kind not in self._routes:
                rule = spec.routing.get(task.kind)
                candidates = tuple(tool.name for tool in spec.candidate_tools(task))
                strategy = rule.strategy if rule else "first"
                self._routes[task.kind] = _compile_route(strategy, candidates, self._metrics)
        for kind in self._routes:
            self._positions[kind] = 0

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

        Only ``round_robin`` changes state here (its position); call `queued`
        once the task is handed to the chosen tool. Returns None when every
        candidate is excluded (the task has no tool left).
        """
        route = self._route(task)
        if exclude:
            return self._choose_excluding(task, route, exclude)
        strategy = route.strategy
        if strategy == "round_robin":
            assert task.kind is not None
            position = self._positions[task.kind]
            self._positions[task.kind] = (position + 1) % len(route.candidates)
            self._changes += 1
            return route.turns[position]
        if strategy == "least_loaded":
            return route.by_reason[LEAST_LOADED][self._least_loaded(route.pairs)]
        if strategy == "fastest":
            tool, reason = self._fastest(route.pairs)
            return route.by_reason[reason][tool]
        return route.turns[0]

    def _choose_excluding(
        self, task: TaskSpec, route: _Route, exclude: Collection[str]
    ) -> RouteDecision | None:
        """The slow path of `choose`, for fallbacks: candidates are filtered first."""
        candidates = tuple(name for name in route.candidates if name not in exclude)
        if not candidates:
            return None
        pairs = tuple(pair for pair in route.pairs if pair[0] not in exclude)
        strategy = route.strategy
        if strategy == "round_robin":
            assert task.kind is not None
            count = len(route.candidates)
            position = self._positions[task.kind]
            turn = next(
                turn
                for turn in ((position + step) % count for step in range(count))
                if route.candidates[turn] not in exclude
            )
            self._positions[task.kind] = (turn + 1) % count
            self._changes += 1
            tool, reason = route.candidates[turn], f"turn {turn + 1} of {count}"
        elif strategy == "least_loaded":
            tool, reason = self._least_loaded(pairs), LEAST_LOADED
        elif strategy == "fastest":
            tool, reason = self._fastest(pairs)
        else:
            tool = candidates[0]
            reason = "first candidate left after " + ", ".join(sorted(exclude))
        return RouteDecision(tool, strategy, candidates, reason)

    def _least_loaded(self, pairs: tuple[tuple[str, ToolMetrics], ...]) -> str:
        best, best_metrics = pairs[0]
        best_load = best_metrics.queued + best_metrics.running
        for name, m in pairs:
            load = m.queued + m.running
            if load < best_load:
                best, best_load = name, load
        return best

    def _fastest(self, pairs: tuple[tuple[str, ToolMetrics], ...]) -> tuple[str, str]:
        threshold = self._min_success_rate
        explore: str | None = None
        explore_load = 0
        fast: str | None = None
        fast_avg = math.inf
        # Comparisons only: no arithmetic on the (large) counters unless a tool
        # beats the best average so far, so a decision allocates nothing.
        for name, m in pairs:
            if not m.successes and not m.failures:
                load = m.queued + m.running
                if explore is None or load < explore_load:
                    explore, explore_load = name, load
            elif explore is None:
                avg = m.avg_duration
                if (
                    avg is not None
                    and avg < fast_avg
                    and m.successes >= threshold * (m.successes + m.failures)
                ):
                    fast, fast_avg = name, avg
        if explore is not None:
            return explore, EXPLORING
        if fast is not None:
            return fast, FASTEST
        best = max(pairs, key=lambda pair: pair[1].success_rate or 0.0)[0]
        return best, BEST_RATE

    def queued(self, tool: str) -> None:
        """Count a task routed to `tool` as waiting to start."""
        self._metrics[tool].queued += 1

    def started(self, tool: str) -> None:
        """Move one queued task of `tool` to running."""
        metrics = self._metrics[tool]
        metrics.queued -= 1
        metrics.running += 1

    def finished(self, tool: str, *, duration: float, ok: bool) -> None:
        """Fold a finished attempt of `tool` into its metrics."""
        metrics = self._metrics[tool]
        metrics.running -= 1
        self._changes += 1
        if not ok:
            metrics.failures += 1
            return
        metrics.successes += 1
        if metrics.avg_duration is None:
            metrics.avg_duration = duration
        else:
            metrics.avg_duration += EWMA_WEIGHT * (duration - metrics.avg_duration)

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
        return self._changes

    def snapshot(self) -> dict[str, Any]:
        """Plain-data state to persist: metrics (without live counts) and positions."""
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
        self._changes += 1
        for name, saved in state.get("tools", {}).items():
            metrics = self._metrics.get(name)
            if metrics is None:
                continue
            metrics.successes = int(saved.get("successes", 0))
            metrics.failures = int(saved.get("failures", 0))
            avg = saved.get("avg_duration")
            metrics.avg_duration = float(avg) if avg is not None else None
        for kind, position in state.get("positions", {}).items():
            route = self._routes.get(kind)
            if route is not None:
                self._positions[kind] = int(position) % len(route.candidates)
