"""
Simulated runs: a workflow through the real engine with scripted attempts, under a mock clock.

`simulate` runs a workflow with a `FakeRunner` under
``trio.testing.MockClock(autojump_threshold=0)``, so virtual time passes
instantly and the event sequence is identical run after run; it is how
tests reproduce schedules and how `uet simulate` predicts a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import trio
import trio.testing

from ..recording.events import Event
from ..recording.states import RunStatus, TaskState
from ..recording.store import Store
from ..workflow.spec import WorkflowSpec
from .engine import RunResult, open_run
from .executors.scripted import FakeRunner


@attrs.frozen
class Simulation:
    """What a simulated run did."""

    run_id: str
    status: RunStatus
    events: tuple[Event, ...]
    """Every event of the run, in sequence order (times on the run's clock)."""
    states: Mapping[str, TaskState]
    """Final state of every task."""
    wall: float
    """Virtual duration of the run, in seconds."""


async def simulate_async(
    spec: WorkflowSpec,
    runner: FakeRunner,
    *,
    max_workers: int | None = None,
    store: Store | None = None,
    run_id: str = "simulated",
    seed: int = 0,
    **options: Any,
) -> Simulation:
    """
    Run `spec` with `runner` in the current Trio run and collect its events.

    For exact virtual times, call this under a `MockClock` with
    ``autojump_threshold=0`` (as `simulate` does; pytest-trio's
    ``autojump_clock`` fixture gives one). `max_workers` defaults to the
    workflow's, else one worker per task (never the machine's CPU count, so a
    test gives the same answer everywhere). The run is recorded in `store`
    (default: a private in-memory store, closed afterwards). Extra keyword
    options go to `open_run`.
    """
    own_store = store is None
    active = store if store is not None else Store.memory()
    events: list[Event] = []
    try:
        async with open_run(
            spec,
            store=active,
            runner=runner,
            max_workers=max_workers or spec.max_workers or len(spec.tasks),
            run_id=run_id,
            seed=seed,
            # A scripted attempt writes no file: no output is checked or expected.
            check_outputs=False,
            **options,
        ) as run:
            async for event in run.events():
                events.append(event)
        result: RunResult | None = run.result
        assert result is not None
    finally:
        if own_store:
            active.close()
    return Simulation(
        run_id=result.run_id,
        status=result.status,
        events=tuple(events),
        states=result.states,
        wall=result.wall,
    )


def simulate(
    spec: WorkflowSpec,
    runner: FakeRunner,
    *,
    max_workers: int | None = None,
    seed: int = 0,
    **options: Any,
) -> Simulation:
    """
    Run `spec` with `runner` under a fresh autojumping `MockClock`, in its own `trio.run`.

    A plain function, so it works from any test, Trio or not. The same spec,
    script and seed always give the same `Simulation.events`, whatever order
    Trio runs its tasks in. Options are those of `simulate_async`.
    """
    return trio.run(
        lambda: simulate_async(spec, runner, max_workers=max_workers, seed=seed, **options),
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
