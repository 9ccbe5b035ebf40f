"""
`uet_trio.predict` and `uet_trio.run_durations`: predictions under a mock clock, exact.

The durations below are binary fractions, so every predicted time is exact
and compared with ``==``: the simulation adds them on a virtual clock, and
nothing real runs or sleeps.
"""

from __future__ import annotations

from typing import Any

import pytest

from uet_trio import (
    PredictedStep,
    Store,
    WorkflowSpec,
    parse_workflow,
    predict,
    run_durations,
)
from uet_trio.testing import FakeRunner, Outcome, simulate

FORK: dict[str, Any] = {
    "workflow": {"name": "fork"},
    "tasks": [
        {"id": "setup", "command": ["true"]},
        {"id": "long", "command": ["true"], "depends_on": ["setup"]},
        {"id": "short", "command": ["true"], "depends_on": ["setup"]},
        {"id": "mid", "command": ["true"], "depends_on": ["setup"]},
        {"id": "finish", "command": ["true"], "depends_on": ["long", "short", "mid"]},
    ],
}
DURATIONS = {"setup": 0.25, "long": 1.0, "short": 0.5, "mid": 0.75, "finish": 0.25}


@pytest.fixture
def fork() -> WorkflowSpec:
    return parse_workflow(FORK)


class TestPredict:
    def test_two_workers_in_declaration_order_without_history(self, fork: WorkflowSpec) -> None:
        """With no history to weigh the order, long and short start first; mid waits."""
        prediction = predict(fork, workers=2, durations=DURATIONS)
        assert prediction.wall == 1.75
        assert prediction.busy == 2.75
        assert prediction.parallelism == 2.75 / 1.75
        assert prediction.critical_path == (
            PredictedStep(task_id="setup", start=0.0, end=0.25, waited=0.0),
            PredictedStep(task_id="mid", start=0.75, end=1.5, waited=0.5),
            PredictedStep(task_id="finish", start=1.5, end=1.75, waited=0.0),
        )
        assert prediction.estimated == ()
        assert prediction.workers == 2

    def test_history_orders_the_longest_branches_first(self, fork: WorkflowSpec) -> None:
        """Weighted by recent durations, long and mid start first; short waits for a worker."""
        history = {task: [seconds] for task, seconds in DURATIONS.items()}
        prediction = predict(fork, workers=2, durations=DURATIONS, history=history)
        assert prediction.wall == 1.75
        assert prediction.critical_path == (
            PredictedStep(task_id="setup", start=0.0, end=0.25, waited=0.0),
            PredictedStep(task_id="short", start=1.0, end=1.5, waited=0.75),
            PredictedStep(task_id="finish", start=1.5, end=1.75, waited=0.0),
        )

    def test_one_worker_takes_the_sum_and_enough_workers_the_longest_chain(
        self, fork: WorkflowSpec
    ) -> None:
        assert predict(fork, workers=1, durations=DURATIONS).wall == 2.75
        wide = predict(fork, workers=3, durations=DURATIONS)
        assert wide.wall == 1.5
        assert [step.task_id for step in wide.critical_path] == ["setup", "long", "finish"]

    def test_without_records_every_task_takes_one_second(self, fork: WorkflowSpec) -> None:
        prediction = predict(fork, workers=3)
        assert prediction.wall == 3.0
        assert prediction.estimated == ("setup", "long", "short", "mid", "finish")
        assert set(prediction.durations.values()) == {1.0}

    def test_history_medians_and_unrecorded_tasks_take_their_median(
        self, fork: WorkflowSpec
    ) -> None:
        """Medians of recent runs; a task with none takes the median of the others."""
        history = {"setup": [0.25, 0.75, 0.5], "long": [2.0], "short": [0.5, 0.5]}
        prediction = predict(fork, workers=3, history=history)
        assert prediction.durations == {
            "setup": 0.5,
            "long": 2.0,
            "short": 0.5,
            "mid": 0.5,
            "finish": 0.5,
        }
        assert prediction.estimated == ("mid", "finish")
        assert prediction.wall == 3.0

    def test_the_same_inputs_give_the_same_prediction(self, fork: WorkflowSpec) -> None:
        assert predict(fork, workers=2, durations=DURATIONS) == predict(
            fork, workers=2, durations=DURATIONS
        )


class TestRunDurations:
    def test_last_successful_attempt_else_last_attempt(self) -> None:
        """A retried task counts its successful attempt; a task that failed, its last one."""
        spec = parse_workflow(
            {
                "workflow": {"name": "retried"},
                "tasks": [
                    {"id": "flaky", "command": ["true"], "retries": 1},
                    {"id": "broken", "command": ["true"]},
                    {"id": "never", "command": ["true"], "depends_on": ["broken"]},
                ],
            }
        )
        runner = FakeRunner(
            {
                "flaky": [Outcome(0.5, exit_code=1), Outcome(0.25)],
                "broken": Outcome(0.75, exit_code=2),
            }
        )
        with Store.memory() as store:
            result = simulate(spec, runner, store=store)
            assert run_durations(store, result.run_id) == {"flaky": 0.25, "broken": 0.75}
