"""
``uet simulate``: how long would this workflow take with N workers?

The workflow runs through the real scheduler with `uet_trio.testing.FakeRunner`
under a mock clock, so nothing is executed and the answer comes at once. Each
task takes the duration it took in a recorded run: the run named by
``--durations``, or else the median of the workflow's recent runs in the
database. Tasks with no record take the median of those that have one (1 s
when none has). Ready tasks are ordered as the next real run would order them
(the same critical-path weights from the database). Retries are not replayed:
every task succeeds on its first attempt.
"""

from __future__ import annotations

import os
import statistics
from typing import TYPE_CHECKING, Any

import click

from ._common import db_option, echo_json, seconds
from ._plan import _load

if TYPE_CHECKING:
    from uet_trio.recording.store import Store
    from uet_trio.workflow.spec import WorkflowSpec

UNKNOWN_DURATION = 1.0
"""Seconds a task takes when no task of the workflow has a recorded duration."""
NO_RECORD = "no recorded run: every task counted as 1s"


@click.command()
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option(
    "--workers", "-j", type=click.IntRange(min=1), help="Worker tasks (default: as `uet run`)."
)
@click.option(
    "--durations",
    "durations_run",
    metavar="RUN",
    help="Take task durations from RUN (id or unique prefix) instead of recent runs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@db_option
def simulate(
    flow: str, workers: int | None, durations_run: str | None, as_json: bool, db: str
) -> None:
    """Predict the wall time and critical path of FLOW with N workers."""
    spec, _ = _load(flow)
    workers = workers or spec.max_workers or os.cpu_count() or 1
    recorded, history, source = _recorded_durations(spec, db, durations_run)
    durations, estimated = _fill_missing(spec, recorded)
    prediction = _predict(spec, workers, durations, history)
    prediction.update(
        workflow=spec.name,
        workers=workers,
        durations_from=source,
        estimated=estimated,
    )
    if as_json:
        echo_json(prediction)
        return
    click.echo(
        f"workflow {spec.name}: {len(spec.tasks)} tasks on {workers} workers (durations: {source})"
    )
    if estimated:
        click.echo(f"  {len(estimated)} tasks without a recorded duration were estimated")
    click.echo(f"predicted wall time: {seconds(prediction['wall'])}")
    click.echo(
        f"busy time: {seconds(prediction['busy'])}, parallelism "
        f"{prediction['parallelism']:.2f} of {workers}"
    )
    click.echo("critical path:")
    width = max((len(step["task"]) for step in prediction["critical_path"]), default=0)
    for step in prediction["critical_path"]:
        waited = f"  (waited {seconds(step['waited'])} for a worker)" if step["waited"] else ""
        click.echo(
            f"  {step['task']:<{width}}  {seconds(step['start']):>8} -> "
            f"{seconds(step['end']):>8}{waited}"
        )


def _recorded_durations(
    spec: WorkflowSpec, db: str, durations_run: str | None
) -> tuple[dict[str, float], dict[str, list[float]], str]:
    """
    (Task durations to simulate, recent history for ordering, where the durations came from).

    Raises:
        click.UsageError: ``--durations`` without a database, or naming a run of another workflow.
    """
    from ._common import open_store

    if not os.path.exists(db):
        if durations_run is not None:
            raise click.UsageError(f"--durations {durations_run}: no database at {db}")
        return {}, {}, NO_RECORD
    with open_store(db) as store:
        history = store.recent_durations(spec.name)
        if durations_run is None:
            medians = {task: statistics.median(values) for task, values in history.items()}
            return medians, history, "recent runs" if medians else NO_RECORD
        return _durations_of_run(store, spec, durations_run), history, "run " + durations_run


def _durations_of_run(store: Store, spec: WorkflowSpec, prefix: str) -> dict[str, float]:
    """Each task's duration in one run: its last successful attempt, else its last attempt."""
    run_id = store.resolve_run(prefix)
    record = store.get_run(run_id)
    if record.workflow != spec.name:
        raise click.UsageError(
            f"--durations {prefix}: run {run_id} is of workflow {record.workflow!r}, "
            f"not {spec.name!r}"
        )
    durations: dict[str, float] = {}
    succeeded: set[str] = set()
    for attempt in store.attempts(run_id):
        if attempt.duration is None or attempt.task_id in succeeded:
            continue
        durations[attempt.task_id] = attempt.duration
        if attempt.status == "succeeded":
            succeeded.add(attempt.task_id)
    return durations


def _fill_missing(
    spec: WorkflowSpec, recorded: dict[str, float]
) -> tuple[dict[str, float], list[str]]:
    """Durations for every task: recorded ones, else the median of the recorded ones."""
    known = [recorded[task.id] for task in spec.tasks if task.id in recorded]
    fallback = statistics.median(known) if known else UNKNOWN_DURATION
    estimated = [task.id for task in spec.tasks if task.id not in recorded]
    return {task.id: recorded.get(task.id, fallback) for task in spec.tasks}, estimated


def _predict(
    spec: WorkflowSpec,
    workers: int,
    durations: dict[str, float],
    history: dict[str, list[float]],
) -> dict[str, Any]:
    from uet_trio.recording.report import critical_path
    from uet_trio.recording.store import Store
    from uet_trio.testing import FakeRunner, Outcome, simulate

    runner = FakeRunner({task_id: Outcome(seconds) for task_id, seconds in durations.items()})
    with Store.memory() as store:
        result = simulate(
            spec, runner, max_workers=workers, store=store, expected_durations=history
        )
        record = store.get_run(result.run_id)
        steps = critical_path(
            store.tasks(result.run_id),
            store.ready_causes(result.run_id),
            run_started=record.started_at,
        )
    start = record.started_at or 0.0
    busy = sum(durations.values())
    return {
        "wall": result.wall,
        "busy": busy,
        "parallelism": busy / result.wall if result.wall > 0 else 0.0,
        "critical_path": [
            {
                "task": step.task_id,
                "start": step.started_at - start,
                "end": step.finished_at - start,
                "waited": step.waited,
            }
            for step in steps
        ],
    }


COMMANDS = [simulate]
