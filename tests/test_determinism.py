"""
Simulated schedules are exactly reproducible, whatever order Trio wakes tasks in.

Each hypothesis example builds a random DAG with a scripted outcome per
attempt (durations drawn from a few integers, so many tasks end at the same
virtual instant; failures with retries and jittered backoff; timeouts), then
simulates it three times. Between runs, Trio's own scheduling order is
perturbed by re-seeding the RNG that shuffles each batch of runnable tasks
(hypothesis makes that shuffle seedable). Every run must produce the same
events: kinds, task ids, attempts, virtual times, sequence numbers and data.
"""

from __future__ import annotations

import attrs
import trio._core._run as trio_run  # the batch-shuffling RNG lives here
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uet_trio import EventKind, RetryPolicy, TaskSpec, TaskState, WorkflowSpec
from uet_trio.testing import FakeRunner, Outcome, Simulation, simulate

SCHEDULER_SEEDS = (1, 2, 3)


@attrs.frozen
class Case:
    """A generated workflow, its script and a worker count."""

    spec: WorkflowSpec
    script: dict[str, list[Outcome]]
    workers: int


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Random DAGs of 1-14 tasks with ties, failures, retries with jitter and timeouts."""
    n = draw(st.integers(1, 14))
    tasks = []
    script: dict[str, list[Outcome]] = {}
    for i in range(n):
        task_id = f"t{i:02d}"
        depends_on = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        retry = None
        if draw(st.booleans()):
            retry = RetryPolicy(
                retries=draw(st.integers(1, 3)),
                initial=draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])),
                factor=2.0,
                jitter=draw(st.sampled_from([0.0, 0.25, 0.5])),
                retry_on=draw(st.sampled_from([(), (1,), (1, "timeout")])),
            )
        tasks.append(
            TaskSpec(
                id=task_id,
                command=["true"],
                depends_on=[f"t{d:02d}" for d in sorted(depends_on)],
                priority=draw(st.integers(0, 2)),
                timeout=draw(st.sampled_from([None, None, 2.5])),
                retry=retry,
                continue_on_failure=draw(st.booleans()),
            )
        )
        script[task_id] = draw(
            st.lists(
                st.builds(
                    Outcome,
                    st.sampled_from([0.0, 1.0, 1.0, 2.0, 3.0]),
                    exit_code=st.sampled_from([0, 0, 0, 1, 2]),
                    timed_out=st.sampled_from([False, False, False, True]),
                ),
                min_size=1,
                max_size=4,
            )
        )
    spec = WorkflowSpec(name="random", tasks=tasks, fail_fast=draw(st.booleans()))
    return Case(spec=spec, script=script, workers=draw(st.integers(1, 4)))


def simulate_with_scheduler_seed(case: Case, seed: int) -> Simulation:
    """Simulate `case` after seeding Trio's run-queue shuffle with `seed`."""
    trio_run._r.seed(seed)
    return simulate(case.spec, FakeRunner(case.script), max_workers=case.workers)


class TestDeterminism:
    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        derandomize=True,
    )
    @given(cases())
    def test_same_spec_and_script_give_identical_events(self, case: Case) -> None:
        """Three runs with three Trio scheduling orders give one event sequence."""
        first = simulate_with_scheduler_seed(case, SCHEDULER_SEEDS[0])
        assert first.events[-1].kind is EventKind.RUN_FINISHED
        assert [event.seq for event in first.events] == list(range(1, len(first.events) + 1))
        for seed in SCHEDULER_SEEDS[1:]:
            again = simulate_with_scheduler_seed(case, seed)
            assert again.events == first.events
            assert again.states == first.states
            assert again.wall == first.wall

    def test_perturbation_changes_trio_order(self) -> None:
        """The seeds really change the order Trio runs workers in, yet not the events."""
        case = Case(
            spec=WorkflowSpec(
                name="wide", tasks=[TaskSpec(id=f"t{i}", command=["true"]) for i in range(8)]
            ),
            script={f"t{i}": [Outcome(1.0)] for i in range(8)},
            workers=8,
        )
        execution_orders = set()
        event_sequences = []
        for seed in SCHEDULER_SEEDS:
            trio_run._r.seed(seed)
            runner = FakeRunner(case.script)
            result = simulate(case.spec, runner, max_workers=case.workers)
            execution_orders.add(tuple(task_id for task_id, _, _ in runner.calls))
            event_sequences.append(result.events)
        assert len(execution_orders) > 1
        assert all(events == event_sequences[0] for events in event_sequences)

    def test_ties_are_processed_in_canonical_order(self) -> None:
        """Tasks ending at the same instant finish in declaration order, not arrival order."""
        tasks = [TaskSpec(id=f"t{i}", command=["true"]) for i in range(6)]
        spec = WorkflowSpec(name="ties", tasks=tasks)
        for seed in SCHEDULER_SEEDS:
            trio_run._r.seed(seed)
            result = simulate(spec, FakeRunner(default=Outcome(1.0)), max_workers=6)
            finished = [e.task_id for e in result.events if e.kind is EventKind.ATTEMPT_FINISHED]
            assert finished == [f"t{i}" for i in range(6)]
            assert {e.time for e in result.events if e.kind is EventKind.TASK_SUCCEEDED} == {1.0}

    def test_retry_backoff_is_seeded(self) -> None:
        """Jittered backoff follows the run seed: same seed same delays, other seed other delays."""
        spec = WorkflowSpec(
            name="retry",
            tasks=[
                TaskSpec(
                    id="flaky",
                    command=["true"],
                    retry=RetryPolicy(retries=3, initial=1.0, factor=2.0, jitter=0.5),
                )
            ],
        )
        script = {"flaky": [Outcome(1.0, exit_code=1)] * 3 + [Outcome(1.0)]}

        def delays(seed: int) -> list[float]:
            result = simulate(spec, FakeRunner(script), max_workers=1, seed=seed)
            assert result.states == {"flaky": TaskState.SUCCEEDED}
            return [e.data["delay"] for e in result.events if e.kind is EventKind.TASK_RETRY_WAIT]

        assert delays(7) == delays(7)
        assert delays(7) != delays(8)
        for base, delay in zip((1.0, 2.0, 4.0), delays(7), strict=True):
            assert base * 0.5 <= delay <= base * 1.5
