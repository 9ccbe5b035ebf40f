"""
Routing strategies: how a kind picks one of its candidate tools, one class per strategy.

`STRATEGIES` maps each name a routing rule may give (``strategy = "NAME"``)
to its class; the router builds one instance per routed kind and asks it
once per routed task. A new strategy is one `Strategy` subclass here,
decorated with `register`: the router, the workflow check and the error
listing the choices all read the registry.

`choose` runs on the scheduler's hot path, once per routed task. So a
strategy builds, when its route is compiled, every `RouteDecision` it can
return without excluded tools (one per candidate and reason), and `choose`
only compares the candidates' live `ToolMetrics` and returns one of those
objects: no allocation per decision. The reasons name the rule that decided;
the numbers behind it are the tool metrics. `choose_excluding`, used only
for fallbacks, may build new decisions.

A strategy that needs randomness draws from `StrategyContext.rng`, the run's
seeded RNG, so the same seed gives the same decisions. No Trio, no clock and
no I/O here.
"""

from __future__ import annotations

import abc
import math
import random
from collections.abc import Collection, Mapping
from typing import Any, ClassVar, TypeVar

import attrs

EWMA_WEIGHT = 0.2
"""Weight of the newest duration in a tool's moving average."""

DEFAULT_MIN_SUCCESS_RATE = 0.5
"""``fastest`` only considers tools whose success rate is at least this."""

PINNED = "pinned"
"""The strategy reported for a task that names its tool."""

FIRST_CANDIDATE = "first candidate"
PINNED_BY_TASK = "pinned by the task"
LEAST_LOADED = "fewest queued and running tasks"
EXPLORING = "exploring: no finished attempt yet"
FASTEST = "lowest moving-average duration among tools at or above the success threshold"
BEST_RATE = "no tool reaches the success threshold; highest success rate"


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

    def reaches(self, rate: float) -> bool:
        """
        Whether `success_rate` is at least `rate` (always, before the first finished attempt).

        Compared without dividing, so the check allocates nothing on the hot path.
        """
        return self.successes >= rate * (self.successes + self.failures)

    def record(self, *, duration: float, ok: bool) -> None:
        """Fold one finished attempt's outcome into the counts and the moving average."""
        if not ok:
            self.failures += 1
            return
        self.successes += 1
        if self.avg_duration is None:
            self.avg_duration = duration
        else:
            self.avg_duration += EWMA_WEIGHT * (duration - self.avg_duration)

    def saved(self) -> dict[str, Any]:
        """The numbers that outlive a run, as plain data (no live counts)."""
        return {
            "successes": self.successes,
            "failures": self.failures,
            "avg_duration": self.avg_duration,
        }

    def restore(self, saved: Mapping[str, Any]) -> None:
        """Take the numbers of a `saved()` entry; missing ones start from zero."""
        self.successes = int(saved.get("successes", 0))
        self.failures = int(saved.get("failures", 0))
        avg = saved.get("avg_duration")
        self.avg_duration = float(avg) if avg is not None else None


@attrs.frozen
class StrategyContext:
    """What every strategy of one router shares, besides the tools' metrics."""

    rng: random.Random
    """The run's seeded RNG: the only source of randomness a strategy may use."""
    min_success_rate: float = DEFAULT_MIN_SUCCESS_RATE
    """The success rate a tool needs for ``fastest`` to rank it by speed."""


Pairs = tuple[tuple[str, ToolMetrics], ...]
"""Candidates with their live metrics, in candidate order."""


class Strategy(abc.ABC):
    """
    One kind's strategy over its candidate tools (at least one).

    Subclasses set `name`, build their decisions in `prepare` (called once,
    when the router is built) and implement `choose` and `choose_excluding`.

    Attributes:
        candidates: the tool names, in the rule's order.
        pairs: each candidate with its live metrics, so a decision looks nothing up.
        context: the router's shared settings and RNG.
        position: an integer the router saves per kind across runs
            (``round_robin``'s next turn); kept for every kind whatever its
            strategy, so a kind whose strategy changes and changes back
            resumes where it was.
        changes: moves whenever `position` changes, so the router knows its
            state needs saving.
    """

    __slots__ = ("candidates", "changes", "context", "pairs", "position")

    name: ClassVar[str]
    """What a routing rule's ``strategy`` says to get this class, and what events record."""

    def __init__(
        self,
        candidates: tuple[str, ...],
        metrics: Mapping[str, ToolMetrics],
        context: StrategyContext,
    ) -> None:
        self.candidates = candidates
        self.pairs: Pairs = tuple((name, metrics[name]) for name in candidates)
        self.context = context
        self.position = 0
        self.changes = 0
        self.prepare()

    @abc.abstractmethod
    def prepare(self) -> None:
        """Build the decisions `choose` returns, once, when the router is built."""

    def decisions(self, reason: str) -> dict[str, RouteDecision]:
        """One prebuilt decision per candidate for `reason`: tool -> decision."""
        return {
            tool: RouteDecision(tool, self.name, self.candidates, reason)
            for tool in self.candidates
        }

    @abc.abstractmethod
    def choose(self) -> RouteDecision:
        """The decision for a task with no excluded tool (the hot path: allocate nothing)."""

    @abc.abstractmethod
    def choose_excluding(self, exclude: Collection[str]) -> RouteDecision | None:
        """The decision for a fallback, skipping `exclude`; None when no candidate is left."""

    def remaining(self, exclude: Collection[str]) -> tuple[tuple[str, ...], Pairs]:
        """The candidates not in `exclude`, as names and as (name, metrics) pairs."""
        pairs = tuple(pair for pair in self.pairs if pair[0] not in exclude)
        return tuple(name for name, _ in pairs), pairs


