"""The strategy registry, the router's admission of attempts per tool, and its RNG."""

from __future__ import annotations

import random
from collections.abc import Collection, Iterator, Mapping, Sequence

import pytest

from uet_trio.deciding.routing import Router, check_routing
from uet_trio.deciding.strategies import (
    STRATEGIES,
    RouteDecision,
    Strategy,
    ToolMetrics,
    register,
)
from uet_trio.errors import WorkflowError
from uet_trio.workflow.spec import RoutingRule, TaskSpec, ToolSpec, WorkflowSpec

NAMES = ("first", "round_robin", "least_loaded", "fastest")


def spec_for(
    strategy: str,
    tools: Sequence[str] = ("a", "b", "c"),
    *,
    limits: Mapping[str, int] | None = None,
) -> WorkflowSpec:
    """One task of kind ``k`` routed by `strategy` over `tools`."""
    limits = limits or {}
    return WorkflowSpec(
        name="strategies",
        tools=[
            ToolSpec(name=t, command=["true"], kinds=["k"], max_concurrency=limits.get(t))
            for t in tools
        ],
        routing=[RoutingRule(kind="k", strategy=strategy, tools=tools)],
        tasks=[TaskSpec(id="t", kind="k")],
    )


class TestRegistry:
    def test_every_name_resolves_to_its_class(self) -> None:
        """The four strategies are registered under their names, in the documented order."""
        assert tuple(STRATEGIES) == NAMES
        for name in NAMES:
            assert STRATEGIES[name].name == name
            spec = spec_for(name)
            check_routing(spec)
            router = Router(spec)
            assert router.route_of(spec.tasks[0]) == (name, ("a", "b", "c"))
            decision = router.choose(spec.tasks[0])
            assert decision is not None
            assert decision.strategy == name

    def test_unknown_strategy_is_a_workflow_error_naming_the_field(self) -> None:
        """check_routing and the Router refuse a name the registry does not hold."""
        spec = spec_for("random")
        message = (
            "unknown strategy 'random' (choose from first, round_robin, least_loaded, fastest)"
        )
        for check in (check_routing, Router):
            with pytest.raises(WorkflowError) as raised:
                check(spec)
            assert raised.value.message == message
            assert raised.value.field == "routing.k.strategy"
            assert str(raised.value) == f"field 'routing.k.strategy': {message}"

    def test_a_name_is_registered_once(self) -> None:
        """Registering a second class under a taken name fails and leaves the registry alone."""

        class Again(Strategy):
            name = "first"

        with pytest.raises(ValueError, match="'first' is already registered"):
            register(Again)
        assert STRATEGIES["first"] is not Again


class TestAdmission:
    @pytest.mark.parametrize("limit", [1, 2])
    def test_admits_up_to_max_concurrency(self, limit: int) -> None:
        """A tool admits attempts until `limit` run; a finished attempt frees a slot."""
        router = Router(spec_for("first", limits={"a": limit}))
        for _ in range(limit + 1):
            router.queued("a")
        for _ in range(limit):
            assert router.admits("a")
            router.started("a")
        assert not router.admits("a")
        assert router.admits("b")
        router.finished("a", duration=1.0, ok=False)
        assert router.admits("a")
        router.started("a")
        assert not router.admits("a")
        for _ in range(limit):
            router.finished("a", duration=1.0, ok=True)
        assert router.admits("a")
        assert router.metrics()["a"].running == 0
        assert router.metrics()["a"].queued == 0

    def test_a_tool_without_a_limit_always_admits(self) -> None:
        """No max_concurrency: any number of running attempts is admitted."""
        router = Router(spec_for("first"))
        for _ in range(1000):
            router.queued("a")
            router.started("a")
        assert router.admits("a")


class Draw(Strategy):
    """A test strategy: a candidate drawn at random from the router's RNG."""

    name = "test_draw"

    def prepare(self) -> None:
        self.by_tool = self.decisions("drawn")

    def choose(self) -> RouteDecision:
        return self.by_tool[self.context.rng.choice(self.candidates)]

    def choose_excluding(self, exclude: Collection[str]) -> RouteDecision | None:
        candidates, _ = self.remaining(exclude)
        if not candidates:
            return None
        return RouteDecision(self.context.rng.choice(candidates), self.name, candidates, "drawn")


@pytest.fixture
def draw() -> Iterator[type[Draw]]:
    """`Draw`, registered for the test only."""
    register(Draw)
    try:
        yield Draw
    finally:
        del STRATEGIES[Draw.name]


class TestRandomness:
    def test_a_strategy_draws_from_the_router_rng(self, draw: type[Draw]) -> None:
        """Same seed, same choices; the draws come from the RNG that was passed."""
        spec = spec_for(draw.name, ("a", "b", "c", "d"))
        task = spec.tasks[0]

        def choices(seed: int) -> list[str]:
            router = Router(spec, rng=random.Random(seed))
            return [router.choose(task).tool for _ in range(50)]  # type: ignore[union-attr]

        assert choices(7) == choices(7)
        assert choices(7) != choices(8)
        expected = random.Random(7)
        assert choices(7) == [expected.choice(("a", "b", "c", "d")) for _ in range(50)]
        assert Router(spec).choose(task, exclude={"a", "b", "c"}).tool == "d"  # type: ignore[union-attr]

    def test_without_an_rng_plans_are_reproducible(self, draw: type[Draw]) -> None:
        """Two routers built without an RNG make the same random choices."""
        spec = spec_for(draw.name, ("a", "b", "c", "d"))
        first, second = Router(spec), Router(spec)
        picks = [(first.choose(spec.tasks[0]), second.choose(spec.tasks[0])) for _ in range(50)]
        assert all(a == b for a, b in picks)
        assert len({a.tool for a, _ in picks if a is not None}) > 1

    def test_the_test_strategy_is_gone_afterwards(self) -> None:
        """The registry holds only the real strategies outside the fixture."""
        assert tuple(STRATEGIES) == NAMES


class TestMetrics:
    def test_saved_numbers_round_trip(self) -> None:
        """`saved` and `restore` carry successes, failures and the average, not live counts."""
        metrics = ToolMetrics(running=2, queued=3)
        metrics.record(duration=2.0, ok=True)
        metrics.record(duration=4.0, ok=True)
        metrics.record(duration=9.0, ok=False)
        assert metrics.saved() == {"successes": 2, "failures": 1, "avg_duration": 2.4}
        again = ToolMetrics()
        again.restore(metrics.saved())
        assert (again.successes, again.failures, again.avg_duration) == (2, 1, 2.4)
        assert (again.running, again.queued) == (0, 0)
        assert again.success_rate == pytest.approx(2 / 3)
        assert again.reaches(0.6) and not again.reaches(0.7)
        assert ToolMetrics().success_rate is None
        assert ToolMetrics().reaches(1.0)
