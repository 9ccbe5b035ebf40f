"""
How long would a workflow take on N workers? A prediction from recorded durations.

`predict` runs the workflow through the real engine and scheduler with the
scripted `FakeRunner` under a mock clock (`uet_trio.running.simulation`),
so nothing is executed and the answer comes at once, exactly the same every
time. Each task takes the duration it took in a recorded run: one run's
(`run_durations`), or else the median of the workflow's recent runs
(`Store.recent_durations`). Tasks with no record take the median of those
that have one, as `task_weights` weighs tasks for the dispatch order. Ready
tasks are ordered as the next real run would order them.
Retries are not replayed: every task succeeds on its first attempt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from ..deciding.priority import task_weights
from ..recording.report import critical_path, parallelism
from ..recording.store import Store
from ..workflow.graph import compile_graph
from ..workflow.spec import WorkflowSpec
from .executors.scripted import FakeRunner, Outcome
from .preparation import worker_count
from .simulation import simulate


@attrs.frozen(kw_only=True)
class PredictedStep:
    """One task on the predicted critical path; times are seconds since the run's start."""

    task_id: str
    start: float
    end: float
    waited: float
    """Seconds between the end of the task that released it (or the start) and its start."""


@attrs.frozen(kw_only=True)
class Prediction:
    """A simulated run of a workflow on a number of workers."""

    workers: int
    wall: float
    """Predicted wall time, in seconds."""
    busy: float
    """The sum of the tasks' durations, in seconds."""
    parallelism: float
    """Busy seconds per second of wall time (0 when the wall time is 0)."""
    critical_path: tuple[PredictedStep, ...]
    """The chain of tasks that bounded the wall time, first task first."""
    durations: Mapping[str, float]
    """The duration each task was given, by task id."""
    estimated: tuple[str, ...]
    """The tasks with no recorded duration, which took the median of the recorded ones."""


def run_durations(store: Store, run_id: str) -> dict[str, float]:
    """
    Each task's duration in run `run_id`: its last successful attempt, else its last attempt.

    Tasks that never finished an attempt are left out.
    """
    durations: dict[str, float] = {}
    succeeded: set[str] = set()
    for attempt in store.attempts(run_id):
        if attempt.duration is None or attempt.task_id in succeeded:
            continue
        durations[attempt.task_id] = attempt.duration
        if attempt.status == "succeeded":
            succeeded.add(attempt.task_id)
    return durations


def predict(
    spec: WorkflowSpec,
    *,
    workers: int | None = None,
    durations: Mapping[str, float] | None = None,
    history: Mapping[str, Sequence[float]] | None = None,
) -> Prediction:
    """
    Simulate a run of `spec` on `workers` workers under a mock clock.

    Runs its own ``trio.run``, so call it from plain (not Trio) code.

    Args:
        spec: the workflow.
        workers: how many attempts may run at once (default: as a real run
            would have, `worker_count`).
        durations: seconds each task takes, by task id (from `run_durations`);
            None: the median of each task's `history`.
        history: recent successful attempt durations per task id
            (`Store.recent_durations`); they also order the ready tasks, as
            in a real run.
    """
    workers = worker_count(spec, workers)
    recent = history or {}
    samples = (
        {task: [seconds] for task, seconds in durations.items()}
        if durations is not None
        else recent
    )
    graph = compile_graph(spec)
    given = dict(zip(graph.ids, task_weights(graph, samples), strict=True))
    recorded = {task for task, values in samples.items() if values}
    runner = FakeRunner({task_id: Outcome(seconds) for task_id, seconds in given.items()})
    with Store.memory() as store:
        result = simulate(
            spec,
            runner,
            max_workers=workers,
            store=store,
            graph=graph,
            expected_durations=recent,
        )
        record = store.get_run(result.run_id)
        steps = critical_path(
            store.tasks(result.run_id),
            store.ready_causes(result.run_id),
            run_started=record.started_at,
        )
    start = record.started_at or 0.0
    busy = sum(given.values())
    return Prediction(
        workers=workers,
        wall=result.wall,
        busy=busy,
        parallelism=parallelism(busy, result.wall) or 0.0,
        critical_path=tuple(
            PredictedStep(
                task_id=step.task_id,
                start=step.started_at - start,
                end=step.finished_at - start,
                waited=step.waited,
            )
            for step in steps
        ),
        durations=given,
        estimated=tuple(task.id for task in spec.tasks if task.id not in recorded),
    )