STRATEGIES: dict[str, type[Strategy]] = {}
"""Every strategy a routing rule may name, in the order error messages list them."""


S = TypeVar("S", bound=type[Strategy])


def register(cls: S) -> S:
    """
    Add `cls` to `STRATEGIES` under its `name` (a class decorator).

    Raises:
        ValueError: another strategy already has that name.
    """
    if cls.name in STRATEGIES:
        raise ValueError(f"strategy {cls.name!r} is already registered")
    STRATEGIES[cls.name] = cls
    return cls


@register
class First(Strategy):
    """The first candidate not excluded."""

    __slots__ = ("decision",)

    name = "first"
    reason: ClassVar[str] = FIRST_CANDIDATE

    def prepare(self) -> None:
        self.decision = RouteDecision(self.candidates[0], self.name, self.candidates, self.reason)

    def choose(self) -> RouteDecision:
        return self.decision

    def choose_excluding(self, exclude: Collection[str]) -> RouteDecision | None:
        candidates, _ = self.remaining(exclude)
        if not candidates:
            return None
        reason = "first candidate left after " + ", ".join(sorted(exclude))
        return RouteDecision(candidates[0], self.name, candidates, reason)


class Pinned(First):
    """A task that names its tool: that tool, the only candidate (not a rule's choice)."""

    __slots__ = ()

    name = PINNED
    reason = PINNED_BY_TASK


@register
class RoundRobin(Strategy):
    """The next candidate in turn; a fallback skips excluded tools without disturbing the turn."""

    __slots__ = ("turns",)

    name = "round_robin"

    def prepare(self) -> None:
        self.turns = tuple(
            RouteDecision(tool, self.name, self.candidates, _turn(turn, len(self.candidates)))
            for turn, tool in enumerate(self.candidates)
        )

    def choose(self) -> RouteDecision:
        position = self.position
        self.position = (position + 1) % len(self.turns)
        self.changes += 1
        return self.turns[position]

    def choose_excluding(self, exclude: Collection[str]) -> RouteDecision | None:
        candidates, _ = self.remaining(exclude)
        if not candidates:
            return None
        count = len(self.candidates)
        turn = next(
            turn
            for turn in ((self.position + step) % count for step in range(count))
            if self.candidates[turn] not in exclude
        )
        self.position = (turn + 1) % count
        self.changes += 1
        return RouteDecision(self.candidates[turn], self.name, candidates, _turn(turn, count))


def _turn(turn: int, count: int) -> str:
    return f"turn {turn + 1} of {count}"


@register
class LeastLoaded(Strategy):
    """The candidate with the fewest queued plus running tasks; ties go to the earlier one."""

    __slots__ = ("by_tool",)

    name = "least_loaded"

    def prepare(self) -> None:
        self.by_tool = self.decisions(LEAST_LOADED)

    def choose(self) -> RouteDecision:
        return self.by_tool[_least_loaded(self.pairs)]

    def choose_excluding(self, exclude: Collection[str]) -> RouteDecision | None:
        candidates, pairs = self.remaining(exclude)
        if not candidates:
            return None
        return RouteDecision(_least_loaded(pairs), self.name, candidates, LEAST_LOADED)


def _least_loaded(pairs: Pairs) -> str:
    best, best_metrics = pairs[0]
    best_load = best_metrics.queued + best_metrics.running
    for name, m in pairs:
        load = m.queued + m.running
        if load < best_load:
            best, best_load = name, load
    return best


@register
class Fastest(Strategy):
    """
    Explore, then exploit: untried tools first, then the lowest average duration.

    A candidate with no finished attempt is taken first (the least loaded of
    them), so a burst spreads over the untried tools. Otherwise the lowest
    moving-average duration among candidates whose success rate reaches the
    context's threshold; if none does, the highest success rate.
    """

    __slots__ = ("by_reason",)

    name = "fastest"

    def prepare(self) -> None:
        self.by_reason = {
            reason: self.decisions(reason) for reason in (EXPLORING, FASTEST, BEST_RATE)
        }

    def choose(self) -> RouteDecision:
        tool, reason = self.rank(self.pairs)
        return self.by_reason[reason][tool]

    def choose_excluding(self, exclude: Collection[str]) -> RouteDecision | None:
        candidates, pairs = self.remaining(exclude)
        if not candidates:
            return None
        tool, reason = self.rank(pairs)
        return RouteDecision(tool, self.name, candidates, reason)

    def rank(self, pairs: Pairs) -> tuple[str, str]:
        """The chosen tool among `pairs` and the reason it was chosen."""
        threshold = self.context.min_success_rate
        explore: str | None = None
        explore_load = 0
        fast: str | None = None
        fast_avg = math.inf
        # Comparisons only, and the success rate is checked only for a tool
        # that beats the best average so far, so a decision allocates nothing.
        for name, m in pairs:
            if not m.successes and not m.failures:
                load = m.queued + m.running
                if explore is None or load < explore_load:
                    explore, explore_load = name, load
            elif explore is None:
                avg = m.avg_duration
                if avg is not None and avg < fast_avg and m.reaches(threshold):
                    fast, fast_avg = name, avg
        if explore is not None:
            return explore, EXPLORING
        if fast is not None:
            return fast, FASTEST
        return max(pairs, key=_rate_or_zero)[0], BEST_RATE


def _rate_or_zero(pair: tuple[str, ToolMetrics]) -> float:
    return pair[1].success_rate or 0.0
