"""
What a run's records say about its shape: the critical path and the achieved parallelism.

Pure functions over store records, with no database and no Trio, so `uet show`
and any embedding program compute the same numbers and tests can build the
records by hand.

The critical path is the chain of tasks that bounded the run's wall time. It
ends at the task that finished last and walks back, from each task to the task
whose end made it ready (its last dependency to finish, as recorded in the
event log, see `Store.ready_causes`). Each step also records how long the task
waited between becoming ready and starting its first attempt; a long wait means
the run was bounded by its workers rather than by its dependencies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from .records import AttemptRecord, AttemptTiming, TaskRecord


@attrs.frozen(kw_only=True)
class PathStep:
    """One task on the critical path; times are Unix times."""

    task_id: str
    started_at: float
    """When its first attempt started."""
    finished_at: float
    """When it reached its final state (including retries)."""
    waited: float
    """Seconds from the end of the task that released it (or the run's start) to its start."""

    @property
    def duration(self) -> float:
        """Seconds from its first attempt's start to its final state."""
        return self.finished_at - self.started_at


def critical_path(
    tasks: Iterable[TaskRecord],
    released_by: Mapping[str, str | None],
    *,
    run_started: float | None,
) -> list[PathStep]:
    """
    The chain of tasks that bounded the run, first task first.

    Args:
        tasks: the run's task records.
        released_by: task id -> the task whose end made it ready (None for a
            task ready from the start), as `Store.ready_causes` returns it.
        run_started: when the run started; the first step's wait is measured
            from it (None: the first step waited 0).

    Returns:
        The steps, empty when no task has both started and finished.
    """
    ran = {
        task.task_id: task
        for task in tasks
        if task.started_at is not None and task.finished_at is not None
    }
    if not ran:
        return []
    current: TaskRecord | None = max(
        ran.values(), key=lambda task: (task.finished_at or 0.0, -task.idx)
    )
    chain: list[TaskRecord] = []
    seen: set[str] = set()
    while current is not None and current.task_id not in seen:
        seen.add(current.task_id)
        chain.append(current)
        cause = released_by.get(current.task_id)
        current = ran.get(cause) if cause is not None else None
    chain.reverse()
    steps = []
    previous_end = run_started
    for task in chain:
        assert task.started_at is not None
        assert task.finished_at is not None
        start = task.started_at
        waited = max(0.0, start - previous_end) if previous_end is not None else 0.0
        steps.append(
            PathStep(
                task_id=task.task_id,
                started_at=start,
                finished_at=task.finished_at,
                waited=waited,
            )
        )
        previous_end = task.finished_at
    return steps


def busy_seconds(
    attempts: Iterable[AttemptRecord | AttemptTiming], *, now: float | None = None
) -> float:
    """
    The sum of the attempts' durations, in seconds.

    An attempt's duration is the one the runner measured; a cancelled or lost
    attempt has none, so its recorded start and end are used instead. An
    attempt still running counts up to `now` (not at all when `now` is None).
    """
    total = 0.0
    for attempt in attempts:
        if attempt.duration is not None:
            total += attempt.duration
        elif attempt.finished_at is not None:
            total += max(0.0, attempt.finished_at - attempt.started_at)
        elif now is not None:
            total += max(0.0, now - attempt.started_at)
    return total


def parallelism(busy: float, wall: float | None) -> float | None:
    """Achieved parallelism: busy seconds per second of wall time (None without a wall time)."""
    if wall is None or wall <= 0:
        return None
    return busy / wall


def run_wall(started_at: float | None, finished_at: float | None, *, now: float) -> float | None:
    """The run's wall time so far: start to finish, or start to `now` while it runs."""
    if started_at is None:
        return None
    return (finished_at if finished_at is not None else now) - started_at


def path_seconds(steps: Sequence[PathStep]) -> float:
    """How long the critical path took, from its first task's start to its last task's end."""
    if not steps:
        return 0.0
    return steps[-1].finished_at - steps[0].started_at
